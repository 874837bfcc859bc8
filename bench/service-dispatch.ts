/**
 * In-process cost of the service's JSON-RPC work per call, through the dispatcher (JSON
 * parse, schema check, SIP parse, XDM ETag check, device read from lmdb, rules, result):
 * no network, no pacing.
 *
 * - `pf.invite`: one pf.invite per call, latency percentiles in µs.
 * - proxy-mode call (what `npm run bench:proxy` costs the service per call in PF mode):
 *   pf.invite with `fork: true` for a user with 2 devices (Kamailio keeps the dialogs
 *   itself and sends the service nothing else per call); CPU µs per call (process.cpuUsage).
 *
 * Three rounds each.   npm run bench:service:dispatch
 */
import { createApp } from '../plugin/app.js';
import { parseConfig } from '../plugin/config/load.js';
import { pino } from 'pino';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inviteText, registerText } from '../lab/service-fixtures.js';
const dataDir = mkdtempSync(join(tmpdir(), 'pf-bench-'));
const app = await createApp(parseConfig({ rpcPort: 0, httpPort: 0, dataDir, logLevel: 'silent', http: { operatorToken: 'bench-operator-token-0123' } }), pino({ level: 'silent' }));
const d = app.rpc.dispatcher;
for (let i = 0; i < 2; i++) await d.dispatch(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pf.register', params: { v: 1, msg: registerText({ instance: `0000-${i}`, port: 6000 + i }), src: `tcp:127.0.0.1:${6000 + i}` } }));
await app.http.inject({ method: 'PUT', url: '/xcap-root/resource-lists/users/sip:bob@example.net/index', headers: { 'content-type': 'application/resource-lists+xml', authorization: 'Bearer bench-operator-token-0123' }, payload: `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts">${Array.from({ length: 50 }, (_, i) => `<entry uri="sip:s${i}@example.net"/>`).join('')}</list></resource-lists>` });
const req = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pf.invite', params: { v: 1, msg: inviteText(), src: 'udp:1.2.3.4:5' } }));
console.log(JSON.stringify((await d.dispatch(req))?.result).slice(0, 80));
for (const round of [1, 2, 3]) {
  const N = 20000; const lat: number[] = [];
  for (let i = 0; i < N; i++) { const t0 = process.hrtime.bigint(); await d.dispatch(req); lat.push(Number(process.hrtime.bigint() - t0) / 1e3); }
  lat.sort((a, b) => a - b);
  console.log(`pf.invite round ${round}: p50 ${lat[N / 2]!.toFixed(1)}us p99 ${lat[Math.floor(N * 0.99)]!.toFixed(1)}us p99.9 ${lat[Math.floor(N * 0.999)]!.toFixed(1)}us max ${lat[N - 1]!.toFixed(1)}us`);
}

// Proxy-mode calls: 64 distinct dialogs, cycled.
const calls = Array.from({ length: 64 }, (_, i) => {
  const callId = `${i}-23424@127.0.0.1`;
  const contributionId = `7d06c0ffee${i}`;
  return [
    { jsonrpc: '2.0', id: i, method: 'pf.invite', params: { fork: true, v: 1, src: 'udp:127.0.0.1:21746', msg: inviteText({ contributionId }).replace(/^Call-ID: .*$/m, `Call-ID: ${callId}`) } },
  ].map((m) => Buffer.from(JSON.stringify(m)));
});
console.log(JSON.stringify((await d.dispatch(calls[0]![0]!))?.result).slice(0, 120));
for (const round of [1, 2, 3]) {
  const N = 20000;
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    for (const frame of calls[i & 63]!) {
      const r = d.dispatchNow(frame);
      if (r instanceof Promise) await r;
    }
  }
  const c = process.cpuUsage(c0);
  console.log(`proxy-mode call round ${round}: ${((c.user + c.system) / N).toFixed(1)} CPU µs per call (pf.invite fork)`);
}
await app.stop();
rmSync(dataDir, { recursive: true, force: true });
