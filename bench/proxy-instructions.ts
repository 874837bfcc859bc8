/**
 * `npm run bench:proxy:instructions` — what the PF costs Kamailio per call, counted in
 * instructions by valgrind's callgrind, bare and PF side by side (not a test).
 *
 * The same set-up as `npm run bench:proxy` (kamailio-cfg/lab.cfg bare or with the PF in
 * proxy mode, the service, a user with 2 devices: one answers and lingers for Timer J
 * after the BYE (lab/sipp/uas-answer-linger.xml), one rings and gets CANCEL; sipp runs
 * whole calls), with every Kamailio process under callgrind. Each mode
 * is started twice: once for CALLS calls at RATE calls/s, once left idle for as long;
 * the difference of the two totals (every Kamailio process), divided by CALLS, is
 * Kamailio's instructions per call: start-up, REGISTERs and timers cancel out.
 * Instruction counts do not move with the machine's load, so this figure is the one
 * that tells a change to pf.cfg apart where the calls/s of bench:proxy cannot (its
 * repetitions spread by ±15% on a shared 2-core machine). It covers Kamailio only, user
 * space only: not the kernel, not the service (bench:service:dispatch), not sipp.
 *
 * Env: CALLS (400), RATE (40), REPS (3), MODES (bare,pf), TOP (15: functions listed with
 * the most instructions added per call by the PF, 0 for none).
 * Needs valgrind (Debian package `valgrind`; installed here when missing).
 */
import { execFileSync, execSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Service, Kamailio, runDir } from '../lab/lab.js';
import { Device, newInstance, vars } from '../lab/calls.js';
import { runSipp } from '../lab/sipp.js';
import { median } from './stats.js';

const CALLS = Number(process.env.CALLS ?? 400);
const RATE = Number(process.env.RATE ?? 40);
const REPS = Number(process.env.REPS ?? 3);
const TOP = Number(process.env.TOP ?? 15);
type Mode = 'bare' | 'pf';
const MODES = (process.env.MODES ?? 'bare,pf').split(',') as Mode[];

function ensureValgrind(): void {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('installing valgrind (apt-get)');
    const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
    execSync(`${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind`, { stdio: 'inherit' });
  }
}

/** Sum of the `summary:` (total Ir) of every callgrind output file in `dir`. */
function totalInstructions(dir: string): { total: number; processes: number } {
  let total = 0;
  let processes = 0;
  for (const f of readdirSync(dir)) {
    if (!f.startsWith('cg.')) continue;
    const m = /^summary: (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    if (!m) throw new Error(`${f}: no summary line (a Kamailio process did not exit cleanly)`);
    total += Number(m[1]);
    processes++;
  }
  return { total, processes };
}

/** Self instructions per function over every output file in `dir` (callgrind_annotate). */
function perFunction(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of readdirSync(dir)) {
    if (!f.startsWith('cg.')) continue;
    const text = execFileSync('callgrind_annotate', ['--threshold=100', join(dir, f)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    for (const line of text.split('\n')) {
      const m = /^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$/.exec(line);
      if (!m || !m[2]!.includes(':')) continue;
      const name = m[2]!.replace(/^\?\?\?:/, '').replace(/ \[[^\]]*\/([^/\]]+)\]$/, ' [$1]');
      out.set(name, (out.get(name) ?? 0) + Number(m[1]!.replaceAll(',', '')));
    }
  }
  return out;
}

/** One Kamailio life under callgrind: `calls` calls (0: idle as long). Returns the output dir. */
async function run(mode: Mode, calls: number, dir: string): Promise<string> {
  const cg = join(dir, 'callgrind');
  mkdirSync(cg, { recursive: true });
  const service = await Service.start({ dir, logLevel: 'warn' });
  const kamailio = await Kamailio.start({
    dir,
    rpc: [{ port: service.rpcPort }],
    bare: mode === 'bare',
    children: 4,
    rpcTimeoutMs: 5000,
    memMb: 256,
    defines: ['PF_XLOG_LEVEL="L_DBG"'],
    wrapper: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${cg}/cg.%p`, '--dump-instr=no'],
  });
  const devices = [
    await Device.start({ dir, sipPort: kamailio.sipPort, user: 'bench', instance: newInstance(), behaviour: { kind: 'linger' }, ringing: false, trace: false }),
    await Device.start({ dir, sipPort: kamailio.sipPort, user: 'bench', instance: newInstance(), behaviour: { kind: 'ring' }, ringing: false, trace: false }),
  ];
  try {
    const seconds = CALLS / RATE;
    if (calls > 0) {
      const r = await runSipp({
        scenario: 'uac-call.xml',
        dir: join(dir, 'calls'),
        remote: `127.0.0.1:${kamailio.sipPort}`,
        vars: vars({ dir, sipPort: kamailio.sipPort, to: 'bench', contributionId: 'bench-[pid]-[call_number]' }, 200, 0),
        calls,
        extraArgs: ['-r', String(RATE), '-rp', '1000', '-recv_timeout', '20000'],
        timeoutMs: (seconds + 120) * 1000,
        name: 'calls',
        trace: false,
      });
      if (r.code !== 0) throw new Error(`${mode}: sipp exit ${String(r.code)}: ${/Failed call[^\n]*/.exec(r.output)?.[0] ?? ''}`);
    } else {
      await new Promise((res) => setTimeout(res, seconds * 1000));
    }
    // let the last BYEs and the htable/tm timers settle the same way in both runs
    await new Promise((res) => setTimeout(res, 3000));
  } finally {
    await Promise.all(devices.map((d) => d.stop()));
    // every process under callgrind writes its profile on exit, which takes longer than the
    // usual 5 s: a SIGKILL before that loses the main process's summary
    await kamailio.stop(120_000);
    await service.stop();
  }
  return cg;
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
const spread = (xs: number[]): string => `${fmt(median(xs))} (min ${fmt(Math.min(...xs))}, max ${fmt(Math.max(...xs))})`;

ensureValgrind();
const root = runDir('bench-proxy-instr');
const perCall: Record<Mode, number[]> = { bare: [], pf: [] };
const fnDirs: Partial<Record<Mode, { busy: string; idle: string }>> = {};
for (let rep = 1; rep <= REPS; rep++) {
  // modes alternate, the order rotating per repetition
  const order = MODES.map((_, i) => MODES[(i + rep - 1) % MODES.length]!);
  for (const mode of order) {
    const busy = await run(mode, CALLS, join(root, `${mode}-${rep}-calls`));
    const idle = await run(mode, 0, join(root, `${mode}-${rep}-idle`));
    const b = totalInstructions(busy);
    const i = totalInstructions(idle);
    const n = (b.total - i.total) / CALLS;
    perCall[mode].push(n);
    fnDirs[mode] ??= { busy, idle };
    console.log(`  repetition ${rep} ${mode}: ${fmt(n)} instructions per call (${b.processes} Kamailio processes)`);
  }
}

console.log(`
Kamailio instructions per call (callgrind, every Kamailio process, user space), ${CALLS} calls at ${RATE}/s
minus an idle run as long, ${REPS} repetitions (median (min, max)):
`);
for (const mode of MODES) console.log(`  ${mode.padEnd(5)} ${spread(perCall[mode])}`);
if (perCall.bare.length && perCall.pf.length) {
  const ratios = perCall.pf.map((p, i) => p / perCall.bare[i]!);
  const extra = perCall.pf.map((p, i) => p - perCall.bare[i]!);
  console.log(`  pf / bare ${median(ratios).toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)})`);
  console.log(`  pf - bare ${spread(extra)} instructions per call`);
}
const bareDirs = fnDirs.bare;
const pfDirs = fnDirs.pf;
if (TOP > 0 && bareDirs && pfDirs) {
  // what the PF adds, by function (self instructions per call, first repetition)
  const delta = (d: { busy: string; idle: string }): Map<string, number> => {
    const busy = perFunction(d.busy);
    const idle = perFunction(d.idle);
    const out = new Map<string, number>();
    for (const [k, v] of busy) out.set(k, (v - (idle.get(k) ?? 0)) / CALLS);
    return out;
  };
  const pf = delta(pfDirs);
  const bare = delta(bareDirs);
  const rows = [...new Set([...pf.keys(), ...bare.keys()])]
    .map((k): [string, number, number] => [k, pf.get(k) ?? 0, bare.get(k) ?? 0])
    .sort((a, b) => b[1] - b[2] - (a[1] - a[2]))
    .slice(0, TOP);
  console.log(`\n  Functions with the most instructions the PF adds per call (self, first repetition): pf - bare (pf, bare)`);
  for (const [k, p, b] of rows) console.log(`    ${fmt(p - b).padStart(8)} (${fmt(p)}, ${fmt(b)})  ${k}`);
}
