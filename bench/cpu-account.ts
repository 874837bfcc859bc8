/**
 * "Where the time goes" in bench:proxy (docs/benchmarks.md "Where the time goes"): the
 * arithmetic of per-process CPU accounting, pure. The sampler (bench/cpu-sampler.ts)
 * reads /proc/<pid>/stat utime+stime of every tracked process about once a second during
 * a rate step; from those samples this module gives, per role, CPU ms per call and cores
 * used, and the busiest single process's share of one core: its mean over the step and
 * its peak over one sampling window. A process near 100% of a core cannot go faster:
 * it serializes whatever passes through it.
 */

/** What a tracked process does. Kamailio's roles come from `kamcmd core.psx`. */
export type Role =
  | 'udp' // Kamailio SIP UDP receivers (the SIP workers)
  | 'tcp' // Kamailio TCP receivers and tcp main
  | 'rpc-io' // janssonrpcc's I/O process ("jsonrpc io handler")
  | 'async' // async_task workers (pf.cfg's resume routes run there)
  | 'timer' // Kamailio timers (tm, htable, janssonrpcc's SRV timer, async module timer)
  | 'other' // Kamailio attendant, ctl handler, anything unnamed
  | 'service-main' // the decision service's main thread (its JavaScript)
  | 'service-threads' // the service's other threads (GC helpers, libuv pool)
  | 'devices' // the sipp UAS devices
  | 'caller'; // the sipp UAC driving the step

export const ROLES: readonly Role[] = ['udp', 'tcp', 'rpc-io', 'async', 'timer', 'other', 'service-main', 'service-threads', 'devices', 'caller'];

/** Roles that are Kamailio processes. */
export const KAMAILIO_ROLES: ReadonlySet<Role> = new Set<Role>(['udp', 'tcp', 'rpc-io', 'async', 'timer', 'other']);

export interface Tracked {
  /** Unique among the tracked processes of a step, e.g. `k:1234`, `s:1240`. */
  readonly key: string;
  readonly role: Role;
  /** What the table prints, e.g. `jsonrpc io handler (pid 1234)`. */
  readonly name: string;
}

/** One reading: clock-tick totals (utime+stime) by key at a monotonic time. */
export interface Sample {
  readonly atMs: number;
  readonly ticks: ReadonlyMap<string, number>;
  /** The whole machine's busy and total ticks over all CPUs (/proc/stat), when read. */
  readonly machine?: MachineTicks;
}

export interface MachineTicks {
  busy: number;
  total: number;
}

/**
 * The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal
 * (guest time is already in user); busy is all but idle and iowait.
 */
export function machineTicks(procStat: string): MachineTicks {
  const m = /^cpu\s+([\d ]+)/m.exec(procStat);
  if (!m) throw new Error('/proc/stat: no cpu line');
  const f = (m[1] ?? '').trim().split(/\s+/).slice(0, 8).map(Number);
  const total = f.reduce((a, x) => a + x, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

/** `kamcmd core.psx` output: one `{ IDX: n PID: p DSC: text }` block per process. */
export function parsePsx(text: string): { pid: number; desc: string }[] {
  const out: { pid: number; desc: string }[] = [];
  for (const m of text.matchAll(/PID:\s*(\d+)\s*\n\s*DSC:\s*([^\n]*)/g)) out.push({ pid: Number(m[1]), desc: (m[2] ?? '').trim() });
  return out;
}

/** The role of a Kamailio process from its core.psx description. */
export function kamailioRole(desc: string): Role {
  if (/^udp receiver/i.test(desc)) return 'udp';
  if (/^tcp (receiver|main)/i.test(desc)) return 'tcp';
  if (/^jsonrpc io handler/i.test(desc)) return 'rpc-io';
  if (/^async task worker/i.test(desc)) return 'async';
  if (/timer/i.test(desc)) return 'timer';
  return 'other';
}

/** utime+stime (clock ticks) from the text of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat. */
export function statTicks(stat: string): number {
  // fields after the ")" of comm (which may hold spaces): state(3) ... utime(14) stime(15)
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const u = Number(f[11]);
  const s = Number(f[12]);
  if (!Number.isFinite(u) || !Number.isFinite(s)) throw new Error(`not a /proc stat line: ${stat.slice(0, 60)}`);
  return u + s;
}

export interface RoleCost {
  role: Role;
  processes: number;
  /** CPU ms per call of all the role's processes. */
  msPerCall: number;
  /** Cores the role used on average over the step. */
  cores: number;
}

export interface Busiest {
  key: string;
  name: string;
  role: Role;
  /** Share of one core over the whole step. */
  mean: number;
  /** Highest share of one core over one window between consecutive samples. */
  peak: number;
}

export interface StepAccount {
  seconds: number;
  calls: number;
  roles: RoleCost[];
  /** Kamailio's processes together (ms per call). */
  kamailioMsPerCall: number;
  /** The service's threads together (ms per call). */
  serviceMsPerCall: number;
  /** Every tracked process together, in cores (mean over the step). */
  totalCores: number;
  /** Kamailio and the service together, in cores (what CPU_QUOTA holds). */
  serverCores: number;
  /** Share of all the machine's CPUs busy over the step, anyone's work (null: not read). */
  machineBusy: number | null;
  /** The process with the highest peak share; null without two samples. */
  busiest: Busiest | null;
}

/**
 * The CPU spent by each key between the first and the last sample. A key absent from
 * the first sample started during the step (the caller's sipp): its baseline is 0. A key
 * absent from the last sample ended during the step: its last reading counts.
 */
function spent(samples: readonly Sample[]): Map<string, number> {
  const first = samples[0];
  const out = new Map<string, number>();
  if (!first) return out;
  const last = new Map<string, number>();
  for (const s of samples) for (const [k, v] of s.ticks) last.set(k, v);
  for (const [k, v] of last) out.set(k, Math.max(0, v - (first.ticks.get(k) ?? 0)));
  return out;
}

/** Highest per-window share of one core of `key` (windows between consecutive samples where both hold it). */
function peakShare(samples: readonly Sample[], key: string, hz: number): number {
  let peak = 0;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const va = a.ticks.get(key);
    const vb = b.ticks.get(key);
    const dt = (b.atMs - a.atMs) / 1000;
    if (va === undefined || vb === undefined || dt <= 0) continue;
    peak = Math.max(peak, (vb - va) / hz / dt);
  }
  return peak;
}

/** The account of one step: `calls` calls placed, `samples` in time order, `hz` clock ticks per second (USER_HZ, 100). */
export function stepAccount(tracked: readonly Tracked[], samples: readonly Sample[], calls: number, hz = 100): StepAccount {
  const first = samples[0];
  const last = samples.at(-1);
  const seconds = first && last ? (last.atMs - first.atMs) / 1000 : 0;
  const used = spent(samples);
  const ms = (k: string): number => ((used.get(k) ?? 0) * 1000) / hz;
  const perCall = (x: number): number => (calls > 0 ? x / calls : NaN);
  const cores = (x: number): number => (seconds > 0 ? x / 1000 / seconds : NaN);
  const roles: RoleCost[] = [];
  for (const role of ROLES) {
    const of = tracked.filter((t) => t.role === role);
    if (of.length === 0) continue;
    const total = of.reduce((a, t) => a + ms(t.key), 0);
    roles.push({ role, processes: of.length, msPerCall: perCall(total), cores: cores(total) });
  }
  const sumOf = (pred: (r: Role) => boolean): number => tracked.filter((t) => pred(t.role)).reduce((a, t) => a + ms(t.key), 0);
  let busiest: Busiest | null = null;
  if (samples.length >= 2 && seconds > 0) {
    for (const t of tracked) {
      const peak = peakShare(samples, t.key, hz);
      if (!busiest || peak > busiest.peak) busiest = { key: t.key, name: t.name, role: t.role, mean: cores(ms(t.key)), peak };
    }
  }
  return {
    seconds,
    calls,
    roles,
    kamailioMsPerCall: perCall(sumOf((r) => KAMAILIO_ROLES.has(r))),
    serviceMsPerCall: perCall(sumOf((r) => r === 'service-main' || r === 'service-threads')),
    totalCores: cores(sumOf(() => true)),
    serverCores: cores(sumOf((r) => r !== 'devices' && r !== 'caller')),
    machineBusy: first?.machine && last?.machine && last.machine.total > first.machine.total
      ? (last.machine.busy - first.machine.busy) / (last.machine.total - first.machine.total)
      : null,
    busiest,
  };
}

const pct = (x: number): string => `${Math.round(x * 100)}%`;

/** The per-step table bench:proxy prints (one line per role, then the busiest process). */
export function formatStep(label: string, rate: number, ok: boolean, a: StepAccount): string[] {
  const lines = [
    `    ${label} ${rate} calls/s ${ok ? 'ok' : 'FAILED'}: ${a.calls} calls in ${a.seconds.toFixed(1)} s (${Math.round(a.seconds > 0 ? a.calls / a.seconds : 0)}/s), ${a.totalCores.toFixed(2)} cores in all${a.machineBusy === null ? '' : ` (machine ${pct(a.machineBusy)} busy)`}; Kamailio ${a.kamailioMsPerCall.toFixed(3)} ms/call, service ${a.serviceMsPerCall.toFixed(3)} ms/call`,
    `      ${'role'.padEnd(16)}${'procs'.padStart(6)}${'ms/call'.padStart(10)}${'cores'.padStart(8)}`,
  ];
  for (const r of a.roles) {
    lines.push(`      ${r.role.padEnd(16)}${String(r.processes).padStart(6)}${r.msPerCall.toFixed(3).padStart(10)}${r.cores.toFixed(2).padStart(8)}`);
  }
  const b = a.busiest;
  if (b) lines.push(`      busiest process: ${b.name} [${b.role}] ${pct(b.mean)} of a core over the step, peak ${pct(b.peak)}`);
  return lines;
}

/** A process at or above this share of one core (peak window) is called a serializer. */
export const SERIALIZER_SHARE = 0.9;

/** The CPU there is: the machine's CPUs, and the quota of Kamailio and the service (CPU_QUOTA) if any. */
export interface CpuBudget {
  machineCores: number;
  serverCores: number | null;
}

/**
 * The line naming what limits a configuration at its ceiling: the busiest process of the
 * step that failed (or the highest step run), a serializer when its peak is at or above
 * SERIALIZER_SHARE; and whether the CPU budget was used up (the machine's CPUs 90% busy,
 * by anyone, or our processes at 90% of them, or Kamailio and the service at 90% of their
 * quota).
 */
export function limitingLine(label: string, best: number, at: { rate: number; account: StepAccount } | null, budget: CpuBudget): string {
  if (!at) return `  ${label}: no step accounted`;
  const a = at.account;
  const b = a.busiest;
  const head = at.rate > best ? `  ${label} ceiling ${best} calls/s; at ${at.rate} calls/s` : `  ${label} no step failed (ceiling at least ${best} calls/s); at ${at.rate} calls/s`;
  if (!b) return `${head}: too short to sample`;
  const full: string[] = [];
  if (a.machineBusy !== null && a.machineBusy >= 0.9) {
    const others = Math.max(0, a.machineBusy * budget.machineCores - a.totalCores);
    full.push(`the machine ${pct(a.machineBusy)} busy: ours ${a.totalCores.toFixed(2)}, others' ${others.toFixed(2)} of ${budget.machineCores} cores`);
  } else if (a.totalCores >= 0.9 * budget.machineCores) {
    full.push(`all processes ${a.totalCores.toFixed(2)} of ${budget.machineCores} cores`);
  }
  if (budget.serverCores !== null && a.serverCores >= 0.9 * budget.serverCores) {
    full.push(`Kamailio and the service ${a.serverCores.toFixed(2)} of their ${budget.serverCores}-core quota`);
  }
  const left = a.machineBusy === null ? `ours ${a.totalCores.toFixed(2)} of ${budget.machineCores} cores` : `the machine ${pct(a.machineBusy)} busy, ours ${a.totalCores.toFixed(2)} of ${budget.machineCores} cores`;
  const cpu = full.length > 0 ? `the CPU is used up (${full.join('; ')})` : `CPU left over (${left})`;
  if (b.peak >= SERIALIZER_SHARE) {
    return `${head} the limiting process is ${b.name} [${b.role}]: peak ${pct(b.peak)} of a core (mean ${pct(b.mean)}), a serializer; ${cpu}`;
  }
  return `${head} no process reached ${pct(SERIALIZER_SHARE)} of a core (busiest ${b.name} [${b.role}], peak ${pct(b.peak)}); ${full.length > 0 ? cpu : `${cpu}: the limit is not CPU (waits, drops, timers)`}`;
}
