// Relay fuzzer (npm run fuzz:msrp-relay): random mutations of valid MSRP frames sent
// through a live relay over loopback. Checks: no crash (no uncaught exception), no hang
// (a clean probe message still crosses the relay after every round), bounded memory
// (heap after GC, relay state drained). CASES (100000) and SEED are read from the env.
//
// Each round opens a fresh session (originator + one device, raw sockets), sends a batch
// of cases, each a few valid frames (chunked CPIM chat, isComposing, IMDN, REPORT,
// response, empty SEND) that are then mutated: byte flips, deletions, insertions of
// protocol-significant tokens, duplicated spans, truncation, absurd Byte-Ranges, bad
// flags and methods, written in random TCP pieces.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRequest, newMessageId, serializeFrame } from '../media/msrp/index.js';
import { LmdbMessageStore } from '../media/history/store.js';
import { MsrpRelay } from '../media/relay/relay.js';
import { LoadPeer } from './msrp-load.js';
import { rng } from './rng.js';


export interface FuzzOptions {
  cases: number;
  seed?: number;
  casesPerRound?: number;
  /** Record history in some sessions (default true). */
  record?: boolean;
  log?: (s: string) => void;
}

export interface FuzzReport {
  cases: number;
  /** Frames the relay forwarded to a leg (proof that mutated traffic got deep). */
  relayed: number;
  /** Responses the fuzzing peers got back (200, 400, 481, 501, ...). */
  responses: number;
  /** Connections the relay did not close within 5 s of our half-close. */
  hung: number;
  rounds: number;
  uncaught: string[];
  probeFailures: number;
  heapStartMiB: number;
  heapEndMiB: number;
  rssEndMiB: number;
  sessionsLeft: number;
  seconds: number;
}

const TOKENS = ['\r\n', '\r\n\r\n', '-------', '$', '+', '#', ':', ' ', '*', '0', '-1', '99999999999999999999',
  'Byte-Range: ', 'To-Path: ', 'From-Path: msrp://x', 'Content-Type: message/cpim', 'MSRP ', '\u00ff', '😀', '\0',
  'Message-Direction: sent\r\n', 'msrp://127.0.0.1:1/s;tcp', 'Message-ID: ', 'Status: 000 200 OK', ';tcp'];

function sdp(path: string): string {
  return `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\na=path:${path}\r\na=setup:active\r\n`;
}

function cpim(r: () => number, kind: number): { type: string; body: Buffer } {
  const inner = kind === 0 ? 'text/plain;charset=utf-8' : kind === 1 ? 'application/im-iscomposing+xml' : 'message/imdn+xml';
  const text = 'héllo 😀 '.repeat(Math.floor(r() * 200));
  const extra = r() < 0.2 ? 'Message-Direction: received\r\n' : '';
  const body = Buffer.from(`From: <sip:${r() < 0.5 ? 'bob' : 'alice'}@example.net>\r\nTo: <sip:alice@example.net>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: x${Math.floor(r() * 1e6)}\r\n${extra}\r\nContent-Type: ${inner}\r\n\r\n${text}`, 'utf8');
  return { type: r() < 0.9 ? 'message/cpim' : inner, body };
}

/** Valid frames for one case, from `from` toward the relay URI `to`. */
function validFrames(r: () => number, to: string, from: string): Buffer[] {
  const pick = r();
  if (pick < 0.55) {
    const { type, body } = cpim(r, Math.floor(r() * 3));
    const chunks = 1 + Math.floor(r() * 4);
    const size = Math.max(1, Math.ceil(body.length / chunks));
    const id = newMessageId();
    const out: Buffer[] = [];
    for (let off = 0; off < body.length; off += size) {
      const end = Math.min(body.length, off + size);
      out.push(serializeFrame(buildRequest({
        method: 'SEND', toPath: to, fromPath: from,
        headers: [
          { name: 'Message-ID', value: id },
          { name: 'Byte-Range', value: `${off + 1}-${end}/${r() < 0.1 ? '*' : body.length}` },
          ...(r() < 0.3 ? [{ name: 'Success-Report', value: 'yes' }] : []),
        ],
        contentType: type, body: body.subarray(off, end), flag: end === body.length ? (r() < 0.05 ? '#' : '$') : '+',
      })));
    }
    return out;
  }
  if (pick < 0.7) {
    return [serializeFrame(buildRequest({
      method: 'REPORT', toPath: to, fromPath: from,
      headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: '1-10/10' }, { name: 'Status', value: '000 200 OK' }],
    }))];
  }
  if (pick < 0.8) {
    return [Buffer.from(`MSRP abcd${Math.floor(r() * 1e6)} 200 OK\r\nTo-Path: ${to}\r\nFrom-Path: ${from}\r\n-------abcd$\r\n`)];
  }
  if (pick < 0.9) {
    return [serializeFrame(buildRequest({
      method: 'SEND', toPath: to, fromPath: from,
      headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: '1-0/0' }],
    }))];
  }
  return [serializeFrame(buildRequest({
    method: r() < 0.5 ? 'AUTH' : 'NICKNAME', toPath: to, fromPath: from,
    headers: [{ name: 'Message-ID', value: newMessageId() }],
  }))];
}

function mutate(r: () => number, b: Buffer): Buffer {
  let buf = b;
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (buf.length + 1));
    const op = Math.floor(r() * 8);
    switch (op) {
      case 0: { // flip bytes
        buf = Buffer.from(buf);
        for (let k = 0; k < 1 + r() * 4 && buf.length; k++) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
        break;
      }
      case 1: // delete a span
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + 1 + Math.floor(r() * 40)))]);
        break;
      case 2: // insert a token
        buf = Buffer.concat([buf.subarray(0, at), Buffer.from(TOKENS[Math.floor(r() * TOKENS.length)]!), buf.subarray(at)]);
        break;
      case 3: { // duplicate a span
        const len = Math.floor(r() * 200);
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, at + len), buf.subarray(at)]);
        break;
      }
      case 4: // truncate
        buf = buf.subarray(0, at);
        break;
      case 5: { // absurd Byte-Range
        const s = buf.toString('latin1');
        const vals = ['0-0/0', '5-1/3', '1-99999999999999/5', '*-*/*', '1-3/2', `${Math.floor(r() * 1e9)}-*/*`, '1-2'];
        buf = Buffer.from(s.replace(/Byte-Range: [^\r]*/, `Byte-Range: ${vals[Math.floor(r() * vals.length)]}`), 'latin1');
        break;
      }
      case 6: { // odd continuation flag or method
        const s = buf.toString('latin1');
        buf = Buffer.from(r() < 0.5 ? s.replace(/([$+#])\r\n$/, `${'$+#x'[Math.floor(r() * 4)]}\r\n`) : s.replace(/ SEND\r\n/, ' S3ND\r\n'), 'latin1');
        break;
      }
      default: // random garbage
        buf = Buffer.concat([buf.subarray(0, at), Buffer.from(Array.from({ length: Math.floor(r() * 30) }, () => Math.floor(r() * 256))), buf.subarray(at)]);
    }
  }
  return buf;
}

/** Mutate header values only, keeping the start-line, header names and end-line. */
function mutateValues(r: () => number, b: Buffer): Buffer {
  const s = b.toString('latin1');
  const headEnd = s.indexOf('\r\n\r\n');
  const head = headEnd < 0 ? s : s.slice(0, headEnd);
  const lines = head.split('\r\n');
  const i = 1 + Math.floor(r() * Math.max(1, lines.length - 1));
  const line = lines[i];
  if (line === undefined || !line.includes(': ')) return b;
  const name = line.slice(0, line.indexOf(': '));
  const values = ['', '*', '1-*/*', '0-0/0', '9-3/2', `${Math.floor(r() * 1e12)}`, 'msrp://127.0.0.1:1/zz;tcp', 'msrp://[::1]:0/x;tcp',
    'yes', 'no', 'partial', '000 413 Too big', 'message/cpim', 'text/plain', '\u00e9\u00e9', 'x'.repeat(Math.floor(r() * 3000))];
  lines[i] = `${name}: ${values[Math.floor(r() * values.length)]}`;
  return Buffer.from(lines.join('\r\n') + (headEnd < 0 ? '' : s.slice(headEnd)), 'latin1');
}

async function writeInPieces(r: () => number, p: LoadPeer, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length && !p.closed) {
    const len = r() < 0.5 ? data.length - off : 1 + Math.floor(r() * Math.min(300, data.length - off));
    p.write(data.subarray(off, off + len));
    off += len;
  }
}

export async function fuzzRelay(o: FuzzOptions): Promise<FuzzReport> {
  const r = rng(o.seed ?? 4975);
  const log = o.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'relay-fuzz-'));
  const store = new LmdbMessageStore(join(dir, 'h.mdb'));
  const uncaught: string[] = [];
  const onUncaught = (err: Error): void => {
    uncaught.push(err.stack ?? String(err));
  };
  process.on('uncaughtException', onUncaught);
  const relay = new MsrpRelay({ port: 0, store, connection: { headerTimeoutMs: 2000, maxQueuedBytes: 2 * 1024 * 1024 }, maxChunk: 256 * 1024 });
  const port = await relay.listen();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapStart = process.memoryUsage().heapUsed;
  const t0 = Date.now();
  const perRound = o.casesPerRound ?? 20;
  let done = 0;
  let rounds = 0;
  let probeFailures = 0;
  let seq = 0;
  let relayed = 0;
  let hung = 0;
  let responses = 0;
  while (done < o.cases && uncaught.length === 0) {
    rounds += 1;
    const callId = `fuzz-${++seq}`;
    const orig = await LoadPeer.connect(port, lp => `msrp://127.0.0.1:${lp}/o${seq};tcp`);
    const dev = await LoadPeer.connect(port, lp => `msrp://127.0.0.1:${lp}/d${seq};tcp`);
    const offer = relay.offer({
      'call-id': callId, sdp: sdp(orig.localUri), policy: (['A', 'B', 'C'] as const)[seq % 3]!,
      'direct-delivery': seq % 2 === 0, 'served-user': 'sip:bob@example.net',
      record: (o.record ?? true) && seq % 5 === 0, 'conversation-id': `conv-${seq % 7}`, 'contribution-id': `c-${seq}`,
    });
    if (offer.result !== 'ok') throw new Error(offer['error-reason']);
    relay.answer({ 'call-id': callId, leg: 'dev', sdp: sdp(dev.localUri) });
    const peers = [
      { p: orig, to: offer['relay-uri'] },
      { p: dev, to: offer['device-relay-uri'] },
    ];
    for (let i = 0; i < perRound && done < o.cases; i++, done++) {
      const side = peers[r() < 0.5 ? 0 : 1]!;
      // A connection the relay closed (framing error) ends the round early.
      if (side.p.closed) break;
      const frames = validFrames(r, side.to, side.p.localUri);
      const data = Buffer.concat(frames);
      const roll = r();
      // 30% clean, 30% header values only (framing intact), 40% anything goes.
      const bytes = roll < 0.3 ? data : roll < 0.6 ? mutateValues(r, data) : mutate(r, data);
      await writeInPieces(r, side.p, bytes);
      // Yield so the relay reads this case before the next one (not a sleep).
      await new Promise(resolve => setImmediate(resolve));
    }
    // Half-close: the relay reads everything we sent, then closes its side.
    for (const p of [orig, dev]) p.socket.end();
    await Promise.all([orig, dev].map(p => p.until(() => p.closed, 5000, 'relay closing').catch(() => { hung += 1; })));
    const q = relay.query({ 'call-id': callId });
    if (q.result === 'ok') for (const l of q.legs) relayed += l['frames-out'];
    responses += orig.stats.responses + dev.stats.responses;
    orig.close();
    dev.close();
    relay.delete({ 'call-id': callId });
    // Liveness: a clean message still crosses the relay, promptly.
    if (rounds % 10 === 0 || done >= o.cases) {
      if (!(await probe(relay, port))) probeFailures += 1;
      if (rounds % 200 === 0) log(`${done} cases, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} MiB`);
    }
  }
  await relay.flushHistory();
  const sessionsLeft = relay.sessionCount;
  await relay.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  gc?.();
  const heapEnd = process.memoryUsage().heapUsed;
  process.off('uncaughtException', onUncaught);
  return {
    cases: done, rounds, uncaught, relayed, responses, hung, probeFailures, sessionsLeft,
    heapStartMiB: heapStart / 2 ** 20, heapEndMiB: heapEnd / 2 ** 20, rssEndMiB: process.memoryUsage().rss / 2 ** 20,
    seconds: (Date.now() - t0) / 1000,
  };
}

let probes = 0;

async function probe(relay: MsrpRelay, port: number): Promise<boolean> {
  const id = `probe-${++probes}`;
  const a = await LoadPeer.connect(port, lp => `msrp://127.0.0.1:${lp}/pa${probes};tcp`);
  const b = await LoadPeer.connect(port, lp => `msrp://127.0.0.1:${lp}/pb${probes};tcp`);
  try {
    const o = relay.offer({ 'call-id': id, sdp: sdp(a.localUri) });
    if (o.result !== 'ok') return false;
    relay.answer({ 'call-id': id, leg: 'b', sdp: sdp(b.localUri) });
    const bind = (p: LoadPeer, to: string): Promise<void> => p.request(buildRequest({
      method: 'SEND', toPath: to, fromPath: p.localUri,
      headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: '1-0/0' }],
    }));
    await bind(b, o['device-relay-uri']);
    await bind(a, o['relay-uri']);
    void a.request(buildRequest({
      method: 'SEND', toPath: o['relay-uri'], fromPath: a.localUri,
      headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: '1-5/5' }],
      contentType: 'text/plain', body: 'probe',
    }));
    return await b.until(() => b.stats.messages >= 1, 5000, 'probe').then(() => true, () => false);
  } finally {
    a.close();
    b.close();
    relay.delete({ 'call-id': id });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const cases = Number(process.env.CASES ?? 100000);
  const seed = Number(process.env.SEED ?? 4975);
  const record = process.env.RECORD !== '0';
  void fuzzRelay({ cases, seed, record, log: s => process.stderr.write(`${s}\n`) }).then(rep => {
    process.stdout.write(`${JSON.stringify({ ...rep, uncaught: rep.uncaught.length }, null, 2)}\n`);
    for (const u of rep.uncaught.slice(0, 3)) process.stderr.write(`${u}\n`);
    const ok = rep.uncaught.length === 0 && rep.hung === 0 && rep.probeFailures === 0 && rep.sessionsLeft === 0 && rep.heapEndMiB - rep.heapStartMiB < 64;
    process.exit(ok ? 0 : 1);
  });
}
