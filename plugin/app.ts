/**
 * Wiring: build every part from the config, start the RPC and HTTP servers, stop them.
 * Rules stay pure (plugin/rules); this file only connects the edges to them.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { servedUserKey } from './config/identity.js';
import { ServiceMetrics } from './metrics/metrics.js';
import { buildHttp } from './http/server.js';
import { opsRoutes } from './http/ops.js';
import { deviceRoutes } from './http/devices.js';
import { xcapRoutes } from './http/xcap.js';
import { liveRoutes } from './http/live.js';
import { access, credentialsOf, normaliseFingerprint, operatorHook, operatorOnly, type TrustedProxies } from './http/auth.js';
import { peerList } from '../wire/server.js';
import { LiveView } from './live/view.js';
import { recordInvites } from './live/record.js';
import { RpcServer } from './rpc/server.js';
import { buildMethods } from './rpc/methods.js';
import { sessionMethods } from './sessions/rpc.js';
import type { SessionStore } from './sessions/store.js';
import type { DeviceStore } from './devices/store.js';
import type { DocumentStore } from './xdm/store.js';
import { openStores } from './shared-state/stores.js';
import { XcapClient } from './xdm/client.js';
import { EmbeddedXdmSource, RemoteXdmSource, type XdmSource } from './xdm/source.js';
import { b2buaWanted } from './config/load.js';
import { startB2bua, type B2buaService } from './b2bua/service.js';
import { RpcError } from '../wire/errors.js';
import { RpcCode } from './errors.js';
import { settlesWithin } from '../lib/lmdb-commit-guard.js';

export interface App {
  readonly config: Config;
  readonly metrics: ServiceMetrics;
  readonly rpc: RpcServer;
  readonly http: FastifyInstance;
  readonly devices: DeviceStore;
  readonly xcap: DocumentStore;
  /** Session-Replaces state recorded with pf.dialog.start (plugin/sessions/store.ts). */
  readonly sessions: SessionStore;
  readonly xdm: XdmSource;
  /** Bound ports (differ from the config when it says 0). */
  rpcPort: number;
  httpPort: number;
  /** The B2BUA's SIP port, when some served user's mode is b2bua (CR 8.3.2.1 step 8). */
  b2buaSipPort: number | null;
  b2bua: B2buaService | null;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface AppOptions {
  /** Clock, epoch ms (tests move it). */
  readonly now?: () => number;
}

export async function createApp(config: Config, log: Logger, opts: AppOptions = {}): Promise<App> {
  const now = opts.now ?? Date.now;
  const metrics = new ServiceMetrics();
  mkdirSync(config.dataDir, { recursive: true });
  const db: RootDatabase = open({ path: config.dataDir, maxDbs: 4 });
  // devices and XCAP documents: lmdb in dataDir, or the shared engine (sharedState)
  const stores = await openStores(config, db, log.child({ component: 'shared-state' }));
  const { devices, xcap, sessions } = stores;
  const xdmOpts = {
    document: config.xdm.document,
    blacklistList: config.policy.blacklistListName,
    maxBytes: config.xdm.maxDocumentBytes,
    log: log.child({ component: 'xdm' }),
    metrics,
  };
  const xdm: XdmSource =
    config.xdm.url === null
      ? new EmbeddedXdmSource(xcap, xdmOpts)
      : new RemoteXdmSource(
          new XcapClient({
            root: config.xdm.url,
            timeoutMs: config.xdm.timeoutMs,
            maxBytes: config.xdm.maxDocumentBytes,
            ...(config.xdm.token ? { token: config.xdm.token } : {}),
          }),
          config.xdm.cacheTtlMs,
          xdmOpts,
        );

  // B2BUA mode: started with the servers (it needs the relay and Kamailio), reached by
  // pf.invite through this handover (plugin/b2bua/tickets.ts)
  let b2bua: B2buaService | null = null;
  const handover = b2buaWanted(config.policy, config.b2bua.legToken)
    ? {
        issue: (plan: Parameters<B2buaService['tickets']['issue']>[0]): string => {
          if (!b2bua) throw new RpcError(RpcCode.DependencyFailed, 'B2BUA not started');
          return b2bua.tickets.issue(plan);
        },
        connectedDevices: (cid: string) => b2bua?.b2bua.connectedDevices(cid) ?? null,
        registered: (user: string, list: Parameters<B2buaService['registered']>[1]) => b2bua?.registered(user, list),
      }
    : undefined;
  // the lab's live view (docs/lab.md "Live view"): off unless live.enabled
  const liveNow = (): number => performance.timeOrigin + performance.now();
  const live = config.live.enabled
    ? new LiveView({
        host: config.host, hepPort: config.live.hepPort, maxCalls: config.live.maxCalls, maxRecords: config.live.maxMessagesPerCall,
        kamailio: config.live.kamailio, devices, log: log.child({ component: 'live' }), now: liveNow,
      })
    : null;
  const built = {
    ...buildMethods({
      config, devices, xdm, metrics, log: log.child({ component: 'rpc' }), now, sessions, ...(handover ? { b2bua: handover } : {}),
    }),
    ...sessionMethods(sessions, log.child({ component: 'sessions' }), now),
  };
  const methods = live ? recordInvites(built, (d) => live.store.decision(d), liveNow) : built;
  const rpc = new RpcServer({
    methods,
    log: log.child({ component: 'rpc' }),
    metrics,
    maxFrameBytes: config.rpc.maxFrameBytes,
    allowedPeers: config.rpc.allowedPeers,
    maxConnections: config.rpc.maxConnections,
    maxInflight: config.rpc.maxInflight,
  });

  metrics.gauge('pf_rpc_connections', 'Open JSON-RPC connections', () => rpc.connections);
  if (handover) {
    metrics.gauge('pf_b2bua_calls', 'B2BUA calls in progress', () => b2bua?.counts().calls ?? 0);
    metrics.gauge('pf_b2bua_calls_confirmed', 'B2BUA calls confirmed (kept in its store)', () => b2bua?.counts().confirmed ?? 0);
    metrics.gauge('pf_b2bua_calls_started', 'B2BUA calls started since the service started', () => b2bua?.counts().started ?? 0);
    metrics.gauge('pf_b2bua_invites_refused', 'INVITEs the B2BUA refused for want of a valid ticket', () => b2bua?.counts().refused ?? 0);
    metrics.gauge('pf_b2bua_tickets', 'Tickets waiting for their INVITE', () => b2bua?.counts().tickets ?? 0);
    metrics.gauge('pf_b2bua_relay_up', 'The B2BUA reaches its media relay (0: new invitations get the fail-safe)', () => (b2bua?.counts().relayUp ? 1 : 0));
    metrics.gauge('pf_b2bua_calls_restored', 'B2BUA calls reloaded from its store at start', () => b2bua?.counts().restored ?? 0);
    metrics.gauge('pf_b2bua_records_skipped', 'Stored B2BUA calls skipped at start (damaged records)', () => b2bua?.counts().skipped ?? 0);
  }

  /** `bob`, `sip:bob@host`, `sip%3Abob%40host` -> served-user key. */
  const userKey = (raw: string): string | null =>
    servedUserKey(raw.includes(':') ? raw : `sip:${raw}@${config.domain}`, config.identity, config.domain);

  // Each route group is an encapsulated fastify plugin (plugin/http/server.ts).
  // docs/deployment.md "Threat model": /health and /ready open, /metrics as configured, the rest
  // the operator's (bearer token) or, on XCAP, the user's as a trusted proxy asserts it
  const token = config.http.operatorToken;
  const trusted: TrustedProxies = {
    addresses: peerList(config.xdm.trustedProxies),
    certificates: new Set(config.xdm.trustedProxyCertificates.map(normaliseFingerprint)),
  };
  const http = buildHttp(
    log,
    config.http.tls ? { cert: readFileSync(config.http.tls.cert), key: readFileSync(config.http.tls.key) } : undefined,
  );
  await http.register(opsRoutes, {
    ...(config.http.metrics === 'operator' ? { metricsGuard: operatorHook(token) } : {}),
    metrics,
    notReady: () => {
      const reasons: string[] = [];
      if (!devices.isOpen) reasons.push('device store closed');
      if (!xcap.isOpen) reasons.push('xcap store closed');
      if (!rpc.listening) reasons.push('rpc not listening');
      return reasons;
    },
  });
  await http.register(
    operatorOnly(async (scope) => {
      await scope.register(deviceRoutes, { devices, userKey, now });
      if (live) await scope.register(liveRoutes, { live, now });
    }),
    { operatorToken: token, open: ['/lab/live'] },
  );
  await http.register(xcapRoutes, {
    store: xcap, normaliseXui: userKey, now,
    authorise: (req, target) => access(credentialsOf(req, trusted), token, target, userKey),
  });

  let timer: NodeJS.Timeout | null = null;
  const app: App = {
    config,
    metrics,
    rpc,
    http,
    devices,
    xcap,
    sessions,
    xdm,
    rpcPort: config.rpcPort,
    httpPort: config.httpPort,
    b2buaSipPort: null,
    b2bua: null,
    async start() {
      if (handover) {
        b2bua = await startB2bua(config, log, now, stores.engine);
        app.b2bua = b2bua;
        app.b2buaSipPort = b2bua.sipPort;
        const b = b2bua;
        if (live) live.b2bua = { sentBy: `${config.host}:${b.sipPort}`, calls: () => b.counts().calls, sessions: () => b.b2bua.sessions() };
      }
      await live?.start();
      app.rpcPort = await rpc.listen(config.rpcPort, config.host);
      await http.listen({ port: config.httpPort, host: config.host });
      const addr = http.server.address();
      app.httpPort = typeof addr === 'object' && addr ? addr.port : config.httpPort;
      timer = setInterval(() => {
        devices.purge(now()).catch((err: unknown) => log.error({ err }, 'device purge failed'));
      }, config.registrar.purgeIntervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      await b2bua?.stop();
      await live?.stop();
      await rpc.close();
      await http.close();
      await stores.close();
      await settlesWithin(db.close());
    },
  };
  return app;
}
