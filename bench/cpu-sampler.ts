/**
 * Reads the CPU of the processes bench:proxy accounts per rate step (bench/cpu-account.ts
 * does the arithmetic): Kamailio's processes by role (`kamcmd core.psx` over the lab's
 * ctl socket, LAB_CTL in kamailio-cfg/lab.cfg), the service's threads (its main thread
 * apart), the sipp devices, the sipp caller of the step (found by its command line), and
 * how busy the whole machine was (/proc/stat: other people's jobs included).
 * Linux /proc only.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { findBinary } from '../lab/proc.js';
import { kamailioRole, machineTicks, parsePsx, statTicks, type MachineTicks, type Sample, type Tracked } from './cpu-account.js';
import { groupPids } from './cpu-limit.js';

function ticksOf(path: string): number | undefined {
  try {
    return statTicks(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Kamailio's processes by role; without the ctl socket every process of its group is `other`. */
export function kamailioTracked(ctl: string, pgid: number): Tracked[] {
  try {
    const psx = parsePsx(execFileSync(findBinary('kamcmd'), ['-s', ctl, 'core.psx'], { encoding: 'utf8', timeout: 3000 }));
    if (psx.length > 0) return psx.map((p) => ({ key: `k:${p.pid}`, role: kamailioRole(p.desc), name: `${p.desc.replace(/ sock=.*$/, '')} (pid ${p.pid})` }));
  } catch {
    // fall through: no roles
  }
  return groupPids(pgid).map((pid) => ({ key: `k:${pid}`, role: 'other', name: `kamailio pid ${pid}` }));
}

/** The service's threads now: the main thread (tid = pid) runs its JavaScript. */
function serviceThreads(pid: number): Tracked[] {
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.map((tid) =>
    Number(tid) === pid
      ? { key: `s:${tid}`, role: 'service-main', name: `service main thread (pid ${pid})` }
      : { key: `s:${tid}`, role: 'service-threads', name: `service thread ${tid}` },
  );
}

/** The pid of a running sipp whose command line contains `marker` (the caller of a step), if any. */
function findCaller(marker: string): number | undefined {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(marker) && /(^|\/)sipp\0/.test(cmd)) return Number(pid);
    } catch {
      // gone
    }
  }
  return undefined;
}

export interface SamplerTargets {
  kamailio: Tracked[];
  servicePid: number;
  devicePids: readonly number[];
  /** A string only the step's sipp caller has on its command line (its -stf file). */
  callerMarker: string;
}

/**
 * Samples every `everyMs` until stop(); stop() returns the tracked processes (the service's
 * threads and the caller as seen over the step) and the samples, the last one taken then.
 */
export function startSampler(t: SamplerTargets, everyMs = 1000): { stop(): { tracked: Tracked[]; samples: Sample[] } } {
  const tracked = new Map<string, Tracked>();
  for (const k of t.kamailio) tracked.set(k.key, k);
  t.devicePids.forEach((pid, i) => tracked.set(`d:${pid}`, { key: `d:${pid}`, role: 'devices', name: `sipp device ${i + 1} (pid ${pid})` }));
  let caller: number | undefined;
  const samples: Sample[] = [];
  const take = (): void => {
    for (const s of serviceThreads(t.servicePid)) if (!tracked.has(s.key)) tracked.set(s.key, s);
    caller ??= findCaller(t.callerMarker);
    if (caller !== undefined && !tracked.has(`c:${caller}`)) tracked.set(`c:${caller}`, { key: `c:${caller}`, role: 'caller', name: `sipp caller (pid ${caller})` });
    const ticks = new Map<string, number>();
    for (const [key] of tracked) {
      const id = key.slice(2);
      const path = key.startsWith('s:') ? `/proc/${t.servicePid}/task/${id}/stat` : `/proc/${id}/stat`;
      const v = ticksOf(path);
      if (v !== undefined) ticks.set(key, v);
    }
    let machine: MachineTicks | undefined;
    try {
      machine = machineTicks(readFileSync('/proc/stat', 'utf8'));
    } catch {
      machine = undefined;
    }
    samples.push({ atMs: performance.now(), ticks, ...(machine ? { machine } : {}) });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return { tracked: [...tracked.values()], samples };
    },
  };
}
