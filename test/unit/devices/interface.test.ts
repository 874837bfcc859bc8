// One interface suite (suite.ts), two device stores: the embedded lmdb store, and the Redis
// store on a three-master Redis Cluster started here (lab/redis.ts), so that cluster mode
// (slots, redirections, pub/sub across nodes) is what is tested.
import t from 'tap';
import { open } from 'lmdb';
import { LmdbDeviceStore } from '../../../plugin/devices/store.js';
import { RedisDeviceStore } from '../../../plugin/devices/redis-store.js';
import type { Device } from '../../../plugin/devices/types.js';
import { connectRedis } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { tempDir } from '../service/fixtures/helpers.js';
import { deviceStoreSuite } from './suite.js';

t.test('lmdb', async (t) => {
  const dir = tempDir(t);
  await deviceStoreSuite(t, async (o = {}) => {
    const root = open({ path: dir, maxDbs: 4 });
    const store = new LmdbDeviceStore(root.openDB<readonly Device[], string>({ name: 'devices' }), o.maxDevices);
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
  await deviceStoreSuite(t, async (o = {}) => {
    const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
    const store = await RedisDeviceStore.open(engine, { prefix: 'suite', ...(o.maxDevices !== undefined ? { maxDevices: o.maxDevices } : {}) });
    return {
      store,
      close: async () => {
        await store.close();
        await engine.close();
      },
    };
  });
});
