/**
 * CPU_QUOTA of bench:proxy (docs/benchmarks.md "On a slow machine"): Kamailio and the
 * decision service held to less CPU, the same way for bare and PF in one run.
 *
 * - Pinning: `taskset` puts every thread of Kamailio's processes and of the service on
 *   the CPUs of CPU_PIN (default: the first ceil(CPU_QUOTA) CPUs); the benchmark's own
 *   process, and with it the sipp caller and devices it starts, goes to the other CPUs.
 * - Quota: a cgroup holding Kamailio and the service gets CPU_QUOTA cores per period:
 *   cgroup v2 `cpu.max` where a cgroup2 hierarchy offers the cpu controller, else the v1
 *   `cpu` hierarchy's `cpu.cfs_quota_us` (the same CFS bandwidth control); with neither
 *   writable, pinning alone, and the run says so.
 *
 * Parsing is pure (table tests in test/unit/bench/cpu-limit.test.ts); applying is not.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuQuota {
  /** Cores Kamailio and the service may use together (CFS bandwidth). */
  cores: number;
  /** CPUs they are pinned to; null: not pinned. */
  cpus: number[] | null;
}

/** A CPU list as taskset writes it: `0`, `0,2`, `0-1,3`. */
export function parseCpuList(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`CPU list: bad part "${part}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`CPU list: bad range "${part}"`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  if (out.size === 0) throw new Error('CPU list: empty');
  return [...out].sort((a, b) => a - b);
}

/**
 * CPU_QUOTA (cores, > 0, e.g. `1` or `0.5`) and CPU_PIN (a CPU list, or `none`) on a
 * machine with `ncpu` CPUs; null when CPU_QUOTA is unset. Pinning needs a CPU left over
 * for the load generators.
 */
export function parseCpuQuota(quota: string | undefined, pin: string | undefined, ncpu: number): CpuQuota | null {
  if (quota === undefined || quota === '') return null;
  const cores = Number(quota);
  if (!Number.isFinite(cores) || cores <= 0) throw new Error(`CPU_QUOTA: a number of cores > 0, not "${quota}"`);
  if (pin === 'none') return { cores, cpus: null };
  const cpus = pin === undefined || pin === '' ? Array.from({ length: Math.ceil(cores) }, (_, i) => i) : parseCpuList(pin);
  if (cpus.some((c) => c >= ncpu)) throw new Error(`CPU_PIN: CPU ${Math.max(...cpus)} not on this ${ncpu}-CPU machine`);
  if (cpus.length >= ncpu) throw new Error(`CPU_PIN: ${cpus.join(',')} leaves no CPU for sipp (machine has ${ncpu}); set CPU_PIN=none for a quota alone`);
  if (cpus.length < cores) throw new Error(`CPU_QUOTA ${cores} is more than the ${cpus.length} pinned CPU(s)`);
  return { cores, cpus };
}

/** The CPUs of `ncpu` not in `cpus`. */
export function complement(cpus: readonly number[], ncpu: number): number[] {
  return Array.from({ length: ncpu }, (_, i) => i).filter((c) => !cpus.includes(c));
}

export type CgroupKind = 'v2' | 'v1';

/**
 * Where a cpu-bandwidth cgroup can be made, from /proc/mounts and /proc/self/cgroup: the
 * cgroup2 mount (if `v2HasCpu` says its root offers the cpu controller) at our own
 * cgroup's path, else the v1 hierarchy mounted with the `cpu` option, at our path there.
 */
export function cgroupParent(mounts: string, selfCgroup: string, v2HasCpu: (mount: string) => boolean): { kind: CgroupKind; dir: string } | null {
  const own = new Map<string, string>();
  for (const line of selfCgroup.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) for (const c of (m[1] ?? '').split(',')) own.set(c, m[2] ?? '/');
  }
  const under = (root: string, rel: string): string => join(root, rel).replace(/(.)\/$/, '$1');
  const rows = mounts.split('\n').map((l) => l.split(' ')).filter((f) => f.length >= 4);
  const v2 = rows.find((f) => f[2] === 'cgroup2');
  if (v2 && v2HasCpu(v2[1]!)) return { kind: 'v2', dir: under(v2[1]!, own.get('') ?? '/') };
  const v1 = rows.find((f) => f[2] === 'cgroup' && (f[3] ?? '').split(',').includes('cpu'));
  if (v1) return { kind: 'v1', dir: under(v1[1]!, own.get('cpu') ?? '/') };
  return null;
}

/** The files and values that set `cores` of CFS bandwidth per 100 ms period. */
export function quotaWrites(kind: CgroupKind, cores: number, periodUs = 100_000): [file: string, value: string][] {
  const q = String(Math.round(cores * periodUs));
  return kind === 'v2' ? [['cpu.max', `${q} ${periodUs}`]] : [['cpu.cfs_period_us', String(periodUs)], ['cpu.cfs_quota_us', q]];
}

// ---------------------------------------------------------------- applying (not pure)

/** Pids of every process of a process group. */
export function groupPids(pgid: number): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Pin every thread of `pid` to `cpus`. */
export function pin(pid: number, cpus: readonly number[]): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus.join(','), String(pid)], { stdio: 'ignore' });
}

/** A cgroup with a CPU quota that processes are moved into; removed by close(). */
export interface QuotaGroup {
  readonly kind: CgroupKind;
  readonly dir: string;
  add(pid: number): void;
  close(): void;
}

/** Make a cgroup `name` with `cores` of quota; null (and why) where no cgroup is writable here. */
export function makeQuotaGroup(name: string, cores: number): { group: QuotaGroup | null; why: string } {
  let parent: { kind: CgroupKind; dir: string } | null;
  try {
    parent = cgroupParent(readFileSync('/proc/mounts', 'utf8'), readFileSync('/proc/self/cgroup', 'utf8'), (m) => {
      try {
        return readFileSync(join(m, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('cpu');
      } catch {
        return false;
      }
    });
  } catch (err) {
    return { group: null, why: `cannot read the cgroup mounts: ${String(err)}` };
  }
  if (!parent) return { group: null, why: 'no cgroup hierarchy with the cpu controller is mounted' };
  const dir = join(parent.dir, name);
  try {
    if (parent.kind === 'v2') {
      // the parent must hand the cpu controller down
      if (!readFileSync(join(parent.dir, 'cgroup.subtree_control'), 'utf8').includes('cpu')) writeFileSync(join(parent.dir, 'cgroup.subtree_control'), '+cpu');
    }
    if (!existsSync(dir)) mkdirSync(dir);
    for (const [f, v] of quotaWrites(parent.kind, cores)) writeFileSync(join(dir, f), v);
  } catch (err) {
    return { group: null, why: `cgroup ${parent.kind} at ${parent.dir} not writable: ${err instanceof Error ? err.message : String(err)}` };
  }
  const kind = parent.kind;
  return {
    why: '',
    group: {
      kind,
      dir,
      add: (pid) => writeFileSync(join(dir, 'cgroup.procs'), String(pid)),
      close: () => {
        try {
          rmdirSync(dir);
        } catch {
          // a process left in it: the directory stays, harmless
        }
      },
    },
  };
}
