// A Redis Cluster master killed (docs/deployment.md §11 "Loss window"): three masters with
// one replica each; registrations replicated before the kill survive the failover, writes
// to the lost master's slots come back once its replica is promoted, and the time that
// takes is measured (cluster-node-timeout 2000 ms, lab/redis.ts).
import t, { type Test } from 'tap';
import { RedisDeviceStore } from '../../../plugin/devices/redis-store.js';
import { connectRedis, keyPart } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { until } from '../../../lab/proc.js';
import { device } from '../service/fixtures/helpers.js';

async function instance(t: Test, urls: readonly string[]) {
  const engine = await connectRedis({ urls, cluster: true, timeoutMs: 1000 });
  const store = await RedisDeviceStore.open(engine, { prefix: 'fo' });
  t.teardown(async () => {
    await store.close();
    await engine.close();
  });
  return store;
}

t.test('a master killed: the replica takes over, registrations are still there', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`, 3, 1);
  t.teardown(() => cluster.stop());
  const [victim] = cluster.nodes;
  if (!victim) throw new Error('no nodes');
  const a = await instance(t, cluster.urls);
  const now = Date.now();
  const users = Array.from({ length: 30 }, (_, i) => `sip:fo${i}@example.net`);
  const reg = (aor: string, cseq: number) =>
    a.apply({ kind: 'update', aor, upsert: [device({ aor, contact: `sip:${aor.slice(4)}`, cseq, expiresAt: now + 600_000 })], remove: [] }, now);
  for (const u of users) await reg(u, 1);

  // the masters' writes have reached their replicas (the loss window closed) before the kill
  // (the replica has acknowledged the master's offset as it was after the writes; the
  // master's own offset keeps moving with its pings, so equality is not waited for)
  for (const m of cluster.nodes.slice(0, 3)) {
    const written = Number(/master_repl_offset:(\d+)/.exec(await m.cli('info', 'replication'))?.[1]);
    await until(async () => {
      const info = await m.cli('info', 'replication');
      const acked = Number(/slave0:.*offset=(\d+)/.exec(info)?.[1] ?? -1);
      return Number.isFinite(written) && acked >= written ? true : undefined;
    }, 15_000, `replica of ${m.port} in step`, 20);
  }
  // a user whose key the victim holds
  const onVictim: string[] = [];
  for (const u of users) if ((await victim.cli('exists', `fo:dev:{${keyPart(u)}}`)).trim() === '1') onVictim.push(u);
  t.ok(onVictim.length > 0, `${onVictim.length} of 30 users on the killed master`);
  const target = onVictim[0]!;

  const killed = performance.now();
  await victim.kill();
  let attempts = 0;
  await until(async () => {
    attempts++;
    try {
      await reg(target, 2);
      return true;
    } catch {
      return undefined;
    }
  }, 30_000, 'a write to the lost master\'s slots', 100);
  const writeGap = performance.now() - killed;
  t.pass(`writes to the killed master's slots came back after ${(writeGap / 1000).toFixed(1)} s (${attempts} attempts)`);
  t.ok(writeGap < 30_000);

  // every registration is still there: an instance started after the failover loads them
  const c = await instance(t, cluster.urls.slice(1));
  for (const u of users) t.equal(c.list(u, now).length, 1, u);
  t.equal(c.list(target, now)[0]?.cseq, 2, 'the write after the failover');
  // writes to the other masters' slots never stopped
  const other = users.find((u) => !onVictim.includes(u));
  if (other) t.equal((await reg(other, 3)).refreshed, 1, 'another master\'s user');
});
