/**
 * The JSON-RPC methods and their params schemas (docs/jsonrpc.md). Params are
 * validated here, at the boundary; handlers get typed values.
 */
import { Type } from '@sinclair/typebox';
import { method, type RpcMethod } from './server.js';

/** `pf.ping`: health check over the RPC channel. */
export const PingParams = Type.Object({ v: Type.Optional(Type.Literal(1)) });

export function buildMethods(): Record<string, RpcMethod> {
  return {
    'pf.ping': method(PingParams, () => ({ pong: true })),
  };
}
