/**
 * Operator HTTP interface (fastify): liveness, readiness, metrics, device and session
 * listings, and the embedded XCAP store. `buildHttp()` returns an un-listened instance
 * so tests use `inject()`.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ServiceMetrics } from '../metrics/metrics.js';

export interface HttpDeps {
  readonly log: Logger;
  readonly metrics: ServiceMetrics;
  /** Readiness: stores open and RPC listening. Returns the reasons it is not ready. */
  readonly notReady: () => string[];
  /** Extra routes (devices, sessions, XCAP) registered by the wiring. */
  readonly plugins?: ReadonlyArray<(app: FastifyInstance) => Promise<void> | void>;
}

export async function buildHttp(deps: HttpDeps): Promise<FastifyInstance> {
  const logger: FastifyBaseLogger = deps.log.child({ component: 'http' });
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024, // XCAP PUT routes set their own (xdm.maxDocumentBytes)
  });

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_req, reply) => {
    const reasons = deps.notReady();
    if (reasons.length > 0) return reply.code(503).send({ status: 'not ready', reasons });
    return { status: 'ready' };
  });

  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(deps.metrics.registry.render()),
  );

  for (const p of deps.plugins ?? []) await p(app);
  return app;
}
