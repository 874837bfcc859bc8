/**
 * `npm run bench:b2bua` — B2BUA mode against proxy mode on real Kamailio (not a test).
 *
 * Side by side, in one run: each round sets up both modes in turn (order rotating), the
 * same way: Kamailio with kamailio-cfg/lab.cfg (`-x tlsf -m SHM_MB`, CHILDREN UDP
 * workers), the decision service, and in B2BUA mode the MSRP relay and the B2BUA
 * (CR 8.3.2.1 step 8, docs/b2bua.md). The served user has 2 sipp devices, registered
 * as bench/proxy.ts registers them, answering at once (no 180); in B2BUA mode they answer
 * `a=setup:active` (the relay's offer is passive, RFC 6135), in proxy mode `passive`.
 * The caller is sipp's uac-call.xml (INVITE, 200, ACK, BYE; a Contribution-ID per call).
 *
 * B2BUA mode: both devices answer, multi-device policy C (MULTI_DEVICE): both legs stay
 * until the caller hangs up, so a session costs the B2BUA three SIP dialogs and the relay
 * three legs: the whole cost of a B2BUA session, and what a proxy cannot do. (A: the
 * second 200 gets ACK + BYE, CR 8.3.2.1.1.) Proxy mode: one device answers, the other
 * rings and gets Kamailio's CANCEL, as in bench:proxy. With both answering, Kamailio
 * forwards both 200s (RFC 3261 §16.7 step 5) and the caller owns two dialogs; sipp's
 * caller ACKs and BYEs one with the other's To tag, so 4% of the calls failed at
 * 100 calls/s (BYE answered `404 Not here`), a failure of the load generator, not of the
 * PF. PROXY_SECOND / B2BUA_SECOND (answer or ring) change this.
 *
 * Per mode and round:
 * 1. latency and CPU: LAT_S s at 100 calls/s to a second user with 2 traced devices.
 *    Device 200 → caller 200 time from sipp's `-trace_msg` timestamps (all sipp
 *    processes on one machine, one clock, µs resolution, stamped in sipp's event loop):
 *    for each Contribution-ID, the caller's received 200 (the first, CSeq INVITE) less
 *    the earliest 200 a device sent for that Contribution-ID (in B2BUA mode the devices'
 *    INVITEs carry a Call-ID of their own and the caller's Contribution-ID). In B2BUA
 *    mode this spans Kamailio → B2BUA (TCP), the B2BUA's `leg-answered` step, the relay's
 *    `answer` call, and our 200 back through Kamailio; in proxy mode Kamailio's relay of
 *    the 200. CPU ms per call by part from /proc (utime + stime of each process group).
 * 2. memory (B2BUA mode): MEM_N calls at MEM_RATE calls/s, held; when the B2BUA counts
 *    MEM_N calls and the relay MEM_N sessions, the service and the relay are each asked
 *    over the inspector (Node started with `--inspect` on a free port, NODE_OPTIONS) to
 *    run a full GC, then for process.memoryUsage(); VmRSS from /proc too. Less the same
 *    reading taken idle (warm, 64*T1 after the last call), divided by MEM_N. Read twice:
 *    at once, and 64*T1 later, when the calls' INVITE transactions have left RFC 6026's
 *    Accepted state (Timers L and M): the second is what a held session costs.
 * 3. the highest rate with zero failed calls: STEP_S s steps up a ladder from START
 *    (x1.4 each), then REFINE bisection probes (as bench/proxy.ts), each step from idle
 *    (CPU quiet and, in B2BUA mode, no call nor relay session left). A step of a few
 *    seconds absorbs a backlog (sipp waits 10 s for an answer), so each step also
 *    prints the caller's INVITE -> 200 times (sipp -trace_rtt), the summary names the
 *    highest step run whose p99 was within SLOW_MS, and MAX_SETUP_P99_MS makes the
 *    search itself fail a slow step.
 *
 * Prints medians (min–max) over REPS rounds and the ratio B2BUA / proxy of each round's
 * highest rates (target >= 0.5). `--quick`: 1 round, 3 s steps, MEM_N 200.
 * Figures and how to read them: docs/benchmarks.md §8.
 *
 * Env: REPS (3), STEP_S (5), LAT_S (10), MEM_N (1000), MEM_RATE (100), START_PROXY (500),
 * START_B2BUA (100), REFINE (2), CHILDREN (4), SHM_MB (2048), MULTI_DEVICE (C),
 * MAX_SETUP_P99_MS (0: off), SLOW_MS (1000), MODES (proxy,b2bua), SERVICE_LOG (warn),
 * SERVICE_NODE_ARGS, PROXY_SECOND (ring), B2BUA_SECOND (answer).
 */
import { join } from 'node:path';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Service, Kamailio, Relay, LAB_LEG_TOKEN, runDir } from '../lab/lab.js';
import { Device, newInstance, vars } from '../lab/calls.js';
import { runSipp } from '../lab/sipp.js';
import { freePort } from '../lab/proc.js';
import { RelayControlClient } from '../media/relay/control-client.js';
import { geometricRates, highestPassing } from './ramp.js';
import { median } from './stats.js';
import { groupCpuMs, rssBytes } from './proc-stat.js';
import { inspectMemory, type MemoryUsage } from './inspector.js';

type Mode = 'proxy' | 'b2bua';

const QUICK = process.argv.includes('--quick');
const env = (k: string, dflt: number, quick: number): number => Number(process.env[k] ?? (QUICK ? quick : dflt));
const REPS = env('REPS', 3, 1);
const STEP_S = env('STEP_S', 5, 3);
const LAT_S = env('LAT_S', 10, 4);
const LAT_RATE = 100;
const MEM_N = env('MEM_N', 1000, 200);
const MEM_RATE = env('MEM_RATE', 100, 100);
const START: Record<Mode, number> = { proxy: env('START_PROXY', 500, 500), b2bua: env('START_B2BUA', 100, 100) };
const REFINE = env('REFINE', 2, 1);
const CHILDREN = env('CHILDREN', 4, 4);
const SHM_MB = env('SHM_MB', 2048, 2048);
const MULTI_DEVICE = process.env.MULTI_DEVICE ?? 'C';
/** 0: a step passes with zero failed calls alone (as bench:proxy); else also needs the caller's p99 INVITE -> 200 under it. */
const MAX_SETUP_P99_MS = env('MAX_SETUP_P99_MS', 0, 0);
/** The summary also names the highest step run whose p99 setup time was within this. */
const SLOW_MS = env('SLOW_MS', 1000, 1000);
type Second = 'answer' | 'ring';
const second = (v: string | undefined, dflt: Second): Second => (v === 'answer' || v === 'ring' ? v : dflt);
/** What the second device does: B2BUA_SECOND (answer), PROXY_SECOND (ring). */
const B2BUA_SECOND = second(process.env.B2BUA_SECOND, 'answer');
const PROXY_SECOND = second(process.env.PROXY_SECOND, 'ring');
const MODES = (process.env.MODES ?? 'proxy,b2bua').split(',') as Mode[];
const SERVICE_LOG = process.env.SERVICE_LOG ?? 'warn';
/** Node options on the service's command line, e.g. `--cpu-prof` (as bench/proxy.ts). */
const SERVICE_NODE_ARGS = (process.env.SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
// the service and the relay open an inspector on a free port (memory readings)
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0`.trim();

// ---------------------------------------------------------------- set-up

interface Setup {
  mode: Mode;
  service: Service;
  kamailio: Kamailio;
  relay: Relay | null;
  control: RelayControlClient | null;
  /** The served user of the rate and memory steps, and of the traced latency step. */
  devices: Device[];
  traced: Device[];
  dir: string;
  stop(): Promise<void>;
}

async function setup(mode: Mode, dir: string): Promise<Setup> {
  const b2bua = mode === 'b2bua';
  // as Lab.start (lab/lab.ts), with the Kamailio memory settings of bench/proxy.ts
  mkdirSync(dir, { recursive: true });
  const relay = b2bua ? await Relay.start(dir) : null;
  const sipPort = await freePort();
  const b2buaPort = b2bua ? await freePort() : 0;
  const service = await Service.start({
    dir,
    logLevel: SERVICE_LOG,
    nodeArgs: SERVICE_NODE_ARGS,
    policy: b2bua ? { mode: 'b2bua' } : {},
    ...(relay
      ? { b2bua: { sipPort: b2buaPort, proxyPort: sipPort, relayPort: relay.controlPort, legToken: LAB_LEG_TOKEN, multiDevice: MULTI_DEVICE } }
      : {}),
  });
  const kamailio = await Kamailio.start({
    dir,
    sipPort,
    rpc: [{ port: service.rpcPort }],
    children: CHILDREN,
    rpcTimeoutMs: 2000,
    memMb: SHM_MB,
    defines: [
      'PF_XLOG_LEVEL="L_DBG"',
      ...(b2bua ? [`PF_B2BUA_URI="sip:127.0.0.1:${b2buaPort};transport=tcp"`, `PF_B2BUA_TOKEN="${LAB_LEG_TOKEN}"`] : []),
    ],
  });
  const control = relay ? await RelayControlClient.connect('127.0.0.1', relay.controlPort) : null;
  const device = (user: string, trace: boolean, behaviour: Device['o']['behaviour']): Promise<Device> =>
    Device.start({ dir, sipPort, user, instance: newInstance(), behaviour, ringing: false, trace, setup: b2bua ? 'active' : 'passive' });
  // proxy mode: the second device rings and gets CANCEL (see the header)
  const second: Device['o']['behaviour'] = { kind: b2bua ? B2BUA_SECOND : PROXY_SECOND };
  const devices = [await device('bench', false, { kind: 'answer' }), await device('bench', false, second)];
  const traced = [await device('lat', true, { kind: 'answer' }), await device('lat', true, second)];
  return {
    mode,
    service,
    kamailio,
    relay,
    control,
    devices,
    traced,
    dir,
    stop: async () => {
      await control?.close();
      await Promise.all([...devices, ...traced].map((d) => d.stop()));
      await kamailio.stop();
      await service.stop();
      await relay?.stop();
    },
  };
}

interface CpuSample {
  kamailio: number;
  service: number;
  relay: number;
  devices: number;
}

function sampleCpu(s: Setup): CpuSample {
  return {
    kamailio: groupCpuMs(s.kamailio.proc.pid),
    service: groupCpuMs(s.service.proc.pid),
    relay: groupCpuMs(s.relay?.proc.pid),
    devices: [...s.devices, ...s.traced].reduce((a, d) => a + groupCpuMs(d.agent.proc.pid), 0),
  };
}

/** The B2BUA's calls in progress and the relay's sessions (0, 0 in proxy mode). */
async function live(s: Setup): Promise<{ calls: number; sessions: number }> {
  if (!s.control) return { calls: 0, sessions: 0 };
  const m = await s.service.metrics();
  return { calls: Number(/^pf_b2bua_calls (\d+)/m.exec(m)?.[1] ?? NaN), sessions: (await s.control.ping()).sessions };
}

/**
 * Wait until no call nor relay session is left and Kamailio, the service, the relay and
 * the devices are idle (under 5% of a core over 500 ms), at most 40 s.
 */
async function quiesce(s: Setup): Promise<string> {
  const total = (c: CpuSample): number => c.kamailio + c.service + c.relay + c.devices;
  const deadline = Date.now() + 40_000;
  let left = await live(s);
  while (Date.now() < deadline) {
    const a = total(sampleCpu(s));
    await new Promise((r) => setTimeout(r, 500));
    left = await live(s);
    if (total(sampleCpu(s)) - a < 25 && left.calls === 0 && left.sessions === 0) return '';
  }
  return left.calls || left.sessions ? ` [${left.calls} calls, ${left.sessions} relay sessions still open]` : '';
}

/** When the last sipp caller ended (Date.now()). */
let lastRunEnd = 0;

/** `calls` calls at `rate` to `user`, holding `holdMs`; sipp's exit and failure line. */
async function run(s: Setup, o: { user: string; rate: number; calls: number; holdMs?: number; trace?: boolean; name: string }) {
  const r = await runSipp({
    scenario: 'uac-call.xml',
    dir: join(s.dir, 'calls'),
    remote: `127.0.0.1:${s.kamailio.sipPort}`,
    vars: vars({ dir: s.dir, sipPort: s.kamailio.sipPort, to: o.user, contributionId: 'bench-[pid]-[call_number]' }, 200, o.holdMs ?? 0),
    calls: o.calls,
    // -trace_rtt: each call's INVITE -> 200 time (the rtd of uac-call.xml)
    extraArgs: ['-r', String(o.rate), '-rp', '1000', '-recv_timeout', '10000', '-l', String(o.calls), '-trace_rtt', '-rtt_freq', '100'],
    timeoutMs: (o.calls / o.rate + (o.holdMs ?? 0) / 1000 + 60) * 1000,
    name: o.name,
    trace: o.trace ?? false,
  });
  lastRunEnd = Date.now();
  const failed = /Failed call[^\n]*/.exec(r.output)?.[0]?.replace(/\s+/g, ' ') ?? '';
  return { ok: r.code === 0, detail: `exit ${String(r.code)} ${failed}`.trim(), messages: r.messages, setup: setupTimes(join(s.dir, 'calls'), o.name) };
}

/** The caller's INVITE -> 200 times (ms) of the newest run named `name` (sipp's `_rtt.csv`: date_ms;rtt_ms;rtd_no). */
function setupTimes(dir: string, name: string): number[] {
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(`${name}-`) && f.endsWith('_rtt.csv'))
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  if (!files[0]) return [];
  return readFileSync(join(dir, files[0].f), 'utf8')
    .split('\n')
    .map((l) => Number(l.split(';')[1]))
    .filter((x) => Number.isFinite(x));
}

const setupNote = (xs: number[]): string =>
  xs.length ? `caller INVITE -> 200 p50 ${pct(xs, 0.5).toFixed(1)} ms, p99 ${pct(xs, 0.99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(0)} ms` : 'no setup times';

// ---------------------------------------------------------------- 1. latency from the traces

/** `-trace_msg` entries: epoch µs, sent or received, the SIP message. */
function traced(log: string): { us: number; sent: boolean; msg: string }[] {
  const out: { us: number; sent: boolean; msg: string }[] = [];
  // "----...---- 2026-12-05 18:45:01.123456\nUDP message sent (n bytes):\n\n<message>" (local time:
  // every sipp here runs in the same time zone)
  for (const part of log.split(/^-{20,} /m)) {
    const m = /^(\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d)\.(\d{6})\s*\n[^\n]*message (sent|received)[^\n]*\n+([\s\S]*)$/.exec(part);
    if (m) out.push({ us: Date.parse(`${m[1]}T${m[2]}Z`) * 1000 + Number(m[3]), sent: m[4] === 'sent', msg: m[5]! });
  }
  return out;
}

const header = (msg: string, name: string): string =>
  new RegExp(`^${name}\\s*:\\s*(.*?)\\s*$`, 'im').exec(msg.split(/\r?\n\r?\n/)[0] ?? '')?.[1] ?? '';

/** Device 200 → caller 200, ms, one value per call found in both traces. */
function answerDelays(callerLog: string, deviceLogs: string[]): number[] {
  // device side: Call-ID of each received INVITE -> Contribution-ID; its 200 sent
  const device200 = new Map<string, number>();
  for (const log of deviceLogs) {
    const contrib = new Map<string, string>();
    for (const e of traced(log)) {
      if (!e.sent && e.msg.startsWith('INVITE ')) contrib.set(header(e.msg, 'Call-ID'), header(e.msg, 'Contribution-ID'));
      else if (e.sent && e.msg.startsWith('SIP/2.0 200') && /INVITE/.test(header(e.msg, 'CSeq'))) {
        const c = contrib.get(header(e.msg, 'Call-ID'));
        if (c && !(device200.get(c)! <= e.us)) device200.set(c, e.us);
      }
    }
  }
  const contribOf = new Map<string, string>();
  const seen = new Set<string>();
  const out: number[] = [];
  for (const e of traced(callerLog)) {
    if (e.sent && e.msg.startsWith('INVITE ')) contribOf.set(header(e.msg, 'Call-ID'), header(e.msg, 'Contribution-ID'));
    else if (!e.sent && e.msg.startsWith('SIP/2.0 200') && /INVITE/.test(header(e.msg, 'CSeq'))) {
      const c = contribOf.get(header(e.msg, 'Call-ID'));
      if (!c || seen.has(c)) continue;
      seen.add(c);
      const d = device200.get(c);
      if (d !== undefined) out.push((e.us - d) / 1000);
    }
  }
  return out;
}

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};

// ---------------------------------------------------------------- 2. memory

interface MemReading {
  service: MemoryUsage;
  relay: MemoryUsage;
  serviceRss: number;
  relayRss: number;
}

async function readMemory(s: Setup): Promise<MemReading> {
  return {
    service: await inspectMemory(s.service.proc),
    relay: await inspectMemory(s.relay!.proc),
    serviceRss: rssBytes(s.service.proc.pid),
    relayRss: rssBytes(s.relay!.proc.pid),
  };
}

interface MemPerSession {
  serviceHeap: number;
  relayHeap: number;
  serviceRss: number;
  relayRss: number;
}

/** RFC 6026 Timers L and M (64*T1, T1 500 ms): how long a call's INVITE transactions outlive its 200. */
const ACCEPTED_MS = 64 * 500;

/**
 * Per session, twice: as soon as MEM_N are established (their INVITE transactions still in
 * Accepted) and once those have ended (ACCEPTED_MS + 2 s later): the held session alone.
 */
async function memory(s: Setup): Promise<{ early: MemPerSession; held: MemPerSession } | null> {
  const note = await quiesce(s);
  // the baseline holds no transaction of earlier calls either
  await new Promise((r) => setTimeout(r, Math.max(0, lastRunEnd + ACCEPTED_MS + 2000 - Date.now())));
  const base = await readMemory(s);
  const rampMs = Math.ceil((MEM_N / MEM_RATE) * 1000);
  const holdMs = rampMs + ACCEPTED_MS + 15_000;
  const sipp = run(s, { user: 'bench', rate: MEM_RATE, calls: MEM_N, holdMs, name: 'hold' });
  const all = (l: { calls: number; sessions: number }): boolean => l.calls >= MEM_N && l.sessions >= MEM_N;
  const deadline = Date.now() + rampMs + 10_000;
  let l = await live(s);
  while (Date.now() < deadline && !all(l)) {
    await new Promise((r) => setTimeout(r, 200));
    l = await live(s);
  }
  const at = Date.now();
  const early = all(l) ? await readMemory(s) : null;
  await new Promise((r) => setTimeout(r, Math.max(0, at + ACCEPTED_MS + 2000 - Date.now())));
  const l2 = await live(s);
  const held = early && all(l2) ? await readMemory(s) : null;
  const r = await sipp;
  console.log(
    `  b2bua hold ${MEM_N} sessions: ${l.calls} calls / ${l.sessions} relay sessions at the first reading, ${l2.calls} / ${l2.sessions} at the second; calls ${r.ok ? 'all ok' : `FAILED (${r.detail})`}${note}`,
  );
  if (!early || !held) return null;
  const per = (a: MemReading): MemPerSession => ({
    serviceHeap: (a.service.heapUsed + a.service.external - base.service.heapUsed - base.service.external) / MEM_N,
    relayHeap: (a.relay.heapUsed + a.relay.external - base.relay.heapUsed - base.relay.external) / MEM_N,
    serviceRss: (a.serviceRss - base.serviceRss) / MEM_N,
    relayRss: (a.relayRss - base.relayRss) / MEM_N,
  });
  return { early: per(early), held: per(held) };
}

// ---------------------------------------------------------------- 3. highest rate

async function step(s: Setup, rate: number): Promise<{ ok: boolean; detail: string; setup: number[] }> {
  const note = await quiesce(s);
  const r = await run(s, { user: 'bench', rate, calls: Math.max(1, Math.round(rate * STEP_S)), name: `load-${rate}` });
  // a step passes with zero failed calls (as bench:proxy) and, with MAX_SETUP_P99_MS, a p99 setup time under it
  const slow = MAX_SETUP_P99_MS > 0 && r.ok && !(pct(r.setup, 0.99) <= MAX_SETUP_P99_MS);
  return { ok: r.ok && !slow, detail: (slow ? `setup p99 over ${MAX_SETUP_P99_MS} ms, ` : '') + r.detail + note, setup: r.setup };
}

/** Every step run: its rate, whether it passed, the caller's p99 INVITE -> 200. */
type StepLog = { rate: number; ok: boolean; p99: number }[];

/** The highest step run that passed with a p99 setup time within `ms` (not a search of its own). */
const highestWithin = (steps: StepLog, ms: number): number =>
  Math.max(0, ...steps.filter((x) => x.ok && x.p99 <= ms).map((x) => x.rate));

/** The highest rate with zero failed calls (bench/ramp.ts): x1.4 steps from START, then REFINE probes. */
async function maxRate(s: Setup, steps: StepLog): Promise<{ rate: number; setup: number[] }> {
  const { best, bestResult } = await highestPassing(geometricRates(START[s.mode], 1.4, 20_000), REFINE, 10, async (rate, refining) => {
    const r = await step(s, rate);
    steps.push({ rate, ok: r.ok, p99: pct(r.setup, 0.99) });
    console.log(`  ${s.mode} ${rate} calls/s${refining ? ' (refine)' : ''}: ${r.ok ? 'ok' : `FAILED (${r.detail})`}; ${setupNote(r.setup)}`);
    return r;
  });
  return { rate: best, setup: bestResult?.setup ?? [] };
}

// ---------------------------------------------------------------- the run

const spread = (xs: number[], digits = 0): string =>
  xs.length ? `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : '-';

const root = runDir('bench-b2bua');
const rates: Record<Mode, number[]> = { proxy: [], b2bua: [] };
const ratios: number[] = [];
const lat: Record<Mode, { p50: number[]; p99: number[]; n: number[] }> = { proxy: { p50: [], p99: [], n: [] }, b2bua: { p50: [], p99: [], n: [] } };
const cpu: Record<Mode, Record<keyof CpuSample, number[]>> = {
  proxy: { kamailio: [], service: [], relay: [], devices: [] },
  b2bua: { kamailio: [], service: [], relay: [], devices: [] },
};
const noMem = (): Record<keyof MemPerSession, number[]> => ({ serviceHeap: [], relayHeap: [], serviceRss: [], relayRss: [] });
const mem = { early: noMem(), held: noMem() };
const atBest: Record<Mode, { p50: number[]; p99: number[] }> = { proxy: { p50: [], p99: [] }, b2bua: { p50: [], p99: [] } };
const within: Record<Mode, number[]> = { proxy: [], b2bua: [] };
const started = new Date().toISOString();

console.log(`run directory ${root}`);
for (let rep = 1; rep <= REPS; rep++) {
  console.log(`round ${rep}/${REPS} (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
  const rateOf: Record<Mode, number> = { proxy: 0, b2bua: 0 };
  const order = MODES.map((_, i) => MODES[(i + rep - 1) % MODES.length]!);
  for (const mode of order) {
    const s = await setup(mode, join(root, `${mode}-${rep}`));
    try {
      // warm-up (JIT, connections), then the traced latency step with CPU accounting
      await run(s, { user: 'bench', rate: LAT_RATE, calls: LAT_RATE * 2, name: 'warm' });
      const note = await quiesce(s);
      const c0 = sampleCpu(s);
      const r = await run(s, { user: 'lat', rate: LAT_RATE, calls: LAT_RATE * LAT_S, trace: true, name: 'lat' });
      const c1 = sampleCpu(s);
      const n = LAT_RATE * LAT_S;
      for (const k of Object.keys(c0) as (keyof CpuSample)[]) cpu[mode][k].push((c1[k] - c0[k]) / n);
      const d = answerDelays(r.messages, s.traced.map((x) => x.messages()));
      lat[mode].p50.push(pct(d, 0.5));
      lat[mode].p99.push(pct(d, 0.99));
      lat[mode].n.push(d.length);
      console.log(
        `  ${mode} at ${LAT_RATE}/s: device 200 -> caller 200 p50 ${pct(d, 0.5).toFixed(2)} ms, p99 ${pct(d, 0.99).toFixed(2)} ms (${d.length} of ${n} calls matched; calls ${r.ok ? 'all ok' : `FAILED (${r.detail})`}); ${setupNote(r.setup)}${note}`,
      );
      console.log(
        `  ${mode} CPU ms per call at ${LAT_RATE}/s: Kamailio ${((c1.kamailio - c0.kamailio) / n).toFixed(3)}, service ${((c1.service - c0.service) / n).toFixed(3)}, relay ${((c1.relay - c0.relay) / n).toFixed(3)}, devices ${((c1.devices - c0.devices) / n).toFixed(3)}`,
      );
      if (mode === 'b2bua') {
        const m = await memory(s);
        if (m) {
          for (const k of Object.keys(m.held) as (keyof MemPerSession)[]) {
            mem.held[k].push(m.held[k]);
            mem.early[k].push(m.early[k]);
          }
          const show = (x: MemPerSession): string =>
            `service heap ${(x.serviceHeap / 1024).toFixed(1)}, relay heap ${(x.relayHeap / 1024).toFixed(1)}; RSS service ${(x.serviceRss / 1024).toFixed(1)}, relay ${(x.relayRss / 1024).toFixed(1)}`;
          console.log(`  b2bua per session, KiB, transactions still Accepted: ${show(m.early)}`);
          console.log(`  b2bua per session, KiB, after 64*T1: ${show(m.held)}`);
        }
      }
      const steps: StepLog = [];
      const m = await maxRate(s, steps);
      rateOf[mode] = m.rate;
      within[mode].push(highestWithin(steps, SLOW_MS));
      atBest[mode].p50.push(pct(m.setup, 0.5));
      atBest[mode].p99.push(pct(m.setup, 0.99));
    } finally {
      await s.stop();
    }
  }
  for (const mode of MODES) rates[mode].push(rateOf[mode]);
  if (rateOf.proxy && MODES.includes('b2bua')) ratios.push(rateOf.b2bua / rateOf.proxy);
}

const kib = (xs: number[]): number[] => xs.map((x) => x / 1024);
const sum = (a: number[], b: number[]): number[] => a.map((x, i) => x + (b[i] ?? NaN));
console.log(`
B2BUA mode against proxy mode, ${REPS} round(s) ${started} – ${new Date().toISOString()}, modes alternating (${MODES.join(', ')});
second device: proxy ${PROXY_SECOND}, b2bua ${B2BUA_SECOND} (policy ${MULTI_DEVICE}); ${STEP_S} s rate steps from ${START.proxy} (proxy) / ${START.b2bua} (b2bua) x1.4, +${REFINE} bisection probes;
Kamailio -x tlsf -m ${SHM_MB}, ${CHILDREN} children; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}. Median (min–max) over the rounds.
`);
for (const mode of MODES) console.log(`  ${mode.padEnd(6)} highest rate, zero failed calls  ${spread(rates[mode])} calls/s`);
for (const mode of MODES)
  console.log(`  ${mode.padEnd(6)} caller INVITE -> 200 at that rate  p50 ${spread(atBest[mode].p50, 1)} ms, p99 ${spread(atBest[mode].p99, 1)} ms`);
for (const mode of MODES)
  console.log(`  ${mode.padEnd(6)} highest step run with p99 setup <= ${SLOW_MS} ms  ${spread(within[mode])} calls/s  [${within[mode].join(', ')}]`);
if (ratios.length) console.log(`  ratio b2bua / proxy (per round)  ${spread(ratios, 2)}  [${ratios.map((r) => r.toFixed(2)).join(', ')}]  (target >= 0.5)`);
for (const mode of MODES)
  console.log(`  ${mode.padEnd(6)} device 200 -> caller 200 at ${LAT_RATE}/s  p50 ${spread(lat[mode].p50, 2)} ms, p99 ${spread(lat[mode].p99, 2)} ms (${lat[mode].n.join(', ')} calls)`);
for (const mode of MODES) {
  const c = cpu[mode];
  console.log(`  ${mode.padEnd(6)} CPU ms per call at ${LAT_RATE}/s  Kamailio ${spread(c.kamailio, 3)}, service ${spread(c.service, 3)}, relay ${spread(c.relay, 3)}, devices ${spread(c.devices, 3)}`);
}
if (MODES.includes('b2bua')) {
  for (const [when, m] of [['after 64*T1 (the session alone)', mem.held], ['at once (INVITE transactions still Accepted)', mem.early]] as const) {
    console.log(`  b2bua memory per established session, ${MEM_N} held, ${when}, KiB:
    heap after full GC (used + external)  service ${spread(kib(m.serviceHeap), 1)}, relay ${spread(kib(m.relayHeap), 1)}, total ${spread(kib(sum(m.serviceHeap, m.relayHeap)), 1)}
    RSS                                   service ${spread(kib(m.serviceRss), 1)}, relay ${spread(kib(m.relayRss), 1)}, total ${spread(kib(sum(m.serviceRss, m.relayRss)), 1)}`);
  }
}
