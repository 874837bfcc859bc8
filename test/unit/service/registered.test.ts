/**
 * The deferred delivery trigger (docs/deferred.md "Trigger and order", docs/jsonrpc.md
 * `pf.registered`): pf.cfg notifies `pf.registered` after save("location") succeeded, and
 * only then are the B2BUA's deferred sessions offered to the user's devices; `pf.register`
 * (run before save()) stores the devices and triggers nothing. A query or a
 * de-REGISTER triggers nothing.
 */
import t from 'tap';
import { pino } from 'pino';
import { buildMethods, type B2buaHandover, type MethodDeps } from '../../../plugin/rpc/methods.js';
import { triggersDelivery } from '../../../plugin/rpc/registered.js';
import { parseConfig } from '../../../plugin/config/load.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import type { DeviceStore } from '../../../plugin/devices/store.js';
import type { RegisterUpdate } from '../../../plugin/sip/register.js';
import { registerText } from '../../../lab/service-fixtures.js';
import { device, NOW, TAGS } from '../rules/fixtures/build.js';

const BOB = 'sip:bob@example.net';
const phone = device('phone', TAGS.cpm);

t.test('triggersDelivery: a binding added or refreshed, nothing else', async (t) => {
  const cases: { name: string; update: RegisterUpdate; want: boolean }[] = [
    { name: 'a binding added or refreshed', update: { kind: 'update', aor: BOB, upsert: [phone], remove: [] }, want: true },
    { name: 'one added, another removed', update: { kind: 'update', aor: BOB, upsert: [phone], remove: ['x'] }, want: true },
    { name: 'every Contact with expires 0 (de-REGISTER)', update: { kind: 'update', aor: BOB, upsert: [], remove: ['x'] }, want: false },
    { name: 'Contact: * with Expires: 0', update: { kind: 'remove-all', aor: BOB, callId: 'c', cseq: 2 }, want: false },
    { name: 'no Contact (a query)', update: { kind: 'fetch', aor: BOB }, want: false },
  ];
  for (const c of cases) t.equal(triggersDelivery(c.update), c.want, c.name);
});

function methods(handover: boolean) {
  const calls: { user: string; devices: number }[] = [];
  const b2bua: B2buaHandover = {
    issue: () => 'f'.repeat(32), connectedDevices: () => null, registered: (user, list) => void calls.push({ user, devices: list.length }),
  };
  const deps: MethodDeps = {
    config: parseConfig({ rpcPort: 0, httpPort: 0, dataDir: '/nonexistent', logLevel: 'silent', b2bua: { legToken: 'x'.repeat(16) } }),
    devices: {
      apply: () => Promise.resolve({ devices: 1, added: 1, refreshed: 0, removed: 0 }),
      list: () => [phone],
    } as unknown as DeviceStore,
    xdm: { load: () => ({ blacklist: null, ruleset: null }) as never },
    metrics: new ServiceMetrics(),
    log: pino({ level: 'silent' }),
    now: () => NOW,
    ...(handover ? { b2bua } : {}),
  };
  return { m: buildMethods(deps), calls };
}

const src = 'tcp:127.0.0.1:40001';
const withoutContact = registerText({}).replace(/^Contact: .*\r\n/m, '');
const star = registerText({ contact: '*' }).replace('Contact: *\r\n', 'Contact: *\r\nExpires: 0\r\n');

t.test('pf.registered triggers delivery for a saved binding; pf.register never does', async (t) => {
  const cases: { name: string; msg: string; handover: boolean; want: boolean }[] = [
    { name: 'a REGISTER saved', msg: registerText({}), handover: true, want: true },
    { name: 'a refresh (a later CSeq) saved', msg: registerText({ cseq: 7 }), handover: true, want: true },
    { name: 'a de-REGISTER (expires=0)', msg: registerText({ expires: 0 }), handover: true, want: false },
    { name: 'Contact: * with Expires: 0', msg: star, handover: true, want: false },
    { name: 'a query (no Contact)', msg: withoutContact, handover: true, want: false },
    { name: 'no B2BUA running', msg: registerText({}), handover: false, want: false },
  ];
  for (const c of cases) {
    const { m, calls } = methods(c.handover);
    const reg = await m['pf.register']!.handler({ v: 1, msg: c.msg, src }, undefined);
    t.equal(calls.length, 0, `${c.name}: pf.register (before save()) triggers nothing`);
    t.match(reg, { aor: BOB }, `${c.name}: pf.register stores as before`);
    const r = await m['pf.registered']!.handler({ v: 1, msg: c.msg, src }, undefined);
    t.same(r, { aor: BOB, triggered: c.want }, `${c.name}: pf.registered's answer`);
    t.same(calls, c.want ? [{ user: BOB, devices: 1 }] : [], `${c.name}: the B2BUA told ${c.want ? 'once, with the user\'s devices' : 'nothing'}`);
  }
});
