/**
 * `pf.invite` with `fork: true` (docs/jsonrpc.md): the result's `fork` is exactly what
 * `core.fork` answers on the INVITE as Kamailio forwards it after the decision
 * (remove_hf of `remove`, append_hf of `hdrs`), one round trip instead of two.
 */
import t from 'tap';
import { createApp, type App } from '../../../plugin/app.js';
import { quietLog, rpcCalls as rpc, tempDir, testConfig, type Teardown } from './fixtures/helpers.js';
import { inviteText, registerText } from '../../../lab/service-fixtures.js';

/** What Kamailio forwards ($mbu): header lines named in `remove` dropped, `hdrs` appended. */
function forwarded(raw: string, remove: readonly string[], hdrs: string): string {
  const cut = raw.indexOf('\r\n\r\n');
  const drop = new Set(remove.map((r) => r.toLowerCase()));
  const lines = raw.slice(0, cut).split('\r\n').filter((l, i) => i === 0 || !drop.has(l.slice(0, l.indexOf(':')).trim().toLowerCase()));
  return `${lines.join('\r\n')}\r\n${hdrs}${raw.slice(cut + 2)}`;
}

const clock = Date.UTC(2026, 0, 1);

async function started(t: Teardown): Promise<App> {
  const app = await createApp(testConfig(tempDir(t)), quietLog, { now: () => clock });
  t.teardown(() => app.stop());
  await app.start();
  return app;
}

const MMTEL = `+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`;

t.test('the merged fork equals core.fork on the request as the PF modified it', async (t) => {
  const app = await started(t);
  const src = 'udp:127.0.0.1:5070';
  const regs = await rpc(app.rpcPort, [
    ['pf.register', { v: 1, msg: registerText({ port: 6001 }), src: 'tcp:127.0.0.1:40001' }],
    ['pf.register', { v: 1, msg: registerText({ port: 6002, instance: '00000000-0000-0000-0000-000000000002' }), src: 'tcp:127.0.0.1:40002' }],
    [
      'pf.register',
      {
        v: 1,
        msg: registerText({ contact: `<sip:bob@127.0.0.1:6003;transport=tcp>;${MMTEL};+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000003>"`, callId: 'reg-mmtel' }),
        src: 'tcp:127.0.0.1:40003',
      },
    ],
  ]);
  t.same(regs.map((r) => r.error), [undefined, undefined, undefined]);

  const invites: Record<string, string> = {
    plain: inviteText(),
    'caller asks no-fork': inviteText({ extra: ['Request-Disposition: no-fork'] }),
    'caller rejects device 2': inviteText({ extra: ['Reject-Contact: *;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000002>"'] }),
    'not CPM (pass)': inviteText({ extra: [] }).replace(/^P-Preferred-Service:.*\r\n/m, '').replace(/^Accept-Contact:.*\r\n/m, '').replace(/^Contribution-ID:.*\r\n/m, ''),
  };
  const actions: string[] = [];
  let changed = 0;
  for (const [name, msg] of Object.entries(invites)) {
    const [merged, plain] = await rpc(app.rpcPort, [
      ['pf.invite', { v: 1, msg, src, fork: true }],
      ['pf.invite', { v: 1, msg, src }],
    ]);
    const r = merged?.result as { action: string; remove?: string[]; hdrs?: string; fork?: unknown };
    actions.push(r.action);
    t.ok(r.fork, `${name}: result carries fork`);
    // without "fork" the result is the decision alone, the same decision
    const { fork, ...decision } = r;
    t.same(plain?.result, decision, `${name}: same decision`);
    const edited = r.action === 'proxy' ? forwarded(msg, r.remove ?? [], r.hdrs ?? '') : msg;
    const [viaCore, onOriginal] = await rpc(app.rpcPort, [
      ['core.fork', { v: 1, msg: edited, src }],
      ['core.fork', { v: 1, msg, src }],
    ]);
    t.same(fork, viaCore?.result, `${name}: fork equals core.fork on the forwarded request`);
    if (JSON.stringify(fork) !== JSON.stringify(onOriginal?.result)) changed++;
  }
  t.same(actions, ['proxy', 'proxy', 'proxy', 'pass']);
  t.ok(changed > 0, "the PF's edits change the fork in at least one case (the comparison is not vacuous)");
});

t.test('no fork on a rejection; fork must be a boolean', async (t) => {
  const app = await started(t);
  const [none] = await rpc(app.rpcPort, [['pf.invite', { v: 1, msg: inviteText({ to: 'carol' }), src: 'udp:127.0.0.1:5070', fork: true }]]);
  t.match(none?.result, { action: 'reject', code: 480 });
  t.equal((none?.result as { fork?: unknown }).fork, undefined, 'a rejection carries no fork');
  const [bad] = await rpc(app.rpcPort, [['pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070', fork: 'yes' }]]);
  t.match(bad?.error, { code: -32602 }, 'fork must be a boolean');
});
