/**
 * Shared by the proxy-mode soak (bench/soak-proxy.ts) and fault runs (bench/faults-proxy.ts),
 * docs/reliability.md:
 *   - startService: the decision service as lab/lab.ts starts it, plus an external XDMS URL
 *     (xdm.url) and a diagnostic report on SIGUSR2 (its JavaScript heap, read each minute);
 *   - startProxyLab: Kamailio (lab.cfg, ctl socket for kamcmd) in front of 1 or 2 services,
 *     and the callee "bench" with two devices (one answers, one rings), registered for 7200 s
 *     from their own ports (the fork goes to the REGISTER's source address);
 *   - Population: users that register and re-register at half their expiry;
 *   - Load: sipp uac-call.xml at a steady rate, with per-second or per-minute statistics
 *     (-trace_stat) and the error log (-trace_err) classified by cause;
 *   - probes: Kamailio's shared memory and usrloc count (kamcmd), RSS and open fds (/proc),
 *     the service's /metrics text (its decision histogram is read by ./decision-histogram.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kamailio, LAB_OPERATOR_TOKEN, ROOT } from '../lab/lab.js';
import { Binding, newInstance, vars } from '../lab/calls.js';
import { Proc, findBinary, freePort } from '../lab/proc.js';
import { createSocket } from 'node:dgram';
import { sipMessage } from '../lab/sip-fixtures.js';
import { register, buildRegister, parseResponse, CPM_DEVICE_PARAMS, type RegisterOptions, type SipResponse } from '../lab/sip.js';
import { SippAgent } from '../lab/sipp.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- service

export interface SvcOptions {
  dir: string;
  name: string;
  dataDir: string;
  rpcPort?: number;
  httpPort?: number;
  /** External XCAP root (xdm.url); absent: the embedded store. */
  xdmUrl?: string;
}

export interface Svc {
  proc: Proc;
  rpcPort: number;
  httpPort: number;
  opts: SvcOptions & { rpcPort: number; httpPort: number };
  reportDir: string;
}

export async function startService(o: SvcOptions): Promise<Svc> {
  const rpcPort = o.rpcPort ?? (await freePort());
  const httpPort = o.httpPort ?? (await freePort());
  mkdirSync(o.dir, { recursive: true });
  const reportDir = join(o.dir, `${o.name}-reports`);
  mkdirSync(reportDir, { recursive: true });
  // the fields lab/lab.ts Service.start writes, plus xdm
  const config = {
    host: '127.0.0.1',
    rpcPort,
    httpPort,
    pfHost: 'pf.example.net',
    domain: 'example.net',
    identity: 'user',
    dataDir: o.dataDir,
    logLevel: 'warn',
    registrar: { defaultExpires: 3600, maxExpires: 7200, minExpires: 10 },
    policy: {},
    http: { operatorToken: LAB_OPERATOR_TOKEN },
    ...(o.xdmUrl ? { xdm: { url: o.xdmUrl, timeoutMs: 500, cacheTtlMs: 5000 } } : {}),
  };
  const cfgFile = join(o.dir, `${o.name}.json`);
  writeFileSync(cfgFile, JSON.stringify(config, null, 2));
  const nodeArgs = ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reportDir}`, '--report-compact'];
  const proc = new Proc(o.name, process.execPath, [...nodeArgs, '--import', 'tsx', join(ROOT, 'plugin', 'main.ts'), '--config', cfgFile], {
    cwd: ROOT,
    env: { ...process.env, PF_CONFIG: cfgFile },
    logFile: join(o.dir, `${o.name}.log`),
  });
  await proc.waitFor(/"msg":"service ready"/, 20_000);
  return { proc, rpcPort, httpPort, opts: { ...o, rpcPort, httpPort }, reportDir };
}

export async function metricsText(s: Svc, timeoutMs = 2000): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${s.httpPort}/metrics`, {
    headers: { authorization: `Bearer ${LAB_OPERATOR_TOKEN}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  return r.text();
}

/**
 * The service's JavaScript heap (Node diagnostic report on SIGUSR2), bytes: in use, and
 * committed (what the heap holds from the OS, young generation included); NaN if none came.
 */
export async function serviceHeap(s: Svc): Promise<{ used: number; committed: number }> {
  const none = { used: NaN, committed: NaN };
  const pid = s.proc.pid;
  if (pid === undefined || !s.proc.running) return none;
  const before = new Set(readdirSync(s.reportDir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const fresh = readdirSync(s.reportDir).filter((f) => !before.has(f) && f.endsWith('.json'));
    for (const f of fresh) {
      try {
        const rep = JSON.parse(readFileSync(join(s.reportDir, f), 'utf8')) as { javascriptHeap?: { usedMemory?: number; totalMemory?: number } };
        return { used: rep.javascriptHeap?.usedMemory ?? NaN, committed: rep.javascriptHeap?.totalMemory ?? NaN };
      } catch {
        // still being written
      }
    }
  }
  return none;
}

export function rss(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? NaN) * 1024;
  } catch {
    return NaN;
  }
}

/** Open fds of every process in the process group `pgid` (Kamailio's children too). */
export function groupFds(pgid: number | undefined): number {
  if (pgid === undefined) return NaN;
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      n += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

export function openFds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}


// ---------------------------------------------------------------- kamailio over kamcmd

export function kamcmd(ctl: string, ...args: string[]): string {
  try {
    return execFileSync(findBinary('kamcmd'), ['-s', ctl, ...args], { encoding: 'utf8', timeout: 3000 });
  } catch {
    return '';
  }
}

/** core.shmmem: used (real_used, with the allocator's overhead) and total, bytes. */
export function kamShm(ctl: string): { used: number; total: number } {
  const t = kamcmd(ctl, 'core.shmmem');
  const num = (k: string): number => Number(new RegExp(`\\b${k}:\\s*(\\d+)`).exec(t)?.[1] ?? NaN);
  return { used: num('real_used'), total: num('total') };
}

/** A Kamailio statistic by name (e.g. location_contacts, usrloc's); NaN if unreadable. */
export function kamStat(ctl: string, name: string): number {
  const t = kamcmd(ctl, 'stats.get_statistics', name);
  return Number(/=\s*(\d+)/.exec(t)?.[1] ?? NaN);
}

/**
 * Datagrams the kernel dropped at each 127.0.0.1 UDP socket bound to one of `ports`
 * because its receive buffer was full (the "drops" column of /proc/net/udp, counted
 * since the socket was opened). A port with no socket is left out.
 */
export function udpDrops(ports: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  let text = '';
  try {
    text = readFileSync('/proc/net/udp', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const m = /^0100007F:([0-9A-F]{4})$/.exec(f[1] ?? '');
    if (!m?.[1]) continue;
    const port = parseInt(m[1], 16);
    if (ports.includes(port)) out.set(port, (out.get(port) ?? 0) + Number(f[f.length - 1] ?? 0));
  }
  return out;
}

// ---------------------------------------------------------------- the lab in proxy mode

export interface ProxyLab {
  services: Svc[];
  kamailio: Kamailio;
  devices: SippAgent[];
  ctl: string;
  dir: string;
  sipPort: number;
  kamOpts: Parameters<typeof Kamailio.start>[0];
  stop(): Promise<void>;
}

export interface ProxyLabOptions {
  dir: string;
  /** Service instances in Kamailio's janssonrpcc group (1 or 2); they share one data dir. */
  instances?: number;
  failsafe?: 'reject' | 'relay';
  children?: number;
  rpcTimeoutMs?: number;
  dataDir?: string;
  xdmUrl?: string;
  /** Extra Kamailio defines (e.g. LAB_CORE_LOOKUP: the core forks by usrloc lookup(), not core.fork). */
  defines?: readonly string[];
}

/** RFC 3261 §17.2.2 Timer J over UDP: 64*T1. */
const TIMER_J_MS = 64 * 500;

/** A device: registered from `port` for 7200 s (lab.cfg max_expires), then sipp binds it. */
async function device(dir: string, sipPort: number, kind: 'answer' | 'ring'): Promise<SippAgent> {
  const instance = newInstance();
  const inst = `;+sip.instance="<${instance}>"`;
  const binding = new Binding({ user: 'bench', instance, params: CPM_DEVICE_PARAMS });
  const port = await freePort();
  const reg = await register(sipPort, { ...binding.next(port, 7200), fromPort: port });
  if (reg.status !== 200) throw new Error(`device registration: ${reg.status} ${reg.reason}`);
  return SippAgent.start({
    dir: join(dir, 'devices'),
    name: `dev-${kind}`,
    port,
    trace: false,
    // the answering device keeps each dialog for Timer J after its 200 to the BYE and
    // answers retransmitted BYEs (docs/reliability.md "404 Not here on BYE")
    scenario: kind === 'answer' ? 'uas-answer-linger.xml' : 'uas-ring.xml',
    vars: { CONTACT_PARAMS: inst, RINGING: '', SETUP: 'passive', LINGER_MS: TIMER_J_MS },
  });
}

export async function startProxyLab(o: ProxyLabOptions): Promise<ProxyLab> {
  const dataDir = o.dataDir ?? join(o.dir, 'service-data');
  const services: Svc[] = [];
  for (let i = 0; i < (o.instances ?? 1); i++) {
    services.push(await startService({ dir: o.dir, name: `service${i + 1}`, dataDir, ...(o.xdmUrl ? { xdmUrl: o.xdmUrl } : {}) }));
  }
  const ctl = `unix:${join(o.dir, 'kamailio.ctl')}`;
  const kamOpts: Parameters<typeof Kamailio.start>[0] = {
    dir: o.dir,
    rpc: services.map((s) => ({ port: s.rpcPort })),
    failsafe: o.failsafe ?? 'reject',
    children: o.children ?? 4,
    rpcTimeoutMs: o.rpcTimeoutMs ?? 1000,
    memMb: 512,
    defines: [`LAB_CTL="${ctl}"`, ...(o.defines ?? [])],
  };
  const kamailio = await Kamailio.start(kamOpts);
  kamOpts.sipPort = kamailio.sipPort;
  const devices = [await device(o.dir, kamailio.sipPort, 'answer'), await device(o.dir, kamailio.sipPort, 'ring')];
  const lab: ProxyLab = {
    services,
    kamailio,
    devices,
    ctl,
    dir: o.dir,
    sipPort: kamailio.sipPort,
    kamOpts,
    stop: async () => {
      await Promise.all(devices.map((d) => d.stop()));
      await lab.kamailio.stop();
      await Promise.all(lab.services.map((s) => s.proc.stop()));
    },
  };
  return lab;
}

// ---------------------------------------------------------------- registering population

/** `users` users each registering one Contact for `expires` s and refreshing it at half of that. */
export class Population {
  ok = 0;
  failed = 0;
  /** failures by cause ("408 timeout", "500 ...") */
  readonly causes = new Map<string, number>();
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly sipPort: () => number,
    readonly users: number,
    readonly expires: number,
  ) {}

  start(): void {
    for (let i = 0; i < this.users; i++) this.loops.push(this.loop(i));
  }

  private async loop(i: number): Promise<void> {
    const binding = new Binding({ user: `soak${String(i).padStart(4, '0')}`, instance: newInstance(), params: CPM_DEVICE_PARAMS });
    // a contact port nobody listens on: nothing calls these users
    const contactPort = 40000 + i;
    // spread the first REGISTERs over one refresh period
    await sleep(Math.floor((i / this.users) * this.expires * 500));
    while (!this.stopped) {
      try {
        const r = await registerRetransmitting(this.sipPort(), binding.next(contactPort, this.expires), 4000);
        if (r.status === 200) this.ok++;
        else this.fail(`${r.status} ${r.reason}`);
      } catch {
        this.fail('no final response in 4 s');
      }
      const until = Date.now() + this.expires * 500;
      while (!this.stopped && Date.now() < until) await sleep(Math.min(500, until - Date.now()));
    }
  }

  private fail(cause: string): void {
    this.failed++;
    this.causes.set(cause, (this.causes.get(cause) ?? 0) + 1);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/**
 * A REGISTER over UDP as a UA sends it (RFC 3261 §17.1.2.2): the same datagram again
 * after T1, doubling up to T2 (4 s), until a final response or `timeoutMs`. lab/sip.ts
 * register() sends once; under load a full socket buffer drops a datagram now and then,
 * and a REGISTER sent once is then lost (docs/reliability.md "404 Not here on BYE").
 */
export async function registerRetransmitting(sipPort: number, o: RegisterOptions, timeoutMs: number): Promise<SipResponse> {
  const sock = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', resolve);
  });
  const msg = Buffer.from(buildRegister(o, sock.address().port));
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<SipResponse>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`no final response within ${timeoutMs} ms`)), timeoutMs);
      sock.on('message', (buf) => {
        const r = parseResponse(buf.toString('utf8'));
        if (r.status < 200) return;
        clearTimeout(deadline);
        resolve(r);
      });
      const send = (interval: number): void => {
        sock.send(msg, sipPort, '127.0.0.1');
        timer = setTimeout(() => send(Math.min(interval * 2, 4000)), interval);
      };
      send(500);
    });
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}

// ---------------------------------------------------------------- load

export interface StatRow {
  /** seconds since the load started */
  t: number;
  success: number;
  failed: number;
  current: number;
  /** sipp's failure causes, cumulative (FailedTimeoutOnRecv, FailedUnexpectedMessage, ...) */
  causes: Record<string, number>;
}

/** Continuous calls to "bench" at `rate` calls/s until stop(); sipp's statistics every `statEveryS` s. */
export class Load {
  private constructor(
    readonly agent: SippAgent,
    readonly statFile: string,
    readonly dir: string,
    readonly startedAt: number,
  ) {}

  static async start(o: { dir: string; sipPort: number; rate: number; statEveryS: number; name: string; recvTimeoutMs?: number }): Promise<Load> {
    const statFile = join(o.dir, `${o.name}-stat.csv`);
    mkdirSync(o.dir, { recursive: true });
    const agent = await SippAgent.start({
      scenario: 'uac-call.xml',
      dir: o.dir,
      name: o.name,
      remote: `127.0.0.1:${o.sipPort}`,
      vars: vars({ dir: o.dir, sipPort: o.sipPort, to: 'bench', contributionId: 'soak-[pid]-[call_number]' }, 200, 0),
      trace: false,
      extraArgs: ['-r', String(o.rate), '-rp', '1000', '-recv_timeout', String(o.recvTimeoutMs ?? 10_000), '-trace_stat', '-stf', statFile, '-fd', String(o.statEveryS)],
    });
    return new Load(agent, statFile, o.dir, Date.now());
  }

  /** sipp's -trace_stat rows so far (cumulative counters). */
  rows(): StatRow[] {
    if (!existsSync(this.statFile)) return [];
    const lines = readFileSync(this.statFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
    const head = (lines[0] ?? '').split(';');
    const col = (name: string): number => head.indexOf(name);
    const out: StatRow[] = [];
    for (const line of lines.slice(1)) {
      const f = line.split(';');
      const get = (name: string): number => Number(f[col(name)] ?? NaN);
      const causes: Record<string, number> = {};
      head.forEach((h, i) => {
        const m = /^(Failed\w+)\(C\)$/.exec(h);
        if (m?.[1] && m[1] !== 'FailedCall') causes[m[1]] = Number(f[i] ?? 0);
      });
      // ElapsedTime(C) is HH:MM:SS (sipp's -fd period apart)
      const [h = 0, m = 0, sec = 0] = (f[col('ElapsedTime(C)')] ?? '').split(':').map(Number);
      out.push({ t: h * 3600 + m * 60 + sec, success: get('SuccessfulCall(C)'), failed: get('FailedCall(C)'), current: get('CurrentCall'), causes });
    }
    return out;
  }

  errors(): string {
    return this.agent.errors();
  }

  /**
   * SIGUSR1: sipp starts no new call and ends once the calls in flight ended (its soft
   * quit, as the 'q' key), so none is cut off and counted wrongly; SIGTERM after `graceMs`.
   */
  async stop(graceMs = 20_000): Promise<void> {
    const pid = this.agent.proc.pid;
    if (pid !== undefined && this.agent.proc.running) process.kill(pid, 'SIGUSR1');
    await Promise.race([this.agent.proc.exited, sleep(graceMs)]);
    await this.agent.stop();
  }
}

/**
 * Failed calls by cause from sipp's error log (-trace_err). Its entries start with a
 * timestamp ("2026-12-05\t22:24:38.415556\t1796509478.415556: "), not always on a new line:
 *   - "Aborting call on unexpected message for Call-Id 'X': while expecting '200' (index 4),
 *     received 'SIP/2.0 503 ..." (uac-call.xml index 4: the INVITE's 200; 8: the BYE's 200);
 *   - "Call-Id: X, receive timeout on message uac-call:N ...: aborting call";
 *   - "Dead call X (aborted at index 8), received 'SIP/2.0 404 Not here": a response for a
 *     call sipp already gave up, added to that call's cause ("then 404 Not here").
 * One cause per Call-ID.
 */
export function classifyErrors(log: string): { byCause: Map<string, number>; byCall: Map<string, string> } {
  const entries = log.split(/(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t[\d.]+: )/);
  const byCall = new Map<string, string>();
  const late = new Map<string, string>();
  const part = (index: number): string => (index >= 6 ? 'the BYE' : 'the INVITE');
  for (const e of entries) {
    const text = e.replace(/^\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: /, '');
    const dead = /^Dead call (\S+) \(([^)]*)\), received '(?:SIP\/2\.0 )?([^'\r\n]*)/.exec(text);
    if (dead) {
      if (!late.has(dead[1]!)) late.set(dead[1]!, (dead[3] ?? '').slice(0, 40));
      continue;
    }
    const cid = /Call-Id:? '?([^',\s]+)/i.exec(text)?.[1];
    if (!cid || byCall.has(cid)) continue;
    const unexpected = /while expecting '(\w+)' \(index (\d+)\), received '(?:SIP\/2\.0 )?([^'\r\n]*)/.exec(text);
    const timeout = /receive timeout on message [^:]*:(\d+)/.exec(text);
    let cause: string;
    if (unexpected) cause = `${(unexpected[3] ?? '').slice(0, 40)} to ${part(Number(unexpected[2]))}`;
    else if (timeout) cause = `no response to ${part(Number(timeout[1]))} (receive timeout)`;
    else if (/retrans/i.test(text)) cause = 'retransmission timeout';
    else cause = text.trim().slice(0, 60);
    byCall.set(cid, cause);
  }
  for (const [cid, cause] of byCall) {
    const r = late.get(cid);
    if (r) byCall.set(cid, `${cause}, then ${r}`);
  }
  const byCause = new Map<string, number>();
  for (const c of byCall.values()) byCause.set(c, (byCause.get(c) ?? 0) + 1);
  return { byCause, byCall };
}

// ---------------------------------------------------------------- bad input under load

export type BadKind = 'malformed' | 'oversized header' | 'INVITE flood' | 'REGISTER 65 contacts';
export const BAD_KINDS: readonly BadKind[] = ['malformed', 'oversized header', 'INVITE flood', 'REGISTER 65 contacts'];

/** What one kind of bad input got back: final responses by status, and how many got none. */
export interface BadTally {
  sent: number;
  /** "status reason" -> count */
  finals: Map<string, number>;
  /** sent minus answered (so far); a malformed request may rightly get no answer */
  unanswered: number;
}

/**
 * A second sender beside the load (docs/reliability.md "Bad input under load"): about
 * `rate` messages/s from one UDP socket, the four kinds in turn:
 *   - malformed: a request with a broken CSeq, one without Call-ID, one with a Via that
 *     does not parse, one whose Content-Length runs past the datagram, plain garbage;
 *   - oversized header: an INVITE with a `headerBytes` header (to a user with no device);
 *   - INVITE flood: `floodBurst` INVITEs at once to one user (`floodUser`, registered with
 *     a Contact nobody listens on: the fork times out at Kamailio);
 *   - REGISTER with 65 Contacts (lab.cfg max_contacts is 64), for one user.
 * Non-2xx finals to INVITEs are ACKed (RFC 3261 §17.1.1.3). It never calls "bench", so
 * the legitimate load and its devices see none of it.
 */
export class BadInput {
  readonly tally = new Map<BadKind, BadTally>(BAD_KINDS.map((k) => [k, { sent: 0, finals: new Map(), unanswered: 0 }]));
  private readonly pending = new Map<string, { kind: BadKind; ack?: (to: string) => string }>();
  private timer: NodeJS.Timeout | undefined;
  private turn = 0;
  private seq = 0;

  private constructor(
    private readonly sock: ReturnType<typeof createSocket>,
    private readonly port: number,
    private readonly o: { sipPort: number; rate: number; floodUser: string; floodBurst: number; headerBytes: number },
  ) {}

  static async start(o: { sipPort: number; rate?: number; floodUser: string; floodBurst?: number; headerBytes?: number }): Promise<BadInput> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, '127.0.0.1', resolve);
    });
    const b = new BadInput(sock, sock.address().port, { rate: 4, floodBurst: 10, headerBytes: 30_000, ...o });
    sock.on('message', (buf) => b.onResponse(buf.toString('latin1')));
    b.timer = setInterval(() => b.next(), Math.max(10, Math.round(1000 / b.o.rate)));
    return b;
  }

  private onResponse(text: string): void {
    const head = /^SIP\/2\.0 (\d{3}) ([^\r\n]*)/.exec(text);
    const status = Number(head?.[1] ?? NaN);
    const cid = /^Call-ID:\s*(\S+)/im.exec(text)?.[1];
    if (!Number.isFinite(status) || status < 200 || !cid) return;
    const p = this.pending.get(cid);
    if (!p) return;
    this.pending.delete(cid);
    const t = this.tally.get(p.kind)!;
    const key = `${status} ${head?.[2] ?? ''}`;
    t.finals.set(key, (t.finals.get(key) ?? 0) + 1);
    const to = /^To:\s*(.*)$/im.exec(text)?.[1]?.trim();
    if (p.ack && status >= 300 && to) this.send(p.ack(to));
  }

  private send(msg: string): void {
    this.sock.send(Buffer.from(msg, 'latin1'), this.o.sipPort, '127.0.0.1');
  }

  /** A request of `kind` to track: its Call-ID and the lines common to all. */
  private request(kind: BadKind, method: string, user: string, extra: readonly string[], body = '', invite = false): string {
    const cid = `bad-${this.port}-${++this.seq}`;
    const branch = `z9hG4bKbad${this.seq}`;
    const ruri = `sip:${user}@example.net`;
    const via = `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`;
    const from = `From: <sip:mallory@example.net>;tag=b${this.seq}`;
    this.pending.set(cid, {
      kind,
      ...(invite ? { ack: (to: string) => sipMessage(`ACK ${ruri} SIP/2.0`, [via, 'Max-Forwards: 70', from, `To: ${to}`, `Call-ID: ${cid}`, 'CSeq: 1 ACK']) } : {}),
    });
    this.tally.get(kind)!.sent++;
    return sipMessage(`${method} ${ruri} SIP/2.0`, [via, 'Max-Forwards: 70', from, `To: <${ruri}>`, `Call-ID: ${cid}`, `CSeq: 1 ${method}`, ...extra], body);
  }

  private next(): void {
    const kind = BAD_KINDS[this.turn++ % BAD_KINDS.length]!;
    if (kind === 'malformed') {
      const variants = [
        (m: string) => m.replace('CSeq: 1 INVITE', 'CSeq: one INVITE'),
        (m: string) => m.replace(/^Call-ID: .*\r\n/m, ''),
        (m: string) => m.replace(/^Via: .*$/m, 'Via: SIP/2.0/UDP ;;;branch'),
        (m: string) => m.replace(/^Content-Length: \d+/m, 'Content-Length: 9999'),
        () => `\x00\x01garbage ${'%'.repeat(200)}\r\n\r\n`,
      ];
      const v = variants[this.seq % variants.length]!;
      this.send(v(this.request(kind, 'INVITE', 'nobody', ['Contact: <sip:mallory@127.0.0.1>', 'Content-Type: text/plain'], 'x', true)));
    } else if (kind === 'oversized header') {
      this.send(this.request(kind, 'INVITE', 'nobody', ['Contact: <sip:mallory@127.0.0.1>', `Subject: ${'x'.repeat(this.o.headerBytes)}`], '', true));
    } else if (kind === 'INVITE flood') {
      for (let i = 0; i < this.o.floodBurst; i++) {
        this.send(this.request(kind, 'INVITE', this.o.floodUser, ['Contact: <sip:mallory@127.0.0.1>', 'Content-Type: text/plain'], 'x', true));
      }
    } else {
      const contacts = Array.from({ length: 65 }, (_, i) => `Contact: <sip:regflood@127.0.0.1:${41000 + i}>;expires=60`);
      this.send(this.request(kind, 'REGISTER', 'regflood', contacts).replace(/^REGISTER sip:regflood@example\.net/, 'REGISTER sip:example.net'));
    }
  }

  /** Stop sending; answers still due come in for `graceMs` (the flood's INVITEs end at Kamailio's fr_timer). */
  async stop(graceMs = 0): Promise<void> {
    clearInterval(this.timer);
    await sleep(graceMs);
    for (const p of this.pending.values()) this.tally.get(p.kind)!.unanswered++;
    this.pending.clear();
    this.sock.close();
  }

  /** One line per kind: sent, final statuses, unanswered. */
  summary(): string[] {
    return [...this.tally].map(([k, t]) => {
      const finals = [...t.finals].sort((a, b) => a[0].localeCompare(b[0])).map(([s, n]) => `${n} × ${s}`).join(', ');
      return `${k}: sent ${t.sent}; answered ${finals || 'none'}; no final answer ${t.unanswered}`;
    });
  }
}
