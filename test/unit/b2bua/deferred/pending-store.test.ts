// One interface suite (pending-suite.ts, the claim cases with it), the backends: the map,
// LMDB (reopened between steps, as after a restart), Redis (a private redis-server) and a
// 3-master Redis Cluster (lab/redis.ts); a damaged entry is reported and skipped.
import t from 'tap';
import { MemoryPendingDeliveries, newEntry, openLmdbPendingDeliveries, parseEntry } from '../../../../plugin/b2bua/deferred/pending-store.js';
import { tempDir } from '../../service/fixtures/helpers.js';
import { RedisPendingDeliveries } from '../../../../plugin/b2bua/deferred/pending-redis.js';
import { connectRedis } from '../../../../plugin/shared-state/redis.js';
import { startRedis, startRedisCluster } from '../../../../lab/redis.js';
import { pendingSuite, record } from './pending-suite.js';

t.test('memory', async (t) => {
  const store = new MemoryPendingDeliveries();
  await pendingSuite(t, async () => ({ store, close: async () => {} }));
});

t.test('lmdb', async (t) => {
  const dir = tempDir(t);
  await pendingSuite(t, async () => {
    const store = openLmdbPendingDeliveries(dir);
    return { store, close: () => store.close() };
  });
});

t.test('a damaged entry is reported and skipped', async (t) => {
  const bad: string[] = [];
  const store = new MemoryPendingDeliveries((k, why) => bad.push(`${k}: ${why}`));
  const r = record('sip:dam@example.net');
  await store.put(newEntry(r, 1));
  store.records.set('junk', '{"v":1');
  store.records.set('other', JSON.stringify({ v: 1, record: { deferredId: 'x' } }));
  t.same((await store.all(0)).map((e) => e.record.deferredId), [r.deferredId]);
  t.equal(bad.length, 2);
  t.notOk(parseEntry('[]').ok);
});

t.test('redis (one instance, the engine adapter)', async (t) => {
  const redis = await startRedis(`${t.testdir()}/redis`);
  t.teardown(() => redis.stop());
  const engine = await connectRedis({ urls: [redis.url], cluster: false, timeoutMs: 2000 });
  t.teardown(() => engine.close());
  await pendingSuite(t, async () => ({ store: new RedisPendingDeliveries(engine, { prefix: 'pdtest' }), close: async () => {} }));
  const bad: string[] = [];
  const store = new RedisPendingDeliveries(engine, { prefix: 'pdbad', onBad: (k) => bad.push(k) });
  await engine.cas('pdbad:pd:{x}', null, '{"v":1', 0, 'c', 'n');
  t.same(await store.all(0), []);
  t.equal(bad.length, 1, 'a damaged entry reported and skipped');
});

t.test('redis cluster (3 masters: entries, indexes and claims over the slots)', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
  t.teardown(() => engine.close());
  await pendingSuite(t, async () => ({ store: new RedisPendingDeliveries(engine, { prefix: 'pdcl' }), close: async () => {} }));
});
