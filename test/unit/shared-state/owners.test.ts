// Session ownership (plugin/shared-state/owners.ts): one suite on the in-memory leases and on a
// three-master Redis Cluster; a lease that runs out leaves the session without an owner.
import t, { type Test } from 'tap';
import { LocalSessionOwners, RedisSessionOwners, type SessionOwners } from '../../../plugin/shared-state/owners.js';
import { CAS_ATTEMPTS, connectRedis, type SharedEngine } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { until } from '../../../lab/proc.js';

async function suite(t: Test, owners: SessionOwners, expire: (callId: string) => Promise<void>): Promise<void> {
  const odd = ['a84b4c76e66710@pc33.example.net', 'x{y}z:1', 'ünï©ødé 1', '*'];
  for (const id of odd) {
    t.equal(await owners.owner(id), null, `${id}: no owner`);
    t.equal(await owners.claim(id, 'node-1', 60_000), 'node-1', `${id}: claimed`);
    t.equal(await owners.claim(id, 'node-2', 60_000), 'node-1', `${id}: a second claim finds the owner`);
    t.equal(await owners.owner(id), 'node-1');
  }
  const [id] = odd as [string];
  t.equal(await owners.renew(id, 'node-2', 60_000), false, 'only the owner renews');
  t.equal(await owners.renew(id, 'node-1', 60_000), true);
  t.equal(await owners.release(id, 'node-2'), false, 'only the owner releases');
  t.equal(await owners.release(id, 'node-1'), true);
  t.equal(await owners.owner(id), null);
  t.equal(await owners.claim(id, 'node-2', 60_000), 'node-2', 'free again');

  const racing = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((n) => owners.claim('race', n, 60_000)));
  t.equal(new Set(racing).size, 1, `concurrent claims: one owner (${racing[0]})`);

  await owners.claim('short', 'node-1', 200);
  await expire('short');
  t.equal(await owners.owner('short'), null, 'the lease ran out: no owner');
  t.equal(await owners.renew('short', 'node-1', 60_000), false, 'a lapsed lease is not renewed');
  t.equal(await owners.claim('short', 'node-2', 60_000), 'node-2', 'a survivor may take it');
}

t.test('in memory', async (t) => {
  let now = 0;
  const owners = new LocalSessionOwners(() => now);
  await suite(t, owners, async () => {
    now += 200;
  });
});

t.test('redis cluster', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
  t.teardown(() => engine.close());
  const owners = new RedisSessionOwners(engine, 'own');
  // the engine's TTL ends the lease
  await suite(t, owners, async (id) => {
    await until(async () => ((await owners.owner(id)) === null ? true : undefined), 5000, 'the lease to run out', 20);
  });
});

t.test(`a claim retries its compare-and-set up to ${CAS_ATTEMPTS} times (the bound every store shares)`, async (t) => {
  // an engine on which the session stays free but every write loses `losses` times
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
    { losses: 0, owner: 'node-1' },
    { losses: CAS_ATTEMPTS - 1, owner: 'node-1' },
    { losses: CAS_ATTEMPTS, owner: null },
  ];
  for (const c of cases) {
    const { engine, attempts } = contended(c.losses);
    const claim = new RedisSessionOwners(engine).claim('call-1', 'node-1', 1000);
    if (c.owner !== null) t.equal(await claim, c.owner, `${c.losses} lost attempts: claimed`);
    else await t.rejects(claim, { name: 'SharedStateError', message: new RegExp(`${CAS_ATTEMPTS} concurrent claims`) }, `${c.losses} lost: gives up`);
    t.equal(attempts(), Math.min(c.losses + 1, CAS_ATTEMPTS));
  }
});
