// An XCAP write the shared-state engine does not take (docs/deployment.md §11): 503 with
// Retry-After and a clear text, the document unchanged, the service still serving; and
// the compare-and-set bound of the document store (plugin/shared-state/redis.ts CAS_ATTEMPTS).
import t from 'tap';
import { createApp } from '../../../plugin/app.js';
import { ENGINE_RETRY_AFTER_S } from '../../../plugin/http/xcap.js';
import { RedisDocumentStore } from '../../../plugin/xdm/redis-store.js';
import { CAS_ATTEMPTS, type SharedEngine } from '../../../plugin/shared-state/redis.js';
import { startRedis } from '../../../lab/redis.js';
import { quietLog, tempDir, testConfig, OPERATOR } from '../service/fixtures/helpers.js';
import { list, MAX_BYTES } from './suite.js';

const RL = 'application/resource-lists+xml';
const URL = '/xcap-root/resource-lists/users/sip:bob@example.net/index';

t.test('engine down: XCAP PUT and DELETE answer 503 with Retry-After, the document unchanged', async (t) => {
  const redis = await startRedis(`${t.testdir()}/redis`);
  t.teardown(() => redis.stop());
  const app = await createApp(
    testConfig(tempDir(t), { sharedState: { engine: 'redis', redis: { urls: [redis.url], cluster: false, prefix: 'u', timeoutMs: 500 } } }),
    quietLog,
  );
  t.teardown(() => app.stop());
  await app.start();
  const put = (body: string) => app.http.inject({ method: 'PUT', url: URL, headers: { ...OPERATOR, 'content-type': RL }, payload: body });

  const first = await put(list('sip:spam@example.net'));
  t.equal(first.statusCode, 201, 'engine up: stored');
  await redis.stop();

  const cases = [
    { what: 'PUT', res: () => put(list('sip:other@example.net')) },
    { what: 'DELETE', res: () => app.http.inject({ method: 'DELETE', url: URL, headers: OPERATOR }) },
  ];
  for (const c of cases) {
    const res = await c.res();
    t.equal(res.statusCode, 503, `${c.what}: 503`);
    t.equal(res.headers['retry-after'], String(ENGINE_RETRY_AFTER_S), `${c.what}: Retry-After`);
    t.match(res.body, /document store unavailable.*unchanged/, `${c.what}: says why`);
  }
  const get = await app.http.inject({ method: 'GET', url: URL, headers: OPERATOR });
  t.equal(get.statusCode, 200, 'reads answer from the copy');
  t.equal(get.headers.etag, first.headers.etag, 'the document is the one stored before');
  t.equal((await app.http.inject({ url: '/health' })).statusCode, 200, 'still serving');
});

t.test('an engine that refuses writes (out of memory, a read-only replica): 503, reads from the copy', async (t) => {
  const redis = await startRedis(`${t.testdir()}/redis`);
  const other = await startRedis(`${t.testdir()}/other`);
  t.teardown(() => Promise.all([redis.stop(), other.stop()]));
  const app = await createApp(
    testConfig(tempDir(t), { sharedState: { engine: 'redis', redis: { urls: [redis.url], cluster: false, prefix: 'r', timeoutMs: 1000 } } }),
    quietLog,
  );
  t.teardown(() => app.stop());
  await app.start();
  const put = (body: string) => app.http.inject({ method: 'PUT', url: URL, headers: { ...OPERATOR, 'content-type': RL }, payload: body });
  const first = await put(list('sip:spam@example.net'));
  t.equal(first.statusCode, 201);
  const cases: Array<{ name: string; refuse: () => Promise<unknown>; accept: () => Promise<unknown> }> = [
    {
      name: 'maxmemory reached (OOM, noeviction)',
      refuse: () => redis.cli('CONFIG', 'SET', 'maxmemory', '1'),
      accept: () => redis.cli('CONFIG', 'SET', 'maxmemory', '0'),
    },
    {
      name: 'a read-only replica (READONLY)',
      refuse: () => redis.cli('REPLICAOF', other.host, String(other.port)),
      accept: () => redis.cli('REPLICAOF', 'NO', 'ONE'),
    },
  ];
  for (const c of cases) {
    await c.refuse();
    const res = await put(list('sip:other@example.net'));
    t.equal(res.statusCode, 503, `${c.name}: 503`);
    t.equal(res.headers['retry-after'], String(ENGINE_RETRY_AFTER_S), `${c.name}: Retry-After`);
    const get = await app.http.inject({ method: 'GET', url: URL, headers: OPERATOR });
    t.equal(get.headers.etag, first.headers.etag, `${c.name}: the document unchanged`);
    await c.accept();
  }
  t.equal((await put(list('sip:x@example.net'))).statusCode, 200, 'writes land again once the engine takes them');
});

/** An engine whose compare-and-set loses `losses` times (other writers), then wins. */
function contended(losses: number): SharedEngine & { readonly attempts: number } {
  let attempts = 0;
  return {
    offsetMs: 0,
    get attempts() {
      return attempts;
    },
    get: () => Promise.resolve(null),
    cas: () => Promise.resolve(++attempts > losses),
    scan: async function* () {},
    subscribe: () => Promise.resolve(),
    onResync: () => undefined,
    close: () => Promise.resolve(),
  };
}

t.test(`a document write retries its compare-and-set up to ${CAS_ATTEMPTS} times`, async (t) => {
  const cases = [
    { losses: 0, lands: true },
    { losses: CAS_ATTEMPTS - 1, lands: true },
    { losses: CAS_ATTEMPTS, lands: false },
  ];
  for (const c of cases) {
    const engine = contended(c.losses);
    const store = await RedisDocumentStore.open(engine, { maxBytes: MAX_BYTES });
    const put = store.put('resource-lists', 'sip:bob@example.net', 'index', list('sip:x@example.net'), 1);
    if (c.lands) {
      await put;
      t.equal(engine.attempts, c.losses + 1, `${c.losses} lost attempts: lands on the next`);
    } else {
      await t.rejects(put, { name: 'SharedStateError', message: new RegExp(`${CAS_ATTEMPTS} concurrent writers`) }, `${c.losses} lost attempts: gives up`);
      t.equal(engine.attempts, CAS_ATTEMPTS);
    }
    await store.close();
  }
});
