/**
 * On real Kamailio in proxy mode: two chat phones of bob (scripts/lab/phone.ts) and alice's
 * chat (scripts/lab/chat.ts) as a user runs them. The INVITE forks to both phones, the
 * first to answer takes the session and the other gets CANCEL; alice's message reaches the
 * answering phone, which answers its delivery notification request and replies; the reply
 * and the notification reach alice. Asserted on what each CLI printed, line by line.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT, runDir } from '../../lab/lab.js';
import { Proc } from '../../lab/proc.js';
import { LAB_POLICY } from '../../lab/xdm.js';
import { ChatSession } from '../../lab/chat-phone.js';
import { answerSetup, chatSdp, offererRole, parseScript, readChatSdp } from '../../lab/chat.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const dir = runDir('it-chat');
const lab = await Lab.start({ dir, policy: LAB_POLICY, relay: true });
const procs: Proc[] = [];
t.teardown(async () => {
  await Promise.all(procs.map((p) => p.stop(2000)));
  await lab.stop();
});

const cli = (name: string, script: string, args: readonly string[]): Proc => {
  const p = new Proc(name, process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'lab', script), ...args], {
    cwd: ROOT,
    env: { ...process.env, LAB_SIP_PORT: String(lab.sipPort) },
    logFile: join(dir, `${name}.log`),
  });
  procs.push(p);
  return p;
};
const lines = (p: Proc): string[] => p.output.split('\n').filter((l) => l !== '');

t.test('alice chats with bob: fork, CANCEL, messages both ways, delivery notification', async (t) => {
  const phoneScript = join(dir, 'bob.script');
  writeFileSync(phoneScript, '# answer alice\nwait message hello bob\nsend hi alice\n');
  const aliceScript = join(dir, 'alice.script');
  writeFileSync(aliceScript, 'send hello bob\nwait imdn\nwait message hi alice\nbye\n');

  // the first phone answers after 300 ms, once the other phone's 180 is through Kamailio:
  // a 180 handled by Kamailio while a 2xx cancels the other branches gets no CANCEL
  // (Kamailio 5.6.3 tm, test/integration/register-race.test.ts); the second phone would
  // answer after 5 s, and the first one's 200 comes long before
  const b1 = cli('bob-1', 'phone.ts', ['--user', 'bob', '--instance', '1', '--answer-after', '300', '--script', phoneScript]);
  const b2 = cli('bob-2', 'phone.ts', ['--user', 'bob', '--instance', '2', '--answer-after', '5000']);
  await Promise.all([b1.waitFor(/Ctrl-C to stop/, 20_000), b2.waitFor(/Ctrl-C to stop/, 20_000)]);

  const alice = cli('alice', 'chat.ts', ['--from', 'alice', '--to', 'bob', '--script', aliceScript]);
  const code = await alice.exited;
  if (code !== 0) t.comment(alice.output);
  t.equal(code, 0, "alice's chat ends with exit 0");
  await b2.waitFor(/<< CANCEL/, 10_000);
  await b1.waitFor(/<< BYE from/, 10_000);
  await Promise.all([b1.stop(), b2.stop()]);
  t.equal(b1.exitCode, 0, 'phone 1 exits 0 (unregistered)');
  t.equal(b2.exitCode, 0, 'phone 2 exits 0 (unregistered)');

  const a = lines(alice);
  const callId = /Call-ID (\S+),/.exec(a[0] ?? '')?.[1] ?? '?';
  const hello = /^>> hello bob \(imdn (\S+)\)$/m.exec(alice.output)?.[1] ?? '?';
  const hi = /^>> hi alice \(imdn (\S+)\)$/m.exec(b1.output)?.[1] ?? '?';
  // Kamailio relays each branch's 180 that comes before the 200: one or two
  const ringing = a.filter((l) => l === '<< 180 Ringing').length;
  t.ok(ringing >= 1 && ringing <= 2, `alice got ${ringing} 180s`);
  t.same(
    a.filter((l, i) => l !== '<< 180 Ringing' || a.indexOf(l) === i),
    [
      `>> INVITE sip:bob@example.net (Call-ID ${callId}, msrp setup actpass)`,
      '<< 100 trying -- your call is important to us',
      '<< 180 Ringing',
      '<< 200 OK',
      'msrp connected (active) with sip:bob@example.net',
      `>> hello bob (imdn ${hello})`,
      `<< imdn delivery:delivered ${hello} from sip:bob@example.net`,
      '<< sip:bob@example.net is composing',
      '<< sip:bob@example.net: hi alice',
      `>> imdn delivered ${hi}`,
      `>> BYE (Call-ID ${callId})`,
      '<< 200 OK (BYE)',
    ],
    'alice printed',
  );

  const instance = (p: Proc): string => /^registered sip:bob@example\.net (\S+) at /m.exec(p.output)?.[1] ?? '?';
  const registered = (p: Proc): string => /^(registered .*)$/m.exec(p.output)?.[1] ?? '?';
  t.same(
    lines(b1),
    [
      registered(b1),
      'phone bob answers; type to chat, Ctrl-C to stop',
      `<< INVITE from sip:alice@example.net (Call-ID ${callId})`,
      '>> 180 Ringing',
      '>> 200 OK (msrp passive)',
      'msrp connected (passive) with sip:alice@example.net',
      '<< sip:alice@example.net is composing',
      '<< sip:alice@example.net: hello bob',
      `>> imdn delivered ${hello}`,
      `>> hi alice (imdn ${hi})`,
      `<< imdn delivery:delivered ${hi} from sip:alice@example.net`,
      `<< BYE from sip:alice@example.net (Call-ID ${callId})`,
      `unregistered sip:bob@example.net ${instance(b1)}`,
    ],
    'the phone that answered printed',
  );
  t.same(
    lines(b2),
    [
      registered(b2),
      'phone bob answers; type to chat, Ctrl-C to stop',
      `<< INVITE from sip:alice@example.net (Call-ID ${callId})`,
      '>> 180 Ringing',
      `<< CANCEL (Call-ID ${callId})`,
      `unregistered sip:bob@example.net ${instance(b2)}`,
    ],
    'the other phone printed',
  );
  t.not(instance(b1), instance(b2), 'two instances');
  const devices = await lab.service.getJson('/users/bob/devices');
  t.same((devices.body as { devices: unknown[] }).devices, [], 'both phones unregistered');
});

t.test("B2BUA mode's media: the same sessions through the relay, SDP from its offer and answer", async (t) => {
  // what the B2BUA will do with the phones' and the caller's SDP (docs/media-control.md):
  // the relay offers the phones a=setup:passive and answers the caller passive
  const relay = lab.relay;
  if (!relay) throw new Error('the lab started no relay');
  const ctl = await RelayControlClient.connect('127.0.0.1', relay.controlPort);
  const said: string[] = [];
  const alice = await ChatSession.listen('sip:alice@example.net', (l) => said.push(`alice ${l}`));
  const bob = await ChatSession.listen('sip:bob@example.net', (l) => said.push(`bob ${l}`));
  try {
    const offer = await ctl.offer({ 'call-id': 'relay-chat-1', sdp: chatSdp({ path: alice.path, setup: 'actpass' }), 'served-user': 'sip:bob@example.net' });
    if (offer.result !== 'ok') throw new Error(`offer: ${JSON.stringify(offer)}`);
    const toBob = readChatSdp(offer['device-sdp']);
    const bobRole = answerSetup(toBob.setup);
    t.equal(bobRole, 'active', "the phone answers the relay's passive offer active");
    const answer = await ctl.answer({ 'call-id': 'relay-chat-1', leg: 'bob-1', sdp: chatSdp({ path: bob.path, setup: bobRole }) });
    t.equal(answer.result, 'ok', "the relay takes the phone's answer");
    const toAlice = readChatSdp(offer.sdp);
    const aliceRole = offererRole('actpass', toAlice.setup);
    t.equal(aliceRole, 'active', 'the caller connects to the relay');
    await Promise.all([bob.start(bobRole, toBob, 'sip:alice@example.net'), alice.start(aliceRole, toAlice, 'sip:bob@example.net')]);
    await Promise.all([alice.run(parseScript('send hello via the relay\nwait imdn\nwait message hi back')), bob.run(parseScript('wait message hello via the relay\nsend hi back\nwait imdn'))]);
    const hello = alice.sent[0] ?? '?';
    const hi = bob.sent[0] ?? '?';
    t.same(
      said.filter((l) => l.startsWith('alice')),
      [
        'alice msrp connected (active) with sip:bob@example.net',
        `alice >> hello via the relay (imdn ${hello})`,
        `alice << imdn delivery:delivered ${hello} from sip:bob@example.net`,
        'alice << sip:bob@example.net is composing',
        'alice << sip:bob@example.net: hi back',
        `alice >> imdn delivered ${hi}`,
      ],
      'alice printed',
    );
    t.same(
      said.filter((l) => l.startsWith('bob')),
      [
        'bob msrp connected (active) with sip:alice@example.net',
        'bob << sip:alice@example.net is composing',
        'bob << sip:alice@example.net: hello via the relay',
        `bob >> imdn delivered ${hello}`,
        `bob >> hi back (imdn ${hi})`,
        `bob << imdn delivery:delivered ${hi} from sip:alice@example.net`,
      ],
      'bob printed',
    );
  } finally {
    await Promise.all([alice.close(), bob.close()]);
    await ctl.delete({ 'call-id': 'relay-chat-1' }).catch(() => undefined);
    await ctl.close();
  }
});
