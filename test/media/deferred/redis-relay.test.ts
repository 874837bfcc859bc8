// The relay process with its deferred store on Redis (media/config/load.ts deferred-store,
// media/main.ts; docs/deferred.md "On Redis"): the settings, and a relay whose node is lost
// for good (SIGKILL, its data dir gone) whose stored messages another relay finds.
import t from 'tap';
import { rmSync } from 'node:fs';
import { readConfig } from '../../../media/config/load.js';
import { buildCpim, MsrpPeer } from '../../../media/client/peer.js';
import { RelayControlClient } from '../../../media/relay/control-client.js';
import { startRedis } from '../../../lab/redis.js';
import { sdpFor, startRelayProcess } from '../relay/helpers.js';
import { idOf } from './suite.js';

t.test('settings: deferred-store redis', async t => {
  const cases: ReadonlyArray<readonly [string, readonly string[], NodeJS.ProcessEnv, unknown]> = [
    ['lmdb by default: no deferredRedis', [], {}, undefined],
    ['redis, one URL, defaults', ['--deferred-store', 'redis', '--deferred-redis-urls', 'redis://127.0.0.1:6379'], {},
      { urls: ['redis://127.0.0.1:6379'], cluster: false, prefix: 'pf', timeoutMs: 1000, replicas: 0, waitMs: 500 }],
    ['redis cluster from the environment', [], {
      RELAY_DEFERRED_STORE: 'redis', RELAY_DEFERRED_REDIS_URLS: 'redis://a:1,redis://b:2', RELAY_DEFERRED_REDIS_CLUSTER: 'true',
      RELAY_DEFERRED_REDIS_PREFIX: 'lab', RELAY_DEFERRED_REDIS_REPLICAS: '1', RELAY_DEFERRED_REDIS_WAIT_MS: '200', RELAY_DEFERRED_REDIS_TIMEOUT_MS: '300',
    }, { urls: ['redis://a:1', 'redis://b:2'], cluster: true, prefix: 'lab', timeoutMs: 300, replicas: 1, waitMs: 200 }],
    ['deferred off wins', ['--deferred', 'off', '--deferred-store', 'redis', '--deferred-redis-urls', 'redis://x:1'], {}, undefined],
  ];
  for (const [name, argv, env, want] of cases) t.same(readConfig(argv, env).deferredRedis, want, name);
  const bad: ReadonlyArray<readonly [string, readonly string[], RegExp]> = [
    ['no URL', ['--deferred-store', 'redis'], /deferred-redis-urls/],
    ['not a redis URL', ['--deferred-store', 'redis', '--deferred-redis-urls', 'http://x'], /deferred-redis-urls/],
    ['braces in the prefix', ['--deferred-store', 'redis', '--deferred-redis-urls', 'redis://x:1', '--deferred-redis-prefix', 'a{b}'], /deferred-redis-prefix/],
    ['unknown store', ['--deferred-store', 'etcd'], /deferred-store/],
  ];
  for (const [name, argv, re] of bad) t.throws(() => readConfig(argv, {}), { name: 'ConfigError', message: re }, name);
});

t.test('a relay node lost for good: another relay on the same engine has its stored messages', async t => {
  const redis = await startRedis(`${t.testdir()}/redis`);
  t.teardown(() => redis.stop());
  const start = (dir: string): ReturnType<typeof startRelayProcess<{ msrpPort: number; controlPort: number; deferred: string }>> => startRelayProcess(
    ['--msrp-port', '0', '--control-port', '0', '--history', 'off', '--deferred', `${dir}/deferred.mdb`,
      '--deferred-store', 'redis', '--deferred-redis-urls', redis.url, '--deferred-redis-prefix', 'rp']);
  const dirA = `${t.testdir()}/a`;
  const a = await start(dirA);
  t.teardown(() => a.child.kill('SIGKILL'));
  t.equal(a.ready.deferred, 'redis:rp', 'the ready line names the engine');
  const cli = await RelayControlClient.connect('127.0.0.1', a.ready.controlPort);
  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: a.ready.msrpPort, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  const o = await cli.offer({ 'call-id': 'lost-1', sdp: sdpFor(origin.localUri), 'served-user': 'sip:bob@example.net' });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  origin.remotePath = o['relay-uri'];
  t.equal(await origin.bind(), 200);
  const id = idOf(0x1057);
  t.same(await cli.defer({ 'call-id': 'lost-1', 'deferred-id': id, 'served-user': 'sip:bob@example.net', 'expires-at': Date.now() + 3_600_000 }), { result: 'ok' });
  for (const i of [1, 2, 3]) {
    t.same((await origin.sendMessage(buildCpim({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', body: `m${i}` }))).statuses, [200]);
  }
  await origin.close();
  await cli.close();
  a.child.kill('SIGKILL');
  rmSync(dirA, { recursive: true, force: true });

  const b = await start(`${t.testdir()}/b`);
  t.teardown(() => b.child.kill('SIGKILL'));
  const cliB = await RelayControlClient.connect('127.0.0.1', b.ready.controlPort);
  t.teardown(() => cliB.close());
  t.match(await cliB.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 3, notifications: 0 }, 'the other relay sees the three messages');
});

t.test('an engine not reachable at start: the relay exits 1', async t => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('../../../media/main.ts', import.meta.url).pathname,
    '--msrp-port', '0', '--control-port', '0', '--history', 'off', '--deferred-store', 'redis', '--deferred-redis-urls', 'redis://127.0.0.1:1'],
  { stdio: 'ignore' });
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve));
  t.equal(code, 1);
});
