// The Redis document store beyond the interface suite: a PUT through one instance is seen
// by another's XDM source within the same second (change notices, no polling); the engine
// gone: reads from the copy, writes fail clearly (docs/decisions/0003-shared-state-engine.md).
import t, { type Test } from 'tap';
import { RedisDocumentStore } from '../../../plugin/xdm/redis-store.js';
import { EmbeddedXdmSource } from '../../../plugin/xdm/source.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import { connectRedis, keyPart, SharedStateError } from '../../../plugin/shared-state/redis.js';
import { startRedis, startRedisCluster } from '../../../lab/redis.js';
import { quietLog } from '../service/fixtures/helpers.js';
import { list, MAX_BYTES } from './suite.js';

const BOB = 'sip:bob@example.net';
const RL = 'resource-lists';

async function instance(t: Test, urls: readonly string[], cluster: boolean, prefix = 'x') {
  const engine = await connectRedis({ urls, cluster, timeoutMs: 1000 });
  const bad: string[] = [];
  const store = await RedisDocumentStore.open(engine, { prefix, maxBytes: MAX_BYTES, onBadRecord: (k, why) => bad.push(`${k}: ${why}`) });
  const source = new EmbeddedXdmSource(store, {
    document: 'index', blacklistList: 'oma_blockedcontacts', maxBytes: MAX_BYTES, log: quietLog, metrics: new ServiceMetrics(),
  });
  t.teardown(async () => {
    await store.close();
    await engine.close();
  });
  return { engine, store, source, bad };
}

/** Resolves when `store` was told of a change of `xui`'s documents after which `done` holds. */
function changed(store: RedisDocumentStore, xui: string, done: () => boolean = () => true): Promise<void> {
  return new Promise((resolve) => {
    const off = store.onChange((_auid, x) => {
      if (x !== xui || !done()) return;
      off();
      resolve();
    });
  });
}

t.test('cluster: a PUT through one instance takes effect on another within the same second', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const a = await instance(t, cluster.urls, true);
  const b = await instance(t, cluster.urls, true);
  t.equal(b.source.load(BOB, 0).blacklist, null, 'no document yet');

  let seen = changed(b.store, BOB);
  let started = performance.now();
  const put = await a.store.put(RL, BOB, 'index', list('sip:spam@example.net'), 1);
  await seen;
  let took = performance.now() - started;
  t.ok(took < 1000, `PUT seen by the other instance in ${took.toFixed(1)} ms`);
  t.equal(b.store.etag(RL, BOB, 'index'), put.etag, 'same ETag on both');
  t.ok(b.source.load(BOB, 2).blacklist?.keys.has('sip:spam@example.net'), 'the other instance decides with it');

  seen = changed(b.store, BOB);
  started = performance.now();
  await a.store.put(RL, BOB, 'index', list('tel:+15550000002'), 3);
  await seen;
  took = performance.now() - started;
  t.ok(took < 1000, `a replacement seen in ${took.toFixed(1)} ms`);
  const bl = b.source.load(BOB, 4).blacklist;
  t.ok(bl?.keys.has('tel:+15550000002') && !bl.keys.has('sip:spam@example.net'), 'its cached parse was dropped');

  // (A may still get the notices of its own PUTs: wait for the one after which it is gone)
  seen = changed(a.store, BOB, () => a.store.get(RL, BOB, 'index') === undefined);
  await b.store.delete(RL, BOB, 'index');
  await seen;
  t.equal(a.source.load(BOB, 5).blacklist, null, 'a DELETE through the other instance');
});

t.test('single Redis', async (t) => {
  const redis = await startRedis(`${t.testdir()}/redis`);
  t.teardown(() => redis.stop());

  await t.test('a stored value that is not a document reads as none, and is reported', async (t) => {
    const { store, bad } = await instance(t, [redis.url], false, 'bad');
    const ck = `${keyPart(BOB)}:${keyPart(RL)}:${keyPart('index')}`;
    const seen = changed(store, BOB);
    await redis.cli('eval', "redis.call('SET', KEYS[1], ARGV[1]); redis.call('PUBLISH', 'bad:changed:xcap', ARGV[2])", '1',
      `bad:xcap:{${keyPart(BOB)}}:${keyPart(RL)}:${keyPart('index')}`, '{"body":1}', ck);
    await seen;
    t.equal(store.get(RL, BOB, 'index'), undefined);
    t.match(bad, [/does not match the document schema/]);
  });

  await t.test('the engine stopped: reads from the copy, writes fail clearly', async (t) => {
    const { store, source } = await instance(t, [redis.url], false, 'down');
    await store.put(RL, BOB, 'index', list('sip:spam@example.net'), 0);
    await redis.stop();
    const err = await store.put(RL, BOB, 'index', list(), 1).then(() => null, (e: unknown) => e);
    t.ok(err instanceof SharedStateError, String(err));
    t.match(String(err), /shared state engine: GET .* failed/);
    t.ok(source.load(BOB, 2).blacklist?.keys.has('sip:spam@example.net'), 'decisions go on with the last known document');
  });
});
