/**
 * `npm run faults:proxy` — proxy mode under faults (docs/reliability.md "Fault runs").
 *
 * For each fault, a fresh lab (bench/soak-lib.ts: Kamailio with lab.cfg, the service, the
 * callee "bench" with two devices registered once for 7200 s, USERS users re-registering
 * every REG_EXPIRES/2 s) and sipp calling "bench" at RATE calls/s with per-second
 * statistics. PRE_S seconds of steady load, the fault, POST_S seconds more, then sipp's
 * soft quit (the calls in flight end normally). Printed per fault: the calls in flight at
 * injection, calls completed and failed before and from the injection on, the failures
 * by cause (sipp's error log: 503 to the INVITE, timeouts, ...), Kamailio's fail-safe
 * count ("PF: no decision" lines: answered 503 with the default PF_FAILSAFE_REJECT,
 * relayed without PF treatment with FAILSAFE=relay), the time until full service came
 * back (from the injection to the first of 3 consecutive seconds with at least 90 % of
 * RATE completed and none failed), REGISTERs failed during the run, and usrloc contacts
 * before and after.
 *
 * Faults (FAULTS, comma list; default all):
 *   kill        the service SIGKILLed, restarted RESTART_S (2) s later on the same ports and data
 *   freeze      the service SIGSTOPped for FREEZE_S (3) s, then SIGCONT
 *   kill-one    two instances in janssonrpcc's group (one data dir), the first one SIGKILLed
 *   kamailio    Kamailio stopped and started again on the same port (usrloc is in memory)
 *   xdms        the service on an external XDMS (xdm.url, an HTTP server in this process
 *               answering 404: no documents) that stops answering for OUTAGE_S (10) s
 *               (accepts, never replies: each fetch waits out xdm.timeoutMs)
 *   disk-full   the service's data dir on a 4 MiB tmpfs (needs root), filled to the last
 *               byte for OUTAGE_S s, then freed
 *
 * Env: RATE (100), PRE_S (5), POST_S (20), USERS (50), REG_EXPIRES (20), FAILSAFE
 * (reject|relay; reject), RPC_TIMEOUT_MS (1000), CORE_LOOKUP (1: the core forks by usrloc
 * lookup(), not through the service), RUN_DIR.
 * Exit status 0 whatever the outcome: the figures are the result (docs/reliability.md
 * states the expected outcome of each).
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync, rmSync, statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { Kamailio, runDir, ROOT } from '../lab/lab.js';
import { freePort } from '../lab/proc.js';
import { startProxyLab, startService, Population, Load, classifyErrors, kamStat, sleep, type ProxyLab, type StatRow } from './soak-lib.js';

const RATE = Number(process.env.RATE ?? 100);
const PRE_S = Number(process.env.PRE_S ?? 5);
const POST_S = Number(process.env.POST_S ?? 20);
const USERS = Number(process.env.USERS ?? 50);
const REG_EXPIRES = Number(process.env.REG_EXPIRES ?? 20);
const FAILSAFE = process.env.FAILSAFE === 'relay' ? 'relay' : 'reject';
const RPC_TIMEOUT_MS = Number(process.env.RPC_TIMEOUT_MS ?? 1000);
/**
 * The lab's SIP core forks with the service's matcher (core.fork): with the service down,
 * an INVITE the PF relays untreated still fails there. CORE_LOOKUP=1 builds lab.cfg with
 * LAB_CORE_LOOKUP (registrar lookup()), a core that does not depend on the service.
 */
const CORE_LOOKUP = process.env.CORE_LOOKUP === '1';
const RESTART_S = Number(process.env.RESTART_S ?? 2);
const FREEZE_S = Number(process.env.FREEZE_S ?? 3);
const OUTAGE_S = Number(process.env.OUTAGE_S ?? 10);
const ALL = ['kill', 'freeze', 'kill-one', 'kamailio', 'xdms', 'disk-full'] as const;
type Fault = (typeof ALL)[number];
const FAULTS = (process.env.FAULTS ?? ALL.join(',')).split(',').filter((f): f is Fault => (ALL as readonly string[]).includes(f));

const root = resolve(process.env.RUN_DIR ?? runDir('faults-proxy', join(ROOT, 'run')));
mkdirSync(root, { recursive: true });

/** An external XDMS for the xdms fault: 404 to every GET (nobody has documents); `hang` holds requests unanswered. */
class Xdms {
  hang = false;
  requests = 0;
  private readonly held = new Set<Socket>();
  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<Xdms> {
    const port = await freePort();
    const server = createServer();
    const x = new Xdms(server, port);
    server.on('request', (req, res) => {
      x.requests++;
      if (x.hang) {
        x.held.add(req.socket);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such document');
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return x;
  }

  /** End the outage: the held connections are closed (the service sees a reset). */
  release(): void {
    this.hang = false;
    for (const s of this.held) s.destroy();
    this.held.clear();
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

interface Outcome {
  fault: Fault;
  note: string;
  inFlight: number;
  before: { ok: number; failed: number };
  after: { ok: number; failed: number };
  causes: Map<string, number>;
  failsafe: number;
  recoveredS: number | null;
  /** calls completed in the last 3 s: the callee's devices, registered once before the load, still reached */
  devicesReached: boolean;
  regOk: number;
  regFailed: number;
  regCauses: Map<string, number>;
  contactsBefore: number;
  contactsAfter: number;
  perSecond: string;
}

const countLines = (file: string, re: RegExp): number => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => re.test(l)).length;
  } catch {
    return 0;
  }
};

async function runFault(fault: Fault): Promise<Outcome> {
  const dir = join(root, fault);
  mkdirSync(dir, { recursive: true });
  let note = '';
  let xdms: Xdms | undefined;
  let tmpfs = '';
  const dataDir = join(dir, 'service-data');
  if (fault === 'xdms') xdms = await Xdms.start();
  if (fault === 'disk-full') {
    mkdirSync(dataDir, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dataDir]);
      tmpfs = dataDir;
    } catch (err) {
      return notApplicable(fault, `tmpfs mount failed (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): needs root`);
    }
  }
  let lab: ProxyLab | undefined;
  try {
    lab = await startProxyLab({
      dir,
      instances: fault === 'kill-one' ? 2 : 1,
      failsafe: FAILSAFE,
      rpcTimeoutMs: RPC_TIMEOUT_MS,
      dataDir,
      ...(CORE_LOOKUP ? { defines: ['LAB_CORE_LOOKUP'] } : {}),
      ...(xdms ? { xdmUrl: `http://127.0.0.1:${xdms.port}/xcap-root` } : {}),
    });
    const l = lab;
    const pop = new Population(() => l.sipPort, USERS, REG_EXPIRES);
    pop.start();
    // sipp gives up on a missing response after 5 s (the freeze and a restart fit in it)
    const load = await Load.start({ dir: join(dir, 'calls'), sipPort: l.sipPort, rate: RATE, statEveryS: 1, name: fault, recvTimeoutMs: 5000 });
    await sleep(PRE_S * 1000);
    const contactsBefore = kamStat(l.ctl, 'location_contacts');
    const kamLog = join(dir, 'kamailio.log');
    const failsafe0 = countLines(kamLog, /PF: no decision/);
    const atInject = load.rows().at(-1);
    const tInject = (Date.now() - load.startedAt) / 1000;
    const svc = l.services[0]!;
    switch (fault) {
      case 'kill': {
        await svc.proc.kill();
        await sleep(RESTART_S * 1000);
        const t = Date.now();
        l.services[0] = await startService(svc.opts);
        note = `service SIGKILLed, started again ${RESTART_S} s later (ready in ${((Date.now() - t) / 1000).toFixed(1)} s)`;
        break;
      }
      case 'freeze':
        process.kill(svc.proc.pid!, 'SIGSTOP');
        await sleep(FREEZE_S * 1000);
        process.kill(svc.proc.pid!, 'SIGCONT');
        note = `service SIGSTOPped for ${FREEZE_S} s`;
        break;
      case 'kill-one':
        await svc.proc.kill();
        note = 'first of two instances (priority 10; the other 20) SIGKILLed, not restarted';
        break;
      case 'kamailio': {
        const t = Date.now();
        await l.kamailio.stop();
        l.kamailio = await Kamailio.start(l.kamOpts);
        note = `Kamailio stopped and started again (${((Date.now() - t) / 1000).toFixed(1)} s down)`;
        break;
      }
      case 'xdms': {
        const r0 = xdms!.requests;
        xdms!.hang = true;
        await sleep(OUTAGE_S * 1000);
        xdms!.release();
        note = `external XDMS not answering for ${OUTAGE_S} s (${xdms!.requests - r0} fetches during it)`;
        break;
      }
      case 'disk-full': {
        const fill = join(dataDir, 'fill');
        const st = statfsSync(dataDir);
        const free = Number(st.bavail) * Number(st.bsize);
        // fill to the last block; dd stops with ENOSPC (exit 1), which is the point
        try {
          execFileSync('dd', ['if=/dev/zero', `of=${fill}`, 'bs=4096'], { stdio: 'ignore' });
        } catch {
          // ENOSPC
        }
        const left = Number(statfsSync(dataDir).bavail) * Number(statfsSync(dataDir).bsize);
        await sleep(OUTAGE_S * 1000);
        rmSync(fill, { force: true });
        note = `data dir (4 MiB tmpfs, ${(free / 1024).toFixed(0)} KiB free) filled to ${left} bytes free for ${OUTAGE_S} s, then freed; service ${svc.proc.running ? 'still running' : `exited (${String(svc.proc.exitCode)})`}`;
        break;
      }
    }
    await sleep(POST_S * 1000);
    await load.stop();
    await pop.stop();
    const contactsAfter = kamStat(l.ctl, 'location_contacts');
    const rows = load.rows();
    const o = summarise(fault, note, rows, atInject, tInject, load.errors());
    return {
      ...o,
      failsafe: countLines(kamLog, /PF: no decision/) - failsafe0,
      regOk: pop.ok,
      regFailed: pop.failed,
      regCauses: pop.causes,
      contactsBefore,
      contactsAfter,
    };
  } finally {
    await lab?.stop();
    await xdms?.stop();
    if (tmpfs) {
      try {
        execFileSync('umount', [tmpfs]);
      } catch {
        // busy: left mounted, named in the output
        console.log(`  (could not unmount ${tmpfs})`);
      }
    }
  }
}

function notApplicable(fault: Fault, note: string): Outcome {
  return {
    fault, note: `N/A: ${note}`, inFlight: 0, before: { ok: 0, failed: 0 }, after: { ok: 0, failed: 0 }, causes: new Map(), failsafe: 0,
    recoveredS: null, devicesReached: false, regOk: 0, regFailed: 0, regCauses: new Map(), contactsBefore: NaN, contactsAfter: NaN, perSecond: '',
  };
}

function summarise(
  fault: Fault, note: string, rows: StatRow[], atInject: StatRow | undefined, tInject: number, errors: string,
): Pick<Outcome, 'fault' | 'note' | 'inFlight' | 'before' | 'after' | 'causes' | 'recoveredS' | 'devicesReached' | 'perSecond'> {
  const before = { ok: atInject?.success ?? 0, failed: atInject?.failed ?? 0 };
  const end = rows.at(-1);
  const after = { ok: (end?.success ?? 0) - before.ok, failed: (end?.failed ?? 0) - before.failed };
  // per-second deltas from the injection on
  const secs: { t: number; ok: number; failed: number }[] = [];
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    secs.push({ t: b.t, ok: b.success - a.success, failed: b.failed - a.failed });
  }
  const from = secs.filter((s) => s.t >= Math.floor(tInject));
  let recoveredS: number | null = null;
  for (let i = 0; i + 2 < from.length; i++) {
    const w = from.slice(i, i + 3);
    if (w.every((s) => s.failed === 0 && s.ok >= 0.9 * RATE)) {
      recoveredS = Math.max(0, w[0]!.t - 1 - tInject);
      break;
    }
  }
  const perSecond = secs
    .filter((s) => s.t >= Math.floor(tInject) - 2 && s.t <= tInject + POST_S)
    .map((s) => `${s.t}s:${s.ok}/${s.failed}`)
    .join(' ');
  const lastOk = secs.filter((s) => s.t > tInject + POST_S - 3 && s.t <= tInject + POST_S).reduce((a, s) => a + s.ok, 0);
  return { fault, note, inFlight: atInject?.current ?? 0, before, after, causes: classifyErrors(errors).byCause, recoveredS, devicesReached: lastOk > 0, perSecond };
}

const load0 = loadavg()[0] ?? NaN;
console.log(`faults: ${FAULTS.join(', ')} at ${RATE} calls/s (fail-safe ${FAILSAFE}, RPC timeout ${RPC_TIMEOUT_MS} ms, core fork by ${CORE_LOOKUP ? 'usrloc lookup()' : 'the service (core.fork)'}); run dir ${root}; load average ${load0.toFixed(2)}`);
const outcomes: Outcome[] = [];
for (const f of FAULTS) {
  console.log(`\n-- ${f}`);
  let o: Outcome;
  try {
    o = await runFault(f);
  } catch (err) {
    o = notApplicable(f, `run failed: ${err instanceof Error ? err.message.split('\n').slice(0, 3).join(' ') : String(err)}`);
  }
  outcomes.push(o);
  const lines = [
    `fault ${o.fault}: ${o.note}`,
    ...(o.note.startsWith('N/A') ? [] : [
      `  in flight at injection: ${o.inFlight} calls`,
      `  before: ${o.before.ok} completed, ${o.before.failed} failed; from the injection on: ${o.after.ok} completed, ${o.after.failed} failed`,
      ...[...o.causes].map(([c, n]) => `    ${n} × ${c}`),
      `  Kamailio fail-safe (PF: no decision): ${o.failsafe} INVITEs (${FAILSAFE === 'reject' ? 'answered 503' : 'relayed without PF treatment'})`,
      `  full service back ${o.recoveredS === null ? `NOT within ${POST_S} s` : `after ${o.recoveredS.toFixed(0)} s`} (3 s in a row with >= 90 % of ${RATE} calls/s completed, none failed)`,
      `  the callee's two devices (registered once, before the load) reached at the end: ${o.devicesReached ? 'yes' : 'NO'}`,
      `  REGISTERs ok ${o.regOk}, failed ${o.regFailed}${[...o.regCauses].map(([c, n]) => ` (${n} × ${c})`).join('')}; usrloc contacts before ${o.contactsBefore}, after ${o.contactsAfter}`,
      `  per second (t: completed/failed): ${o.perSecond}`,
    ]),
  ];
  console.log(lines.join('\n'));
  writeFileSync(join(root, `${f}.txt`), lines.join('\n') + '\n');
}
console.log(`\nSummary (${RATE} calls/s, fail-safe ${FAILSAFE}; load average at start ${load0.toFixed(2)}, at end ${(loadavg()[0] ?? NaN).toFixed(2)}):`);
console.log('  fault      in flight  completed  failed  fail-safe  back after  REGISTER failed');
for (const o of outcomes) {
  console.log(
    `  ${o.fault.padEnd(10)} ${String(o.inFlight).padStart(9)}  ${String(o.after.ok).padStart(9)}  ${String(o.after.failed).padStart(6)}  ${String(o.failsafe).padStart(9)}  ${(o.recoveredS === null ? '-' : `${o.recoveredS.toFixed(0)} s`).padStart(10)}  ${String(o.regFailed).padStart(15)}${o.note.startsWith('N/A') ? `  ${o.note}` : ''}`,
  );
}
process.exit(0);
