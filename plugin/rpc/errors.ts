/** JSON-RPC 2.0 error codes (docs/jsonrpc.md "Errors"). */
export const RpcCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  Internal: -32603,
  DependencyFailed: -32001,
} as const;
export type RpcCode = (typeof RpcCode)[keyof typeof RpcCode];

/** Thrown by a method handler to answer with a JSON-RPC error. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly code: RpcCode,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}
