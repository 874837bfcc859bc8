// MSRP relay benchmark (npm run bench:msrp). Not a test: prints figures.
//
//  (1) our relay, 1 originator -> 1 device, vs Kamailio's msrp module as an RFC 4976
//      relay (AUTH + msrp_cmap_save / msrp_cmap_lookup + msrp_relay), same load generator;
//  (2) our relay, 1 originator -> 3 devices, direct delivery on (Message-Direction injected).
// Each figure is the median of RUNS runs, with min and max. Every run checks that no
// message was lost. Chunks above 12 KB are checked on both relays.
//
// Env: RUNS (5), N_SMALL (10000), N_10K (2000), IDLE (1000), WINDOW (32), RELAY_MAIN, RELAY_NODE_FLAGS.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRequest, newMessageId } from '../media/msrp/index.js';
import { RelayControlClient } from '../media/relay/control-client.js';
import { LoadPeer, blast } from './msrp-load.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUNS = Number(process.env.RUNS ?? 5);
const N_SMALL = Number(process.env.N_SMALL ?? 10000);
const N_10K = Number(process.env.N_10K ?? 2000);
const IDLE = Number(process.env.IDLE ?? 1000);
const WINDOW = Number(process.env.WINDOW ?? 32);
const KAMAILIO = '/usr/sbin/kamailio';
const SERVED = 'sip:bob@example.net';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>(r => s.listen(0, '127.0.0.1', () => r()));
  const a = s.address();
  await new Promise<void>(r => s.close(() => r()));
  return typeof a === 'object' && a ? a.port : 0;
}

/** Resolve once host:port accepts a TCP connection (bounded). */
export async function waitListening(port: number, child: ChildProcess, ms = 15000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`process exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>(resolve => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not listening`);
    await new Promise(r => setTimeout(r, 50));
  }
}

/** Proportional set size of processes (KiB), from smaps_rollup: shared memory counted once. */
function pssKiB(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      sum += Number(m?.[1] ?? 0);
    } catch {
      /* process gone */
    }
  }
  return sum;
}

function descendants(root: number): number[] {
  const out = [root];
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

// ---- relays under test -------------------------------------------------------------

interface Target {
  name: string;
  port: number;
  pids(): number[];
  /** Connect a sender and n receivers; returns the To-Path/From-Path the sender uses. */
  session(receivers: number, opts: { directDelivery?: boolean }): Promise<{ a: LoadPeer; bs: LoadPeer[]; toPath: string }>;
  stop(): Promise<void>;
}

let uriSeq = 0;
export const uriFor = (tag: string) => (p: number): string => `msrp://127.0.0.1:${p}/${tag}${++uriSeq};tcp`;

export function sdp(path: string): string {
  return `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\na=path:${path}\r\na=accept-types:message/cpim text/plain\r\na=setup:active\r\n`;
}

export async function bindPeer(p: LoadPeer, toPath: string): Promise<void> {
  await p.request(buildRequest({
    method: 'SEND', toPath, fromPath: p.localUri,
    headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: '1-0/0' }],
  }));
}

export async function startOurs(): Promise<Target> {
  const msrpPort = await freePort();
  const controlPort = await freePort();
  const flags = (process.env.RELAY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  // RELAY_MAIN: a compiled media/main.js (npm run build) instead of running the TypeScript through tsx.
  const entry = process.env.RELAY_MAIN ? [process.env.RELAY_MAIN] : ['--import', 'tsx', join(ROOT, 'media/main.ts')];
  const child = spawn(process.execPath, [...flags, ...entry,
    '--msrp-port', String(msrpPort), '--control-port', String(controlPort), '--history', 'off'], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_ENV: 'production' },
  });
  child.stdout!.resume(); // event logs; not parsed
  await waitListening(controlPort, child);
  await waitListening(msrpPort, child);
  const ctl = await RelayControlClient.connect('127.0.0.1', controlPort);
  let calls = 0;
  return {
    name: 'ours',
    port: msrpPort,
    pids: () => [child.pid!],
    async session(receivers, opts) {
      const callId = `bench-${++calls}`;
      const a = await LoadPeer.connect(msrpPort, uriFor('a'));
      const o = await ctl.offer({
        'call-id': callId, sdp: sdp(a.localUri), policy: 'C',
        ...(opts.directDelivery ? { 'direct-delivery': true, 'served-user': SERVED } : {}),
      });
      if (o.result !== 'ok') throw new Error(o['error-reason']);
      const bs: LoadPeer[] = [];
      for (let i = 0; i < receivers; i++) {
        const b = await LoadPeer.connect(msrpPort, uriFor('b'));
        const r = await ctl.answer({ 'call-id': callId, leg: `d${i}`, sdp: sdp(b.localUri) });
        if (r.result !== 'ok') throw new Error(r['error-reason']);
        await bindPeer(b, o['device-relay-uri']);
        bs.push(b);
      }
      await bindPeer(a, o['relay-uri']);
      return { a, bs, toPath: o['relay-uri'] };
    },
    async stop() {
      await ctl.close();
      child.kill('SIGTERM');
      await new Promise(r => child.once('exit', r));
    },
  };
}

async function startKamailio(): Promise<Target> {
  const port = await freePort();
  const work = mkdtempSync(join(tmpdir(), 'kam-msrp-'));
  const child = spawn(KAMAILIO, ['-DD', '-E', '-m', '512', '-w', work, '-f', join(ROOT, 'bench/kamailio-msrp/kamailio.cfg'),
    '-A', `MSRP_PORT=${port}`, '-A', 'CHILDREN=2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d: Buffer): void => {
    log = (log + d.toString()).slice(-20000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    await waitListening(port, child);
  } catch (err) {
    process.stderr.write(log);
    throw err;
  }
  return {
    name: 'kamailio',
    port,
    pids: () => descendants(child.pid!),
    async session(receivers) {
      const bs: LoadPeer[] = [];
      let usePath = '';
      for (let i = 0; i < receivers; i++) {
        const b = await LoadPeer.connect(port, uriFor('b'));
        // RFC 4976 §5: the receiver authorises itself at the relay and gets Use-Path.
        b.onFrame = f => {
          if (f.head.kind === 'response') usePath = f.head.headers.find(h => h.name === 'Use-Path')?.value ?? usePath;
        };
        await b.request(buildRequest({ method: 'AUTH', toPath: `msrp://127.0.0.1:${port};tcp`, fromPath: b.localUri }));
        b.onFrame = undefined;
        if (!usePath) throw new Error('kamailio AUTH gave no Use-Path');
        bs.push(b);
      }
      const a = await LoadPeer.connect(port, uriFor('a'));
      return { a, bs, toPath: `${usePath} ${bs[0]!.localUri}` };
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise(r => child.once('exit', r));
      rmSync(work, { recursive: true, force: true });
    },
    get log() {
      return log;
    },
  } as Target;
}

// ---- measurements ------------------------------------------------------------------

export function cpimBody(size: number, from: string): Buffer {
  const head = `From: <${from}>\r\nTo: <sip:alice@example.net>\r\nDateTime: 2026-11-24T00:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m1\r\n\r\nContent-Type: text/plain\r\n\r\n`;
  const pad = Math.max(0, size - Buffer.byteLength(head));
  return Buffer.concat([Buffer.from(head), Buffer.alloc(pad, 0x78)]);
}

interface RunResult {
  seconds: number;
  lost: number;
  /** CPU seconds the relay under test used during the run (user + system). */
  cpu: number;
}

/**
 * CPU time of the processes and all their threads, in seconds: the run time the scheduler
 * accounted (/proc/<pid>/task/<tid>/schedstat, nanoseconds), which does not round to
 * clock ticks as utime + stime do.
 */
export function cpuSeconds(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      }
    } catch {
      /* gone */
    }
  }
  return ns / 1e9;
}

export async function throughput(t: Target, receivers: number, count: number, size: number, direct: boolean): Promise<RunResult> {
  const { a, bs, toPath } = await t.session(receivers, { directDelivery: direct });
  const body = cpimBody(size, direct ? SERVED : 'sip:carol@example.net');
  const pids = t.pids();
  const c0 = cpuSeconds(pids);
  const t0 = process.hrtime.bigint();
  const sending = blast(a, { count, body, contentType: 'message/cpim', toPath, fromPath: a.localUri, window: WINDOW });
  let lost = 0;
  try {
    await Promise.all(bs.map(b => b.until(() => b.stats.messages >= count, 60000, `${count} messages at ${t.name}`)));
  } catch {
    lost = bs.reduce((n, b) => n + Math.max(0, count - b.stats.messages), 0);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(pids) - c0;
  if (lost === 0) await sending;
  const extra = direct ? 'Message-Direction: sent\r\n'.length : 0;
  for (const b of bs) if (lost === 0 && b.stats.bytes !== count * (body.length + extra)) lost += 1;
  a.close();
  for (const b of bs) b.close();
  return { seconds, lost, cpu };
}

/** One message of `size` bytes in a single chunk: delivered intact? */
async function bigChunk(t: Target, size: number): Promise<boolean> {
  const { a, bs, toPath } = await t.session(1, {});
  const b = bs[0]!;
  const body = cpimBody(size, 'sip:carol@example.net');
  let got: Buffer | undefined;
  b.onFrame = f => {
    if (f.head.kind === 'request' && f.head.method === 'SEND' && f.body.length > 0 && got === undefined) got = f.body;
  };
  void a.request(buildRequest({
    method: 'SEND', toPath, fromPath: a.localUri,
    headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: `1-${size}/${size}` }],
    contentType: 'message/cpim', body,
  }));
  // A follow-up small message proves the path is alive and ordered after the big one.
  const probe = cpimBody(100, 'sip:carol@example.net');
  void a.request(buildRequest({
    method: 'SEND', toPath, fromPath: a.localUri,
    headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: `1-${probe.length}/${probe.length}` }],
    contentType: 'message/cpim', body: probe,
  }));
  const ok = await b.until(() => b.stats.messages >= 2, 3000, 'big chunk + probe').then(() => true, () => false);
  const intact = ok && got !== undefined && got.equals(body);
  a.close();
  b.close();
  return intact;
}

async function idleMemory(t: Target, sessions: number): Promise<number> {
  const warm = await t.session(1, {});
  const before = pssKiB(t.pids());
  const peers: LoadPeer[] = [warm.a, ...warm.bs];
  for (let i = 0; i < sessions; i++) {
    const s = await t.session(1, {});
    if (t.name === 'kamailio') await bindPeer(s.a, s.toPath); // the sender's connection carries a frame too
    peers.push(s.a, ...s.bs);
  }
  const after = pssKiB(t.pids());
  for (const p of peers) p.close();
  return ((after - before) * 1024) / sessions;
}

function stats(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

const fmt = (n: number, d = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

interface Series {
  median: number;
  min: number;
  max: number;
  lost: number;
  /** Median relay CPU per message, microseconds. */
  cpuUs: number;
  /** Runs that lost messages (excluded from the rate). */
  lossyRuns: number;
}

/**
 * Run the labelled cases RUNS times, interleaved (a, b, c, a, b, c, ...), so that all of
 * them see the same background load on a shared machine.
 */
async function series(
  count: number, fns: Array<{ label: string; fn: () => Promise<RunResult> }>, per: (r: RunResult) => number,
): Promise<{ series: Series[]; ratios: number[] }> {
  const acc = fns.map(() => ({ vals: [] as number[], cpus: [] as number[], lost: 0, lossyRuns: 0, all: [] as number[] }));
  for (let i = 0; i < RUNS; i++) {
    for (const [j, f] of fns.entries()) {
      const r = await f.fn();
      const a = acc[j]!;
      a.lost += r.lost;
      // A run that lost messages has no meaningful rate: counted as lost, left out of the median.
      if (r.lost === 0) a.vals.push(per(r));
      else a.lossyRuns += 1;
      a.all.push(r.lost === 0 ? per(r) : NaN);
      a.cpus.push((r.cpu / count) * 1e6);
    }
  }
  const out = acc.map((a, j) => {
    const s = a.vals.length ? stats(a.vals) : { median: NaN, min: NaN, max: NaN };
    const cpuUs = stats(a.cpus).median;
    process.stderr.write(`  ${fns[j]!.label}: median ${fmt(s.median, 1)} (min ${fmt(s.min, 1)}, max ${fmt(s.max, 1)}), lost ${a.lost}, relay CPU ${fmt(cpuUs, 1)} us/msg\n`);
    return { ...s, lost: a.lost, cpuUs, lossyRuns: a.lossyRuns };
  });
  // Paired ratio of the first two cases, run by run (both ran back to back).
  const ratios = acc[0]!.all.map((v, i) => v / acc[1]!.all[i]!).filter(Number.isFinite);
  return { series: out, ratios };
}

async function main(): Promise<void> {
  const ours = await startOurs();
  const kam = await startKamailio();
  const rows: string[] = [];
  try {
    const cases: Array<{ label: string; size: number; count: number; unit: 'msg/s' | 'MB/s' }> = [
      { label: '100 B messages', size: 100, count: N_SMALL, unit: 'msg/s' },
      { label: '1 KB messages', size: 1024, count: N_SMALL, unit: 'msg/s' },
      { label: '10 KB chunks', size: 10 * 1024, count: N_10K, unit: 'MB/s' },
    ];
    const per = (c: { size: number; count: number; unit: string }) => (r: RunResult): number =>
      c.unit === 'msg/s' ? c.count / r.seconds : (c.count * c.size) / r.seconds / 1e6;
    // Warm-up (JIT, connection pools): not measured.
    for (const size of [100, 1024, 10240]) {
      await throughput(ours, 1, 3000, size, false);
      await throughput(ours, 3, 1000, size, true);
      await throughput(kam, 1, 3000, size, false);
    }
    rows.push('| Case | Our relay 1→1 | Kamailio msrp 1→1 | Ratio ours/Kamailio (paired runs); relay CPU ratio | Our relay 1→3 + Message-Direction |');
    rows.push('|---|---|---|---|---|');
    for (const c of cases) {
      process.stderr.write(`${c.label}\n`);
      const r = await series(c.count, [
        { label: 'ours 1-1', fn: () => throughput(ours, 1, c.count, c.size, false) },
        { label: 'kamailio 1-1', fn: () => throughput(kam, 1, c.count, c.size, false) },
        { label: 'ours 1-3 + MD', fn: () => throughput(ours, 3, c.count, c.size, true) },
      ], per(c));
      const [o, k, f] = r.series as [Series, Series, Series];
      const rs = r.ratios.length ? stats(r.ratios) : { median: NaN, min: NaN, max: NaN };
      const cell = (s: Series): string =>
        `${fmt(s.median, c.unit === 'MB/s' ? 1 : 0)} ${c.unit} (${fmt(s.min, c.unit === 'MB/s' ? 1 : 0)}–${fmt(s.max, c.unit === 'MB/s' ? 1 : 0)})${s.lost ? `, **${s.lost} lost in ${s.lossyRuns} of ${RUNS} runs**` : ', 0 lost'}; relay CPU ${fmt(s.cpuUs, 0)} µs/msg`;
      rows.push(`| ${c.label} (${c.count} per run) | ${cell(o)} | ${cell(k)} | ${fmt(rs.median, 2)}× (${fmt(rs.min, 2)}–${fmt(rs.max, 2)}); CPU ${fmt(o.cpuUs / k.cpuUs, 2)}× | ${cell(f)} |`);
    }
    process.stderr.write('idle memory\n');
    const memO: number[] = [];
    const memK: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 3); i++) {
      memO.push(await idleMemory(ours, IDLE));
      memK.push(await idleMemory(kam, IDLE));
    }
    const mo = stats(memO);
    const mk = stats(memK);
    rows.push(`| Memory per idle session (${IDLE} sessions, PSS) | ${fmt(mo.median / 1024, 1)} KiB (${fmt(mo.min / 1024, 1)}–${fmt(mo.max / 1024, 1)}) | ${fmt(mk.median / 1024, 1)} KiB (${fmt(mk.min / 1024, 1)}–${fmt(mk.max / 1024, 1)}) | ${fmt(mo.median / mk.median, 2)}× | – |`);
    process.stderr.write('big chunks\n');
    const big: string[] = [];
    for (const size of [8 * 1024, 12 * 1024, 13 * 1024, 16 * 1024, 64 * 1024, 1024 * 1024]) {
      const o = await bigChunk(ours, size);
      const k = await bigChunk(kam, size);
      big.push(`| ${fmt(size / 1024)} KiB single chunk | ${o ? 'relayed intact' : '**lost**'} | ${k ? 'relayed intact' : '**lost**'} |`);
    }
    const out = [
      `Runs per figure: ${RUNS}; window ${WINDOW} SENDs in flight; median (min–max).`,
      '',
      ...rows,
      '',
      '| Chunk size | Our relay | Kamailio msrp |',
      '|---|---|---|',
      ...big,
    ].join('\n');
    process.stdout.write(`${out}\n`);
  } finally {
    await ours.stop();
    await kam.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  void main().catch(err => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
