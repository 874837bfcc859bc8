// CPU time and memory of lab processes, read from /proc (Linux only): shared by the proxy and B2BUA benchmarks.
import { readdirSync, readFileSync } from 'node:fs';

/** CPU time (ms) used so far by every process of a process group (/proc/<pid>/stat). */
export function groupCpuMs(pgid: number | undefined): number {
  if (pgid === undefined) return 0;
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    // fields after the ")" of comm: state ppid pgrp ... utime(14) stime(15)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) !== pgid) continue;
    ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks * 1000) / 100; // USER_HZ 100 on Linux
}

/** VmRSS of one process, bytes. */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) * 1024;
}
