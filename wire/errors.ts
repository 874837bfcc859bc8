/**
 * The coded errors of wire/ (the edges both processes share), in one registry
 * (docs/jsonrpc.md "Errors"):
 * - `JsonRpcCode`: the JSON-RPC 2.0 error codes (JSON-RPC 2.0 §5.1) a server answers with;
 *   a service adds its own in the -32000..-32099 range (plugin/errors.ts).
 * - `WireErrorCode`: local failures with a stable string code: netstring framing
 *   (draft-bernstein-netstrings-02), the client's own (timeout, connection closed) and
 *   configuration loading (wire/config.ts).
 */

export const JsonRpcCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  Internal: -32603,
  /** Server-defined (-32000..-32099): the connection has `maxInflight` requests unanswered (wire/server.ts). */
  Busy: -32002,
} as const;
export type JsonRpcCode = (typeof JsonRpcCode)[keyof typeof JsonRpcCode];

export const WireErrorCode = {
  /** The length is not a decimal number, or is empty. */
  NetstringBadLength: 'NETSTRING_BAD_LENGTH',
  /** A length with a leading zero (other than `0:`). */
  NetstringLeadingZero: 'NETSTRING_LEADING_ZERO',
  /** A length above the receiver's cap. */
  NetstringTooLong: 'NETSTRING_TOO_LONG',
  /** The byte after the payload is not `,`. */
  NetstringNoComma: 'NETSTRING_NO_COMMA',
  /** Client: no response within the request's timeout. */
  Timeout: 'RPC_TIMEOUT',
  /** Client: the connection closed (or was never open) before the response. */
  Closed: 'RPC_CLOSED',
  /** Client: the peer sent something that is not a JSON-RPC 2.0 message. */
  BadMessage: 'RPC_BAD_MESSAGE',
  /** Configuration (wire/config.ts): a file, variable or flag that does not fit the schema. */
  ConfigInvalid: 'CONFIG_INVALID',
} as const;
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

/** A framing or client failure. The code is stable; the message is for logs. */
export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(
    readonly code: WireErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A JSON-RPC error: thrown by a method handler to answer with it, and what a client's
 * request rejects with when the server answers with an `error` member.
 */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}
