// The Redis device store beyond the interface suite: several instances on one engine
// (change notices, no polling), expiry by the engine, clock skew between instances, and an
// engine that is slow, refuses writes or is gone (docs/decisions/0003-shared-state-engine.md).
import t, { type Test } from 'tap';
import { RedisDeviceStore } from '../../../plugin/devices/redis-store.js';
import { connectRedis, keyPart, SharedStateError, type SharedEngine } from '../../../plugin/shared-state/redis.js';
import { startRedis, startRedisCluster, type RedisNode } from '../../../lab/redis.js';
import { until } from '../../../lab/proc.js';
import { device } from '../service/fixtures/helpers.js';

const AOR = 'sip:bob@example.net';

async function instance(t: Test, urls: readonly string[], cluster: boolean, opts: { clock?: () => number; timeoutMs?: number; prefix?: string } = {}) {
  const engine = await connectRedis({ urls, cluster, timeoutMs: opts.timeoutMs ?? 2000, ...(opts.clock ? { clock: opts.clock } : {}) });
  const bad: string[] = [];
  const store = await RedisDeviceStore.open(engine, { prefix: opts.prefix ?? 't', onBadRecord: (aor, why) => bad.push(`${aor}: ${why}`) });
  t.teardown(async () => {
    await store.close();
    await engine.close();
  });
  return { engine, store, bad };
}

/** Resolves when `store` was told of a change of `aor` (a notice, or its own write) after which `done` holds. */
function changed(store: RedisDeviceStore, aor: string, done: () => boolean = () => true): Promise<void> {
  return new Promise((resolve) => {
    const off = store.onChange((a) => {
      if (a !== aor || !done()) return;
      off();
      resolve();
    });
  });
}

t.test('cluster: a REGISTER through one instance is seen by another within the same second', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const a = await instance(t, cluster.urls, true);
  const b = await instance(t, cluster.urls, true);
  const now = Date.now();
  const users = Array.from({ length: 12 }, (_, i) => `sip:user${i}@example.net`);
  const seen = Promise.all(users.map((u) => changed(b.store, u)));
  const started = performance.now();
  for (const u of users) await a.store.apply({ kind: 'update', aor: u, upsert: [device({ aor: u, contact: `sip:${u.slice(4)}`, expiresAt: now + 60_000 })], remove: [] }, now);
  await seen;
  const took = performance.now() - started;
  t.ok(took < 1000, `12 users over 3 masters seen by the other instance in ${took.toFixed(0)} ms`);
  for (const u of users) t.equal(b.store.list(u, now).length, 1, u);
  // and back: a removal through B reaches A
  // (A may still get the notices of its own writes: wait for the one after which it is gone)
  const gone = changed(a.store, users[0]!, () => a.store.list(users[0]!, now).length === 0);
  await b.store.apply({ kind: 'remove-all', aor: users[0]! }, now);
  await gone;
  t.same(a.store.list(users[0]!, now), []);
  // a third instance started later loads what is there
  const c = await instance(t, cluster.urls, true);
  t.equal(c.store.users().length, 11);
});

t.test('single Redis', async (t) => {
  let redis: RedisNode = await startRedis(`${t.testdir()}/redis`);
  t.teardown(() => redis.stop());
  const urls = [redis.url];

  await t.test('the engine expires a user whose bindings all ran out: no purge', async (t) => {
    const { engine, store } = await instance(t, urls, false);
    const now = Date.now();
    await store.apply({ kind: 'update', aor: AOR, upsert: [device({ aor: AOR, contact: 'sip:bob@h', expiresAt: now + 1500 })], remove: [] }, now);
    const key = `t:dev:{${keyPart(AOR)}}`;
    t.not(await engine.get(key), null, 'stored');
    const ttl = Number(await redis.cli('pttl', key));
    t.ok(ttl > 0 && ttl <= 1500, `TTL ${ttl} ms`);
    await until(async () => ((await engine.get(key)) === null ? true : undefined), 5000, 'the engine to expire the key', 50);
    t.same(store.list(AOR, now + 1500), [], 'expired in the copy too');
  });

  await t.test('clock skew: instances 5 s apart agree on when a binding ends', async (t) => {
    const aor = 'sip:skew@example.net';
    const a = await instance(t, urls, false);
    const skewed = (): number => Date.now() + 5000;
    const b = await instance(t, urls, false, { clock: skewed });
    t.ok(Math.abs(b.engine.offsetMs + 5000) < 250, `B measured its offset: ${b.engine.offsetMs} ms`);
    t.equal(a.engine.offsetMs, 0, 'A is in step with the engine (offsets under 250 ms are taken as 0)');
    const nowA = Date.now();
    const seen = changed(b.store, aor);
    await a.store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:skew@h', registeredAt: nowA, expiresAt: nowA + 60_000 })], remove: [] }, nowA);
    await seen;
    // the same real instant is nowA on A and nowA + 5000 on B
    // (within the offset measurement's error, a few ms: a quarter second either side)
    t.equal(b.store.list(aor, nowA + 5000 + 59_750).length, 1, 'B: still registered 59.75 s later');
    t.equal(b.store.list(aor, nowA + 5000 + 60_250).length, 0, 'B: gone 60.25 s later (not 55 s nor 65 s)');
    const d = b.store.list(aor, nowA + 5000)[0];
    t.ok(d && Math.abs(d.expiresAt - (nowA + 5000 + 60_000)) < 250, 'expiry in B\'s clock');
    // a refresh through B (its clock) is read right by A
    const back = changed(a.store, aor, () => a.store.list(aor, Date.now())[0]?.callId === 'reg-2');
    const nowB = skewed();
    await b.store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:skew@h', callId: 'reg-2', expiresAt: nowB + 120_000 })], remove: [] }, nowB);
    await back;
    const e = a.store.list(aor, Date.now())[0];
    t.ok(e && Math.abs(e.expiresAt - (nowA + 120_000)) < 1000, 'expiry in A\'s clock');
  });

  await t.test('a stored value that is not a device list reads as none, and is reported', async (t) => {
    const aor = 'sip:broken@example.net';
    const { store, bad } = await instance(t, urls, false, { prefix: 'bad' });
    const seen = changed(store, aor);
    await redis.cli('eval', "redis.call('SET', KEYS[1], ARGV[1]); redis.call('PUBLISH', 'bad:changed:dev', ARGV[2])", '1',
      `bad:dev:{${keyPart(aor)}}`, '[{"aor":1}]', keyPart(aor));
    await seen;
    t.same(store.list(aor, 0), []);
    t.match(bad, [/does not match the device schema/]);
  });

  await t.test('a slow engine: the write fails within its bound, reads go on', async (t) => {
    const aor = 'sip:slow@example.net';
    const { store } = await instance(t, urls, false, { timeoutMs: 200 });
    const now = Date.now();
    await store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:slow@h', expiresAt: now + 60_000 })], remove: [] }, now);
    await redis.cli('client', 'pause', '1000', 'WRITE');
    const started = performance.now();
    await t.rejects(store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:slow2@h', expiresAt: now + 60_000 })], remove: [] }, now),
      { name: 'SharedStateError', message: /timed out after 200 ms/ });
    t.ok(performance.now() - started < 900, 'within the bound, not the pause');
    t.equal(store.list(aor, now).length, 1, 'reads answer from the copy');
    await redis.cli('client', 'unpause');
  });

  await t.test('an engine that refuses writes (OOM): a clear error, nothing changed', async (t) => {
    const aor = 'sip:oom@example.net';
    const { engine, store } = await instance(t, urls, false);
    const now = Date.now();
    await store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:oom@h', expiresAt: now + 60_000 })], remove: [] }, now);
    const before = await engine.get(`t:dev:{${keyPart(aor)}}`);
    await redis.cli('config', 'set', 'maxmemory-policy', 'noeviction');
    await redis.cli('config', 'set', 'maxmemory', '1');
    t.teardown(() => redis.cli('config', 'set', 'maxmemory', '0'));
    await t.rejects(store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:oom2@h', expiresAt: now + 60_000 })], remove: [] }, now),
      { name: 'SharedStateError', message: /OOM/ });
    await redis.cli('config', 'set', 'maxmemory', '0');
    t.equal(await engine.get(`t:dev:{${keyPart(aor)}}`), before, 'the stored bindings are as they were');
    t.same(store.list(aor, now).map((d) => d.contact), ['sip:oom@h']);
  });

  await t.test('the engine stopped altogether: reads from the copy, writes fail clearly, no crash; back after a restart', async (t) => {
    const aor = 'sip:down@example.net';
    const errors: Error[] = [];
    const engine: SharedEngine = await connectRedis({ urls, cluster: false, timeoutMs: 500, onError: (e) => errors.push(e) });
    const store = await RedisDeviceStore.open(engine, { prefix: 'down' });
    t.teardown(async () => {
      await store.close();
      await engine.close();
    });
    const now = Date.now();
    await store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:down@h', expiresAt: now + 60_000 })], remove: [] }, now);
    const port = redis.port;
    await redis.stop();
    const err = await store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: 'sip:down2@h', expiresAt: now + 60_000 })], remove: [] }, now)
      .then(() => null, (e: unknown) => e);
    t.ok(err instanceof SharedStateError, 'SharedStateError');
    t.match(String(err), /shared state engine: GET .* failed/, `clear: ${String(err)}`);
    t.equal(store.list(aor, now).length, 1, 'the INVITE path still reads the copy');
    // the same port again: the store reloads what the engine has (empty: no persistence here)
    redis = await startRedis(`${t.testdir()}/redis2`, port);
    await until(async () => (store.list(aor, now).length === 0 ? true : undefined), 5000, 'the reload after reconnecting', 20);
    t.pass('reloaded after the engine came back');
    t.ok(errors.length > 0, 'connection errors were reported, not thrown');
  });
});
