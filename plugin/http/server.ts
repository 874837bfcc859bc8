/**
 * Operator HTTP interface (fastify). `buildHttp()` returns a bare, un-listened instance;
 * the wiring (plugin/app.ts) registers each route group on it as an encapsulated
 * fastify plugin, so tests use `inject()`:
 *
 *   ops.ts       GET /health, /ready, /metrics
 *   devices.ts   GET /users/:user/devices (operator only, auth.ts)
 *   xcap.ts      the embedded XCAP store (RFC 4825; the operator or the user, auth.ts)
 *
 * No group decorates the instance for another, so none needs fastify-plugin's
 * skip-override: each keeps its hooks and content-type parsers to itself.
 * With `tls`, the interface is HTTPS; it asks for a client certificate without requiring
 * one (auth.ts trusts an Aggregation Proxy by its certificate).
 */
import type http from 'node:http';
import https from 'node:https';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerFactory } from 'fastify';
import type { Logger } from 'pino';

/** What no log line may carry (docs/deployment.md "What is never logged"). */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'operatorToken',
  '*.operatorToken',
  'legToken',
  '*.legToken',
  'password',
  '*.password',
];

export function buildHttp(log: Logger, tls?: { readonly key: Buffer; readonly cert: Buffer }): FastifyInstance {
  // fastify serves an https.Server as it does an http.Server (its own `https` option makes one);
  // the cast keeps the instance's type the plain one every route group is written for
  const serverFactory: FastifyServerFactory | undefined = tls
    ? (handler) => https.createServer({ key: tls.key, cert: tls.cert, requestCert: true, rejectUnauthorized: false }, handler) as unknown as http.Server
    : undefined;
  const logger: FastifyBaseLogger = log.child({ component: 'http' }, { redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
  return Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024, // XCAP PUT routes set their own (xdm.maxDocumentBytes)
    ...(serverFactory ? { serverFactory } : {}),
  });
}
