/**
 * Wiring: build every part from the config, start the RPC and HTTP servers, stop them.
 * Rules stay pure (plugin/rules); this file only connects edges to them.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { ServiceMetrics } from './http/metrics.js';
import { buildHttp } from './http/server.js';
import { RpcServer } from './rpc/server.js';
import { buildMethods } from './rpc/methods.js';

export interface App {
  readonly config: Config;
  readonly metrics: ServiceMetrics;
  readonly rpc: RpcServer;
  readonly http: FastifyInstance;
  /** Bound ports (differ from the config when it says 0). */
  rpcPort: number;
  httpPort: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function createApp(config: Config, log: Logger): Promise<App> {
  const metrics = new ServiceMetrics();
  const rpc = new RpcServer({
    methods: buildMethods(),
    log: log.child({ component: 'rpc' }),
    metrics,
    maxFrameBytes: config.rpc.maxFrameBytes,
  });
  const notReady = (): string[] => {
    const reasons: string[] = [];
    if (!rpc.listening) reasons.push('rpc not listening');
    return reasons;
  };
  const http = await buildHttp({ log, metrics, notReady });

  const app: App = {
    config,
    metrics,
    rpc,
    http,
    rpcPort: config.rpcPort,
    httpPort: config.httpPort,
    async start() {
      app.rpcPort = await rpc.listen(config.rpcPort, config.host);
      await http.listen({ port: config.httpPort, host: config.host });
      const addr = http.server.address();
      app.httpPort = typeof addr === 'object' && addr ? addr.port : config.httpPort;
    },
    async stop() {
      await rpc.close();
      await http.close();
    },
  };
  return app;
}
