// The relay process: configuration (file, environment, flags), start-up line, control
// reachable, a bad setting named with exit code 2, clean stop.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readConfig } from '../../../media/main.js';
import { RelayControlClient } from '../../../media/relay/control-client.js';
import { startRelayProcess } from './helpers.js';

t.test('readConfig', async t => {
  t.same(readConfig([], {}), { host: '127.0.0.1', msrpPort: 2855, controlPort: 2856, history: 'run/history.mdb' });
  t.same(readConfig(['--msrp-port', '0', '--history', 'off'], { RELAY_CONTROL_PORT: '9999' }),
    { host: '127.0.0.1', msrpPort: 0, controlPort: 9999, history: null });
  t.throws(() => readConfig(['--msrp-port', 'x'], {}), /msrp-port must be a port number/);
  t.throws(() => readConfig([], { RELAY_CONTROL_PORT: '70000' }), /control-port/);
  t.throws(() => readConfig(['--bogus'], {}));
});

t.test('readConfig: one JSON file, then environment, then flags', async t => {
  const dir = t.testdir();
  const file = `${dir}/relay.json`;
  writeFileSync(file, JSON.stringify({ host: '127.0.0.2', 'msrp-port': 3000, 'control-port': 3001, history: 'off', 'control-max-frame-bytes': 4096 }));
  t.same(readConfig(['--config', file], {}), { host: '127.0.0.2', msrpPort: 3000, controlPort: 3001, history: null, controlMaxFrameBytes: 4096 });
  t.same(readConfig([], { RELAY_CONFIG: file, RELAY_MSRP_PORT: '4000' }).msrpPort, 4000, 'environment over file');
  t.same(readConfig(['--msrp-port', '5000'], { RELAY_CONFIG: file, RELAY_MSRP_PORT: '4000' }).msrpPort, 5000, 'flag over environment');
  const cases: ReadonlyArray<readonly [string, unknown, RegExp]> = [
    ['unknown field', { 'msrp-prot': 1 }, /^config: \/msrp-prot is not a known field$/],
    ['port out of range', { 'msrp-port': 65536 }, /^config: \/msrp-port must be a port number/],
    ['port as text', { 'control-port': '2856' }, /^config: \/control-port must be a port number/],
    ['empty host', { host: '' }, /^config: \/host /],
    ['frame cap too small', { 'control-max-frame-bytes': 10 }, /^config: \/control-max-frame-bytes /],
    ['cert without key', { 'msrp-tls-cert': 'c.pem' }, /go together/],
    ['not an object', [1], /must hold a JSON object/],
  ];
  for (const [name, body, re] of cases) {
    writeFileSync(file, JSON.stringify(body));
    t.throws(() => readConfig(['--config', file], {}), { name: 'ConfigError', code: 'CONFIG_INVALID', message: re }, name);
  }
  writeFileSync(file, '{"host":');
  t.throws(() => readConfig(['--config', file], {}), /is not valid JSON/);
  t.throws(() => readConfig(['--config', `${dir}/missing.json`], {}), /cannot read/);
});

t.test('a bad setting is named at startup, exit code 2', async t => {
  const main = fileURLToPath(new URL('../../../media/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main, '--control-port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RELAY_MSRP_PORT: 'abc' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>(resolve => child.once('exit', c => resolve(c)));
  t.equal(code, 2);
  t.match(stderr, /RELAY_MSRP_PORT=abc: \/msrp-port must be a port number/);
});

t.test('process starts, answers ping, stops on SIGTERM', async t => {
  const dir = t.testdir();
  const { child, ready } = await startRelayProcess<{ msrpPort: number; controlPort: number }>(
    ['--msrp-port', '0', '--control-port', '0', '--history', `${dir}/h.mdb`],
  );
  t.ok(ready.msrpPort > 0 && ready.controlPort > 0);
  const cli = await RelayControlClient.connect('127.0.0.1', ready.controlPort);
  t.same(await cli.ping(), { result: 'ok', sessions: 0 });
  await cli.close();
  const code = await new Promise<number | null>(resolve => {
    child.once('exit', c => resolve(c));
    child.kill('SIGTERM');
  });
  t.equal(code, 0, 'clean exit');
});
