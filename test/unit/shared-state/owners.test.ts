// Node leases (plugin/shared-state/owners.ts): one suite on the in-memory leases and on a
// three-master Redis Cluster; a lease that is not renewed runs out, one that is stays.
import t, { type Test } from 'tap';
import { LocalNodeLeases, RedisNodeLeases, type NodeLeases } from '../../../plugin/shared-state/owners.js';
import { CAS_ATTEMPTS, connectRedis, type SharedEngine } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { until } from '../../../lab/proc.js';

async function suite(t: Test, leases: NodeLeases, expire: (node: string) => Promise<void>): Promise<void> {
  // node ids with the characters a hostname or an operator's id may bring
  const odd = ['pf1.example.net:8090', 'x{y}z:1', 'ünï©ødé 1', '*'];
  for (const n of odd) {
    t.equal(await leases.alive(n), false, `${n}: no lease`);
    await leases.beat(n, 60_000);
    t.equal(await leases.alive(n), true, `${n}: alive after a beat`);
  }
  await leases.beat('short', 200);
  await leases.beat('kept', 60_000);
  await expire('short');
  t.equal(await leases.alive('short'), false, 'not renewed: the lease ran out');
  t.equal(await leases.alive('kept'), true, 'the other lease is still held');
  await leases.beat('short', 60_000);
  t.equal(await leases.alive('short'), true, 'a node that comes back beats again');
}

t.test('in memory', async (t) => {
  let now = 0;
  const leases = new LocalNodeLeases(() => now);
  await suite(t, leases, async () => {
    now += 200;
  });
});

t.test('redis cluster', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
  t.teardown(() => engine.close());
  const leases = new RedisNodeLeases(engine, 'own');
  // the engine's TTL ends the lease
  await suite(t, leases, async (node) => {
    await until(async () => ((await leases.alive(node)) ? undefined : true), 5000, 'the lease to run out', 20);
  });
});

t.test(`a beat retries its compare-and-set up to ${CAS_ATTEMPTS} times (the bound every store shares)`, async (t) => {
  // an engine on which every write loses `losses` times
  const contended = (losses: number) => {
    let attempts = 0;
    const engine: SharedEngine = {
      offsetMs: 0,
      get: () => Promise.resolve(null),
      cas: () => Promise.resolve(++attempts > losses),
      scan: async function* () {},
      subscribe: () => Promise.resolve(),
      onResync: () => undefined,
      close: () => Promise.resolve(),
    };
    return { engine, attempts: () => attempts };
  };
  const cases = [
    { losses: 0, ok: true },
    { losses: CAS_ATTEMPTS - 1, ok: true },
    { losses: CAS_ATTEMPTS, ok: false },
  ];
  for (const c of cases) {
    const { engine, attempts } = contended(c.losses);
    const beat = new RedisNodeLeases(engine).beat('node-1', 1000);
    if (c.ok) await t.resolves(beat, `${c.losses} lost attempts: renewed`);
    else await t.rejects(beat, { name: 'SharedStateError', message: new RegExp(`${CAS_ATTEMPTS} concurrent beats`) }, `${c.losses} lost: gives up`);
    t.equal(attempts(), Math.min(c.losses + 1, CAS_ATTEMPTS));
  }
});
