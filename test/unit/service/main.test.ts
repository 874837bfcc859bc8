/**
 * `plugin/main.ts` as Kamailio's lab starts it: a child process, readiness by its log
 * line, a real TCP round trip of pf.invite, clean stop on SIGTERM, and a bad config.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPERATOR, TEST_OPERATOR_TOKEN, rpcCall as rpc, tempDir } from './fixtures/helpers.js';
import { inviteText, registerText } from '../../../lab/service-fixtures.js';

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

/** The environment without PF_* overrides, so only the test's config applies. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PF_')) env[k] = v;
  return { ...env, ...extra };
}

interface Running {
  readonly child: ChildProcess;
  readonly rpcPort: number;
  readonly httpPort: number;
  readonly exited: Promise<number | null>;
}

/** Start main.ts and resolve on its "service ready" line (bounded). */
function startMain(configFile: string, env: Record<string, string> = {}): Promise<Running> {
  const child = spawn(TSX, ['plugin/main.ts', '--config', configFile], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ready line in time; stdout=${out} stderr=${err}`));
    }, 30_000);
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"service ready"')) continue;
        const j = JSON.parse(line) as { rpcPort: number; httpPort: number };
        clearTimeout(timer);
        resolve({ child, rpcPort: j.rpcPort, httpPort: j.httpPort, exited });
        return;
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ready; stderr=${err}`));
    });
  });
}

t.test('starts, answers pf.invite over TCP, keeps devices across a restart, stops on SIGTERM', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'pf.json');
  writeFileSync(file, JSON.stringify({ rpcPort: 0, httpPort: 0, dataDir: join(dir, 'data'), logLevel: 'info', http: { operatorToken: TEST_OPERATOR_TOKEN } }));

  const first = await startMain(file);
  t.teardown(() => first.child.kill('SIGKILL'));
  t.equal((await fetch(`http://127.0.0.1:${first.httpPort}/ready`)).status, 200);
  const reg = await rpc(first.rpcPort, 'pf.register', { v: 1, msg: registerText({}), src: 'tcp:127.0.0.1:40001' });
  t.same(reg, { result: { aor: 'sip:bob@example.net', devices: 1 } });
  const inv = await rpc(first.rpcPort, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  t.match(inv.result, { action: 'proxy' });
  first.child.kill('SIGTERM');
  t.equal(await first.exited, 0);

  // restart: the device registered before is still there
  const second = await startMain(file);
  t.teardown(() => second.child.kill('SIGKILL'));
  const devices = (await (await fetch(`http://127.0.0.1:${second.httpPort}/users/bob/devices`, { headers: OPERATOR })).json()) as {
    devices: unknown[];
  };
  t.equal(devices.devices.length, 1);
  t.match((await rpc(second.rpcPort, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' })).result, {
    action: 'proxy',
  });
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});

t.test('an invalid config stops startup with the field named', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ policy: { mode: 'relay' } }));
  const child = spawn(TSX, ['plugin/main.ts', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 2);
  t.match(err, 'config: /policy/mode must be one of proxy|b2bua');

  // an environment override is validated the same way
  const ok = join(dir, 'ok.json');
  writeFileSync(ok, '{}');
  const child2 = spawn(TSX, ['plugin/main.ts', '--config', ok], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({ PF_RPC_PORT: '99999' }),
  });
  let err2 = '';
  child2.stderr.on('data', (c: Buffer) => (err2 += c.toString()));
  t.equal(await new Promise<number | null>((resolve) => child2.on('exit', resolve)), 2);
  t.match(err2, /config: \/rpcPort/);

  // B2BUA mode without the leg secret pf.cfg checks (docs/b2bua.md) does not start
  const b2bua = join(dir, 'b2bua.json');
  writeFileSync(b2bua, JSON.stringify({ policy: { mode: 'b2bua' } }));
  const child3 = spawn(TSX, ['plugin/main.ts', '--config', b2bua], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  let err3 = '';
  child3.stderr.on('data', (c: Buffer) => (err3 += c.toString()));
  t.equal(await new Promise<number | null>((resolve) => child3.on('exit', resolve)), 2);
  t.match(err3, 'config: /b2bua/legToken must have at least 16 characters');
});

t.test('two instances sharing dataDir see each other\'s devices and documents', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const fa = join(dir, 'a.json');
  const fb = join(dir, 'b.json');
  writeFileSync(fa, JSON.stringify({ rpcPort: 0, httpPort: 0, dataDir: data, http: { operatorToken: TEST_OPERATOR_TOKEN } }));
  // B logs at warn: the ready line is printed all the same
  writeFileSync(fb, JSON.stringify({ rpcPort: 0, httpPort: 0, dataDir: data, logLevel: 'warn', http: { operatorToken: TEST_OPERATOR_TOKEN } }));
  const [a, b] = await Promise.all([startMain(fa), startMain(fb)]);
  t.teardown(() => {
    a.child.kill('SIGKILL');
    b.child.kill('SIGKILL');
  });
  const reg = await rpc(a.rpcPort, 'pf.register', { v: 1, msg: registerText({}), src: 'tcp:127.0.0.1:40001' });
  t.same(reg.result, { aor: 'sip:bob@example.net', devices: 1 });
  const listed = (await (await fetch(`http://127.0.0.1:${b.httpPort}/users/bob/devices`, { headers: OPERATOR })).json()) as { devices: unknown[] };
  t.equal(listed.devices.length, 1, 'B lists the device A stored');
  t.match((await rpc(b.rpcPort, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' })).result, {
    action: 'proxy',
  });
  const put = await fetch(`http://127.0.0.1:${a.httpPort}/xcap-root/resource-lists/users/sip:bob@example.net/index`, {
    method: 'PUT',
    headers: { ...OPERATOR, 'content-type': 'application/resource-lists+xml' },
    body: '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts"><entry uri="sip:alice@example.net"/></list></resource-lists>',
  });
  t.equal(put.status, 201);
  t.match((await rpc(b.rpcPort, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' })).result, {
    action: 'reject',
    stage: 'blacklist',
  });
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  t.same(await Promise.all([a.exited, b.exited]), [0, 0]);
});
