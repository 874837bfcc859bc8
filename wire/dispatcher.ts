/**
 * Transport-free JSON-RPC 2.0 dispatcher: one payload in, one response (or null for a
 * notification) out. Params are checked against each method's TypeBox schema (compiled
 * once) before its handler runs. Error codes: wire/errors.ts, docs/jsonrpc.md "Errors".
 *
 * The synchronous path does not allocate closures or await: a synchronous handler's
 * answer is returned at once, so a server can write it before the next frame of the
 * same read (bench/service-dispatch.ts measures this path).
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { JsonRpcCode, RpcError } from './errors.js';

export type RpcId = string | number | null;

export interface RpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

export interface RpcResponse {
  readonly jsonrpc: '2.0';
  readonly id: RpcId;
  readonly result?: unknown;
  readonly error?: RpcErrorObject;
}

/**
 * A method: its params schema and a handler called only with params that passed it.
 * `ctx` is what the transport passes along (the connection for the TCP server), or
 * undefined for an in-process call.
 */
export interface RpcMethod<C = undefined> {
  readonly params: TSchema;
  // a method signature: a handler that ignores ctx fits any transport
  handler(params: unknown, ctx: C | undefined): unknown;
}

/** Define a method; the handler's params are typed by its schema. */
export function method<S extends TSchema, C = undefined>(
  params: S,
  handler: (params: Static<S>, ctx: C | undefined) => unknown,
): RpcMethod<C> {
  return { params, handler: handler as (params: unknown, ctx: C | undefined) => unknown };
}

/** What a service counts; wire/ knows nothing of its metrics. */
export interface RpcHooks {
  /** Once per request or notification: `ok` or the error code. Method `-` when unknown or invalid. */
  readonly outcome?: (method: string, outcome: 'ok' | number) => void;
  /** Seconds from the payload to the answer, for calls that reached their handler. */
  readonly duration?: (method: string, seconds: number) => void;
  /** A handler threw something other than RpcError (answered -32603 without its message). */
  readonly internalError?: (method: string, err: unknown) => void;
}

/**
 * An error answer to `payload` without running it (a server over its limits): the id is
 * read from the payload when it is a request object; a notification gets none (null).
 */
export function refuse(payload: Buffer | string, code: number, message: string): RpcResponse | null {
  let req: unknown;
  try {
    req = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    return errorResponse(null, code, message);
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return errorResponse(null, code, message);
  const r = req as Record<string, unknown>;
  if (!Object.hasOwn(r, 'id')) return null;
  return errorResponse(isValidId(r.id) ? r.id : null, code, message);
}

export function errorResponse(id: RpcId, code: number, message: string, data?: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

function isValidId(v: unknown): v is RpcId {
  return v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
}

interface CompiledMethod<C> {
  readonly check: TypeCheck<TSchema>;
  readonly handler: (params: unknown, ctx: C | undefined) => unknown;
}

/** `/path: message` of the first schema violation (the `data` of -32602). */
export function firstViolation(check: TypeCheck<TSchema>, params: unknown): string {
  const first = check.Errors(params).First();
  return first ? `${first.path || '/'}: ${first.message}` : 'schema violation';
}

export class JsonRpcDispatcher<C = undefined> {
  private readonly methods = new Map<string, CompiledMethod<C>>();

  /** `methods`: those that use the transport's context, and those that need none. */
  constructor(
    methods: Readonly<Record<string, RpcMethod<C> | RpcMethod>>,
    private readonly hooks: RpcHooks = {},
  ) {
    for (const [name, m] of Object.entries(methods)) {
      // a method that needs no context ignores the one it is given
      const handler = m.handler as (params: unknown, ctx: C | undefined) => unknown;
      this.methods.set(name, { check: TypeCompiler.Compile(m.params), handler });
    }
  }

  /**
   * Call a method in process, with the same checks as over the wire: params that are
   * not an object or array throw RpcError -32600, an unknown method -32601, params that
   * fail the schema -32602 with the first violation as `data`. Returns what the handler
   * returns (or throws).
   */
  invoke(name: string, params: unknown, ctx?: C): unknown {
    // as over the wire: params, when present, must be an object or an array
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      throw new RpcError(JsonRpcCode.InvalidRequest, 'Invalid Request');
    }
    const m = this.methods.get(name);
    if (!m) throw new RpcError(JsonRpcCode.MethodNotFound, 'Method not found');
    const p = params ?? {};
    if (!m.check.Check(p)) throw new RpcError(JsonRpcCode.InvalidParams, 'Invalid params', firstViolation(m.check, p));
    return m.handler(p, ctx);
  }

  async dispatch(payload: Buffer | string, ctx?: C): Promise<RpcResponse | null> {
    return this.dispatchNow(payload, ctx);
  }

  /**
   * As dispatch(), but synchronous when the method's handler is: the answer can be
   * written at once instead of after every other frame of the same read.
   */
  dispatchNow(payload: Buffer | string, ctx?: C): RpcResponse | null | Promise<RpcResponse | null> {
    const started = process.hrtime.bigint();
    let req: unknown;
    try {
      req = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
    } catch {
      this.count('-', JsonRpcCode.ParseError);
      return errorResponse(null, JsonRpcCode.ParseError, 'Parse error');
    }
    if (Array.isArray(req)) {
      this.count('-', JsonRpcCode.InvalidRequest);
      return errorResponse(null, JsonRpcCode.InvalidRequest, 'Invalid Request: batch requests are not supported');
    }
    if (typeof req !== 'object' || req === null) {
      this.count('-', JsonRpcCode.InvalidRequest);
      return errorResponse(null, JsonRpcCode.InvalidRequest, 'Invalid Request');
    }
    const r = req as Record<string, unknown>;
    const hasId = Object.hasOwn(r, 'id');
    const id: RpcId = hasId && isValidId(r.id) ? r.id : null;
    if (
      r.jsonrpc !== '2.0' ||
      typeof r.method !== 'string' ||
      (hasId && !isValidId(r.id)) ||
      (r.params !== undefined && (typeof r.params !== 'object' || r.params === null))
    ) {
      this.count('-', JsonRpcCode.InvalidRequest);
      return errorResponse(id, JsonRpcCode.InvalidRequest, 'Invalid Request');
    }
    const name = r.method;
    const notification = !hasId;
    const m = this.methods.get(name);
    if (!m) {
      this.count('-', JsonRpcCode.MethodNotFound);
      return notification ? null : errorResponse(id, JsonRpcCode.MethodNotFound, 'Method not found');
    }
    const params = r.params ?? {};
    if (!m.check.Check(params)) {
      this.count(name, JsonRpcCode.InvalidParams);
      return notification
        ? null
        : errorResponse(id, JsonRpcCode.InvalidParams, 'Invalid params', firstViolation(m.check, params));
    }
    let result: unknown;
    try {
      result = m.handler(params, ctx);
    } catch (err) {
      return this.failed(name, id, notification, started, err);
    }
    // no closures on the synchronous path: it runs for every request
    if (result instanceof Promise) {
      return result.then(
        (v: unknown) => this.ok(name, id, notification, started, v),
        (err: unknown) => this.failed(name, id, notification, started, err),
      );
    }
    return this.ok(name, id, notification, started, result);
  }

  private ok(name: string, id: RpcId, notification: boolean, started: bigint, result: unknown): RpcResponse | null {
    this.count(name, 'ok');
    return this.done(name, notification, started, { jsonrpc: '2.0', id, result });
  }

  private failed(name: string, id: RpcId, notification: boolean, started: bigint, err: unknown): RpcResponse | null {
    if (err instanceof RpcError) {
      this.count(name, err.code);
      return this.done(name, notification, started, errorResponse(id, err.code, err.message, err.data));
    }
    this.hooks.internalError?.(name, err);
    this.count(name, JsonRpcCode.Internal);
    return this.done(name, notification, started, errorResponse(id, JsonRpcCode.Internal, 'Internal error'));
  }

  private done(name: string, notification: boolean, started: bigint, response: RpcResponse): RpcResponse | null {
    const duration = this.hooks.duration;
    if (duration) duration(name, Number(process.hrtime.bigint() - started) / 1e9);
    return notification ? null : response;
  }

  private count(method: string, outcome: 'ok' | number): void {
    const outcomeHook = this.hooks.outcome;
    if (outcomeHook) outcomeHook(method, outcome);
  }
}
