/**
 * One interface suite for the B2BUA's call stores (plugin/b2bua/store.ts CallStore), run on
 * the LMDB store and on the Redis store over a three-master cluster (store.test.ts).
 * `open(node)` gives node `node`'s store; the stores of one run share one backend (the
 * nodes of one deployment). `raw` writes a record's text as is (a damaged one).
 */
import type { Test } from 'tap';
import { STORE_VERSION, type CallStore, type StoredCall } from '../../../plugin/b2bua/store.js';

export interface CallStoreBackend {
  open(node: string): Promise<CallStore>;
  raw(callId: string, text: string): Promise<void>;
}

/** A confirmed call's record, the smallest the schema takes. */
export function storedCall(callId: string, over: Partial<StoredCall> = {}): StoredCall {
  return {
    v: STORE_VERSION, callId, servedUser: 'sip:bob@example.net', contributionId: null, conversationId: null, focus: 'sip:alice@example.net',
    startedAt: Date.now(), relayHeld: true,
    machine: {
      state: 'confirmed', caller: 'up', settings: { policy: 'C', isfUri: null, maxRedirects: 0 }, legs: [], chosen: null, rung: false, redirects: 0,
      isfTried: false, nextLeg: 1, callerTimer: null, groupStored: false, deferred: 'off',
    },
    caller: { dialog: null, side: null },
    legs: [],
    ...over,
  };
}

const ids = (calls: readonly { callId: string }[]): string[] => calls.map((c) => c.callId).sort();

export async function callStoreSuite(t: Test, backend: CallStoreBackend): Promise<void> {
  const a = await backend.open('node-a');
  const b = await backend.open('node-b');
  const c = await backend.open('node-c');
  t.teardown(async () => {
    for (const s of [a, b, c]) await s.close();
  });

  await t.test('put stamps the owner; load gives this node its own records only', async (t) => {
    // Call-IDs with what the key encoding must carry (RFC 3261 §25.1 word characters, and worse)
    const odd = ['a84b4c76e66710@pc33.example.net', 'x{y}z:1', 'ünï©ødé 1', '*', 'pc33/%41'];
    for (const id of odd) a.put(storedCall(id));
    b.put(storedCall('b-1'));
    await Promise.all([a.flushed(), b.flushed()]);
    const la = await a.load();
    t.same(ids(la.calls), [...odd].sort(), "node a: its calls, under their Call-IDs");
    t.ok(la.calls.every((x) => x.owner === 'node-a'), 'each stamped node-a');
    t.same(ids((await b.load()).calls), ['b-1'], 'node b: its own');
    const owners = (await c.owners()).filter((o) => o.callId === 'b-1' || odd.includes(o.callId));
    t.equal(owners.length, odd.length + 1, 'owners lists every node\'s records');
    t.same(owners.find((o) => o.callId === 'b-1'), { callId: 'b-1', owner: 'node-b' });
    for (const id of odd) a.delete(id);
    b.delete('b-1');
    await Promise.all([a.flushed(), b.flushed()]);
    t.same((await a.load()).calls, [], 'deleted');
  });

  await t.test('a later put replaces the record; writes of one call keep their order', async (t) => {
    a.put(storedCall('order', { relayHeld: true }));
    a.put(storedCall('order', { relayHeld: false }));
    a.delete('order');
    a.put(storedCall('order', { conversationId: 'last' }));
    await a.flushed();
    const [r] = (await a.load()).calls.filter((x) => x.callId === 'order');
    t.equal(r?.conversationId, 'last', 'the last write is what is stored');
    a.delete('order');
    await a.flushed();
  });

  await t.test('damaged records are reported and skipped, the others load', async (t) => {
    a.put(storedCall('good'));
    await a.flushed();
    await backend.raw('torn', '{"v":2,"callId":"torn","servedUser":"sip:b');
    await backend.raw('odd', JSON.stringify({ v: 2, callId: 'odd', machine: 'confirmed' }));
    await backend.raw('elsewhere', JSON.stringify(storedCall('not-elsewhere', { owner: 'node-a' })));
    const l = await a.load();
    t.same(ids(l.calls), ['good']);
    t.same(l.bad.map((x) => x.key).sort(), ['elsewhere', 'odd', 'torn']);
    t.match(l.bad.find((x) => x.key === 'elsewhere')?.why, /key and Call-ID differ/);
    t.notOk((await a.owners()).some((o) => ['torn', 'odd', 'elsewhere'].includes(o.callId)), 'owners leaves them out');
    a.delete('good');
    for (const k of ['torn', 'odd', 'elsewhere']) a.delete(k);
    await a.flushed();
  });

  await t.test('claim: from the named owner only, exactly once', async (t) => {
    a.put(storedCall('dead-1'));
    await a.flushed();
    t.equal(await b.claim('dead-1', 'node-c'), null, 'not from a node that does not own it');
    t.equal(await b.claim('missing', 'node-a'), null, 'not a record that is not there');
    const taken = await b.claim('dead-1', 'node-a');
    t.equal(taken?.owner, 'node-b', 'taken by node b');
    t.equal(taken?.callId, 'dead-1');
    t.equal(await c.claim('dead-1', 'node-a'), null, 'a second survivor finds it taken');
    t.same(ids((await b.load()).calls).filter((x) => x === 'dead-1'), ['dead-1'], "node b loads it now");
    t.notOk((await a.load()).calls.some((x) => x.callId === 'dead-1'), 'node a no longer does');
    // several survivors at once: one gets it
    a.put(storedCall('dead-2'));
    await a.flushed();
    const s2 = await backend.open('node-d');
    const s3 = await backend.open('node-e');
    const race = await Promise.all([b, c, s2, s3].map((s) => s.claim('dead-2', 'node-a')));
    t.equal(race.filter((x) => x !== null).length, 1, `concurrent claims: one survivor (${race.find((x) => x)?.owner})`);
    const winner = [b, c, s2, s3][race.findIndex((x) => x !== null)]!;
    winner.delete('dead-2');
    b.delete('dead-1');
    await Promise.all([winner.flushed(), b.flushed()]);
    t.notOk((await a.owners()).some((o) => o.callId.startsWith('dead-')), 'deleted by the node that took them');
    await s2.close();
    await s3.close();
  });
}
