// One interface suite (suite.ts), two document stores: the embedded lmdb store, and the
// Redis store on a three-master Redis Cluster started here (lab/redis.ts).
import t from 'tap';
import { open } from 'lmdb';
import { XcapStore, type StoredDocument } from '../../../plugin/xdm/store.js';
import { RedisDocumentStore } from '../../../plugin/xdm/redis-store.js';
import { connectRedis } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { tempDir } from '../service/fixtures/helpers.js';
import { documentStoreSuite, MAX_BYTES } from './suite.js';

t.test('lmdb', async (t) => {
  const dir = tempDir(t);
  await documentStoreSuite(t, async () => {
    const root = open({ path: dir, maxDbs: 4 });
    const store = new XcapStore(root.openDB<StoredDocument | string, string>({ name: 'xcap' }), MAX_BYTES);
    return {
      store,
      close: async () => {
        await store.close();
        await root.close();
      },
    };
  });
});

t.test('redis cluster', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  await documentStoreSuite(t, async () => {
    const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
    const store = await RedisDocumentStore.open(engine, { prefix: 'suite', maxBytes: MAX_BYTES });
    return {
      store,
      close: async () => {
        await store.close();
        await engine.close();
      },
    };
  });
});
