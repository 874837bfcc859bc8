/**
 * The live view on real Kamailio (docs/lab.md "Live view"), in a real headless browser:
 * a lab started as `npm run lab` starts it (siptrace HEP3 to the service's collector, the
 * relay's frames too), a chat phone of bob, alice's chat; while the call is up, Debian's
 * chromium loads GET /lab/live and the DOM it built must show the caller's INVITE, the
 * decision with its CR stage and the 200, the device with its GRUU and tags, and the
 * session in progress. Proxy mode, then B2BUA mode, where the ladder also has the B2BUA's
 * leg and MSRP frames through the relay.
 *
 * LIVE_VIEW_SCREENSHOT=<dir> also writes live-view-<mode>.png there (docs/img/live-view.png
 * was made so).
 */
import t from 'tap';
import { join } from 'node:path';
import { Lab, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { LAB_POLICY } from '../../lab/xdm.js';
import { hdr } from '../../lab/sip-ua.js';
import { ChatCaller, Phone, instanceFor } from '../../lab/chat-phone.js';
import { chromiumPath, dumpDom, screenshot } from '../../lab/browser.js';
import type { Ladder, Sessions } from '../../plugin/live/schema.js';

const shots = process.env.LIVE_VIEW_SCREENSHOT;

if (chromiumPath() === null) t.fail('chromium is not installed (scripts/ensure-deps.sh installs it)');

for (const mode of ['proxy', 'b2bua'] as const) {
  t.test(`${mode} mode: the page shows a real call while it is up`, async (t) => {
    const dir = runDir(`it-live-${mode}`);
    const lab = await Lab.start({ dir, policy: LAB_POLICY, mode, live: true });
    const phones: Phone[] = [];
    let caller: ChatCaller | null = null;
    t.teardown(async () => {
      await caller?.hangup().catch(() => undefined);
      await Promise.all(phones.map((p) => p.stop()));
      await lab.stop();
    });
    const phone = await Phone.start({ sipPort: lab.sipPort, user: 'bob', instance: instanceFor('bob', `live-${mode}`), answer: { kind: 'after', ms: 0 }, out: () => undefined });
    phones.push(phone);
    caller = await ChatCaller.place({ sipPort: lab.sipPort, from: 'alice', to: 'bob', out: () => undefined });
    t.equal(caller.state, 'confirmed', 'alice is in a chat with bob');
    const callId = hdr(caller.final!, 'call-id') ?? '';
    t.ok(callId, 'the call has a Call-ID');
    if (mode === 'b2bua') await caller.session.send('hello through the relay');

    const ladder = (): Promise<Ladder | undefined> =>
      lab.service.fetch(`/lab/live/calls/${encodeURIComponent(callId)}`).then(async (r) => (r.status === 200 ? ((await r.json()) as Ladder) : undefined));
    const has = (l: Ladder, from: string, to: string, label: RegExp): boolean => l.rows.some((r) => r.from === from && r.to === to && label.test(r.label));
    const stage = mode === 'proxy' ? 'decision: proxy · stage proxy' : 'decision: b2bua · stage b2bua';
    // the captures arrive over UDP, a little after the messages themselves
    const seen = await until(async () => {
      const l = await ladder();
      if (!l) return undefined;
      const complete =
        has(l, 'caller', 'kamailio', /^INVITE sip:bob@/) && l.rows.some((r) => r.label === stage) && has(l, 'kamailio', 'caller', /^200 OK \(INVITE\)$/) &&
        (mode === 'proxy' || (l.rows.some((r) => r.label === 'MSRP SEND') && l.rows.some((r) => r.label === 'MSRP 200')));
      return complete ? l : undefined;
    }, 10_000, 'the ladder of the call').catch(async () => {
      t.comment(JSON.stringify(await ladder(), null, 1));
      return null;
    });
    t.ok(seen, 'the ladder JSON has the INVITE, the decision with its stage and the 200');
    if (seen) {
      const dev = seen.participants.find((p) => p.id.startsWith('dev:'));
      t.ok(dev, `bob's phone is a participant (${dev?.label})`);
      t.ok(seen.rows.some((r) => r.from === dev?.id && /^200 OK \(INVITE\)$/.test(r.label)), "the phone's 200 is in the ladder");
      t.same(seen.answeredBy, [dev?.label], 'the phone answered');
      if (mode === 'b2bua') {
        t.equal(seen.call.legs.length, 1, "the B2BUA's leg is linked to the caller's call");
        t.ok(seen.rows.some((r) => r.from === 'pf' && r.to === 'kamailio' && r.leg !== null && /^INVITE /.test(r.label)), "the B2BUA's leg INVITE is in the ladder");
        t.ok(seen.rows.some((r) => r.from === 'caller' && r.to === 'relay' && r.label === 'MSRP SEND'), "alice's SEND to the relay");
        t.ok(seen.rows.some((r) => r.from === 'relay' && r.to === dev?.id && r.label === 'MSRP SEND'), "the relay's SEND to the phone");
      }
    }
    const sessions = (await lab.service.getJson('/sessions')).body as Sessions;
    t.same(
      sessions.sessions.map((s) => [s.callId, s.state, s.mode]),
      [[callId, 'established', mode]],
      '/sessions lists the call as established',
    );

    // the page takes the operator's token from the fragment (docs/lab.md "Live view")
    const url = `${lab.service.url}/lab/live#token=${lab.operatorToken}&call=${encodeURIComponent(callId)}`;
    const dom = await dumpDom(url);
    t.match(dom, /INVITE sip:bob@example\.net/, 'the page shows the INVITE');
    t.ok(dom.includes(stage), `the page shows "${stage}"`);
    t.match(dom, /200 OK \(INVITE\)/, 'the page shows the 200');
    t.match(dom, /GRUU sip:bob@example\.net;gr=/, "the page shows bob's GRUU");
    t.match(dom, /\+g\.3gpp\.icsi-ref/, "the page shows the phone's feature tags");
    t.match(dom, /class="session"/, 'the page lists a session in progress');
    if (mode === 'b2bua') t.match(dom, /MSRP SEND/, 'the page shows the MSRP frames');
    if (shots) await screenshot(url, join(shots, `live-view-${mode}.png`), 1400, mode === 'b2bua' ? 1500 : 640);

    await caller.hangup();
    caller = null;
    await until(async () => {
      const s = (await lab.service.getJson('/sessions')).body as Sessions;
      return s.sessions.length === 0 ? true : undefined;
    }, 10_000, 'no session left').then(
      () => t.pass('/sessions is empty after the BYE'),
      (err: unknown) => t.fail(String(err)),
    );
  });
}
