/**
 * The decision service's JSON-RPC server: wire/server.ts (JSON-RPC 2.0 over netstring
 * TCP, what Kamailio's janssonrpcc speaks; docs/jsonrpc.md) with the service's metrics
 * hooked in: requests by method and outcome, the time from payload to answer, framing
 * errors. Synchronous methods are answered without awaiting (wire/dispatcher.ts).
 */
import type { Logger } from 'pino';
import type { RpcMethod as WireMethod } from '../../wire/dispatcher.js';
import { JsonRpcServer, type RpcServerHooks } from '../../wire/server.js';
import type { ServiceMetrics } from '../metrics/metrics.js';

export { method, type RpcResponse } from '../../wire/dispatcher.js';

/** A service method: its handlers do not need the connection. */
export type RpcMethod = WireMethod;

export interface RpcServerOptions {
  readonly methods: Readonly<Record<string, RpcMethod>>;
  readonly log: Logger;
  readonly metrics: ServiceMetrics;
  readonly maxFrameBytes: number;
  /** Peers that may connect (wire/server.ts); default loopback. */
  readonly allowedPeers?: readonly string[];
  readonly maxConnections?: number;
  readonly maxInflight?: number;
}

/**
 * The metrics hooks: `pf_rpc_requests_total`, `pf_decision_duration_seconds`, `pf_rpc_framing_errors_total`,
 * `pf_rpc_connections_refused_total`.
 */
function metricHooks(metrics: ServiceMetrics): RpcServerHooks {
  return {
    outcome: (method, outcome) => metrics.rpcRequests.inc({ method, outcome: String(outcome) }),
    duration: (method, seconds) => metrics.decisionSeconds.observe(seconds, { method }),
    framingError: () => metrics.rpcFramingErrors.inc(),
    connectionRefused: (reason) => metrics.rpcRefused.inc({ reason }),
  };
}

/** The server's `dispatcher` is the transport-free path with the same hooks (tests, in-process calls). */
export class RpcServer extends JsonRpcServer {
  constructor(opts: RpcServerOptions) {
    super({
      methods: opts.methods,
      log: opts.log,
      maxFrameBytes: opts.maxFrameBytes,
      hooks: metricHooks(opts.metrics),
      ...(opts.allowedPeers ? { allowedPeers: opts.allowedPeers } : {}),
      ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
      ...(opts.maxInflight !== undefined ? { maxInflight: opts.maxInflight } : {}),
    });
  }
}
