/**
 * Two nodes on one machine (docs/deployment.md §11, §12; lab/lab.ts MultiLab): two real
 * Kamailio nodes on their own ports, two service instances with separate data dirs, a
 * Redis Cluster of three masters with a replica each. Each Kamailio's janssonrpcc names
 * both instances, its own first; pf.cfg keeps Session-Replaces state with the service
 * (PF_SHARED_SESSIONS). The callers and devices are sipp.
 *
 * In order: a REGISTER through node 1 forked to by an INVITE through node 2; an XCAP PUT
 * through instance 1 deciding instance 2 within the same second; Session-Replaces through
 * node 2 of a session set up through node 1; instance 1 killed (node 1 fails over to
 * instance 2); one Redis master killed (failover, registrations kept, the write window
 * measured); the engine stopped (decisions from each instance's copy, REGISTER's
 * fail-safe, XCAP 503, nothing crashes).
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { MultiLab, runDir } from '../../lab/lab.js';
import { call, inviteExpecting, Device, newInstance, replacingGroupInvite } from '../../lab/calls.js';
import { headerValues, requestsIn } from '../../lab/sipp.js';
import { MMTEL_DEVICE_PARAMS, register } from '../../lab/sip.js';
import { blacklistDoc, RESOURCE_LISTS } from '../../lab/xdm.js';
import { until } from '../../lab/proc.js';
import { inviteText, registerText } from '../../lab/service-fixtures.js';
import { keyPart } from '../../plugin/shared-state/redis.js';
import { rpcCall } from '../unit/service/fixtures/helpers.js';

const dir = runDir('it-multi-node');
const lab = await MultiLab.start({
  dir,
  nodes: 2,
  redisReplicas: 1,
  policy: { supportedVersions: ['OMA2.0', 'OMA2.1', 'OMA2.2'], allowAnonymity: false },
});
const devices: Device[] = [];
t.teardown(async () => {
  await Promise.all(devices.map((d) => d.stop()));
  await lab.stop();
});
const node1 = lab.node(0);
const node2 = lab.node(1);
const sip1 = node1.kamailio.sipPort;
const sip2 = node2.kamailio.sipPort;

// bob's devices register through node 1: A answers, B only rings, M is MMTEL-only
const device = async (user: string, behaviour: Device['o']['behaviour'], params?: string): Promise<Device> => {
  const d = await Device.start({ dir, sipPort: sip1, user, instance: newInstance(), behaviour, params });
  devices.push(d);
  return d;
};
const A = await device('bob', { kind: 'answer' });
const B = await device('bob', { kind: 'ring' });
const M = await device('bob', { kind: 'ring' }, MMTEL_DEVICE_PARAMS);

type Decision = { action?: string; stage?: string; hdrs?: string };
/** pf.invite straight to an instance (no SIP): what it would decide now. */
const decide = async (rpcPort: number, msg: string): Promise<Decision> => {
  const r = await rpcCall(rpcPort, 'pf.invite', { v: 1, msg, src: 'udp:127.0.0.1:5070' });
  if (r.error) throw new Error(`pf.invite: ${r.error.code} ${r.error.message}`);
  return r.result as Decision;
};

t.test('a device registered through node 1 is forked to by an INVITE through node 2', async (t) => {
  const r = await call({ dir, sipPort: sip2, to: 'bob' });
  t.equal(r.code, 0, `call through node 2 completed ${r.errors}`);
  const inv = A.invites()[0] ?? '';
  t.ok(inv, 'A (registered through node 1) got the INVITE');
  t.equal(B.invites().length, 1, 'B got it too');
  t.equal(M.invites().length, 0, 'the MMTEL-only device never');
  t.same(headerValues(inv, 'Reject-Contact'), [`*;+sip.instance="<${M.o.instance}>"`], 'exactly the MMTEL device rejected');
  t.match(headerValues(inv, 'Record-Route')[0] ?? '', new RegExp(`127\\.0\\.0\\.1:${sip2};lr`), 'record-routed by node 2');
  t.ok(requestsIn(A.messages(), 'BYE').length >= 1, 'the BYE reached A through node 2');
});

t.test('an XCAP PUT through instance 1 decides instance 2 within the same second', async (t) => {
  const spam = ['P-Asserted-Identity: <sip:spam@example.net>'];
  t.match(await decide(node2.service.rpcPort, inviteText({ to: 'bob', extra: spam })), { action: 'proxy' }, 'not blocked yet');
  const started = performance.now();
  const status = await node1.service.putXcap('resource-lists', 'sip:bob@example.net', blacklistDoc(['sip:spam@example.net']), RESOURCE_LISTS);
  t.equal(status, 201, 'PUT through instance 1');
  // instance 2 learns it by the engine's change notice: the first decision after it
  const blocked = await until(
    async () => {
      const d = await decide(node2.service.rpcPort, inviteText({ to: 'bob', extra: spam }));
      return d.stage === 'blacklist' ? d : undefined;
    },
    1000,
    'instance 2 to decide with the new document',
    5,
  );
  const took = performance.now() - started;
  t.match(blocked, { action: 'reject', stage: 'blacklist' });
  t.ok(took < 1000, `PUT through instance 1 to a blacklist decision by instance 2: ${took.toFixed(1)} ms`);
  // and through node 2's Kamailio, on the wire
  const r = await inviteExpecting({ dir, sipPort: sip2, to: 'bob', headers: { 'P-Asserted-Identity': '<sip:spam@example.net>' } }, 403);
  t.equal(r.code, 0, `403 through node 2 ${r.errors}`);
  t.same(r.final?.headers.get('warning') ?? [], ['399 pf.example.net "122 Function not allowed"']);
});

t.test('Session-Replaces through node 2 reaches the device of a session set up through node 1', async (t) => {
  const cid = randomUUID();
  const replaces = inviteText({ to: 'bob', contributionId: `g-${cid}`, extra: [`Session-Replaces: ${cid}`] });
  const b0 = B.invites().length;
  const acks0 = requestsIn(A.messages(), 'ACK').length;
  // a 1-1 session through node 1, held while the group INVITE arrives through node 2
  const first = call({ dir, sipPort: sip1, to: 'bob', contributionId: cid }, 5000);
  await until(async () => (requestsIn(A.messages(), 'ACK').length > acks0 ? true : undefined), 10_000, 'the 1-1 session is up');
  const b1 = B.invites().length;
  t.equal(b1 - b0, 1, 'B was alerted for the 1-1 session');
  // node 1 told instance 1 (pf.dialog.start); instance 2 reads it from the engine
  const started = performance.now();
  await until(async () => ((await decide(node2.service.rpcPort, replaces)).stage === 'session-replaces' ? true : undefined), 5000, 'instance 2 to know the session', 5);
  t.pass(`the session recorded through node 1 known to instance 2 ${(performance.now() - started).toFixed(1)} ms after A's ACK`);
  const g = await call(replacingGroupInvite({ dir, sipPort: sip2, to: 'bob', contributionId: cid }));
  t.equal(g.code, 0, `group session through node 2 answered ${g.errors}`);
  t.equal(B.invites().length, b1, 'B not alerted for the group session');
  t.ok(A.invites().some((m) => /Session-Replaces:/i.test(m)), 'A got the group INVITE');
  t.equal((await first).code, 0, 'the 1-1 session ended (caller BYE through node 1)');
  // the BYE through node 1 ended the dialog for every instance
  await until(async () => ((await decide(node2.service.rpcPort, replaces)).stage === 'proxy' ? true : undefined), 5000, 'instance 2 to see the session end', 5);
  const again = await call(replacingGroupInvite({ dir, sipPort: sip2, to: 'bob', contributionId: cid }));
  t.equal(again.code, 0, `group session answered ${again.errors}`);
  t.equal(B.invites().length, b1 + 1, 'the ended session is no longer used: B alerted too');
});

t.test("instance 1 killed: node 1's janssonrpcc fails over to instance 2, calls keep completing", async (t) => {
  const from = node1.kamailio.outputLength;
  await node1.service.kill();
  const results: number[] = [];
  for (let i = 0; i < 5; i++) results.push((await call({ dir, sipPort: sip1, to: 'bob' })).code ?? -1);
  t.same(results, [0, 0, 0, 0, 0], `5 calls through node 1 with its own instance dead: ${results.join(',')}`);
  // a REGISTER through node 1 lands in the engine through instance 2
  const reg = await register(sip1, { user: 'fay', contactPort: 31001, instance: newInstance() });
  t.equal(reg.status, 200, 'REGISTER through node 1');
  const listed = await node2.service.getJson('/users/fay/devices');
  t.equal((listed.body as { devices: unknown[] }).devices.length, 1, 'stored through instance 2');
  t.notMatch(node1.kamailio.proc.output.slice(from), /PF: no decision/, 'no fail-safe at node 1 (no "PF: no decision" line)');
  // instance 1 back (same ports, same data dir): node 1 connects to it again
  node1.service = await node1.service.restart();
  await node1.kamailio.waitRpcConnected(node1.service.rpcPort, from);
  const r = await call({ dir, sipPort: sip1, to: 'bob' });
  t.equal(r.code, 0, 'a call through node 1 after instance 1 came back');
});

t.test('one Redis master killed: the failover completes, the registrations are still there', async (t) => {
  const bobKey = `lab:dev:{${keyPart('sip:bob@example.net')}}`;
  const masters = lab.redis.nodes.slice(0, 3);
  const owner = async (key: string) => {
    for (const n of lab.redis.nodes) if (n.running && (await n.cli('EXISTS', key)).trim() === '1') return n;
    return undefined;
  };
  const victim = await owner(bobKey);
  if (!victim || !masters.includes(victim)) throw new Error("bob's key on no master");
  // a probe user on the same master, to time the window in which its writes fail
  let probe = '';
  for (let i = 0; i < 40 && !probe; i++) {
    const user = `probe${i}`;
    const r = await rpcCall(node2.service.rpcPort, 'pf.register', { v: 1, msg: registerText({ user, port: 6001 }), src: 'tcp:127.0.0.1:40001' });
    if (r.error) throw new Error(`pf.register ${user}: ${r.error.message}`);
    if ((await owner(`lab:dev:{${keyPart(`sip:${user}@example.net`)}}`)) === victim) probe = user;
  }
  if (!probe) throw new Error('no probe user on the victim master');
  const before = (await victim.cli('GET', bobKey)).trim();

  const killed = performance.now();
  await victim.kill();
  let failed = 0;
  let n = 0;
  await until(
    async () => {
      const r = await rpcCall(node2.service.rpcPort, 'pf.register', {
        v: 1, msg: registerText({ user: probe, port: 6001, cseq: 10 + n++ }), src: 'tcp:127.0.0.1:40001',
      });
      if (r.error) failed++;
      return r.error ? undefined : true;
    },
    30_000,
    'a write to the failed master\'s slots to land again',
    100,
  );
  const window = performance.now() - killed;
  t.pass(`writes to the killed master's slots failed (-32001) for ${window.toFixed(0)} ms (${failed} of ${n} REGISTERs), then landed on the promoted replica`);
  // the promoted replica holds bob's bindings as they were
  const now = await owner(bobKey);
  t.ok(now && now !== victim, `bob's key now on the promoted replica (port ${now?.port})`);
  t.equal((await now!.cli('GET', bobKey)).trim(), before, "bob's bindings as before the kill");
  // and calls went on: devices found through either node
  const r = await call({ dir, sipPort: sip2, to: 'bob' });
  t.equal(r.code, 0, `a call through node 2 after the failover ${r.errors}`);
});

t.test('the engine stopped: decisions from each copy, the fail-safe for writes, clear errors, no crash', async (t) => {
  const k1 = node1.kamailio.outputLength;
  await lab.redis.stop();
  // INVITEs: every instance decides from its copy (devices and documents as last known)
  const r = await call({ dir, sipPort: sip2, to: 'bob' });
  t.equal(r.code, 0, `a call through node 2 with the engine gone ${r.errors}`);
  const blocked = await inviteExpecting({ dir, sipPort: sip1, to: 'bob', headers: { 'P-Asserted-Identity': '<sip:spam@example.net>' } }, 403);
  t.equal(blocked.code, 0, 'the blacklist still applies through node 1');
  // a REGISTER: pf.register answers -32001 (the fail-safe: pf.cfg saves it in usrloc anyway)
  const rpc = await rpcCall(node1.service.rpcPort, 'pf.register', { v: 1, msg: registerText({ user: 'gil', port: 6002 }), src: 'tcp:127.0.0.1:40002' });
  t.match(rpc.error, { code: -32001, message: 'Device store unavailable' }, 'pf.register: the fail-safe error');
  const reg = await register(sip1, { user: 'gil', contactPort: 31002, instance: newInstance() });
  t.equal(reg.status, 200, 'REGISTER through node 1: saved by Kamailio regardless (pf.cfg fail-safe)');
  t.match(node1.kamailio.proc.output.slice(k1), /pf\.register failed \(service -32001\), saving anyway/, "node 1's log says why");
  // an XCAP write: 503 with Retry-After and a clear reason
  const put = await node2.service.fetch('/xcap-root/resource-lists/users/sip%3Abob%40example.net/index', {
    method: 'PUT', headers: { 'content-type': RESOURCE_LISTS }, body: blacklistDoc([]),
  });
  t.equal(put.status, 503, 'XCAP PUT: 503');
  t.ok(put.headers.get('retry-after'), 'with Retry-After');
  t.match(await put.text(), /document store unavailable/);
  t.match(node1.service.proc.output, /shared state engine/, "instance 1's log says the engine is the cause");
  // nothing crashed
  for (const n of lab.nodes) {
    t.ok(n.service.proc.running, `${n.name} service still running`);
    t.equal((await fetch(`${n.service.url}/health`)).status, 200, `${n.name} service /health`);
    t.ok(await n.kamailio.alive(), `${n.name} Kamailio answers`);
  }
});
