/**
 * Wiring: build every part from the config, start the RPC and HTTP servers, stop them.
 * Rules stay pure (plugin/rules); this file only connects the edges to them.
 */
import { mkdirSync } from 'node:fs';
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
import { RpcServer } from './rpc/server.js';
import { buildMethods } from './rpc/methods.js';
import { LmdbDeviceStore, type DeviceStore } from './devices/store.js';
import type { Device } from './devices/types.js';
import { XcapStore, type StoredDocument } from './xdm/store.js';
import { XcapClient } from './xdm/client.js';
import { EmbeddedXdmSource, RemoteXdmSource, type XdmSource } from './xdm/source.js';

export interface App {
  readonly config: Config;
  readonly metrics: ServiceMetrics;
  readonly rpc: RpcServer;
  readonly http: FastifyInstance;
  readonly devices: DeviceStore;
  readonly xcap: XcapStore;
  readonly xdm: XdmSource;
  /** Bound ports (differ from the config when it says 0). */
  rpcPort: number;
  httpPort: number;
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
  const devices = new LmdbDeviceStore(
    db.openDB<readonly Device[], string>({ name: 'devices' }),
    config.registrar.maxContacts,
  );
  const xcap = new XcapStore(
    db.openDB<StoredDocument | string, string>({ name: 'xcap' }),
    config.xdm.maxDocumentBytes,
  );
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
          }),
          config.xdm.cacheTtlMs,
          xdmOpts,
        );

  const methods = buildMethods({ config, devices, xdm, metrics, log: log.child({ component: 'rpc' }), now });
  const rpc = new RpcServer({
    methods,
    log: log.child({ component: 'rpc' }),
    metrics,
    maxFrameBytes: config.rpc.maxFrameBytes,
  });

  metrics.gauge('pf_rpc_connections', 'Open JSON-RPC connections', () => rpc.connections);

  /** `bob`, `sip:bob@host`, `sip%3Abob%40host` -> served-user key. */
  const userKey = (raw: string): string | null =>
    servedUserKey(raw.includes(':') ? raw : `sip:${raw}@${config.domain}`, config.identity, config.domain);

  // Each route group is an encapsulated fastify plugin (plugin/http/server.ts).
  const http = buildHttp(log);
  await http.register(opsRoutes, {
    metrics,
    notReady: () => {
      const reasons: string[] = [];
      if (!devices.isOpen) reasons.push('device store closed');
      if (!xcap.isOpen) reasons.push('xcap store closed');
      if (!rpc.listening) reasons.push('rpc not listening');
      return reasons;
    },
  });
  await http.register(deviceRoutes, { devices, userKey, now });
  await http.register(xcapRoutes, { store: xcap, normaliseXui: userKey, now });

  let timer: NodeJS.Timeout | null = null;
  const app: App = {
    config,
    metrics,
    rpc,
    http,
    devices,
    xcap,
    xdm,
    rpcPort: config.rpcPort,
    httpPort: config.httpPort,
    async start() {
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
      await rpc.close();
      await http.close();
      await devices.close();
      await xcap.close();
      await db.close();
    },
  };
  return app;
}
