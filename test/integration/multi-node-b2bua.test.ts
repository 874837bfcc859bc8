/**
 * B2BUA sessions on two nodes (docs/deployment.md §12; lab/lab.ts MultiLab in B2BUA mode):
 * two Kamailio nodes, two service instances each with its own MSRP relay, a three-master
 * Redis Cluster holding the call records and the node leases. Chat phones and callers
 * (lab/chat-phone.ts), real MSRP through each node's relay.
 *
 * A chat set up through node 1, another through node 2; node 1's service and relay killed
 * with SIGKILL. Within the lease TTL plus a sweep period, node 2 takes node 1's call
 * record and ends the call as the restart path does: BYE to the caller and to the device,
 * both with `Reason: SIP;cause=503;text="Media relay unavailable"`; the record is gone from
 * the engine; node 2's own chat goes on untouched. The takeover time is printed.
 */
import t from 'tap';
import { MultiLab, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { hdr, type SipMsg } from '../../lab/sip-ua.js';
import { ChatCaller, type Phone } from '../../lab/chat-phone.js';
import { byes, eventually, handset as phoneWithLog, reasonLines, sessionOf, texts, type Handset } from '../../lab/handset.js';
import { connectRedis } from '../../plugin/shared-state/redis.js';
import { RedisCallStore } from '../../plugin/b2bua/redis-store.js';

const RELAY_GONE = 'SIP;cause=503;text="Media relay unavailable"';
/** sharedState.leaseMs: beats every third of it, sweeps every half. */
const LEASE_MS = 2000;

const dir = runDir('it-multi-node-b2bua');
const lab = await MultiLab.start({
  dir,
  nodes: 2,
  redisReplicas: 0,
  mode: 'b2bua',
  leaseMs: LEASE_MS,
  serviceLogLevel: process.env.PF_TEST_LOG_LEVEL ?? 'info',
  b2bua: { multiDevice: 'C', t1Ms: 100 },
});
// the engine as an observer sees it: every node's records with their owners
const engine = await connectRedis({ urls: lab.redis.urls, cluster: true, timeoutMs: 2000 });
const records = new RedisCallStore(engine, { node: 'observer', prefix: 'lab' });
const phones: Phone[] = [];
const callers = new Set<ChatCaller>();
t.teardown(async () => {
  await Promise.all([...callers].map((c) => c.hangup().catch(() => undefined)));
  await Promise.all(phones.map((p) => p.stop()));
  await engine.close();
  await lab.stop();
});
const node1 = lab.node(0);
const node2 = lab.node(1);

async function chat(sipPort: number, from: string, to: string): Promise<{ c: ChatCaller; byes: SipMsg[]; callId: string }> {
  const c = await ChatCaller.place({ sipPort, from, to, out: () => undefined });
  callers.add(c);
  if (c.state !== 'confirmed') throw new Error(`call to ${to}: ${c.final?.status ?? '?'}`);
  const got: SipMsg[] = [];
  c.ua.on('request', (r) => r.method === 'BYE' && got.push(r));
  return { c, byes: got, callId: hdr(c.final!, 'call-id') ?? '' };
}

const ownerOf = async (callId: string): Promise<string | null | undefined> => (await records.owners()).find((r) => r.callId === callId)?.owner;

t.test("node 1 dies: node 2 ends its B2BUA session with BYE and Reason 503 both ways; node 2's own session goes on", async (t) => {
  // each device registers through the node whose Kamailio will reach it (usrloc is per node here)
  const rex: Handset = await phoneWithLog({ sipPort: node1.kamailio.sipPort, phones }, 'rex', 1);
  const sam: Handset = await phoneWithLog({ sipPort: node2.kamailio.sipPort, phones }, 'sam', 1);
  const one = await chat(node1.kamailio.sipPort, 'alice', 'rex');
  const two = await chat(node2.kamailio.sipPort, 'carol', 'sam');
  const [s1, s2] = await Promise.all([sessionOf(rex), sessionOf(sam)]);
  await one.c.session.send('through node 1');
  await two.c.session.send('through node 2');
  await eventually(() => texts(s1.events).includes('through node 1') && texts(s2.events).includes('through node 2'), 'both chats carry MSRP');

  // the records on the engine, each owned by the node that holds the call (written once the caller's ACK came)
  await until(async () => ((await ownerOf(one.callId)) === 'node1' && (await ownerOf(two.callId)) === 'node2' ? true : undefined), 10_000, 'both records owned');
  t.pass('the engine records node1 as the owner of the call through node 1, node2 of the one through node 2');

  const killed = performance.now();
  await Promise.all([node1.service.kill(), node1.relay!.proc.kill()]);
  await eventually(() => byes(rex).length > 0 && one.byes.length > 0, 'BYE to the device and the caller of node 1', LEASE_MS * 2 + 15_000);
  const took = performance.now() - killed;
  t.pass(`node 1's session ended by node 2 ${took.toFixed(0)} ms after node 1 was killed (lease ${LEASE_MS} ms, sweep every ${LEASE_MS / 2} ms)`);
  // the lease runs out at most LEASE_MS after the kill, the next sweep at most half of it later; 1.5 s for the BYEs
  t.ok(took < LEASE_MS * 1.5 + 1500, `within the lease TTL plus a sweep period (${took.toFixed(0)} ms)`);
  t.same(reasonLines(byes(rex)[0]), [`Reason: ${RELAY_GONE}`], 'the device: Reason 503 Media relay unavailable');
  t.same(reasonLines(one.byes[0]), [`Reason: ${RELAY_GONE}`], 'the caller: Reason 503 Media relay unavailable');
  callers.delete(one.c);
  t.match(node2.service.proc.output, /taken over/, "node 2's log names the takeover");
  t.notOk(node1.service.proc.running, 'node 1 stayed dead (no one else ended it)');
  await until(async () => ((await ownerOf(one.callId)) === undefined ? true : undefined), 10_000, 'the record to go');
  t.pass('the record of the ended session is gone from the engine');

  // node 2's own session: untouched, both ways
  t.equal(await ownerOf(two.callId), 'node2', "node 2's record still its own");
  await two.c.session.send('after node 1 died');
  await eventually(() => texts(s2.events).includes('after node 1 died'), 'caller to device on node 2');
  await s2.send('still here');
  await eventually(() => texts(two.c.session.events).includes('still here'), 'device to caller on node 2');
  t.same([byes(sam).length, two.byes.length], [0, 0], "no BYE in node 2's session");
  await two.c.hangup();
  callers.delete(two.c);
  await eventually(() => byes(sam).length > 0, "the caller's BYE reached node 2's device");
  await until(async () => ((await ownerOf(two.callId)) === undefined ? true : undefined), 10_000, "node 2's record to go");
  t.pass("node 2's session ended by its caller, its record gone");
});
