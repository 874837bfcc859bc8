// Two delivery drivers (two nodes) on one pending store with claims
// (plugin/b2bua/deferred/claim.ts, docs/deferred.md "Several nodes"): one node delivers an
// entry at a time; a node whose lease ran out has its entry taken over, its call ended.
import t from 'tap';
import { MemoryPendingDeliveries } from '../../../../plugin/b2bua/deferred/pending-store.js';
import type { AliveCheck } from '../../../../plugin/b2bua/deferred/claim.js';
import { device, fakeRelay, flush, record, reply, requests, sdp, USER, world, type Verb } from './driver-world.js';

const DEV_SDP = sdp('msrp://127.0.0.1:7655/device;tcp');

function twoNodes() {
  const store = new MemoryPendingDeliveries();
  const alive = new Map([['node-a', true], ['node-b', true]]);
  const leases: AliveCheck = { alive: async (n) => alive.get(n) ?? false };
  const va: Verb[] = [];
  const vb: Verb[] = [];
  const a = world(fakeRelay(va), store, undefined, { node: 'node-a', leases });
  const b = world(fakeRelay(vb), store, undefined, { node: 'node-b', leases });
  return { store, alive, a, b, va, vb };
}

t.test('a REGISTER on the other node while one delivers: nothing twice; the claim goes with the entry', async (t) => {
  const { store, a, b, vb } = twoNodes();
  const rec = record();
  await a.driver.callerLeft(rec);
  a.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(a, 'INVITE').length, 1, 'node A delivers');
  t.equal(await store.claimant(rec.deferredId), 'node-a');
  b.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(b, 'INVITE').length, 0, 'node B leaves it to A');
  t.equal(vb.length, 0, 'node B asked its relay nothing');
  const inv = requests(a, 'INVITE')[0]!;
  a.layer.receive(reply(inv, 200, { toTag: 'd', body: DEV_SDP }));
  await flush();
  a.driver.relayEvent({ event: 'delivered', 'call-id': `delivery;${inv.get('Call-ID')!}`, leg: 'd', 'deferred-id': 'x', what: 'messages', sent: 1, remaining: 0 });
  await flush();
  a.clock.advance(2000);
  await flush();
  a.layer.receive(reply(requests(a, 'BYE')[0]!, 200));
  await flush();
  t.equal(await store.get(rec.deferredId), null, 'delivered, the entry gone');
  t.equal(await store.claimant(rec.deferredId), null, 'its claim too');
  await a.driver.stop();
  await b.driver.stop();
});

t.test("a node's lease ran out mid-delivery: the other takes the entry over, ends the old call, delivers again", async (t) => {
  const { store, alive, a, b, vb } = twoNodes();
  const rec = record();
  await a.driver.callerLeft(rec);
  a.driver.registered(USER, [device(1)]);
  await flush();
  const inv = requests(a, 'INVITE')[0]!;
  a.layer.receive(reply(inv, 200, { toTag: 'd', body: DEV_SDP }));
  await flush();
  t.ok((await store.get(rec.deferredId))?.attempt?.dialog, "A's call is up");
  // node A dies (its driver no longer runs); its lease runs out
  await a.driver.stop();
  alive.set('node-a', false);
  b.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(b, 'BYE')[0]?.get('Call-ID'), inv.get('Call-ID'), "B ends A's call in its dialog");
  t.ok(vb.some((v) => v.verb === 'delete' && v.p['call-id'] === `delivery;${inv.get('Call-ID')!}`), "B deletes A's relay session");
  t.equal(requests(b, 'INVITE').length, 1, 'B delivers again (the relay sends what got no 200)');
  t.equal(await store.claimant(rec.deferredId), 'node-b');
  await b.driver.stop();
});

t.test('a live entry is its call node\'s: the other node\'s sweep leaves it', async (t) => {
  const store = new MemoryPendingDeliveries();
  const leases: AliveCheck = { alive: async () => true };
  const a = world(fakeRelay([]), store, () => [], { node: 'node-a', leases });
  const b = world(fakeRelay([]), store, () => [], { node: 'node-b', leases });
  const rec = record();
  await a.driver.deferred(rec);
  t.equal(await store.claimant(rec.deferredId), 'node-a');
  await b.driver.start();
  b.clock.advance(60_000);
  await flush();
  t.ok(await store.get(rec.deferredId), "B's sweep leaves A's live entry");
  await a.driver.callerLeft(rec);
  t.equal(await store.claimant(rec.deferredId), null, 'handed over: anyone may deliver it');
  await a.driver.stop();
  await b.driver.stop();
});
