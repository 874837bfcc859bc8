/**
 * Decision-service benchmark: pf.invite at a fixed rate over one netstring/TCP
 * connection (as janssonrpcc sends; wire/client.ts), against `plugin/main.ts` in its own process.
 * Prints client-side round-trip percentiles and the server's own decision histogram.
 *
 *   npm run bench:service -- [--rate 1000] [--seconds 10] [--devices 3]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { JsonRpcClient } from '../wire/client.js';
import { inviteText, registerText } from '../lab/service-fixtures.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    devices: { type: 'string', default: '3' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const DEVICES = Number(values.devices);

const dir = mkdtempSync(join(tmpdir(), 'pf-bench-'));
const cfg = join(dir, 'pf.json');
const operatorToken = `bench-${randomBytes(16).toString('hex')}`;
writeFileSync(cfg, JSON.stringify({ rpcPort: 0, httpPort: 0, dataDir: join(dir, 'data'), logLevel: 'warn', http: { operatorToken } }));
const env: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PF_')) env[k] = v;
const child = spawn(join('node_modules', '.bin', 'tsx'), ['plugin/main.ts', '--config', cfg], {
  env,
  stdio: ['ignore', 'pipe', 'inherit'],
});

const ports = await new Promise<{ rpcPort: number; httpPort: number }>((resolve, reject) => {
  let out = '';
  const timer = setTimeout(() => reject(new Error('service not ready in 30 s')), 30_000);
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    const line = out.split('\n').find((l) => l.includes('"service ready"'));
    if (line) {
      clearTimeout(timer);
      resolve(JSON.parse(line) as { rpcPort: number; httpPort: number });
    }
  });
  child.on('exit', (code) => reject(new Error(`service exited ${code}`)));
});

const client = await JsonRpcClient.connect({ host: '127.0.0.1', port: ports.rpcPort, timeoutMs: 10_000 });
const latencies: number[] = [];
let errors = 0;
let inflight = 0;

/** One pf.invite timed from the send to its answer (wire/client.ts matches it by id). */
function timed(params: object): void {
  const sent = process.hrtime.bigint();
  inflight++;
  client.request('pf.invite', params).then(
    () => latencies.push(Number(process.hrtime.bigint() - sent) / 1e6),
    () => errors++,
  ).finally(() => inflight--);
}
const call = (method: string, params: object): Promise<unknown> => client.request(method, params);

// Setup: bob's devices and a blacklist, so the INVITE runs every stage up to proxy.
for (let i = 0; i < DEVICES; i++) {
  const inst = `00000000-0000-0000-0000-${String(i + 1).padStart(12, '0')}`;
  await call('pf.register', { v: 1, msg: registerText({ instance: inst, port: 6001 + i }), src: `tcp:127.0.0.1:${40001 + i}` });
}
await fetch(`http://127.0.0.1:${ports.httpPort}/xcap-root/resource-lists/users/sip:bob@example.net/index`, {
  method: 'PUT',
  headers: { 'content-type': 'application/resource-lists+xml', authorization: `Bearer ${operatorToken}` },
  body: `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts">${Array.from(
    { length: 50 },
    (_, i) => `<entry uri="sip:spam${i}@example.net"/>`,
  ).join('')}</list></resource-lists>`,
});
// throws (RpcError) when pf.invite fails
await call('pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });

// Warm-up 1 s, then measure.
const msg = inviteText();
const params = { v: 1, msg, src: 'udp:127.0.0.1:5070' };
async function run(seconds: number): Promise<void> {
  const start = process.hrtime.bigint();
  const total = Math.round(RATE * seconds);
  let sent = 0;
  while (sent < total) {
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    const due = Math.min(total, Math.floor(elapsed * RATE));
    for (; sent < due; sent++) timed(params);
    await new Promise((r) => setTimeout(r, 1));
  }
  const deadline = Date.now() + 5000;
  while (inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}
await run(1);
latencies.length = 0;
errors = 0;
await run(SECONDS);

const sorted = [...latencies].sort((a, b) => a - b);
const pct = (p: number): string => (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN).toFixed(3);
const metrics = await (await fetch(`http://127.0.0.1:${ports.httpPort}/metrics`)).text();
const serverLines = metrics.split('\n').filter((l) => l.startsWith('pf_decision_duration_seconds') && l.includes('pf.invite'));

console.log(
  JSON.stringify(
    {
      rate: RATE,
      seconds: SECONDS,
      devices: DEVICES,
      answered: sorted.length,
      lost: inflight,
      errors,
      roundTripMs: { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: pct(100) },
    },
    null,
    2,
  ),
);
console.log(serverLines.join('\n'));

await client.close();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
rmSync(dir, { recursive: true, force: true });
