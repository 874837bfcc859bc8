/**
 * When no service instance answers in time, pf.cfg applies the fail-safe
 * chosen by define (PF_FAILSAFE_REJECT: 503 + Warning 399 "PF unavailable";
 * PF_FAILSAFE_RELAY: relayed without PF treatment), and janssonrpcc fails over to
 * the next instance by priority.
 */
import t from 'tap';
import { join } from 'node:path';
import { Lab, Service, Kamailio, runDir } from '../../lab/lab.js';
import { inviteExpecting, call, Device, newInstance } from '../../lab/calls.js';
import { headerValues } from '../../lab/sipp.js';

const root = runDir('it-failsafe');

t.test('PF_FAILSAFE_REJECT: service gone -> 503 with Warning 399 "PF unavailable"', async (t) => {
  const dir = join(root, 'reject');
  const lab = await Lab.start({ dir, rpcTimeoutMs: 300 });
  t.teardown(() => lab.stop());
  await lab.service.proc.kill();
  const r = await inviteExpecting({ dir, sipPort: lab.sipPort, to: 'bob' }, 503);
  t.equal(r.code, 0, `sipp saw the expected 503 ${r.errors}`);
  t.match(r.final?.header('warning') ?? '', /^399 \S+ "PF unavailable"$/, 'fail-safe Warning');
  t.ok(await lab.kamailio.alive(), 'Kamailio still up');
});

t.test('PF_FAILSAFE_REJECT: a frozen service times out -> 503 after PF_RPC_TIMEOUT', async (t) => {
  const dir = join(root, 'timeout');
  const lab = await Lab.start({ dir, rpcTimeoutMs: 300 });
  t.teardown(async () => {
    if (lab.service.proc.pid) process.kill(-lab.service.proc.pid, 'SIGCONT');
    await lab.stop();
  });
  // SIGSTOP keeps the TCP connection open but nothing answers: janssonrpcc's -100 timeout
  process.kill(-lab.service.proc.pid!, 'SIGSTOP');
  const started = Date.now();
  const r = await inviteExpecting({ dir, sipPort: lab.sipPort, to: 'bob' }, 503);
  const took = Date.now() - started;
  t.equal(r.code, 0, `sipp saw the expected 503 ${r.errors}`);
  t.match(r.final?.header('warning') ?? '', /"PF unavailable"/);
  t.ok(took >= 300, `not before the timeout (${took} ms)`);
  t.match(lab.kamailio.proc.output, /PF: no decision \(internal -100\)/, 'janssonrpcc reported -100 (timeout)');
});

t.test('PF_FAILSAFE_RELAY: service gone -> the INVITE reaches the device untouched', async (t) => {
  const dir = join(root, 'relay');
  // the core forks with registrar lookup() here, since the lab's RFC 3841 core is the service too
  const lab = await Lab.start({ dir, failsafe: 'relay', defines: ['LAB_CORE_LOOKUP'], rpcTimeoutMs: 300 });
  const dev = await Device.start({ dir, sipPort: lab.sipPort, user: 'bob', instance: newInstance(), behaviour: { kind: 'answer' } });
  t.teardown(async () => {
    await dev.stop();
    await lab.stop();
  });
  await lab.service.proc.kill();
  const r = await call({ dir, sipPort: lab.sipPort, to: 'bob' });
  t.equal(r.code, 0, `call completed without the PF ${r.errors}`);
  const inv = dev.invites();
  t.equal(inv.length, 1, 'the device got the INVITE');
  t.same(headerValues(inv[0] ?? '', 'P-Asserted-Service'), [], 'no PF treatment: no P-Asserted-Service');
  t.equal(headerValues(inv[0] ?? '', 'P-Preferred-Service').length, 1, 'P-Preferred-Service left as sent');
  t.match(lab.kamailio.proc.output, /PF: no decision/);
});

t.test('failover to the second service instance (janssonrpcc priority)', async (t) => {
  const dir = join(root, 'failover');
  const s1 = await Service.start({ dir, name: 'service1' });
  const s2 = await Service.start({ dir, name: 'service2' });
  const k = await Kamailio.start({
    dir,
    rpc: [
      { port: s1.rpcPort, priority: 10 },
      { port: s2.rpcPort, priority: 20 },
    ],
    rpcTimeoutMs: 500,
  });
  t.teardown(() => Promise.all([k.stop(), s1.stop(), s2.stop()]));
  await k.waitRpcConnected(s2.rpcPort);
  const invites = async (s: Service): Promise<number> => {
    const m = /pf_rpc_requests_total\{[^}]*method="pf\.invite"[^}]*\} (\d+)/g;
    let n = 0;
    for (const x of (await s.metrics()).matchAll(m)) n += Number(x[1]);
    return n;
  };
  // no devices for dave anywhere: a decision is 480 (CR 8.3.2.1 step 6), never the fail-safe
  const r1 = await inviteExpecting({ dir, sipPort: k.sipPort, to: 'dave' }, 480);
  t.equal(r1.code, 0, `decided by an instance ${r1.errors}`);
  t.equal(await invites(s1), 1, 'priority 10 instance decided');
  t.equal(await invites(s2), 0);
  await s1.proc.kill();
  const r2 = await inviteExpecting({ dir, sipPort: k.sipPort, to: 'dave' }, 480);
  t.equal(r2.code, 0, `decided by the second instance ${r2.errors}`);
  t.notMatch(r2.final?.header('warning') ?? '', /PF unavailable/);
  t.equal(await invites(s2), 1, 'priority 20 instance took over');
});
