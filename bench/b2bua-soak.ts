/**
 * `npm run soak:b2bua` — the B2BUA over time on real Kamailio (not a test): sessions
 * set up at a steady rate for minutes, each living a short random time with short
 * RFC 4028 session timers on every leg, some devices going silent (CR 8.3.2.4 expiry).
 * At the end nothing may be left: no B2BUA call, no relay session, no dialog a UA saw
 * still open, and memory flat. Figures and how to read them: docs/benchmarks.md
 * "B2BUA soak".
 *
 * Set-up as bench/b2bua.ts: the relay, the service with the B2BUA (multi-device policy
 * C: every device that answers stays, so a session is three SIP dialogs and three relay
 * legs; `b2bua.sessionTimerUnitMs` = UNIT_MS makes one RFC 4028 second last UNIT_MS ms
 * while the wire carries Session-Expires 90), Kamailio with lab.cfg. USERS served users
 * with two chat devices each, and the callers, are raw UDP user agents in this process
 * (lab/raw-ua.ts); a user is in one session at a time.
 *
 * Each session (RATE a second for DURATION_S): a caller INVITEs a free user; both devices
 * answer; the session lives LIFE_MIN_S..LIFE_MAX_S. With UNIT_MS 200 an interval of 90
 * lasts 18 s: the B2BUA ends a side 12 s after its last refresh, and refreshes a side
 * itself after 9 s (a 3 s margin for its answer: at UNIT_MS 100, 1.5 s, answers on a
 * loaded machine came later). The UAs refresh every REFRESH_MS (±20%), by UPDATE or
 * re-INVITE at random:
 * - the caller refreshes, or (CALLER_UAS of them) asks `refresher=uas` and the B2BUA
 *   refreshes it by UPDATE;
 * - a device refreshes (it answers `refresher=uas`, as offered), or (DEVICE_UAC of them)
 *   answers `refresher=uac` and the B2BUA refreshes it;
 * - SILENT_ONE of the sessions: one device stops refreshing at a random time at least 9 s
 *   before the caller hangs up: it must get BYE, the other device must not;
 * - SILENT_ALL: both devices stop: both get BYE and so does the caller (it never hangs up).
 * Otherwise the caller hangs up and each device must get BYE.
 *
 * Every minute: sessions started / established / ended by cause / failed by cause, the
 * B2BUA's calls (pf_b2bua_calls) and the relay's sessions (control ping), the service's
 * and the relay's heap after a full GC (inspector, `--inspect` on a free port), their
 * RSS and open fds (/proc), CPU by part, the load average. At the end, after the last
 * session ended and 64*T1: B2BUA calls 0, relay sessions 0, no UA dialog left open, heap
 * flat (the last minute against minute 2, and the least-squares slope over minutes 2..N).
 * A summary is printed, `soak.csv` written to the run dir; exit 1 if a target is missed.
 *
 * Env: RATE (50), DURATION_S (600), USERS (RATE*30), UNIT_MS (200), REFRESH_MS (3000),
 * LIFE_MIN_S (2), LIFE_MAX_S (20), SILENT_ONE (0.10), SILENT_ALL (0.05), CALLER_UAS (0.3),
 * DEVICE_UAC (0.2), T1_MS (500), CHILDREN (4), SHM_MB (1024), SERVICE_LOG (warn),
 * MAX_FAILED (0: sessions with a failure), MAX_HEAP_GROWTH_PCT (10), SERVICE_NODE_ARGS,
 * HEAP_SNAPSHOTS (1: SIGUSR2 to the service at both idle readings).
 */
import { join } from 'node:path';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Service, Kamailio, Relay, LAB_LEG_TOKEN, runDir } from '../lab/lab.js';
import { freePort } from '../lab/proc.js';
import { b2buaCounts, waitSettled, type B2buaCounts } from '../lab/b2bua-watch.js';
import { Caller, RawDevice, header, tag, type RawUa, type RawUaLab } from '../lab/raw-ua.js';
import { RelayControlClient } from '../media/relay/control-client.js';
import { groupCpuMs, rssBytes } from './proc-stat.js';
import { inspectMemory, type MemoryUsage } from './inspector.js';

const num = (k: string, dflt: number): number => {
  const v = Number(process.env[k] ?? dflt);
  if (!Number.isFinite(v)) throw new Error(`${k}: not a number`);
  return v;
};
const RATE = num('RATE', 50);
const DURATION_S = num('DURATION_S', 600);
const USERS = num('USERS', Math.ceil(RATE * 30));
const UNIT_MS = num('UNIT_MS', 200);
const REFRESH_MS = num('REFRESH_MS', 3000);
const LIFE_MIN_S = num('LIFE_MIN_S', 2);
const LIFE_MAX_S = num('LIFE_MAX_S', 20);
const SILENT_ONE = num('SILENT_ONE', 0.1);
const SILENT_ALL = num('SILENT_ALL', 0.05);
const CALLER_UAS = num('CALLER_UAS', 0.3);
const DEVICE_UAC = num('DEVICE_UAC', 0.2);
const T1_MS = num('T1_MS', 500);
const CHILDREN = num('CHILDREN', 4);
const SHM_MB = num('SHM_MB', 1024);
const SERVICE_LOG = process.env.SERVICE_LOG ?? 'warn';
/** Node options on the service's command line, e.g. `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=/tmp/x`. */
const SERVICE_NODE_ARGS = (process.env.SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** 1: SIGUSR2 to the service at the idle readings before and after (with SERVICE_NODE_ARGS' --heapsnapshot-signal). */
const HEAP_SNAPSHOTS = process.env.HEAP_SNAPSHOTS === '1';
const MAX_FAILED = num('MAX_FAILED', 0);
const MAX_HEAP_GROWTH_PCT = num('MAX_HEAP_GROWTH_PCT', 10);
/** The B2BUA ends a side this long after its last refresh (RFC 4028 §10: 90 − min(32, 90/3) = 60). */
const EXPIRY_MS = 60 * UNIT_MS;
/** A silent device stops at least this long before its caller hangs up: its expiry BYE comes first. */
const SILENT_LEAD_MS = EXPIRY_MS + 3000;
/** The UAs retransmit as RFC 3261 UAs over UDP do (lab/raw-ua.ts `udp`): a loaded machine drops datagrams. */
const UDP_TIMERS = { t1: 500, t2: 4000 };

// the service and the relay open an inspector on a free port (memory readings)
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0`.trim();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rand = (a: number, b: number): number => a + Math.random() * (b - a);
const jitter = (ms: number): number => ms * rand(0.8, 1.2);
const mib = (b: number): string => (b / 1048576).toFixed(1);

const fds = (pid: number | undefined): number => {
  try {
    return pid === undefined ? NaN : readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
};

// ---------------------------------------------------------------- the lab

const dir = runDir('soak-b2bua');
mkdirSync(dir, { recursive: true });
const relay = await Relay.start(dir);
const sipPort = await freePort();
const b2buaPort = await freePort();
const service = await Service.start({
  dir,
  logLevel: SERVICE_LOG,
  nodeArgs: SERVICE_NODE_ARGS,
  policy: { mode: 'b2bua' },
  b2bua: {
    sipPort: b2buaPort, proxyPort: sipPort, relayPort: relay.controlPort, legToken: LAB_LEG_TOKEN,
    multiDevice: 'C', sessionTimerUnitMs: UNIT_MS, t1Ms: T1_MS,
  },
});
const kamailio = await Kamailio.start({
  dir,
  sipPort,
  rpc: [{ port: service.rpcPort }],
  children: CHILDREN,
  rpcTimeoutMs: 2000,
  memMb: SHM_MB,
  defines: ['PF_XLOG_LEVEL="L_DBG"', `PF_B2BUA_URI="sip:127.0.0.1:${b2buaPort};transport=tcp"`, `PF_B2BUA_TOKEN="${LAB_LEG_TOKEN}"`],
});
const control = await RelayControlClient.connect('127.0.0.1', relay.controlPort);
for (const p of [service.proc, relay.proc]) await inspectMemory(p);
const live = (): Promise<B2buaCounts> => b2buaCounts(service, control);
const uaLab: RawUaLab = { sipPort, dir };

async function stopLab(): Promise<void> {
  for (const u of users) for (const d of u.devices) d.close();
  await control.close();
  await kamailio.stop();
  await service.stop();
  await relay.stop();
}

// ---------------------------------------------------------------- counters

const count = (m: Map<string, number>, k: string, n = 1): void => void m.set(k, (m.get(k) ?? 0) + n);
const totals = { started: 0, established: 0, skipped: 0, failedSessions: 0, active: 0, refreshes: 0 };
const endedBy = new Map<string, number>();
const failedBy = new Map<string, number>();
/** Dialogs a UA saw begin and not yet end: `<port>|<Call-ID>` (RFC 3261 §12). */
const openLegs = new Set<string>();
let strayByes = 0;
/** Datagrams the UAs sent again (RFC 3261 timers over UDP): how lossy the run was. */
let retransmissions = 0;

/** Track a UA's dialogs from what it receives: an initial INVITE (device) opens one, a BYE ends it. */
function watch(ua: RawUa): void {
  ua.onMessage = (m) => {
    if (m.startsWith('INVITE ') && tag(header(m, 'To')) === undefined) openLegs.add(`${ua.port}|${header(m, 'Call-ID')}`);
    else if (m.startsWith('BYE ') && !openLegs.delete(`${ua.port}|${header(m, 'Call-ID')}`)) strayByes++;
  };
}

// ---------------------------------------------------------------- users and sessions

interface User {
  readonly name: string;
  readonly devices: readonly [RawDevice, RawDevice];
}
const users: User[] = [];
const free: User[] = [];

async function registerUsers(): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < USERS) {
      const name = `soak${next++}`;
      const devices: [RawDevice, RawDevice] = [await RawDevice.start(uaLab, name, { expires: 7200 }), await RawDevice.start(uaLab, name, { expires: 7200 })];
      for (const d of devices) {
        watch(d);
        d.udp = UDP_TIMERS;
      }
      const u = { name, devices };
      users.push(u);
      free.push(u);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

type Silent = 'none' | 'one' | 'all';

const byeFor = (ua: RawUa, callId: string): string | undefined =>
  ua.requests('BYE').find((m) => header(m, 'Call-ID') === callId);

/**
 * Refresh `ua`'s dialog every REFRESH_MS (±20%) by UPDATE or re-INVITE until `stop()`;
 * a failed refresh counts unless the dialog ended meanwhile (a refresh crossing a BYE).
 */
function refreshLoop(ua: RawUa, who: string, stop: () => boolean, ended: () => boolean, fail: (cause: string) => void): Promise<void> {
  return (async () => {
    for (;;) {
      await sleep(jitter(REFRESH_MS));
      if (stop() || ended()) return;
      const method = Math.random() < 0.5 ? 'UPDATE' : 'INVITE';
      totals.refreshes++;
      try {
        const r = await ua.refresh(method);
        if (r.status !== 200 && !ended() && !stop()) fail(`${who} ${method} refresh ${r.status}`);
      } catch {
        if (!ended() && !stop()) fail(`${who} ${method} refresh: no answer`);
      }
    }
  })();
}

async function session(u: User): Promise<void> {
  const silent: Silent = ((x) => (x < SILENT_ALL ? 'all' : x < SILENT_ALL + SILENT_ONE ? 'one' : 'none'))(Math.random());
  const lifeMs = silent === 'none' ? rand(LIFE_MIN_S, LIFE_MAX_S) * 1000 : rand(Math.max(LIFE_MIN_S * 1000, SILENT_LEAD_MS + 3000), Math.max(LIFE_MAX_S * 1000, SILENT_LEAD_MS + 4000));
  const stopAt = silent === 'none' ? Infinity : rand(1000, lifeMs - SILENT_LEAD_MS);
  const callerUas = Math.random() < CALLER_UAS;
  // the silent ones refresh themselves until they stop; the others may leave it to us
  const devUac = [silent === 'none' && Math.random() < DEVICE_UAC, silent !== 'all' && Math.random() < DEVICE_UAC];
  for (const [i, d] of u.devices.entries()) {
    d.forget();
    d.dialog = null;
    d.se = devUac[i] ? '90;refresher=uac' : '90;refresher=uas';
  }
  let failed = false;
  const fail = (cause: string): void => {
    count(failedBy, cause);
    appendFileSync(join(dir, 'failures.log'), `${new Date().toISOString()} ${u.name} caller ${c?.callId ?? '-'} silent=${silent} callerUas=${callerUas} devUac=${devUac.join('/')} after ${Date.now() - t0} ms: ${cause}\n`);
    if (!failed) totals.failedSessions++;
    failed = true;
  };
  totals.started++;
  let c: Caller | null = null;
  const t0 = Date.now();
  c = await Caller.open(uaLab);
  c.udp = UDP_TIMERS;
  let ending = false;
  try {
    try {
      await c.establish(u.name, callerUas ? { headers: { 'Session-Expires': '90;refresher=uas' } } : {}, callerUas ? ['Allow: INVITE, ACK, CANCEL, BYE, UPDATE'] : []);
    } catch (err) {
      fail(/INVITE: \d+/.test(String(err)) ? String((err as Error).message) : 'INVITE: no answer');
      return;
    }
    const callLeg = `${c.port}|${c.callId}`;
    openLegs.add(callLeg);
    c.onMessage = (m) => {
      if (m.startsWith('BYE ')) openLegs.delete(callLeg);
    };
    totals.established++;
    totals.active++;
    try {
      // policy C: both devices are in (each got the INVITE and our ACK)
      const legs = await Promise.all(
        u.devices.map((d) =>
          d.request('ACK', 0, 10_000).then(
            () => d.dialog!.callId,
            () => null,
          ),
        ),
      );
      if (legs.some((l) => l === null)) fail('device leg not confirmed');
      const devEnded = (i: number): boolean => legs[i] == null || byeFor(u.devices[i]!, legs[i]!) !== undefined;
      const callerEnded = (): boolean => byeFor(c, c.callId) !== undefined;
      const loops: Promise<void>[] = [];
      if (!callerUas) loops.push(refreshLoop(c, 'caller', () => ending, callerEnded, fail));
      for (const [i, d] of u.devices.entries()) {
        if (devUac[i] || legs[i] == null) continue;
        const silentHere = silent === 'all' || (silent === 'one' && i === 0);
        const stop = silentHere ? (): boolean => ending || Date.now() - t0 >= stopAt : (): boolean => ending;
        loops.push(refreshLoop(d, `device(${devUac[i] ? 'uac' : 'uas'})`, stop, () => devEnded(i) || callerEnded(), fail));
      }
      if (silent === 'all') {
        // CR 8.3.2.4: the last device expired: BYE to the caller too
        await c.when(() => byeFor(c, c.callId), stopAt + EXPIRY_MS + 15_000 - (Date.now() - t0), 'BYE').catch(() => fail('no BYE to the caller after the last device expired'));
        ending = true;
        count(endedBy, 'all devices expired: BYE to the caller');
        for (const [i, d] of u.devices.entries()) {
          if (legs[i] == null) continue;
          await d.when(() => byeFor(d, legs[i]!), 10_000, 'BYE').catch(() => fail(`device ${i}: no BYE at its expiry`));
        }
      } else {
        await sleep(Math.max(0, lifeMs - (Date.now() - t0)));
        if (callerEnded()) fail(`caller got BYE before hanging up (Reason: ${header(byeFor(c, c.callId)!, 'Reason') ?? '-'})`);
        else
          for (const [i, d] of u.devices.entries()) {
            if (legs[i] == null || (silent === 'one' && i === 0) || !devEnded(i)) continue;
            fail(`a refreshed device (${devUac[i] ? 'uac' : 'uas'}) got BYE (Reason: ${header(byeFor(d, legs[i]!)!, 'Reason') ?? '-'})`);
          }
        if (silent === 'one' && !devEnded(0)) fail('silent device not ended by its expiry');
        ending = true;
        if (!callerEnded()) {
          try {
            const r = c.inDialog('BYE');
            await c.sendRequest(r.text, r.seq, 'BYE');
            const res = await c.final(r.seq, 'BYE');
            if (res.status !== 200) fail(`caller BYE ${res.status}`);
            openLegs.delete(callLeg);
          } catch {
            fail('caller BYE: no answer');
          }
        }
        // each device still in gets BYE
        for (const [i, d] of u.devices.entries()) {
          if (legs[i] == null) continue;
          await d.when(() => byeFor(d, legs[i]!), 10_000, 'BYE').catch(() => fail(`device ${i}: no BYE after the caller's`));
        }
        count(endedBy, silent === 'one' ? 'caller BYE, one device expired before' : 'caller BYE');
      }
      ending = true;
      await Promise.all(loops);
    } finally {
      totals.active--;
    }
  } finally {
    ending = true;
    // linger for retransmissions, then release the socket and the user
    setTimeout(() => {
      retransmissions += c?.retransmissions ?? 0;
      c?.close();
    }, 2000).unref();
    setTimeout(() => free.push(u), 1000);
  }
}

// ---------------------------------------------------------------- minutes

interface Row {
  minute: number;
  started: number;
  established: number;
  failedSessions: number;
  skipped: number;
  refreshes: number;
  uaRetransmissions: number;
  udpRcvbufErrors: number;
  active: number;
  ended: string;
  failures: string;
  b2buaCalls: number;
  relaySessions: number;
  serviceHeapMiB: number;
  relayHeapMiB: number;
  serviceRssMiB: number;
  relayRssMiB: number;
  serviceFds: number;
  relayFds: number;
  cpuService: number;
  cpuKamailio: number;
  cpuRelay: number;
  cpuSoak: number;
  load1: number;
}
const rows: Row[] = [];
const mapText = (m: Map<string, number>): string => [...m].map(([k, v]) => `${k}: ${v}`).join('; ');

let cpuPrev = { t: Date.now(), service: 0, kamailio: 0, relay: 0, soak: 0 };
function cpuNow(): typeof cpuPrev {
  const u = process.cpuUsage();
  return {
    t: Date.now(), service: groupCpuMs(service.proc.pid), kamailio: groupCpuMs(kamailio.proc.pid), relay: groupCpuMs(relay.proc.pid),
    soak: (u.user + u.system) / 1000,
  };
}

/** Every datagram the UAs sent again so far. */
const uaRetransmissions = (): number => retransmissions + users.reduce((a, u) => a + u.devices[0].retransmissions + u.devices[1].retransmissions, 0);
/** The machine's UDP datagrams dropped for a full receive buffer (/proc/net/snmp Udp RcvbufErrors; every process on it). */
function rcvbufErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  return Number(lines[1]?.split(/\s+/)[names.indexOf('RcvbufErrors')] ?? NaN);
}
let lastRetrans = 0;
let lastRcvbuf = rcvbufErrors();
let lastTotals = { ...totals };
let lastEnded = new Map<string, number>();
let lastFailed = new Map<string, number>();
const delta = (now: Map<string, number>, before: Map<string, number>): Map<string, number> =>
  new Map([...now].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as [string, number]).filter(([, v]) => v !== 0));

async function sample(minute: number): Promise<Row> {
  const none: MemoryUsage = { rss: NaN, heapUsed: NaN, external: NaN, arrayBuffers: NaN };
  const [counts, sm, rm] = await Promise.all([
    live().catch((): B2buaCounts => ({ calls: NaN, started: NaN, sessions: NaN })),
    inspectMemory(service.proc).catch(() => none),
    inspectMemory(relay.proc).catch(() => none),
  ]);
  const cpu = cpuNow();
  const pct = (k: 'service' | 'kamailio' | 'relay' | 'soak'): number => Math.round((100 * (cpu[k] - cpuPrev[k])) / (cpu.t - cpuPrev.t));
  const row: Row = {
    minute,
    started: totals.started - lastTotals.started,
    established: totals.established - lastTotals.established,
    failedSessions: totals.failedSessions - lastTotals.failedSessions,
    skipped: totals.skipped - lastTotals.skipped,
    refreshes: totals.refreshes - lastTotals.refreshes,
    uaRetransmissions: uaRetransmissions() - lastRetrans,
    udpRcvbufErrors: rcvbufErrors() - lastRcvbuf,
    active: totals.active,
    ended: mapText(delta(endedBy, lastEnded)),
    failures: mapText(delta(failedBy, lastFailed)),
    b2buaCalls: counts.calls,
    relaySessions: counts.sessions,
    serviceHeapMiB: (sm.heapUsed + sm.external) / 1048576,
    relayHeapMiB: (rm.heapUsed + rm.external) / 1048576,
    serviceRssMiB: rssBytes(service.proc.pid) / 1048576,
    relayRssMiB: rssBytes(relay.proc.pid) / 1048576,
    serviceFds: fds(service.proc.pid),
    relayFds: fds(relay.proc.pid),
    cpuService: pct('service'),
    cpuKamailio: pct('kamailio'),
    cpuRelay: pct('relay'),
    cpuSoak: pct('soak'),
    load1: loadavg()[0]!,
  };
  cpuPrev = cpu;
  lastRetrans += row.uaRetransmissions;
  lastRcvbuf += row.udpRcvbufErrors;
  lastTotals = { ...totals };
  lastEnded = new Map(endedBy);
  lastFailed = new Map(failedBy);
  rows.push(row);
  const f = (x: number): string => x.toFixed(1);
  console.log(
    `[min ${minute}] started ${row.started} established ${row.established} failed ${row.failedSessions} skipped ${row.skipped} refreshes ${row.refreshes} ` +
      `retransmitted ${row.uaRetransmissions} (UDP drops ${row.udpRcvbufErrors}) ` +
      `active ${row.active} | B2BUA calls ${row.b2buaCalls} relay sessions ${row.relaySessions} | heap MiB service ${f(row.serviceHeapMiB)} relay ${f(row.relayHeapMiB)} ` +
      `| RSS MiB service ${f(row.serviceRssMiB)} relay ${f(row.relayRssMiB)} | fds ${row.serviceFds}/${row.relayFds} ` +
      `| CPU% service ${row.cpuService} kamailio ${row.cpuKamailio} relay ${row.cpuRelay} soak ${row.cpuSoak} | load ${f(row.load1)}`,
  );
  if (row.ended) console.log(`        ended: ${row.ended}`);
  if (row.failures) console.log(`        failures: ${row.failures}`);
  return row;
}

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const sxy = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

// ---------------------------------------------------------------- run

let exitCode = 1;
try {
  console.log(`soak: ${dir}; RATE ${RATE}/s for ${DURATION_S} s, ${USERS} users x 2 devices, policy C, unit ${UNIT_MS} ms (interval 90 = ${(90 * UNIT_MS) / 1000} s, expiry ${EXPIRY_MS / 1000} s), refresh every ${REFRESH_MS} ms, T1 ${T1_MS} ms`);
  const tr = Date.now();
  await registerUsers();
  console.log(`registered ${USERS * 2} devices in ${((Date.now() - tr) / 1000).toFixed(1)} s`);
  const idleBefore = { service: await inspectMemory(service.proc), relay: await inspectMemory(relay.proc) };
  const snapshot = async (): Promise<void> => {
    if (!HEAP_SNAPSHOTS || service.proc.child.pid === undefined) return;
    process.kill(service.proc.child.pid, 'SIGUSR2');
    await sleep(20_000);
  };
  await snapshot();
  cpuPrev = cpuNow();

  const t0 = Date.now();
  const running = new Set<Promise<void>>();
  let launched = 0;
  let minute = 0;
  const end = t0 + DURATION_S * 1000;
  while (Date.now() < end) {
    const due = Math.min(Math.floor(((Date.now() - t0) / 1000) * RATE), Math.floor(DURATION_S * RATE));
    while (launched < due) {
      launched++;
      const u = free.shift();
      if (!u) {
        totals.skipped++;
        continue;
      }
      const p = session(u).catch((err: unknown) => {
        count(failedBy, `internal: ${String(err)}`);
        totals.failedSessions++;
      });
      running.add(p);
      void p.finally(() => running.delete(p));
    }
    if (Date.now() - t0 >= (minute + 1) * 60_000) await sample(++minute);
    await sleep(10);
  }
  const placedS = (Date.now() - t0) / 1000;
  const loadMinutes = minute;
  console.log(`placing done after ${placedS.toFixed(0)} s: ${totals.started} started (${(totals.started / placedS).toFixed(1)}/s); waiting for ${running.size} sessions`);
  await Promise.all(running);
  const lastEnd = Date.now();
  // the INVITE transactions' Accepted state and the BYEs' transactions (64*T1)
  await sleep(64 * T1_MS);
  const settled = await waitSettled(live, 30_000);
  // the service's own account of relay requests that got no answer in time (wire time-out)
  const serviceLog = readFileSync(join(dir, 'service.log'), 'utf8');
  const relayTimeouts = ['offer', 'answer', 'drop', 'delete'].map((m) => `${m} ${serviceLog.split(`"b2bua: relay ${m} failed"`).length - 1}`).join(', ');
  const finalRow = await sample(++minute);
  const idleAfter = { service: await inspectMemory(service.proc), relay: await inspectMemory(relay.proc) };
  await snapshot();

  // memory: full minutes of steady load, from minute 2 (warm) to the last full one
  const steady = rows.filter((r) => r.minute >= 2 && r.minute <= loadMinutes);
  const heapSlope = steady.length >= 2 ? slope(steady.map((r) => r.minute), steady.map((r) => r.serviceHeapMiB)) : NaN;
  const relaySlope = steady.length >= 2 ? slope(steady.map((r) => r.minute), steady.map((r) => r.relayHeapMiB)) : NaN;
  const m2 = steady[0];
  const mN = steady.at(-1);
  const growthPct = m2 && mN ? (100 * (mN.serviceHeapMiB - m2.serviceHeapMiB)) / m2.serviceHeapMiB : NaN;
  const relayGrowthPct = m2 && mN ? (100 * (mN.relayHeapMiB - m2.relayHeapMiB)) / m2.relayHeapMiB : NaN;

  const setupRate = totals.started / placedS;
  const targets: [string, boolean][] = [
    [`setup rate ${setupRate.toFixed(1)}/s >= ${RATE * 0.98} (none skipped: ${totals.skipped})`, setupRate >= RATE * 0.98 && totals.skipped === 0],
    [`sessions with a failure ${totals.failedSessions} <= ${MAX_FAILED}`, totals.failedSessions <= MAX_FAILED],
    [`B2BUA calls at the end ${finalRow.b2buaCalls} = 0`, finalRow.b2buaCalls === 0],
    [`relay sessions at the end ${finalRow.relaySessions} = 0`, finalRow.relaySessions === 0],
    [`dangling UA dialogs ${openLegs.size} = 0 (stray BYEs ${strayByes})`, openLegs.size === 0],
    [`service heap flat: minute ${mN?.minute ?? '?'} vs 2 ${growthPct.toFixed(1)}% <= ${MAX_HEAP_GROWTH_PCT}%`, Number.isFinite(growthPct) && growthPct <= MAX_HEAP_GROWTH_PCT],
    [`relay heap flat: ${relayGrowthPct.toFixed(1)}% <= ${MAX_HEAP_GROWTH_PCT}%`, Number.isFinite(relayGrowthPct) && relayGrowthPct <= MAX_HEAP_GROWTH_PCT],
  ];
  const csv = [
    Object.keys(rows[0]!).join(','),
    ...rows.map((r) => Object.values(r).map((v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : `"${String(v).replace(/"/g, "'")}"`)).join(',')),
  ].join('\n');
  writeFileSync(join(dir, 'soak.csv'), `${csv}\n`);
  console.log(`
== B2BUA soak: ${RATE}/s for ${DURATION_S} s, policy C, unit ${UNIT_MS} ms, refresh ${REFRESH_MS} ms, T1 ${T1_MS} ms, ${USERS} users x 2 devices
sessions started ${totals.started}, established ${totals.established}, with a failure ${totals.failedSessions}, skipped (no free user) ${totals.skipped}; refreshes sent by the UAs ${totals.refreshes}; datagrams the UAs sent again ${uaRetransmissions()}; UDP receive-buffer drops on the machine ${rows.reduce((a, r) => a + r.udpRcvbufErrors, 0)}
ended by cause: ${mapText(endedBy) || '-'}
failures by cause: ${mapText(failedBy) || '-'}
last session ended, then 64*T1 (${(64 * T1_MS) / 1000} s): B2BUA calls ${finalRow.b2buaCalls}, relay sessions ${finalRow.relaySessions} (${settled.last}), UA dialogs open ${openLegs.size}, stray BYEs ${strayByes}; ${((Date.now() - lastEnd) / 1000).toFixed(0)} s after the last session
relay requests of the B2BUA that failed (service log): ${relayTimeouts}
service heap after GC (MiB): idle before ${mib(idleBefore.service.heapUsed + idleBefore.service.external)}, minute 2 ${m2?.serviceHeapMiB.toFixed(1)}, minute ${mN?.minute} ${mN?.serviceHeapMiB.toFixed(1)}, idle after ${mib(idleAfter.service.heapUsed + idleAfter.service.external)} (${((idleAfter.service.heapUsed + idleAfter.service.external - idleBefore.service.heapUsed - idleBefore.service.external) / 1024 / totals.started).toFixed(2)} KiB per session over the cold start); slope ${heapSlope.toFixed(2)} MiB/min (${((heapSlope * 1024) / (RATE * 60)).toFixed(3)} KiB per session set up)
relay heap after GC (MiB): idle before ${mib(idleBefore.relay.heapUsed + idleBefore.relay.external)}, minute 2 ${m2?.relayHeapMiB.toFixed(1)}, minute ${mN?.minute} ${mN?.relayHeapMiB.toFixed(1)}, idle after ${mib(idleAfter.relay.heapUsed + idleAfter.relay.external)}; slope ${relaySlope.toFixed(2)} MiB/min
RSS (MiB): service minute 2 ${m2?.serviceRssMiB.toFixed(1)} → ${mN?.serviceRssMiB.toFixed(1)}, relay ${m2?.relayRssMiB.toFixed(1)} → ${mN?.relayRssMiB.toFixed(1)}; fds service ${m2?.serviceFds} → ${finalRow.serviceFds}, relay ${m2?.relayFds} → ${finalRow.relayFds}
load average (1 min) over the run: ${Math.min(...rows.map((r) => r.load1)).toFixed(1)}–${Math.max(...rows.map((r) => r.load1)).toFixed(1)}
CSV: ${join(dir, 'soak.csv')}
targets:
${targets.map(([what, ok]) => `  ${ok ? 'ok  ' : 'MISS'} ${what}`).join('\n')}`);
  exitCode = targets.every(([, ok]) => ok) ? 0 : 1;
} finally {
  await stopLab();
}
process.exit(exitCode);
