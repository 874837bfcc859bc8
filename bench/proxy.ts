/**
 * `npm run bench:proxy` — proxy-mode cost on real Kamailio (not a test).
 *
 * Side by side, in one run: Kamailio with kamailio-cfg/lab.cfg built "bare" (LAB_BARE:
 * no PF call, the core still forks via core.fork) and the PF in proxy mode, both
 * forking to a user with 2 devices (two sipp UAS registered as the devices: one
 * answers and lingers for Timer J after the BYE, lab/sipp/uas-answer-linger.xml, so a
 * retransmitted BYE is answered (docs/reliability.md "404 Not here on BYE"); one rings
 * and gets CANCEL). sipp drives whole calls (INVITE/200/ACK/BYE)
 * at stepped rates; the highest rate with zero failed calls is what each sustains.
 * The decision round trip (pf.invite handling time as the service's histogram sees
 * it) is read from /metrics during a run at 1,000 calls/s. Each figure is the median
 * over REPS repetitions, with min and max.
 *
 * Env: REPS (3), STEP_S seconds per rate step (5), RATES (comma list), CPU_RATE (rate of
 * the CPU accounting step; 800), REFINE bisection
 * probes after the first failed step (2), CHILDREN (4), MEM_MANAGER (Kamailio -x; tlsf),
 * SHM_MB (Kamailio -m; 2048),
 * MODES (comma list of bare, pf, pf-2rt; default bare,pf; pf-2rt is the PF with the
 * fork asked in a second round trip, core.fork, as before pf.invite carried it),
 * SERVICE_NODE_OPTIONS (NODE_OPTIONS for the service process, e.g. --max-semi-space-size=16),
 * SERVICE_NODE_ARGS (node options on the service's command line, e.g. --trace-gc: its
 * service.log in the run directory then shows every pause),
 * SHARED (comma list of lmdb, redis; default lmdb): the service's shared state
 * (docs/decisions/0003-shared-state-engine.md); each PF mode runs once per backend, side by
 * side, `redis` on a private three-master Redis Cluster (lab/redis.ts) and labelled
 * `<mode>+redis`. Do not run it while the machine is shared: the figures would say little.
 * LINGER_MS (32000, Timer J): how long the answering device keeps a dialog after the BYE.
 * CPU_QUOTA (cores, e.g. 1 or 0.5; unset: no limit) and CPU_PIN (CPU list, default the
 * first ceil(CPU_QUOTA) CPUs; `none`: quota alone): Kamailio and the service held to less
 * CPU, bare and PF alike (bench/cpu-limit.ts; docs/benchmarks.md "On a slow machine").
 * ACCOUNT (1; 0: off): per-process CPU accounting at each rate step, one table per step and
 * a line naming the limiting process at the ceiling (bench/cpu-account.ts;
 * docs/benchmarks.md "Where the time goes").
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Service, Kamailio, runDir } from '../lab/lab.js';
import { startRedisCluster, type RedisCluster } from '../lab/redis.js';
import { Device, newInstance, vars, TIMER_J_MS } from '../lab/calls.js';
import { runSipp } from '../lab/sipp.js';
import { highestPassing } from './ramp.js';
import { median } from './stats.js';
import { groupCpuMs, rssBytes } from './proc-stat.js';
import { histMinus, histogram, quantileMs } from './decision-histogram.js';
import { formatStep, limitingLine, stepAccount, type CpuBudget, type StepAccount } from './cpu-account.js';
import { kamailioTracked, startSampler } from './cpu-sampler.js';
import { classifyErrors, udpDrops } from './soak-lib.js';
import { complement, groupPids, makeQuotaGroup, parseCpuQuota, pin, type QuotaGroup } from './cpu-limit.js';

const REPS = Number(process.env.REPS ?? 3);
const STEP_S = Number(process.env.STEP_S ?? 5);
// from 1,000 calls/s: both modes have sustained well above it in every run so far
const RATES = (process.env.RATES ?? '1000,1400,1700,2000,2400,2800,3200,3600,4000,4500,5000,5500').split(',').map(Number);
const CHILDREN = Number(process.env.CHILDREN ?? 4);
const REFINE = Number(process.env.REFINE ?? 2);
const MODES = (process.env.MODES ?? 'bare,pf').split(',') as Mode[];
const SHARED = (process.env.SHARED ?? 'lmdb').split(',') as Shared[];
for (const b of SHARED) if (b !== 'lmdb' && b !== 'redis') throw new Error(`SHARED: lmdb or redis, not ${b}`);
if (process.env.SERVICE_NODE_OPTIONS) process.env.NODE_OPTIONS = process.env.SERVICE_NODE_OPTIONS;
const SERVICE_NODE_ARGS = (process.env.SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Kamailio shared memory (-m): at 512 MB both modes ran out of it above ~3,000 calls/s. */
const SHM_MB = Number(process.env.SHM_MB ?? 2048);
const MEM_MANAGER = process.env.MEM_MANAGER as 'qm' | 'fm' | 'tlsf' | undefined;
const DECISION_RATE = 1000;
/** Rate of the CPU accounting step (both modes). */
const CPU_RATE = Number(process.env.CPU_RATE ?? 800);
const LINGER_MS = Number(process.env.LINGER_MS ?? TIMER_J_MS);
const ACCOUNT = process.env.ACCOUNT !== '0';
const NCPU = availableParallelism();
const QUOTA = parseCpuQuota(process.env.CPU_QUOTA, process.env.CPU_PIN, NCPU);
/** How the quota is applied, for the summary; set by the first setup. */
let quotaHow = 'none';
if (QUOTA?.cpus) {
  // this process, and so every sipp it starts, on the CPUs Kamailio and the service do not get
  pin(process.pid, complement(QUOTA.cpus, NCPU));
}
const BUDGET: CpuBudget = { machineCores: NCPU, serverCores: QUOTA?.cores ?? null };

interface CpuSample {
  kamailio: number;
  service: number;
  devices: number;
}

function sampleCpu(s: Setup): CpuSample {
  return {
    kamailio: groupCpuMs(s.kamailio.proc.pid),
    service: groupCpuMs(s.service.proc.pid),
    devices: s.devices.reduce((a, d) => a + groupCpuMs(d.agent.proc.pid), 0),
  };
}

type Mode = 'bare' | 'pf' | 'pf-2rt';
type Shared = 'lmdb' | 'redis';

/** One configuration measured: a mode on a shared-state backend (bare: lmdb only, it decides nothing). */
interface Run {
  readonly label: string;
  readonly mode: Mode;
  readonly shared: Shared;
}
const RUNS: readonly Run[] = MODES.flatMap((mode): Run[] =>
  mode === 'bare'
    ? [{ label: 'bare', mode, shared: 'lmdb' }]
    : SHARED.map((shared) => ({ label: shared === 'lmdb' ? mode : `${mode}+${shared}`, mode, shared })),
);

interface Setup {
  service: Service;
  kamailio: Kamailio;
  devices: Device[];
  dir: string;
  /** Kamailio's ctl socket (LAB_CTL), for kamcmd core.psx. */
  ctl: string;
  stop(): Promise<void>;
}

/** Kamailio's processes and the service held to CPU_QUOTA: pinned, and in one quota cgroup when one can be made. */
function restrict(kamailio: Kamailio, service: Service, name: string): QuotaGroup | null {
  if (!QUOTA) return null;
  const pids = [...groupPids(kamailio.proc.pid ?? -1), ...(service.proc.pid === undefined ? [] : [service.proc.pid])];
  const how: string[] = [];
  if (QUOTA.cpus) {
    for (const pid of pids) pin(pid, QUOTA.cpus);
    how.push(`taskset -c ${QUOTA.cpus.join(',')} (sipp on ${complement(QUOTA.cpus, NCPU).join(',')})`);
  }
  // a quota as large as the pinned CPUs adds nothing but CFS throttling: no cgroup then
  if (QUOTA.cpus && QUOTA.cores >= QUOTA.cpus.length) {
    quotaHow = `${how.join('')}; no cgroup: the pinned CPUs are the quota`;
    return null;
  }
  const { group, why } = makeQuotaGroup(name, QUOTA.cores);
  if (group) {
    for (const pid of pids) group.add(pid);
    how.push(`cgroup ${group.kind} quota ${QUOTA.cores} core(s) (${group.dir.replace(/[^/]*$/, '')}pf-bench-${process.pid}-*)`);
  } else {
    how.push(`no cgroup quota (${why})${QUOTA.cpus ? `: pinning alone, ${QUOTA.cpus.length} whole CPU(s)` : ': NOT RESTRICTED'}`);
  }
  quotaHow = how.join(' + ');
  return group;
}

async function setup(mode: Mode, dir: string, shared: Shared): Promise<Setup> {
  let redis: RedisCluster | null = null;
  if (shared === 'redis') {
    // run as root, Redis runs as nobody (lab/redis.ts): it must reach its folder
    mkdirSync(dir, { recursive: true });
    chmodSync(root, 0o711);
    chmodSync(dir, 0o711);
    redis = await startRedisCluster(join(dir, 'redis'));
  }
  const service = await Service.start({
    dir, logLevel: 'warn', nodeArgs: SERVICE_NODE_ARGS,
    ...(redis ? { sharedState: { engine: 'redis', redis: { urls: redis.urls, cluster: true, prefix: 'bench', timeoutMs: 500 } } } : {}),
  });
  const ctl = `unix:${join(dir, 'kamailio.ctl')}`;
  const kamailio = await Kamailio.start({
    dir,
    rpc: [{ port: service.rpcPort }],
    bare: mode === 'bare',
    children: CHILDREN,
    rpcTimeoutMs: 2000,
    ...(MEM_MANAGER ? { memManager: MEM_MANAGER } : {}),
    memMb: SHM_MB,
    defines: [
      'PF_XLOG_LEVEL="L_DBG"',
      `LAB_CTL="${ctl}"`,
      ...(mode !== 'bare' ? (process.env.PF_DEFINES ?? '').split(',').filter(Boolean) : []),
      ...(mode === 'pf-2rt' ? ['LAB_FORK_RPC'] : []),
    ],
  });
  const group = restrict(kamailio, service, `pf-bench-${process.pid}-${dir.split('/').at(-1) ?? 'x'}`);
  const devices = [
    await Device.start({ dir, sipPort: kamailio.sipPort, user: 'bench', instance: newInstance(), behaviour: { kind: 'linger', lingerMs: LINGER_MS }, ringing: false, trace: false }),
    await Device.start({ dir, sipPort: kamailio.sipPort, user: 'bench', instance: newInstance(), behaviour: { kind: 'ring' }, ringing: false, trace: false }),
  ];
  return {
    service,
    kamailio,
    devices,
    dir,
    ctl,
    stop: async () => {
      await Promise.all(devices.map((d) => d.stop()));
      await kamailio.stop();
      await service.stop();
      await redis?.stop();
      group?.close();
    },
  };
}

/**
 * Wait until Kamailio, the service and the devices are idle (under 5% of a core over
 * 500 ms, at most 30 s), so a step does not inherit the backlog of a failed one.
 */
async function quiesce(s: Setup): Promise<void> {
  const total = (c: CpuSample): number => c.kamailio + c.service + c.devices;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const a = total(sampleCpu(s));
    await new Promise((r) => setTimeout(r, 500));
    if (total(sampleCpu(s)) - a < 25) return;
  }
}

interface StepResult {
  ok: boolean;
  detail: string;
  /** Failed calls by cause (sipp's error log, bench/soak-lib.ts classifyErrors); UDP datagrams dropped during the step. */
  why: string;
  /** Per-process CPU over the step (null with ACCOUNT=0). */
  account: StepAccount | null;
}

/** One step: `rate` calls/s for STEP_S seconds; ok when no call failed. */
async function step(s: Setup, rate: number, settle = true): Promise<StepResult> {
  if (settle) await quiesce(s);
  const seconds = STEP_S;
  const calls = Math.max(1, Math.round(rate * seconds));
  const statFile = join(s.dir, `stat-${rate}-${++stepNo}.csv`);
  const ports = { kamailio: s.kamailio.sipPort, devices: s.devices.map((d) => d.port) };
  const drops0 = udpDrops([ports.kamailio, ...ports.devices]);
  const sampler = ACCOUNT
    ? startSampler({
        kamailio: kamailioTracked(s.ctl, s.kamailio.proc.pid ?? -1),
        servicePid: s.service.proc.pid ?? -1,
        devicePids: s.devices.flatMap((d) => (d.agent.proc.pid === undefined ? [] : [d.agent.proc.pid])),
        callerMarker: statFile,
      })
    : null;
  const r = await runSipp({
    scenario: 'uac-call.xml',
    dir: join(s.dir, 'calls'),
    remote: `127.0.0.1:${s.kamailio.sipPort}`,
    // a Contribution-ID of its own per call, as real sessions have (sipp fills it in)
    vars: vars({ dir: s.dir, sipPort: s.kamailio.sipPort, to: 'bench', contributionId: 'bench-[pid]-[call_number]' }, 200, 0),
    calls,
    // message tracing off under load: only the error log
    extraArgs: ['-r', String(rate), '-rp', '1000', '-recv_timeout', '10000', '-trace_stat', '-stf', statFile],
    timeoutMs: (seconds + 40) * 1000,
    name: `load-${rate}`,
    trace: false,
  });
  const failed = /Failed call[^\n]*/.exec(r.output)?.[0] ?? '';
  const sampled = sampler?.stop();
  const drops1 = udpDrops([ports.kamailio, ...ports.devices]);
  const dropped = (p: number): number => (drops1.get(p) ?? 0) - (drops0.get(p) ?? 0);
  const causes = r.code === 0 ? '' : [...classifyErrors(r.errors).byCause].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([c, n]) => `${n} × ${c}`).join('; ');
  // the lingering device holds every dialog for LINGER_MS: its memory grows with rate × LINGER_MS
  let deviceMiB = NaN;
  try {
    deviceMiB = rssBytes(s.devices[0]?.agent.proc.pid) / 2 ** 20;
  } catch {
    // the device is gone: its sipp log says why
  }
  const why = `UDP drops Kamailio ${dropped(ports.kamailio)}, devices ${ports.devices.reduce((a, p) => a + dropped(p), 0)}; answering device RSS ${deviceMiB.toFixed(0)} MiB${causes ? `; failed calls: ${causes}` : ''}`;
  return { ok: r.code === 0, detail: `exit ${String(r.code)} ${failed}`.trim(), why, account: sampled ? stepAccount(sampled.tracked, sampled.samples, calls) : null };
}
let stepNo = 0;

/** A step's outcome line, then its accounting table. */
function report(label: string, rate: number, r: StepResult, note = ''): void {
  console.log(`  ${label} ${rate} calls/s${note}: ${r.ok ? 'ok' : `FAILED (${r.detail})`}; ${r.why}`);
  if (r.account) for (const l of formatStep(label, rate, r.ok, r.account)) console.log(l);
}

/** The highest rate with zero failed calls (bench/ramp.ts), and the line naming what limits it. */
async function maxRate(s: Setup, label: string): Promise<{ best: number; limit: string }> {
  // the step that shows the ceiling: the lowest failed one, or the highest run
  let ceiling: { rate: number; account: StepAccount } | null = null;
  let highest: { rate: number; account: StepAccount } | null = null;
  const { best } = await highestPassing(RATES, REFINE, 50, async (rate, refining) => {
    const r = await step(s, rate);
    report(label, rate, r, refining ? ' (refine)' : '');
    if (r.account) {
      if (!r.ok && (!ceiling || rate < ceiling.rate)) ceiling = { rate, account: r.account };
      if (!highest || rate > highest.rate) highest = { rate, account: r.account };
    }
    return r;
  });
  const limit = ACCOUNT ? limitingLine(label, best, ceiling ?? highest, BUDGET) : '';
  if (limit) console.log(limit);
  return { best, limit };
}


const spread = (xs: number[], digits = 0): string =>
  `${median(xs).toFixed(digits)} (min ${Math.min(...xs).toFixed(digits)}, max ${Math.max(...xs).toFixed(digits)})`;

const root = runDir('bench-proxy');
interface Decisions { p50: number[]; p99: number[]; fork50: number[]; fork99: number[]; ok: boolean[] }
const byLabel = <T>(f: () => T): Record<string, T> => Object.fromEntries(RUNS.map((r) => [r.label, f()]));
const cpu = byLabel(() => ({ kamailio: [] as number[], service: [] as number[], devices: [] as number[] }));
const rates = byLabel(() => [] as number[]);
const ratios = byLabel(() => [] as number[]);
const decisions = byLabel((): Decisions => ({ p50: [], p99: [], fork50: [], fork99: [], ok: [] }));
const limits = byLabel(() => [] as string[]);

for (let rep = 1; rep <= REPS; rep++) {
  console.log(`repetition ${rep}/${REPS}`);
  const rateOf = byLabel(() => 0);
  // interleaved: every repetition runs each configuration once, the order rotating
  const order = RUNS.map((_, i) => RUNS[(i + rep - 1) % RUNS.length]!);
  for (const { label, mode, shared } of order) {
    const s = await setup(mode, join(root, `${label}-${rep}`), shared);
    try {
      // CPU per call by component at a rate both sustain
      await quiesce(s);
      const c0 = sampleCpu(s);
      const rc = await step(s, CPU_RATE, false);
      const c1 = sampleCpu(s);
      if (rc.account) for (const l of formatStep(label, CPU_RATE, rc.ok, rc.account)) console.log(l);
      const n = CPU_RATE * STEP_S;
      cpu[label]!.kamailio.push((c1.kamailio - c0.kamailio) / n);
      cpu[label]!.service.push((c1.service - c0.service) / n);
      cpu[label]!.devices.push((c1.devices - c0.devices) / n);
      console.log(
        `  ${label} CPU per call at ${CPU_RATE}/s${rc.ok ? '' : ' (some calls failed)'}: Kamailio ${((c1.kamailio - c0.kamailio) / n).toFixed(3)} ms, service ${((c1.service - c0.service) / n).toFixed(3)} ms, devices ${((c1.devices - c0.devices) / n).toFixed(3)} ms`,
      );
      const m = await maxRate(s, label);
      rateOf[label] = m.best;
      if (m.limit) limits[label]!.push(`rep ${rep}: ${m.limit.trim()}`);
      if (mode !== 'bare') {
        // decision round trip at 1,000 calls/s
        const before = await s.service.metrics();
        const r = await step(s, DECISION_RATE);
        const after = await s.service.metrics();
        const inv = histMinus(histogram(after, 'pf.invite'), histogram(before, 'pf.invite'));
        const fork = histMinus(histogram(after, 'core.fork'), histogram(before, 'core.fork'));
        const d = decisions[label]!;
        d.p50.push(quantileMs(inv, 0.5));
        d.p99.push(quantileMs(inv, 0.99));
        d.fork50.push(fork.count ? quantileMs(fork, 0.5) : 0);
        d.fork99.push(fork.count ? quantileMs(fork, 0.99) : 0);
        d.ok.push(r.ok);
        console.log(
          `  ${label} pf.invite at ${DECISION_RATE}/s (${inv.count} decisions, ${fork.count} core.fork, calls ${r.ok ? 'all ok' : 'some failed'}): p50 ${quantileMs(inv, 0.5).toFixed(3)} ms, p99 ${quantileMs(inv, 0.99).toFixed(3)} ms`,
        );
      }
    } finally {
      await s.stop();
    }
  }
  for (const { label } of RUNS) {
    rates[label]!.push(rateOf[label]!);
    ratios[label]!.push(rateOf.bare ? rateOf[label]! / rateOf.bare : NaN);
  }
}

const pfRuns = RUNS.filter((r) => r.mode !== 'bare').map((r) => r.label);

console.log(`
Proxy mode on real Kamailio, ${REPS} repetitions (interleaved: ${RUNS.map((r) => r.label).join(', ')}; shared state ${SHARED.join(', ')}), ${STEP_S} s per rate step,
rates ${RATES.join("/")} calls/s (+${REFINE} bisection probes), Kamailio -x ${MEM_MANAGER ?? "tlsf"} -m ${SHM_MB}, service NODE_OPTIONS ${process.env.NODE_OPTIONS ?? '-'}
answering device lingers ${LINGER_MS} ms after the BYE; ${NCPU} CPUs; CPU_QUOTA ${QUOTA ? `${QUOTA.cores} core(s): ${quotaHow}` : 'none'}
(median (min, max); highest step with zero failed calls)
`);
for (const { label: mode } of RUNS) console.log(`  ${mode.padEnd(7)} highest rate  ${spread(rates[mode]!)} calls/s`);
for (const mode of pfRuns) {
  const d = decisions[mode]!;
  console.log(`  ${mode.padEnd(7)} ratio / bare  ${spread(ratios[mode]!, 2)}   (target >= 0.9)
  ${mode.padEnd(7)} pf.invite p50 at ${DECISION_RATE}/s  ${spread(d.p50, 3)} ms
  ${mode.padEnd(7)} pf.invite p99 at ${DECISION_RATE}/s  ${spread(d.p99, 3)} ms   (target <= 2 ms)
  ${mode.padEnd(7)} core.fork p50 / p99 at ${DECISION_RATE}/s  ${spread(d.fork50, 3)} / ${spread(d.fork99, 3)} ms (0: not called)
  ${mode.padEnd(7)} calls at ${DECISION_RATE}/s all completed  ${d.ok.map(String).join(', ')}`);
}
console.log(`  CPU ms per call at ${CPU_RATE}/s (all processes of each part):`);
for (const { label: mode } of RUNS) {
  const c = cpu[mode]!;
  console.log(`    ${mode.padEnd(7)} Kamailio ${spread(c.kamailio, 3)}, service ${spread(c.service, 3)}, devices ${spread(c.devices, 3)}`);
}
console.log('  (round trip = the service\'s pf_decision_duration_seconds histogram, interpolated within buckets)');
if (ACCOUNT) {
  console.log('  What limits each configuration at its ceiling (busiest process of the lowest failed step):');
  for (const { label } of RUNS) for (const l of limits[label]!) console.log(`    ${l}`);
}
