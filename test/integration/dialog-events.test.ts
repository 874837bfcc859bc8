/**
 * Dialog events on real Kamailio (CR 8.3.2.1 step 9: the PF knows who is in which
 * session), both ways pf.cfg can send them to the service: pf.dialog notifications
 * over janssonrpcc (PF_DIALOG_NOTIFY), and evapi (PF_DIALOG_EVAPI), which reaches every
 * connected service instance. (The default, sessions kept in Kamailio's htable, is
 * proven by the Session-Replaces test in proxy.test.ts.) A dialog ends with a BYE
 * either way, or when its pfdlg item expires (in every mode, the default included).
 */
import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Kamailio, Lab, Service, runDir } from '../../lab/lab.js';
import { call, replacingGroupInvite, Device, newInstance } from '../../lab/calls.js';
import { requestsIn } from '../../lab/sipp.js';
import { until } from '../../lab/proc.js';

const dir = runDir('it-dialog-events');

async function tracked(service: Service, cid: string): Promise<boolean> {
  return JSON.stringify((await service.getJson('/sessions')).body).includes(cid);
}

/** A held call to `user` with a fresh Contribution-ID: tracked while up, dropped after. */
async function trackedWhileUp(t: Test, lab: Lab, services: readonly Service[], user: string, calleeHangsUp = false): Promise<void> {
  const cid = randomUUID();
  const up = call({ dir: lab.kamailio.opts.dir, sipPort: lab.sipPort, to: user, contributionId: cid }, 3000, calleeHangsUp);
  for (const [i, s] of services.entries()) {
    await until(async () => ((await tracked(s, cid)) ? true : undefined), 10_000, `instance ${String(i)} tracks the session`);
    t.pass(`instance ${String(i)}: the confirmed dialog is tracked`);
  }
  const r = await up;
  t.equal(r.code, 0, `call completed ${r.errors}`);
  for (const [i, s] of services.entries()) {
    await until(async () => ((await tracked(s, cid)) ? undefined : true), 10_000, `instance ${String(i)} drops the session`);
    t.pass(`instance ${String(i)}: the ended dialog is dropped`);
  }
}

t.test('evapi: every connected service instance gets every dialog event', async (t) => {
  const lab = await Lab.start({ dir: join(dir, 'evapi'), dialogEvents: 'evapi' });
  const evapi = lab.service.opts.evapi ?? [];
  // a second instance on the same Kamailio evapi endpoint (janssonrpcc only knows the first)
  const second = await Service.start({ dir: join(dir, 'evapi'), name: 'second', evapi });
  const d = await Device.start({ dir: join(dir, 'evapi'), sipPort: lab.sipPort, user: 'ivy', instance: newInstance(), behaviour: { kind: 'answer' } });
  t.teardown(async () => {
    await d.stop();
    await second.stop();
    await lab.stop();
  });
  await second.waitEvapi(1);
  await trackedWhileUp(t, lab, [lab.service, second], 'ivy');
  const m = await second.metrics();
  t.match(m, /^pf_evapi_events_total\{outcome="ok"\} [1-9]/m, 'events counted');
});

t.test('janssonrpcc: pf.dialog notifications (PF_DIALOG_NOTIFY)', async (t) => {
  const lab = await Lab.start({ dir: join(dir, 'rpc'), dialogEvents: 'rpc' });
  const d = await Device.start({ dir: join(dir, 'rpc'), sipPort: lab.sipPort, user: 'ivy', instance: newInstance(), behaviour: { kind: 'answer' } });
  t.teardown(async () => {
    await d.stop();
    await lab.stop();
  });
  t.notMatch(await lab.service.metrics(), /^pf_evapi_connections [1-9]/m, 'no evapi link');
  await trackedWhileUp(t, lab, [lab.service], 'ivy');
});

t.test('evapi: the service reconnects when Kamailio comes back', async (t) => {
  const lab = await Lab.start({ dir: join(dir, 'restart'), dialogEvents: 'evapi' });
  let back: Kamailio | null = null;
  t.teardown(async () => {
    await back?.stop();
    await lab.stop();
  });
  await lab.kamailio.stop();
  await until(async () => (/^pf_evapi_connections 0$/m.test(await lab.service.metrics()) ? true : undefined), 10_000, 'link down');
  t.pass('the service saw the link go down');
  // the same evapi port again (a new SIP port: the old one may linger)
  back = await Kamailio.start({ ...lab.kamailio.opts, sipPort: undefined, dir: join(dir, 'restart', 'again') });
  await lab.service.waitEvapi(1, 15_000);
  t.pass('reconnected');
  const d = await Device.start({ dir: join(dir, 'restart'), sipPort: back.sipPort, user: 'ivy', instance: newInstance(), behaviour: { kind: 'answer' } });
  t.teardown(() => d.stop());
  const cid = randomUUID();
  const r = call({ dir: join(dir, 'restart'), sipPort: back.sipPort, to: 'ivy', contributionId: cid }, 2000);
  await until(async () => ((await tracked(lab.service, cid)) ? true : undefined), 10_000, 'tracked after reconnect');
  t.pass('events flow again');
  t.equal((await r).code, 0, 'call completed');
});

t.test("the device's own BYE ends its dialog", async (t) => {
  const lab = await Lab.start({ dir: join(dir, 'callee-bye'), dialogEvents: 'rpc' });
  const d = await Device.start({ dir: join(dir, 'callee-bye'), sipPort: lab.sipPort, user: 'ivy', instance: newInstance(), behaviour: { kind: 'answer-bye', holdMs: 3000 } });
  t.teardown(async () => {
    await d.stop();
    await lab.stop();
  });
  await trackedWhileUp(t, lab, [lab.service], 'ivy', true);
});

t.test('a dialog that never sees its BYE ends when its pfdlg item expires', async (t) => {
  const lab = await Lab.start({
    dir: join(dir, 'expiry'),
    dialogEvents: 'rpc',
    defines: ['PF_DIALOG_HTABLE="pfdlg=>size=8;autoexpire=2;"', 'LAB_HTABLE_TIMER=1'],
  });
  const d = await Device.start({ dir: join(dir, 'expiry'), sipPort: lab.sipPort, user: 'ivy', instance: newInstance(), behaviour: { kind: 'answer' } });
  t.teardown(async () => {
    await d.stop();
    await lab.stop();
  });
  const cid = randomUUID();
  let done = false;
  const up = call({ dir: join(dir, 'expiry'), sipPort: lab.sipPort, to: 'ivy', contributionId: cid }, 9000).finally(() => {
    done = true;
  });
  await until(async () => ((await tracked(lab.service, cid)) ? true : undefined), 10_000, 'tracked');
  t.pass('the confirmed dialog is tracked');
  await until(async () => ((await tracked(lab.service, cid)) ? undefined : true), 7000, 'expired');
  t.notOk(done, 'dropped while the call is still up (no BYE yet)');
  const r = await up;
  t.equal(r.code, 0, `the call itself is unaffected ${r.errors}`);
});

t.test('sessions kept in Kamailio (the default): an expired pfdlg item takes its dialog out of the session', async (t) => {
  const d = join(dir, 'htable-expiry');
  const lab = await Lab.start({
    dir: d,
    defines: ['PF_DIALOG_HTABLE="pfdlg=>size=8;autoexpire=3;"', 'LAB_HTABLE_TIMER=1'],
  });
  // A answers, B only rings: a Session-Replaces INVITE alerts B only when the session is unknown
  const A = await Device.start({ dir: d, sipPort: lab.sipPort, user: 'jay', instance: newInstance(), behaviour: { kind: 'answer' } });
  const B = await Device.start({ dir: d, sipPort: lab.sipPort, user: 'jay', instance: newInstance(), behaviour: { kind: 'ring' } });
  t.teardown(async () => {
    await Promise.all([A.stop(), B.stop()]);
    await lab.stop();
  });
  // a Contribution-ID with a colon: the pfdlg item's length prefix must not split at it
  const cid = `${randomUUID()}:x`;
  const acks0 = requestsIn(A.messages(), 'ACK').length;
  let done = false;
  const up = call({ dir: d, sipPort: lab.sipPort, to: 'jay', contributionId: cid }, 12_000).finally(() => {
    done = true;
  });
  await until(async () => (requestsIn(A.messages(), 'ACK').length > acks0 ? true : undefined), 10_000, 'the 1-1 session is up');
  const group = (): ReturnType<typeof call> => call(replacingGroupInvite({ dir: d, sipPort: lab.sipPort, to: 'jay', contributionId: cid }));
  const b0 = B.invites().length;
  const g = await group();
  t.equal(g.code, 0, `group session answered ${g.errors}`);
  t.equal(B.invites().length, b0, 'while tracked: only the session\'s device is alerted');
  // the item expires (autoexpire 3 s, htable timer 1 s) while the call is still up
  await new Promise((r) => setTimeout(r, 5000));
  const again = await group();
  t.equal(again.code, 0, `group session answered ${again.errors}`);
  t.notOk(done, 'the 1-1 call is still up (no BYE yet)');
  t.equal(B.invites().length, b0 + 1, 'after expiry the session is unknown: normal selection, B alerted too');
  const r = await up;
  t.equal(r.code, 0, `the call itself is unaffected ${r.errors}`);
});
