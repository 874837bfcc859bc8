/**
 * Start the real parts on loopback: the decision service (plugin/main.ts), Kamailio
 * with kamailio-cfg/lab.cfg, and the MSRP relay (media/main.ts, when present).
 * Shared by `npm run lab` (scripts/lab.ts), the integration tests and the benchmark.
 * MultiLab: several Kamailio nodes and service instances on one Redis Cluster
 * (docs/deployment.md §12, `npm run lab -- --nodes 2`).
 */
import { chmodSync, mkdirSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Proc, freePort, until, findBinary } from './proc.js';
import { startDovecot, type Dovecot } from './dovecot.js';
import { startRedisCluster, type RedisCluster } from './redis.js';
import { sipUdpRequest, token } from './sip.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LAB_CFG = join(ROOT, 'kamailio-cfg', 'lab.cfg');

const STARTUP_MS = 20_000;

/** A fresh run dir under the OS tmp dir (tests) or under run/ (lab). */
export function runDir(prefix: string, base = tmpdir()): string {
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix}-`));
}

// ---------------------------------------------------------------- service

export interface ServiceOptions {
  dir: string;
  rpcPort?: number;
  httpPort?: number;
  /** Policy fields (docs/policy.md); the rest are the service's defaults. */
  policy?: Record<string, unknown>;
  pfHost?: string;
  domain?: string;
  logLevel?: string;
  /** Data dir; keep it across a restart to prove devices survive. */
  dataDir?: string;
  name?: string;
  /** Extra node options before the script (e.g. `--trace-gc`, not allowed in NODE_OPTIONS). */
  nodeArgs?: readonly string[];
  /** The `b2bua` config section (docs/b2bua.md), for B2BUA mode. */
  b2bua?: Record<string, unknown>;
  /** The live view (docs/lab.md "Live view"): its HEP3 port and Kamailio's SIP addresses. */
  live?: { hepPort: number; kamailio: readonly string[] };
  /** The operator's bearer token (http.operatorToken); default LAB_OPERATOR_TOKEN. */
  operatorToken?: string;
  /** The `sharedState` config section (docs/decisions/0003-shared-state-engine.md); lmdb when absent. */
  sharedState?: Record<string, unknown>;
}

/** The lab service's operator token (http.operatorToken; `npm run lab` prints it). */
export const LAB_OPERATOR_TOKEN = `lab-op-${token()}${token()}`;

export class Service {
  private constructor(
    readonly proc: Proc,
    readonly rpcPort: number,
    readonly httpPort: number,
    readonly opts: ServiceOptions,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** The bearer token the operator routes and the XCAP store want (docs/service.md "HTTP"). */
  get operatorToken(): string {
    return this.opts.operatorToken ?? LAB_OPERATOR_TOKEN;
  }

  /** fetch() with the operator's credential. */
  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${this.operatorToken}` } });
  }

  static async start(o: ServiceOptions): Promise<Service> {
    const rpcPort = o.rpcPort ?? (await freePort());
    const httpPort = o.httpPort ?? (await freePort());
    const name = o.name ?? 'service';
    mkdirSync(o.dir, { recursive: true });
    const config = {
      host: '127.0.0.1',
      rpcPort,
      httpPort,
      pfHost: o.pfHost ?? 'pf.example.net',
      domain: o.domain ?? 'example.net',
      identity: 'user',
      dataDir: o.dataDir ?? join(o.dir, `${name}-data`),
      logLevel: o.logLevel ?? 'info',
      // as lab.cfg's registrar modparams (default_expires, max_expires, min_expires)
      registrar: { defaultExpires: 3600, maxExpires: 7200, minExpires: 10 },
      policy: o.policy ?? {},
      ...(o.b2bua ? { b2bua: o.b2bua } : {}),
      ...(o.live ? { live: { enabled: true, hepPort: o.live.hepPort, kamailio: o.live.kamailio } } : {}),
      http: { operatorToken: o.operatorToken ?? LAB_OPERATOR_TOKEN },
      ...(o.sharedState ? { sharedState: o.sharedState } : {}),
    };
    const cfgFile = join(o.dir, `${name}.json`);
    writeFileSync(cfgFile, JSON.stringify(config, null, 2));
    const proc = new Proc(name, process.execPath, [...(o.nodeArgs ?? []), '--import', 'tsx', join(ROOT, 'plugin', 'main.ts'), '--config', cfgFile], {
      cwd: ROOT,
      env: { ...process.env, PF_CONFIG: cfgFile },
      logFile: join(o.dir, `${name}.log`),
    });
    await proc.waitFor(/"msg":"service ready"/, STARTUP_MS);
    const svc = new Service(proc, rpcPort, httpPort, { ...o, rpcPort, httpPort, dataDir: config.dataDir });
    await until(async () => ((await fetch(`${svc.url}/ready`)).status === 200 ? true : undefined), 5000, 'service /ready');
    return svc;
  }

  /** Stop and start again on the same ports and data dir. */
  async restart(): Promise<Service> {
    await this.proc.stop();
    return Service.start(this.opts);
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }

  /** SIGKILL (a crash: no clean close of its connections). */
  async kill(): Promise<void> {
    await this.proc.kill();
  }

  async getJson(path: string): Promise<{ status: number; body: unknown }> {
    const r = await this.fetch(path);
    const text = await r.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: r.status, body };
  }

  /** PUT an XDM document into the service's XCAP store (RFC 4825). */
  async putXcap(auid: string, user: string, xml: string, contentType: string, doc = 'index'): Promise<number> {
    const r = await this.fetch(`/xcap-root/${auid}/users/${encodeURIComponent(user)}/${doc}`, {
      method: 'PUT',
      headers: { 'content-type': contentType },
      body: xml,
    });
    await r.arrayBuffer();
    return r.status;
  }

  async metrics(): Promise<string> {
    return (await this.fetch('/metrics')).text();
  }
}

// ---------------------------------------------------------------- kamailio

export interface RpcServer {
  port: number;
  priority?: number;
  weight?: number;
}

export interface KamailioOptions {
  dir: string;
  sipPort?: number;
  /** janssonrpcc servers of the "pf" group (at least one). */
  rpc: readonly RpcServer[];
  failsafe?: 'reject' | 'relay';
  /** Leave the PF out (benchmark baseline). */
  bare?: boolean;
  rpcTimeoutMs?: number;
  /** Extra `NAME` or `NAME=value` defines. */
  defines?: readonly string[];
  /** Kamailio log level (2: info, shows janssonrpcc connects). */
  debug?: number;
  children?: number;
  memMb?: number;
  /** Kamailio's memory manager (`-x`, default `tlsf`); Kamailio's own default is `qm`. */
  memManager?: 'qm' | 'fm' | 'tlsf';
  /** Wait for janssonrpcc to connect to the first server (default true). */
  waitRpc?: boolean;
  /** A command that runs Kamailio, e.g. `['valgrind', '--tool=callgrind']` (bench:proxy:instructions). */
  wrapper?: readonly string[];
  /** Mirror every SIP message as HEP3 to this UDP port on 127.0.0.1 (lab.cfg LAB_TRACE_HEP, the live view). */
  traceHep?: number;
}

export class Kamailio {
  private constructor(
    readonly proc: Proc,
    readonly sipPort: number,
    readonly opts: KamailioOptions,
  ) {}

  static async start(o: KamailioOptions): Promise<Kamailio> {
    const sipPort = o.sipPort ?? (await freePort());
    const work = join(o.dir, 'kamailio');
    mkdirSync(work, { recursive: true });
    const defs: string[] = [`LAB_SIP_PORT=${sipPort}`, `LAB_DEBUG=${o.debug ?? 2}`];
    o.rpc.forEach((s, i) => {
      defs.push(
        `PF_RPC_SERVER${i + 1}="conn=pf;addr=127.0.0.1;port=${s.port};priority=${s.priority ?? 10 * (i + 1)};weight=${s.weight ?? 10}"`,
      );
    });
    if (o.failsafe === 'relay') defs.push('PF_FAILSAFE_RELAY');
    if (o.bare) defs.push('LAB_BARE');
    if (o.rpcTimeoutMs !== undefined) defs.push(`PF_RPC_TIMEOUT=${o.rpcTimeoutMs}`);
    if (o.children !== undefined) defs.push(`LAB_CHILDREN=${o.children}`);
    if (o.traceHep !== undefined) defs.push(`LAB_TRACE_HEP="sip:127.0.0.1:${o.traceHep}"`);
    defs.push(...(o.defines ?? []));
    const args = ['-f', LAB_CFG, '-DD', '-E', '-m', String(o.memMb ?? 512), '-w', work, '-Y', work];
    // TLSF: Kamailio's default q_malloc made every PF call markedly dearer (docs/benchmarks.md)
    args.push('-x', o.memManager ?? 'tlsf');
    for (const d of defs) args.push('-A', d);
    const [cmd, ...pre] = [...(o.wrapper ?? []), findBinary('kamailio')];
    const proc = new Proc('kamailio', cmd!, [...pre, ...args], { cwd: work, logFile: join(o.dir, 'kamailio.log') });
    const k = new Kamailio(proc, sipPort, o);
    await proc.waitFor(/Listening on/, STARTUP_MS);
    // readiness: the SIP socket answers (lab.cfg answers OPTIONS to itself)
    await until(
      async () => {
        const r = await sipUdpRequest(sipPort, (lp) => options(sipPort, lp), 500);
        return r.final.status === 200 ? true : undefined;
      },
      STARTUP_MS,
      'kamailio OPTIONS 200',
    );
    const first = o.rpc[0];
    // the bare variant still calls the service for core.fork
    if ((o.waitRpc ?? true) && first) await k.waitRpcConnected(first.port);
    return k;
  }

  /** Wait for janssonrpcc's "Connected to host" line for `port` (after output offset `from`). */
  async waitRpcConnected(port: number, from = 0, timeoutMs = STARTUP_MS): Promise<void> {
    await this.proc.waitFor(new RegExp(`Connected to host 127\\.0\\.0\\.1:${port}\\b`), timeoutMs, from);
  }

  get outputLength(): number {
    return this.proc.output.length;
  }

  /** Kamailio still up and answering SIP. */
  async alive(): Promise<boolean> {
    if (!this.proc.running) return false;
    try {
      const r = await sipUdpRequest(this.sipPort, (lp) => options(this.sipPort, lp), 2000);
      return r.final.status === 200;
    } catch {
      return false;
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs` (under valgrind each process needs longer to write its profile). */
  async stop(graceMs = 5000): Promise<void> {
    await this.proc.stop(graceMs);
  }
}

function options(sipPort: number, localPort: number): string {
  return [
    `OPTIONS sip:127.0.0.1:${sipPort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${token()};rport`,
    'Max-Forwards: 70',
    `From: <sip:probe@127.0.0.1>;tag=${token(4)}`,
    `To: <sip:127.0.0.1:${sipPort}>`,
    `Call-ID: ${token()}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

// ---------------------------------------------------------------- relay

export const RELAY_MAIN = join(ROOT, 'media', 'main.ts');

export class Relay {
  private constructor(
    readonly proc: Proc,
    readonly port: number,
    readonly controlPort: number,
    /** The private MSS when history goes to IMAP (docs/history.md). */
    readonly mss?: Dovecot,
  ) {}

  static available(): boolean {
    return existsSync(RELAY_MAIN);
  }

  /**
   * Start media/main.ts with a config file (docs/media-relay.md "Running") and wait for its `relay ready` line.
   * `traceHep`: send its frames as HEP3 to that UDP port on 127.0.0.1 (the live view).
   * `history: 'imap'`: history goes to a private Dovecot started here (lab/dovecot.ts, docs/history.md).
   */
  static async start(
    dir: string, port?: number, controlPort?: number, traceHep?: number, history: 'lmdb' | 'imap' = 'lmdb',
    /** The deferred store on this Redis Cluster (docs/deferred.md "On Redis") instead of the LMDB file. */
    deferredRedis?: { urls: readonly string[]; prefix: string },
  ): Promise<Relay> {
    const msrpPort = port ?? (await freePort());
    const ctl = controlPort ?? (await freePort());
    const cfgFile = join(dir, 'relay.json');
    const config = {
      host: '127.0.0.1', 'msrp-port': msrpPort, 'control-port': ctl, history: join(dir, 'history.mdb'), deferred: join(dir, 'deferred.mdb'),
      ...(traceHep === undefined ? {} : { 'trace-hep': `127.0.0.1:${traceHep}` }),
      ...(deferredRedis
        ? { 'deferred-store': 'redis', 'deferred-redis-urls': deferredRedis.urls, 'deferred-redis-cluster': true, 'deferred-redis-prefix': deferredRedis.prefix }
        : {}),
    };
    // run as root, Dovecot runs as nobody (lab/dovecot.ts): it must reach its folder under the run dir (mkdtemp's is 0700)
    if (history === 'imap') chmodSync(dir, 0o711);
    const mss = history === 'imap' ? await startDovecot({ dir: join(dir, 'dovecot') }) : undefined;
    const mssConfig = mss
      ? { 'history-store': 'imap', 'mss-host': mss.host, 'mss-port': mss.port, 'mss-user': mss.user, 'mss-tls': 'none', 'history-queue': join(dir, 'history-queue.mdb') }
      : {};
    writeFileSync(cfgFile, JSON.stringify({ ...config, ...mssConfig }, null, 2));
    const proc = new Proc('relay', process.execPath, ['--import', 'tsx', RELAY_MAIN, '--config', cfgFile], {
      cwd: ROOT,
      logFile: join(dir, 'relay.log'),
      ...(mss ? { env: { ...process.env, MSS_PASSWORD: mss.password } } : {}),
    });
    try {
      await proc.waitFor(/"msg":"relay ready"/, STARTUP_MS);
    } catch (err) {
      await Promise.all([proc.stop(), mss?.stop()]);
      throw err;
    }
    return new Relay(proc, msrpPort, ctl, mss);
  }

  async stop(): Promise<void> {
    await this.proc.stop();
    await this.mss?.stop();
  }
}

// ---------------------------------------------------------------- the whole lab

export interface LabOptions {
  dir: string;
  sipPort?: number;
  rpcPort?: number;
  httpPort?: number;
  msrpPort?: number;
  policy?: Record<string, unknown>;
  failsafe?: 'reject' | 'relay';
  bare?: boolean;
  rpcTimeoutMs?: number;
  relay?: boolean;
  kamailioDebug?: number;
  children?: number;
  serviceLogLevel?: string;
  /** Extra Kamailio defines, e.g. `LAB_CORE_LOOKUP`. */
  defines?: readonly string[];
  /** PF mode for every served user (policy.mode); b2bua starts the relay and the B2BUA. */
  mode?: 'proxy' | 'b2bua';
  /** Further `b2bua` config fields (e.g. multiDevice), in B2BUA mode. */
  b2bua?: Record<string, unknown>;
  /**
   * The live view (docs/lab.md "Live view"): Kamailio and the relay send HEP3 to the
   * service's collector on `liveHepPort` (a free one when absent). Off by default (the
   * tests and benchmarks run without the trace); `npm run lab` turns it on.
   */
  live?: boolean;
  liveHepPort?: number;
  /** Where the relay's history goes: the embedded LMDB file (default) or a private Dovecot (docs/history.md). */
  history?: 'lmdb' | 'imap';
}

/** The lab's secret for the B2BUA's legs (pf.cfg PF_B2BUA_TOKEN, the service's b2bua.legToken). */
export const LAB_LEG_TOKEN = `lab-${token()}${token()}`;

export class Lab {
  constructor(
    public service: Service,
    readonly kamailio: Kamailio,
    readonly relay: Relay | null,
    readonly mode: 'proxy' | 'b2bua' = 'proxy',
    /** The B2BUA's SIP port in B2BUA mode, else 0. */
    readonly b2buaSipPort = 0,
  ) {}

  static async start(o: LabOptions): Promise<Lab> {
    const b2bua = o.mode === 'b2bua';
    const hepPort = o.live ? (o.liveHepPort ?? (await freePort())) : undefined;
    // B2BUA mode: the relay first (the B2BUA connects to it), and the ports the service
    // and Kamailio name to each other chosen before either starts (the live view names Kamailio too)
    const early = b2bua ? await Relay.start(o.dir, o.msrpPort, undefined, hepPort, o.history) : null;
    const sipPort = o.sipPort ?? (b2bua || o.live ? await freePort() : undefined);
    const b2buaPort = b2bua ? await freePort() : 0;
    let service: Service;
    try {
      service = await Service.start({
        dir: o.dir,
        rpcPort: o.rpcPort,
        httpPort: o.httpPort,
        policy: b2bua ? { ...o.policy, mode: 'b2bua' } : o.policy,
        logLevel: o.serviceLogLevel,
        ...(hepPort === undefined ? {} : { live: { hepPort, kamailio: [`127.0.0.1:${sipPort}`] } }),
        ...(b2bua
          ? { b2bua: { sipPort: b2buaPort, proxyPort: sipPort, relayPort: early!.controlPort, legToken: LAB_LEG_TOKEN, ...o.b2bua } }
          : {}),
      });
    } catch (err) {
      await early?.stop();
      throw err;
    }
    let relay: Relay | null = early;
    let kamailio: Kamailio | null = null;
    try {
      if (!relay && o.relay && Relay.available()) relay = await Relay.start(o.dir, o.msrpPort, undefined, hepPort, o.history);
      const b2buaDefines = b2bua ? [`PF_B2BUA_URI="sip:127.0.0.1:${b2buaPort};transport=tcp"`, `PF_B2BUA_TOKEN="${LAB_LEG_TOKEN}"`] : [];
      kamailio = await Kamailio.start({
        dir: o.dir,
        sipPort,
        rpc: [{ port: service.rpcPort }],
        failsafe: o.failsafe,
        bare: o.bare,
        rpcTimeoutMs: o.rpcTimeoutMs,
        debug: o.kamailioDebug,
        children: o.children,
        defines: [...(o.defines ?? []), ...b2buaDefines],
        ...(hepPort === undefined ? {} : { traceHep: hepPort }),
      });
    } catch (err) {
      await Promise.all([service.stop(), relay?.stop(), kamailio?.stop()]);
      throw err;
    }
    return new Lab(service, kamailio, relay, b2bua ? 'b2bua' : 'proxy', b2buaPort);
  }

  get sipPort(): number {
    return this.kamailio.sipPort;
  }

  /** The service's operator token (docs/lab.md): `Authorization: Bearer <token>`. */
  get operatorToken(): string {
    return this.service.operatorToken;
  }

  /** Restart the service (same ports and data) and wait until Kamailio reconnected. */
  async restartService(timeoutMs = 30_000): Promise<Service> {
    const from = this.kamailio.outputLength;
    this.service = await this.service.restart();
    await this.kamailio.waitRpcConnected(this.service.rpcPort, from, timeoutMs);
    return this.service;
  }

  async stop(): Promise<void> {
    await Promise.all([this.kamailio.stop(), this.service.stop(), this.relay?.stop()]);
  }
}

// ---------------------------------------------------------------- several nodes

export interface MultiLabOptions {
  dir: string;
  /** Kamailio nodes, each with its own service instance (default 2). */
  nodes?: number;
  /** SIP port of node i is sipPorts[i] (free ports when absent). */
  sipPorts?: readonly number[];
  httpPorts?: readonly number[];
  rpcPorts?: readonly number[];
  policy?: Record<string, unknown>;
  failsafe?: 'reject' | 'relay';
  rpcTimeoutMs?: number;
  kamailioDebug?: number;
  children?: number;
  serviceLogLevel?: string;
  /** Replicas per Redis master (default 1: a master's failure is survived). */
  redisReplicas?: number;
  /** Extra Kamailio defines. */
  defines?: readonly string[];
  /** `b2bua`: each node also runs its own MSRP relay, and the PF takes sessions as a B2BUA. */
  mode?: 'proxy' | 'b2bua';
  /** More of the `b2bua` config section of every instance (B2BUA mode). */
  b2bua?: Record<string, unknown>;
  /** sharedState.leaseMs of every instance (docs/deployment.md §12); the service's default when absent. */
  leaseMs?: number;
}

/** One Kamailio node with its own service instance (and, in B2BUA mode, its own relay). */
export interface LabNode {
  readonly name: string;
  service: Service;
  readonly kamailio: Kamailio;
  readonly relay: Relay | null;
  /** The B2BUA's SIP port in B2BUA mode, else 0. */
  readonly b2buaSipPort: number;
}

/**
 * Several nodes on one machine (docs/deployment.md §12): N Kamailio nodes on their own
 * ports, N service instances with separate data dirs, one Redis Cluster of three
 * masters (with `redisReplicas` replicas each) for the shared state. Node i's
 * janssonrpcc names every instance, its own first (priority 10, the others 20, 30...),
 * so it fails over when its own goes; pf.cfg keeps Session-Replaces state with the
 * service (PF_SHARED_SESSIONS). `mode: 'b2bua'`: each node also runs its own relay and
 * its instance's B2BUA; a node's B2BUA sessions are its own, and a survivor ends those of
 * a node whose lease ran out (§12, plugin/b2bua/takeover.ts).
 */
export class MultiLab {
  private constructor(
    readonly nodes: readonly LabNode[],
    readonly redis: RedisCluster,
  ) {}

  static async start(o: MultiLabOptions): Promise<MultiLab> {
    const n = o.nodes ?? 2;
    if (!Number.isInteger(n) || n < 1 || n > 3) throw new Error(`nodes must be 1..3 (pf.cfg names at most 3 RPC servers), got ${n}`);
    // run as root, Redis runs as nobody (lab/redis.ts): it must reach its folder under the run dir (mkdtemp's is 0700)
    chmodSync(o.dir, 0o711);
    const redis = await startRedisCluster(join(o.dir, 'redis'), 3, o.redisReplicas ?? 1);
    const b2bua = o.mode === 'b2bua';
    const services: Service[] = [];
    const kamailios: Kamailio[] = [];
    const relays: Relay[] = [];
    const sipPorts: number[] = [];
    const b2buaPorts: number[] = [];
    const stopAll = async (): Promise<void> => {
      await Promise.all([...kamailios.map((k) => k.stop()), ...services.map((s) => s.stop()), ...relays.map((r) => r.stop())]);
      await redis.stop();
    };
    try {
      // each instance its own data dir (node<i>/service-data), all on the same cluster;
      // B2BUA mode: each its own relay, and the ports it and its Kamailio name to each other first
      for (let i = 0; i < n; i++) {
        const dir = join(o.dir, `node${i + 1}`);
        mkdirSync(dir, { recursive: true });
        sipPorts.push(o.sipPorts?.[i] ?? (await freePort()));
        b2buaPorts.push(b2bua ? await freePort() : 0);
        const relay = b2bua ? await Relay.start(dir, undefined, undefined, undefined, 'lmdb', { urls: redis.urls, prefix: 'lab' }) : null;
        if (relay) relays.push(relay);
        services.push(
          await Service.start({
            dir,
            name: 'service',
            rpcPort: o.rpcPorts?.[i],
            httpPort: o.httpPorts?.[i],
            policy: b2bua ? { ...o.policy, mode: 'b2bua' } : o.policy,
            logLevel: o.serviceLogLevel,
            sharedState: {
              engine: 'redis', redis: { urls: redis.urls, cluster: true, prefix: 'lab', timeoutMs: 500 }, nodeId: `node${i + 1}`,
              ...(o.leaseMs === undefined ? {} : { leaseMs: o.leaseMs }),
            },
            ...(relay
              ? { b2bua: { sipPort: b2buaPorts[i], proxyPort: sipPorts[i], relayPort: relay.controlPort, legToken: LAB_LEG_TOKEN, ...o.b2bua } }
              : {}),
          }),
        );
      }
      for (let i = 0; i < n; i++) {
        const own = services[i]!;
        const others = services.filter((_, j) => j !== i);
        const b2buaDefines = b2bua ? [`PF_B2BUA_URI="sip:127.0.0.1:${b2buaPorts[i]!};transport=tcp"`, `PF_B2BUA_TOKEN="${LAB_LEG_TOKEN}"`] : [];
        kamailios.push(
          await Kamailio.start({
            dir: join(o.dir, `node${i + 1}`),
            sipPort: sipPorts[i],
            rpc: [{ port: own.rpcPort, priority: 10 }, ...others.map((s, j) => ({ port: s.rpcPort, priority: 20 + 10 * j }))],
            failsafe: o.failsafe,
            rpcTimeoutMs: o.rpcTimeoutMs,
            debug: o.kamailioDebug,
            children: o.children,
            defines: ['PF_SHARED_SESSIONS', ...(o.defines ?? []), ...b2buaDefines],
          }),
        );
      }
    } catch (err) {
      await stopAll();
      throw err;
    }
    return new MultiLab(
      services.map((service, i) => ({ name: `node${i + 1}`, service, kamailio: kamailios[i]!, relay: b2bua ? relays[i]! : null, b2buaSipPort: b2buaPorts[i]! })),
      redis,
    );
  }

  node(i: number): LabNode {
    const node = this.nodes[i];
    if (!node) throw new Error(`no node ${i}`);
    return node;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.flatMap((n) => [n.kamailio.stop(), n.service.stop(), n.relay?.stop()]));
    await this.redis.stop();
  }
}
