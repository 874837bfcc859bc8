/**
 * Two service instances with separate data directories on one Redis Cluster
 * (sharedState.engine: redis; docs/deployment.md "Several nodes"): a REGISTER through one
 * is forked to by an INVITE through the other; an XCAP PUT through one decides the other's
 * next INVITE within the same second; the engine stopped: the fail-safe, a clear error,
 * no crash.
 */
import t from 'tap';
import { createApp, type App } from '../../../plugin/app.js';
import { RedisDeviceStore } from '../../../plugin/devices/redis-store.js';
import { RedisDocumentStore } from '../../../plugin/xdm/redis-store.js';
import { parseConfig } from '../../../plugin/config/load.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { inviteText, registerText } from '../../../lab/service-fixtures.js';
import { quietLog, rpcCall as call, tempDir, testConfig, OPERATOR, type Teardown } from './fixtures/helpers.js';

const RL = 'application/resource-lists+xml';
const BL_URL = '/xcap-root/resource-lists/users/sip:bob@example.net/index';
const blacklist = (uris: string[]): string =>
  `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts">${uris
    .map((u) => `<entry uri="${u}"/>`).join('')}</list></resource-lists>`;

async function instance(t: Teardown, urls: readonly string[]): Promise<App> {
  const app = await createApp(
    testConfig(tempDir(t), { sharedState: { engine: 'redis', redis: { urls, cluster: true, prefix: 'svc', timeoutMs: 2000 } } }),
    quietLog,
  );
  t.teardown(() => app.stop());
  await app.start();
  return app;
}

t.test('config: lmdb by default; redis with its nodes, from the file or the environment', async (t) => {
  t.equal(parseConfig({}).sharedState.engine, 'lmdb');
  t.same(parseConfig({ sharedState: { engine: 'redis' } }).sharedState.redis, {
    urls: ['redis://127.0.0.1:6379'], cluster: false, prefix: 'pf', timeoutMs: 500,
  });
  t.throws(() => parseConfig({ sharedState: { engine: 'postgres' } }), /sharedState/);
  t.throws(() => parseConfig({ sharedState: { engine: 'redis', redis: { urls: ['http://x'] } } }), /urls/);
  t.throws(() => parseConfig({ sharedState: { redis: { prefix: 'a:b' } } }), /prefix/);
  const { loadConfig } = await import('../../../plugin/config/load.js');
  const env = { PF_SHARED_STATE: 'redis', PF_REDIS_URLS: 'redis://10.0.0.1:7000,redis://10.0.0.2:7000', PF_REDIS_CLUSTER: 'true', PF_REDIS_PREFIX: 'site1' };
  t.match(loadConfig({ env }).sharedState, {
    engine: 'redis', redis: { urls: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'], cluster: true, prefix: 'site1' },
  });
});

t.test('an engine that cannot be reached at start: a clear error, no service half up', async (t) => {
  const config = testConfig(tempDir(t), { sharedState: { engine: 'redis', redis: { urls: ['redis://127.0.0.1:1'], cluster: true, timeoutMs: 300 } } });
  await t.rejects(createApp(config, quietLog), { name: 'SharedStateError', message: /shared state engine: connect failed/ });
});

t.test('two instances on one Redis Cluster', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const one = await instance(t, cluster.urls);
  const two = await instance(t, cluster.urls);
  t.ok(one.devices instanceof RedisDeviceStore && two.xcap instanceof RedisDocumentStore, 'the Redis stores are wired');

  // a REGISTER through instance 1 ...
  const oneDevices = one.devices as RedisDeviceStore;
  const twoDevices = two.devices as RedisDeviceStore;
  const seen = new Promise<void>((resolve) => twoDevices.onChange(() => resolve()));
  const reg = await call(one.rpcPort, 'pf.register', { v: 1, msg: registerText({ port: 6001 }), src: 'tcp:127.0.0.1:40001' });
  t.same(reg.result, { aor: 'sip:bob@example.net', devices: 1 });
  t.equal(oneDevices.list('sip:bob@example.net', Date.now()).length, 1);
  await seen;
  // ... is forked to by an INVITE through instance 2
  const inv = await call(two.rpcPort, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  t.match(inv.result, { action: 'proxy', stage: 'proxy' });
  const fork = await call(two.rpcPort, 'core.fork', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  t.match(fork.result, { code: 200, rtjson: { routing: 'parallel' } });
  t.equal((fork.result as { rtjson: { routes: unknown[] } }).rtjson.routes.length, 1);
  t.equal((await two.http.inject({ headers: OPERATOR, url: '/users/bob/devices' })).json().devices.length, 1, 'listed by instance 2');

  // an XCAP PUT through instance 1 decides instance 2's next INVITE within the same second
  const twoXcap = two.xcap as RedisDocumentStore;
  const docSeen = new Promise<void>((resolve) => twoXcap.onChange(() => resolve()));
  const started = performance.now();
  const put = await one.http.inject({ method: 'PUT', url: BL_URL, headers: { ...OPERATOR, 'content-type': RL }, payload: blacklist(['sip:alice@example.net']) });
  t.equal(put.statusCode, 201);
  await docSeen;
  const blocked = await call(two.rpcPort, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  const took = performance.now() - started;
  t.match(blocked.result, { action: 'reject', stage: 'blacklist' });
  t.ok(took < 1000, `PUT on instance 1 to a blacklist decision on instance 2: ${took.toFixed(1)} ms`);
  t.equal((await two.http.inject({ headers: OPERATOR, url: BL_URL })).headers.etag, put.headers.etag, 'same ETag on both');

  // the engine stopped altogether: REGISTER answers the fail-safe's error, INVITEs go on
  // from the copy, nothing crashes
  await cluster.stop();
  const failed = await call(one.rpcPort, 'pf.register', { v: 1, msg: registerText({ port: 6002, instance: '00000000-0000-0000-0000-000000000002' }), src: 'tcp:127.0.0.1:40002' });
  t.match(failed.error, { code: -32001, message: 'Device store unavailable' });
  const still = await call(two.rpcPort, 'pf.invite', { v: 1, msg: inviteText({ from: 'carol' }), src: 'udp:127.0.0.1:5070' });
  t.match(still.result, { action: 'proxy' }, 'decisions from the last known state');
  const xput = await one.http.inject({ method: 'PUT', url: BL_URL, headers: { ...OPERATOR, 'content-type': RL }, payload: blacklist([]) });
  t.ok(xput.statusCode >= 500, `XCAP PUT with the engine down: ${xput.statusCode}`);
  t.equal((await one.http.inject({ url: '/health' })).statusCode, 200, 'still serving');
});
