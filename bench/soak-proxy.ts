/**
 * `npm run soak:proxy` — proxy mode under sustained load (docs/reliability.md "Soak").
 *
 * Kamailio (lab.cfg, the PF in proxy mode, ctl for kamcmd) in front of the decision service;
 * the callee "bench" has two devices (sipp UAS: one answers, one rings and gets CANCEL);
 * USERS users register and re-register every REG_EXPIRES/2 s; sipp uac-call.xml calls
 * "bench" at RATE calls/s (INVITE/200/ACK/BYE) for DURATION minutes.
 * Each SAMPLE_S seconds: calls completed and failed (by sipp's cause), REGISTERs ok and
 * failed, Kamailio's shared memory (core.shmmem real_used) and usrloc contacts, the
 * service's JavaScript heap (diagnostic report on SIGUSR2), its RSS and open fds,
 * Kamailio's open fds (all its processes), the pf.invite decision p50/p99 over the
 * interval (pf_decision_duration_seconds). Writes soak.csv, soak.png/.svg and summary.txt
 * in the run dir; failed calls by cause from sipp's error log (-trace_err), and for a
 * "404 to the BYE", that call's sipp error lines and Kamailio log lines in bye-404-*.log.
 *
 * Targets (exit 1 if missed): zero failed calls and REGISTERs; flat memory (each series'
 * least-squares slope after the warm-up, projected over an hour, under MEM_PCT_PER_H
 * percent of its mean); no p99 step (median p99 of the second half of the run at most
 * 1.5× that of the first half, or within 0.5 ms of it).
 *
 * The heap is the lowest of the interval's readings (one every HEAP_EVERY_S, 10 s): without
 * a forced GC a single reading is anywhere on the sawtooth. The service's RSS is judged as
 * the heap in use and "RSS less JS heap" (RSS minus the heap's committed size): V8 sizes
 * its young generation to the allocation rate, a bounded step of RSS that is not a leak. Slopes leave out WARMUP_MIN
 * (min(5, DURATION/3)) minutes and need 5 samples after it (else "not judged").
 *
 * Bad input (BAD_INPUT=0 turns it off): a second sender beside the load, BAD_RATE (4)
 * messages/s of malformed requests, INVITEs with an oversized header, INVITE floods for
 * one user and REGISTERs with 65 Contacts (soak-lib.ts BadInput); the summary counts what
 * each kind got back.
 *
 * Env: DURATION minutes (30), RATE calls/s (400: about half of what bench:proxy sustained
 * with the PF on the reference machines; set it to half of this machine's figure), USERS (200),
 * REG_EXPIRES s (60), SAMPLE_S (60), CHILDREN Kamailio children (4), MEM_PCT_PER_H (10),
 * RUN_DIR (default run/soak-proxy-*).
 */
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { runDir, ROOT } from '../lab/lab.js';
import {
  startProxyLab, Population, Load, classifyErrors, kamShm, kamStat, serviceHeap, rss, openFds, groupFds,
  metricsText, sleep, udpDrops, BadInput,
} from './soak-lib.js';
import { histogram, histMinus, quantileMs, type Hist } from './decision-histogram.js';
import { plotSeries, type Point } from './plot-lib.js';

const DURATION_MIN = Number(process.env.DURATION ?? 30);
const RATE = Number(process.env.RATE ?? 400);
const USERS = Number(process.env.USERS ?? 200);
const REG_EXPIRES = Number(process.env.REG_EXPIRES ?? 60);
const SAMPLE_S = Number(process.env.SAMPLE_S ?? 60);
const CHILDREN = Number(process.env.CHILDREN ?? 4);
const MEM_PCT_PER_H = Number(process.env.MEM_PCT_PER_H ?? 10);
const HEAP_EVERY_S = Number(process.env.HEAP_EVERY_S ?? 10);
/** The bad-input sender beside the load (BAD_INPUT=0: off) and its rate in messages/s. */
const BAD_INPUT = process.env.BAD_INPUT !== '0';
const BAD_RATE = Number(process.env.BAD_RATE ?? 4);
/** Samples before this are warm-up (JIT, first registrations, allocator pools) and left out of the slopes. */
const WARMUP_MIN = Number(process.env.WARMUP_MIN ?? Math.min(5, DURATION_MIN / 3));
/** Fewer steady samples than this: too short to judge a slope (reported, not failed). */
const MIN_SLOPE_SAMPLES = 5;

const dir = resolve(process.env.RUN_DIR ?? runDir('soak-proxy', join(ROOT, 'run')));
mkdirSync(dir, { recursive: true });
const MiB = 1024 * 1024;

interface Sample {
  minute: number;
  callsOk: number;
  callsFailed: number;
  causes: string;
  regOk: number;
  regFailed: number;
  kamShmMiB: number;
  usrlocContacts: number;
  svcHeapMiB: number;
  svcRssMiB: number;
  svcNativeMiB: number;
  svcFds: number;
  kamFds: number;
  p50Ms: number;
  p99Ms: number;
  load1: number;
}

const load0 = loadavg()[0] ?? NaN;
console.log(`soak: ${DURATION_MIN} min at ${RATE} calls/s, ${USERS} users re-registering every ${REG_EXPIRES / 2} s; run dir ${dir}; load average ${load0.toFixed(2)}`);
const lab = await startProxyLab({ dir, children: CHILDREN });
const svc = lab.services[0]!;
const pop = new Population(() => lab.sipPort, USERS, REG_EXPIRES);
pop.start();
const load = await Load.start({ dir: join(dir, 'calls'), sipPort: lab.sipPort, rate: RATE, statEveryS: SAMPLE_S, name: 'soak' });
// the INVITE flood goes to a population user whose Contact nobody listens on
const bad = BAD_INPUT ? await BadInput.start({ sipPort: lab.sipPort, rate: BAD_RATE, floodUser: 'soak0000' }) : null;

const samples: Sample[] = [];
let prevHist: Hist = histogram(await metricsText(svc), 'pf.invite');
let prevOk = 0;
let prevFailed = 0;
let prevCauses: Record<string, number> = {};
let prevRegOk = 0;
let prevRegFailed = 0;
const t0 = Date.now();
let stopping = false;
process.once('SIGINT', () => {
  stopping = true;
});

for (let i = 1; i <= Math.ceil((DURATION_MIN * 60) / SAMPLE_S) && !stopping; i++) {
  const due = t0 + i * SAMPLE_S * 1000;
  // the heap without a forced GC is a sawtooth: the interval's lowest reading (one every
  // HEAP_EVERY_S) stands for what survives collection
  let heapMin = Infinity;
  let committed = NaN;
  let nextHeap = Date.now();
  while (Date.now() < due && !stopping) {
    if (Date.now() >= nextHeap) {
      const heap = await serviceHeap(svc);
      heapMin = Math.min(heapMin, heap.used);
      committed = heap.committed;
      nextHeap = Date.now() + HEAP_EVERY_S * 1000;
    }
    await sleep(Math.max(0, Math.min(1000, due - Date.now())));
  }
  const text = await metricsText(svc).catch(() => '');
  const h = histogram(text, 'pf.invite');
  const d = histMinus(h, prevHist);
  prevHist = h;
  // sipp writes its row at the same period; take the newest
  const row = load.rows().at(-1);
  const ok = row?.success ?? prevOk;
  const failed = row?.failed ?? prevFailed;
  const causes = row?.causes ?? prevCauses;
  const deltaCauses = Object.entries(causes)
    .map(([k, v]) => [k, v - (prevCauses[k] ?? 0)] as const)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k.replace(/^Failed/, '')}=${v}`)
    .join(' ');
  const s: Sample = {
    minute: Number((((Date.now() - t0) / 1000) / 60).toFixed(2)),
    callsOk: ok - prevOk,
    callsFailed: failed - prevFailed,
    causes: deltaCauses,
    regOk: pop.ok - prevRegOk,
    regFailed: pop.failed - prevRegFailed,
    kamShmMiB: kamShm(lab.ctl).used / MiB,
    usrlocContacts: kamStat(lab.ctl, 'location_contacts'),
    svcHeapMiB: (Number.isFinite(heapMin) ? heapMin : (await serviceHeap(svc)).used) / MiB,
    svcRssMiB: rss(svc.proc.pid) / MiB,
    // RSS less the heap's committed size: V8 grows its young generation with the
    // allocation rate (8 to 32 MiB), a bounded step of RSS that is not a leak; the rest is
    // native memory (LMDB's pages, buffers, code)
    svcNativeMiB: (rss(svc.proc.pid) - committed) / MiB,
    svcFds: openFds(svc.proc.pid),
    kamFds: groupFds(lab.kamailio.proc.pid),
    p50Ms: quantileMs(d, 0.5),
    p99Ms: quantileMs(d, 0.99),
    load1: loadavg()[0] ?? NaN,
  };
  [prevOk, prevFailed, prevCauses, prevRegOk, prevRegFailed] = [ok, failed, causes, pop.ok, pop.failed];
  samples.push(s);
  console.log(
    `  ${s.minute.toFixed(1).padStart(5)} min  calls ok ${s.callsOk} failed ${s.callsFailed}${s.causes ? ` (${s.causes})` : ''}  REGISTER ok ${s.regOk} failed ${s.regFailed}  ` +
      `shm ${s.kamShmMiB.toFixed(1)} MiB  heap ${s.svcHeapMiB.toFixed(1)} MiB  rss ${s.svcRssMiB.toFixed(1)} MiB (not heap ${s.svcNativeMiB.toFixed(1)})  fds ${s.svcFds}/${s.kamFds}  ` +
      `p50 ${s.p50Ms.toFixed(3)} p99 ${s.p99Ms.toFixed(3)} ms  contacts ${s.usrlocContacts}  load ${s.load1.toFixed(1)}`,
  );
}

// datagrams the kernel dropped (receive buffer full) at the lab's SIP sockets, read
// before the sockets close (docs/reliability.md "404 Not here on BYE")
const dropPorts = { kamailio: lab.sipPort, 'answer device': lab.devices[0]!.port, 'ring device': lab.devices[1]!.port, caller: load.agent.port };
const dropped = udpDrops(Object.values(dropPorts));
const drops = Object.entries(dropPorts).map(([k, p]) => `${k} ${dropped.get(p) ?? 'n/a'}`).join(', ');
// the flood's INVITEs end at Kamailio's fr_timer (30 s, lab.cfg): their 408s come in meanwhile
await Promise.all([load.stop(), bad?.stop(32_000)]);
await pop.stop();
// calls still counted by sipp's last row (written at exit)
const last = load.rows().at(-1);
const errors = classifyErrors(load.errors());
const kamLog = (): string => {
  try {
    return readFileSync(join(dir, 'kamailio.log'), 'utf8');
  } catch {
    return '';
  }
};
// a 404 to the BYE: keep that call's sipp error lines and Kamailio's log lines (log_prefix carries the Call-ID)
const bye404 = [...errors.byCall].find(([, c]) => /BYE/.test(c) && /\b404\b/.test(c));
if (bye404) {
  const [cid] = bye404;
  // the whole Call-ID only ("204-1013@…" is not "1204-1013@…")
  const re = new RegExp(`(?<![\\w-])${cid.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w.-])`);
  const sippLines = load.errors().split(/(?=\d{4}-\d\d-\d\d\t)/).filter((l) => re.test(l));
  const kamLines = kamLog().split('\n').filter((l) => re.test(l));
  writeFileSync(join(dir, `bye-404-${cid.replace(/[^\w.-]/g, '_')}.log`), ['# sipp -trace_err', ...sippLines, '', '# kamailio.log', ...kamLines, ''].join('\n'));
}
await lab.stop();

// ---------------------------------------------------------------- summary

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : NaN;
};

const totalOk = last?.success ?? samples.reduce((a, s) => a + s.callsOk, 0);
const totalFailed = last?.failed ?? samples.reduce((a, s) => a + s.callsFailed, 0);
const steady = samples.filter((s) => s.minute > WARMUP_MIN);
const judged = steady.length >= MIN_SLOPE_SAMPLES;
// the service's RSS is judged as its two parts: the JS heap in use, and what is not JS heap
const memChecks = (['kamShmMiB', 'svcHeapMiB', 'svcNativeMiB', 'svcFds', 'kamFds'] as const).map((k) => {
  // a missing reading (a diagnostic report that did not come) is left out, not read as 0
  const read = steady.filter((s) => Number.isFinite(s[k]));
  const xs = read.map((s) => s.minute);
  const ys = read.map((s) => s[k]);
  const perMin = slope(xs, ys);
  const mean = ys.reduce((a, b) => a + b, 0) / Math.max(1, ys.length);
  const pctPerH = mean ? (perMin * 60 * 100) / mean : 0;
  // too few readings of this series is a miss, not a pass
  return { k, perMin, pctPerH, flat: !judged || (read.length >= MIN_SLOPE_SAMPLES && pctPerH < MEM_PCT_PER_H) };
});
const half = Math.floor(steady.length / 2);
const p99a = median(steady.slice(0, half).map((s) => s.p99Ms));
const p99b = median(steady.slice(half).map((s) => s.p99Ms));
const p99Step = judged && Number.isFinite(p99a) && Number.isFinite(p99b) && p99b > 1.5 * p99a && p99b - p99a > 0.5;
const ok = totalFailed === 0 && pop.failed === 0 && memChecks.every((m) => m.flat) && !p99Step;

const header = Object.keys(samples[0] ?? {}).join(',');
const csv = [header, ...samples.map((s) => Object.values(s).map((v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : `"${v}"`)).join(','))].join('\n') + '\n';
writeFileSync(join(dir, 'soak.csv'), csv);

const points: Point[] = [];
for (const s of samples) {
  points.push(
    { t: s.minute, panel: 'calls per interval', series: 'failed calls', value: s.callsFailed },
    { t: s.minute, panel: 'calls per interval', series: 'failed REGISTERs', value: s.regFailed },
    { t: s.minute, panel: 'memory (MiB)', series: 'Kamailio shm used', value: s.kamShmMiB },
    { t: s.minute, panel: 'memory (MiB)', series: 'service JS heap', value: s.svcHeapMiB },
    { t: s.minute, panel: 'memory (MiB)', series: 'service RSS', value: s.svcRssMiB },
    { t: s.minute, panel: 'memory (MiB)', series: 'service RSS less JS heap', value: s.svcNativeMiB },
    { t: s.minute, panel: 'open fds', series: 'service fds', value: s.svcFds },
    { t: s.minute, panel: 'open fds', series: 'Kamailio fds (all processes)', value: s.kamFds },
    { t: s.minute, panel: 'pf.invite decision (ms)', series: 'p50', value: s.p50Ms },
    { t: s.minute, panel: 'pf.invite decision (ms)', series: 'p99', value: s.p99Ms },
  );
}
await plotSeries(points, { file: join(dir, 'soak'), title: `proxy-mode soak: ${RATE} calls/s, ${USERS} users re-registering, ${DURATION_MIN} min`, xTitle: 'minutes' });

const lines = [
  `Proxy-mode soak: ${((Date.now() - t0) / 60000).toFixed(1)} min at ${RATE} calls/s, ${USERS} users re-registering every ${REG_EXPIRES / 2} s, Kamailio ${CHILDREN} children`,
  `  load average at start ${load0.toFixed(2)}, median over the run ${median(samples.map((s) => s.load1)).toFixed(2)} (machine cores: see nproc)`,
  `  calls completed ${totalOk}, failed ${totalFailed}${totalFailed ? '' : ' (target 0: met)'}`,
  ...[...errors.byCause].map(([c, n]) => `    ${n} × ${c}`),
  ...(bad ? [`  bad input at ${BAD_RATE} messages/s beside the load:`, ...bad.summary().map((l) => `    ${l}`)] : ['  bad input: off (BAD_INPUT=0)']),
  `  UDP datagrams dropped by the kernel (receive buffer full): ${drops}`,
  `  REGISTERs ok ${pop.ok}, failed ${pop.failed}${[...pop.causes].map(([c, n]) => ` (${n} × ${c})`).join('')}`,
  `  slopes over ${steady.length} samples after ${WARMUP_MIN.toFixed(1)} min of warm-up${judged ? '' : ` (fewer than ${MIN_SLOPE_SAMPLES}: too short to judge, not counted against the targets)`}:`,
  ...memChecks.map((m) => `  ${m.k.padEnd(12)} slope ${m.perMin.toFixed(3)} /min = ${m.pctPerH.toFixed(1)} % of its mean per hour: ${!judged ? 'not judged' : m.flat ? 'flat' : 'GROWING'}`),
  `  pf.invite p99 median first half ${p99a.toFixed(3)} ms, second half ${p99b.toFixed(3)} ms: ${p99Step ? 'STEP' : 'no step'}`,
  ...(bye404 ? [`  a 404 to the BYE: call ${bye404[0]}, its sipp and Kamailio lines in bye-404-*.log`] : []),
  `  targets ${ok ? 'met' : 'MISSED'}; CSV ${join(dir, 'soak.csv')}, plot ${join(dir, 'soak.png')}`,
];
writeFileSync(join(dir, 'summary.txt'), lines.join('\n') + '\n');
console.log(`\n${lines.join('\n')}`);
process.exit(ok ? 0 : 1);
