// One interface suite (store-suite.ts), three call stores: in memory, the embedded LMDB
// store, and the Redis store on a three-master Redis Cluster started here (lab/redis.ts),
// so that cluster mode (slots, redirections, SCAN of every master) is what is tested.
// Then what only the Redis store does: owner-checked writes after a takeover, the records'
// TTL, an engine that is gone (docs/deployment.md §12).
import t, { type Test } from 'tap';
import { open } from 'lmdb';
import { LmdbCallStore, MemoryCallStore } from '../../../plugin/b2bua/store.js';
import { RECORD_GRACE_MS, RedisCallStore } from '../../../plugin/b2bua/redis-store.js';
import { connectRedis, keyPart } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { tempDir } from '../service/fixtures/helpers.js';
import { callStoreSuite, storedCall } from './store-suite.js';

t.test('memory', async (t) => {
  const records = new Map<string, string>();
  await callStoreSuite(t, {
    open: async (node) => new MemoryCallStore(node, records),
    raw: async (callId, text) => {
      records.set(callId, text);
    },
  });
});

t.test('lmdb', async (t) => {
  const root = open({ path: tempDir(t), maxDbs: 1 });
  const db = root.openDB<string, string>({ name: 'calls', encoding: 'string' });
  t.teardown(() => root.close());
  const errors: unknown[] = [];
  await callStoreSuite(t, {
    // the nodes' stores on one environment (closing one would close it for all)
    open: async (node) => Object.assign(new LmdbCallStore(root, db, (e) => errors.push(e), node), { close: async () => undefined }),
    raw: async (callId, text) => {
      await db.put(callId, text);
    },
  });
  t.same(errors, [], 'no write failed');
});

t.test('redis cluster', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
  t.teardown(() => engine.close());
  const errors: unknown[] = [];
  const key = (callId: string): string => `suite:b2b:{${keyPart(callId)}}`;
  await t.test('the interface suite', async (t) => {
    await callStoreSuite(t, {
      open: async (node) => new RedisCallStore(engine, { node, prefix: 'suite', maxAgeMs: 3600_000, onError: (e) => errors.push(e) }),
      raw: async (callId, text) => {
        t.ok(await engine.cas(key(callId), await engine.get(key(callId)), text, 0, 'suite:changed:b2b', 'raw'), `raw ${callId}`);
      },
    });
    t.same(errors, [], 'no write failed');
  });

  await t.test('after a takeover the old owner neither writes the record back nor deletes it', async (t) => {
    const errs: unknown[] = [];
    const old = new RedisCallStore(engine, { node: 'old', prefix: 'fence', onError: (e) => errs.push(e) });
    const survivor = new RedisCallStore(engine, { node: 'survivor', prefix: 'fence' });
    old.put(storedCall('f1'));
    await old.flushed();
    t.equal((await survivor.claim('f1', 'old'))?.owner, 'survivor');
    old.put(storedCall('f1', { relayHeld: false }));
    old.delete('f1');
    await old.flushed();
    const [r] = (await survivor.load()).calls;
    t.equal(r?.owner, 'survivor', 'still the survivor\'s');
    t.equal(r?.relayHeld, true, 'not overwritten');
    t.equal(errs.length, 1, 'the refused write reported');
    t.match(String(errs[0]), /taken over by survivor/);
    survivor.delete('f1');
    await survivor.flushed();
    t.same(await survivor.owners(), []);
  });

  await t.test("a record's TTL: the call's maximum age from its start, plus the grace", async (t) => {
    const now = 1_000_000;
    const s = new RedisCallStore(engine, { node: 'n', prefix: 'ttl', maxAgeMs: 60_000, now: () => now });
    s.put(storedCall('t1', { startedAt: now - 20_000 }));
    await s.flushed();
    const node = cluster.nodes[0]!;
    const pttl = Number((await node.cli('-c', 'PTTL', `ttl:b2b:{${keyPart('t1')}}`)).trim());
    const want = 40_000 + RECORD_GRACE_MS;
    t.ok(pttl > want - 5000 && pttl <= want, `PTTL ${pttl} ms, about ${want}`);
    s.delete('t1');
    await s.flushed();
  });

  await t.test('the engine gone: writes report, reads fail with SharedStateError', async (t) => {
    const gone = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 300 });
    const errs: unknown[] = [];
    const s = new RedisCallStore(gone, { node: 'n', prefix: 'gone', onError: (e) => errs.push(e) });
    await gone.close();
    s.put(storedCall('g1'));
    await s.flushed();
    t.equal(errs.length, 1, 'the failed write reported');
    t.match(errs[0], { name: 'SharedStateError' });
    await t.rejects(s.claim('g1', 'x'), { name: 'SharedStateError' });
  });
});

/**
 * An LMDB call store whose next `refuse` writes are refused, as lmdb-js refuses them (the
 * write's promise rejects); the errors it reports.
 */
function refusingStore(t: Test, refuse: number): { store: LmdbCallStore; errors: unknown[] } {
  const root = open({ path: tempDir(t), maxDbs: 1 });
  const db = root.openDB<string, string>({ name: 'calls', encoding: 'string' });
  t.teardown(() => root.close());
  const errors: unknown[] = [];
  const store = new LmdbCallStore(root, db, (e) => errors.push(e), 'node-a');
  const realPut = db.put.bind(db);
  const realRemove = db.remove.bind(db);
  const refused = (): Promise<boolean> => Promise.reject(new Error('Commit failed (see commitError for details)'));
  db.put = ((k: string, v: string) => (refuse-- > 0 ? refused() : realPut(k, v))) as typeof db.put;
  db.remove = ((k: string) => (refuse-- > 0 ? refused() : realRemove(k))) as typeof db.remove;
  return { store, errors };
}

t.test('lmdb: a refused commit is reported and the call\'s latest record written again; a newer write is never undone', async (t) => {
  // the next two commits are refused
  const { store, errors } = refusingStore(t, 2);

  store.put(storedCall('kept'));
  store.put(storedCall('gone'));
  await store.flushed();
  t.equal(errors.length, 2, 'both refusals reported');
  t.equal(store.retrying, 2, 'both wait for a retry');
  store.delete('gone'); // newer than its refused put: the put must not come back
  await store.flushed();
  t.equal(store.retrying, 1, 'the deletion replaced the waiting put');
  const deadline = Date.now() + 3000;
  while (store.retrying > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await store.flushed();
  t.same((await store.load()).calls.map((c) => c.callId), ['kept'], 'the refused record landed on the retry; the deleted call stayed deleted');
  t.equal(errors.length, 2, 'no further error');
});

t.test('lmdb: a refused write followed by a newer one of the same call: no retry, the newer record stays', async (t) => {
  const { store, errors } = refusingStore(t, 1);
  store.put(storedCall('c', { startedAt: 1 })); // refused
  store.put(storedCall('c', { startedAt: 2 })); // made before the refusal is known: the newer one
  await store.flushed();
  t.equal(errors.length, 1, 'the refusal reported');
  t.equal(store.retrying, 0, 'the older write is not tried again');
  await new Promise((r) => setTimeout(r, 700)); // past the first back-off
  await store.flushed();
  t.same((await store.load()).calls.map((c) => c.startedAt), [2], 'the newer record, not the refused older one');
});
