/** Liveness, readiness and the Prometheus exposition (docs/service.md "HTTP"). */
import type { FastifyPluginAsync, onRequestAsyncHookHandler } from 'fastify';
import type { ServiceMetrics } from '../metrics/metrics.js';

export interface OpsRouteOptions {
  readonly metrics: ServiceMetrics;
  /** Readiness: stores open and RPC listening. Returns the reasons it is not ready. */
  readonly notReady: () => string[];
  /** /metrics for the operator only (config http.metrics `operator`): this hook refuses the rest. */
  readonly metricsGuard?: onRequestAsyncHookHandler;
}

export const opsRoutes: FastifyPluginAsync<OpsRouteOptions> = async (app, { metrics, notReady, metricsGuard }) => {
  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_req, reply) => {
    const reasons = notReady();
    if (reasons.length > 0) return reply.code(503).send({ status: 'not ready', reasons });
    return { status: 'ready' };
  });

  app.get('/metrics', metricsGuard ? { onRequest: metricsGuard } : {}, async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.registry.render()),
  );
};
