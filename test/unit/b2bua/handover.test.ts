/**
 * pf.invite's handover of a `b2bua` decision (plugin/rpc/methods.ts): the plan under the
 * ticket carries deferral and recording; a deferred decision with no B2BUA running is a
 * 480 (docs/policy.md "Deferred delivery"); a proxy-mode user's deferred session goes
 * through the B2BUA too.
 */
import t from 'tap';
import { pino } from 'pino';
import { buildMethods, type B2buaHandover, type MethodDeps } from '../../../plugin/rpc/methods.js';
import { parseConfig, b2buaWanted } from '../../../plugin/config/load.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import type { DeviceStore } from '../../../plugin/devices/store.js';
import type { B2buaPlan } from '../../../plugin/b2bua/tickets.js';
import { defaultPolicy } from '../../../plugin/rules/policy.js';
import { RpcError } from '../../../wire/errors.js';
import { device, inviteText, NOW, TAGS } from '../rules/fixtures/build.js';

const phone = device('phone', TAGS.cpm);

function methods(policy: Record<string, unknown>, handover: boolean, registered = [phone]) {
  const plans: B2buaPlan[] = [];
  const b2bua: B2buaHandover = { issue: (p) => (plans.push(p), 'f'.repeat(32)), connectedDevices: () => null };
  const deps: MethodDeps = {
    config: parseConfig({ rpcPort: 0, httpPort: 0, dataDir: '/nonexistent', logLevel: 'silent', policy, b2bua: { legToken: 'x'.repeat(16) } }),
    devices: { list: () => registered } as unknown as DeviceStore,
    xdm: { load: () => ({ blacklist: null, ruleset: null }) as never },
    metrics: new ServiceMetrics(),
    log: pino({ level: 'silent' }),
    now: () => NOW,
    ...(handover ? { b2bua } : {}),
  };
  return { invite: buildMethods(deps)['pf.invite']!, plans };
}

const call = async (m: ReturnType<typeof methods>): Promise<unknown> => {
  try {
    return await m.invite.handler({ v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' }, undefined);
  } catch (err) {
    return err instanceof RpcError ? { rpcError: err.code } : err;
  }
};

t.test('pf.invite: the ticket\'s plan and the answer to Kamailio', async (t) => {
  const ticket = { action: 'b2bua', stage: 'b2bua', remove: ['X-PF-Ticket'], hdrs: `X-PF-Ticket: ${'f'.repeat(32)}\r\n` };
  const cases: { name: string; policy: Record<string, unknown>; handover: boolean; devices?: ReturnType<typeof device>[]; want: unknown; plan?: Partial<B2buaPlan> }[] = [
    {
      name: 'proxy-mode user, no device, deferral on: through the B2BUA, deferred',
      policy: { deferredDelivery: true, deferredTtlS: 3600, recordHistory: true }, handover: true, devices: [], want: ticket,
      plan: { targets: [], defer: true, deferral: { ttlS: 3600 }, record: true },
    },
    {
      name: 'b2bua mode with a device: deferral kept for the legs',
      policy: { mode: 'b2bua', deferredDelivery: true }, handover: true, want: ticket,
      plan: { targets: [phone], defer: false, deferral: { ttlS: 604_800 }, record: false },
    },
    {
      name: 'b2bua mode, deferral off',
      policy: { mode: 'b2bua' }, handover: true, want: ticket, plan: { targets: [phone], defer: false, deferral: null, record: false },
    },
    {
      name: 'no B2BUA running, a deferred decision: 480',
      policy: { deferredDelivery: true }, handover: false, devices: [], want: { action: 'reject', code: 480, reason: 'Temporarily Unavailable', hdrs: '', stage: 'no-suitable-device' },
    },
    {
      name: 'no B2BUA running, diagnosticWarning: 480 with the stage',
      policy: { deferredDelivery: true, diagnosticWarning: true }, handover: false, devices: [],
      want: { action: 'reject', code: 480, reason: 'Temporarily Unavailable', hdrs: 'Warning: 399 pf.example.net "no-suitable-device"\r\n', stage: 'no-suitable-device' },
    },
    { name: 'proxy mode with a device: a proxy decision as before', policy: { deferredDelivery: true }, handover: false, want: { action: 'proxy' } },
  ];
  for (const c of cases) {
    const m = methods(c.policy, c.handover, c.devices);
    const r = await call(m);
    if (c.want && (c.want as { action: string }).action === 'proxy') t.match(r, c.want, c.name);
    else t.same(r, c.want, c.name);
    if (c.plan) t.match(m.plans, [{ callId: 'c1', servedUser: 'sip:bob@example.net', ...c.plan }], `${c.name}: plan`);
    else t.same(m.plans, [], `${c.name}: no ticket`);
  }
});

t.test('b2buaWanted: a b2bua mode, or deferral with a legToken', async (t) => {
  const token = 'x'.repeat(16);
  const cases: [string, Partial<typeof defaultPolicy>, string, boolean][] = [
    ['proxy, no deferral', {}, token, false],
    ['b2bua mode', { mode: 'b2bua' }, '', true],
    ['deferral on, legToken set', { deferredDelivery: true }, token, true],
    ['deferral on, no legToken: no B2BUA (deferred sessions get 480)', { deferredDelivery: true }, '', false],
    ['deferral on for one user, legToken set', { deferredDeliveryByUser: { 'sip:bob@example.net': true } }, token, true],
    ['deferral off for one user only', { deferredDeliveryByUser: { 'sip:bob@example.net': false } }, token, false],
  ];
  for (const [name, p, legToken, want] of cases) t.equal(b2buaWanted({ ...defaultPolicy, ...p }, legToken), want, name);
});
