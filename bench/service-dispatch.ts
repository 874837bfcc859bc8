/**
 * In-process cost of one pf.invite through the JSON-RPC dispatcher (JSON parse, schema
 * check, SIP parse, XDM ETag check, device read from lmdb, rules, result): no network,
 * no pacing. Three rounds of 20,000 sequential calls; percentiles in µs.
 *
 *   npm run bench:service:dispatch
 */
import { createApp } from '../plugin/app.js';
import { parseConfig } from '../plugin/config/load.js';
import { pino } from 'pino';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inviteText, registerText } from '../test/unit/service/fixtures/sip.js';
const dataDir = mkdtempSync(join(tmpdir(), 'pf-bench-'));
const app = await createApp(parseConfig({ rpcPort: 0, httpPort: 0, dataDir, logLevel: 'silent' }), pino({ level: 'silent' }));
const d = app.rpc.dispatcher;
for (let i = 0; i < 3; i++) await d.dispatch(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pf.register', params: { v: 1, msg: registerText({ instance: `0000-${i}`, port: 6000 + i }), src: 'tcp:1.2.3.4:5' } }));
await app.http.inject({ method: 'PUT', url: '/xcap-root/resource-lists/users/sip:bob@example.net/index', headers: { 'content-type': 'application/resource-lists+xml' }, payload: `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts">${Array.from({ length: 50 }, (_, i) => `<entry uri="sip:s${i}@example.net"/>`).join('')}</list></resource-lists>` });
const req = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pf.invite', params: { v: 1, msg: inviteText(), src: 'udp:1.2.3.4:5' } }));
console.log(JSON.stringify((await d.dispatch(req))?.result).slice(0, 80));
for (const round of [1, 2, 3]) {
  const N = 20000; const lat: number[] = [];
  for (let i = 0; i < N; i++) { const t0 = process.hrtime.bigint(); await d.dispatch(req); lat.push(Number(process.hrtime.bigint() - t0) / 1e3); }
  lat.sort((a, b) => a - b);
  console.log(`round ${round}: p50 ${lat[N / 2]!.toFixed(1)}us p99 ${lat[Math.floor(N * 0.99)]!.toFixed(1)}us p99.9 ${lat[Math.floor(N * 0.999)]!.toFixed(1)}us max ${lat[N - 1]!.toFixed(1)}us`);
}
await app.stop();
rmSync(dataDir, { recursive: true, force: true });
