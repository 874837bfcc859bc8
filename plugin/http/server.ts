/**
 * Operator HTTP interface (fastify). `buildHttp()` returns a bare, un-listened instance;
 * the wiring (plugin/app.ts) registers each route group on it as an encapsulated
 * fastify plugin, so tests use `inject()`:
 *
 *   ops.ts       GET /health, /ready, /metrics
 *   devices.ts   GET /users/:user/devices
 *   xcap.ts      the embedded XCAP store (RFC 4825)
 *
 * No group decorates the instance for another, so none needs fastify-plugin's
 * skip-override: each keeps its hooks and content-type parsers to itself.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

export function buildHttp(log: Logger): FastifyInstance {
  const logger: FastifyBaseLogger = log.child({ component: 'http' });
  return Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024, // XCAP PUT routes set their own (xdm.maxDocumentBytes)
  });
}
