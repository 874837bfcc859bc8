/**
 * JSON-RPC 2.0 over netstring-framed TCP: what Kamailio's janssonrpcc speaks
 * (docs/jsonrpc.md). Many requests per connection, answered as they complete
 * (matched by id); notifications get no answer; batches are refused with -32600.
 * A malformed netstring gets an error with id null, then the connection closes.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { NetstringDecoder, netstringText } from './netstring.js';
import { RpcCode, RpcError } from './errors.js';
import type { ServiceMetrics } from '../metrics/metrics.js';

export type RpcId = string | number | null;

export interface RpcMethod {
  readonly params: TSchema;
  /** Called only with params that passed `params` (the dispatcher checks first). */
  readonly handler: (params: unknown) => unknown;
}

/** Define a method; the handler's params are typed by its schema. */
export function method<S extends TSchema>(params: S, handler: (params: Static<S>) => unknown): RpcMethod {
  return { params, handler: handler as (params: unknown) => unknown };
}

interface CompiledMethod {
  readonly check: TypeCheck<TSchema>;
  readonly handler: (params: unknown) => unknown;
}

export interface RpcResponse {
  readonly jsonrpc: '2.0';
  readonly id: RpcId;
  readonly result?: unknown;
  readonly error?: { code: number; message: string; data?: unknown };
}

function errorResponse(id: RpcId, code: number, message: string, data?: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

function isValidId(v: unknown): v is RpcId {
  return v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
}

export interface RpcDispatcherOptions {
  readonly methods: Readonly<Record<string, RpcMethod>>;
  readonly log: Logger;
  readonly metrics: ServiceMetrics;
}

/** Transport-free dispatcher: one payload in, one response (or null for a notification) out. */
export class RpcDispatcher {
  private readonly methods = new Map<string, CompiledMethod>();

  constructor(private readonly opts: RpcDispatcherOptions) {
    for (const [name, m] of Object.entries(opts.methods)) {
      this.methods.set(name, {
        check: TypeCompiler.Compile(m.params),
        handler: m.handler,
      });
    }
  }

  async dispatch(payload: Buffer | string): Promise<RpcResponse | null> {
    return this.dispatchNow(payload);
  }

  /**
   * As dispatch(), but synchronous when the method's handler is: the answer can be
   * written at once instead of after every other frame of the same read.
   */
  dispatchNow(payload: Buffer | string): RpcResponse | null | Promise<RpcResponse | null> {
    const started = process.hrtime.bigint();
    let req: unknown;
    try {
      req = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
    } catch {
      this.count('-', RpcCode.ParseError);
      return errorResponse(null, RpcCode.ParseError, 'Parse error');
    }
    if (Array.isArray(req)) {
      this.count('-', RpcCode.InvalidRequest);
      return errorResponse(null, RpcCode.InvalidRequest, 'Invalid Request: batch requests are not supported');
    }
    if (typeof req !== 'object' || req === null) {
      this.count('-', RpcCode.InvalidRequest);
      return errorResponse(null, RpcCode.InvalidRequest, 'Invalid Request');
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
      this.count('-', RpcCode.InvalidRequest);
      return errorResponse(id, RpcCode.InvalidRequest, 'Invalid Request');
    }
    const name = r.method;
    const notification = !hasId;
    const m = this.methods.get(name);
    if (!m) {
      this.count('-', RpcCode.MethodNotFound);
      return notification ? null : errorResponse(id, RpcCode.MethodNotFound, 'Method not found');
    }
    const params = r.params ?? {};
    if (!m.check.Check(params)) {
      const first = m.check.Errors(params).First();
      const detail = first ? `${first.path || '/'}: ${first.message}` : 'schema violation';
      this.count(name, RpcCode.InvalidParams);
      return notification ? null : errorResponse(id, RpcCode.InvalidParams, 'Invalid params', detail);
    }
    let result: unknown;
    try {
      result = m.handler(params);
    } catch (err) {
      return this.failed(name, id, notification, started, err);
    }
    // no closures on the synchronous path: it runs for every request
    if (result instanceof Promise) {
      return result.then(
        (r: unknown) => this.ok(name, id, notification, started, r),
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
    this.opts.log.error({ err, method: name }, 'rpc method failed');
    this.count(name, RpcCode.Internal);
    return this.done(name, notification, started, errorResponse(id, RpcCode.Internal, 'Internal error'));
  }

  /** From the payload to the answer: JSON, schema check, SIP parse, facts, rules. */
  private done(name: string, notification: boolean, started: bigint, response: RpcResponse): RpcResponse | null {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.opts.metrics.decisionSeconds.observe(seconds, { method: name });
    return notification ? null : response;
  }

  private count(method: string, outcome: 'ok' | number): void {
    this.opts.metrics.rpcRequests.inc({ method, outcome: String(outcome) });
  }
}

export interface RpcServerOptions extends RpcDispatcherOptions {
  readonly maxFrameBytes: number;
}

export class RpcServer {
  readonly dispatcher: RpcDispatcher;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly opts: RpcServerOptions) {
    this.dispatcher = new RpcDispatcher(opts);
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** Open JSON-RPC connections (janssonrpcc keeps one or a few per server). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Listen and resolve with the bound port (pass 0 for a free one). */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host }, () => {
        this.server.off('error', onError);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const log = this.opts.log.child({ peer: `${socket.remoteAddress}:${socket.remotePort}` });
    const decoder = new NetstringDecoder(this.opts.maxFrameBytes);
    let closing = false;
    let inflight = 0;
    const send = (res: RpcResponse | null): void => {
      if (res === null || socket.destroyed || !socket.writable) return;
      // A peer that does not read its answers stops being read from (backpressure).
      if (!socket.write(netstringText(JSON.stringify(res))) && !socket.isPaused()) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    };
    /** After a framing error: answer what was already received, then the error, then close. */
    const finishClosing = (): void => {
      if (!closing || inflight > 0) return;
      const err = decoder.error;
      send(errorResponse(null, RpcCode.InvalidRequest, 'Invalid Request: malformed netstring', err?.code));
      socket.end();
    };
    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      const frames = decoder.push(chunk);
      for (const frame of frames) {
        let res: RpcResponse | null | Promise<RpcResponse | null>;
        try {
          res = this.dispatcher.dispatchNow(frame);
        } catch (err) {
          log.error({ err }, 'rpc dispatch failed');
          continue;
        }
        // a synchronous method's answer leaves now, before the next frame is handled
        if (!(res instanceof Promise)) {
          send(res);
          continue;
        }
        inflight++;
        res
          .then(send, (err: unknown) => log.error({ err }, 'rpc dispatch failed'))
          .finally(() => {
            inflight--;
            finishClosing();
          });
      }
      const err = decoder.error;
      if (err) {
        closing = true;
        this.opts.metrics.rpcFramingErrors.inc();
        log.warn({ code: err.code }, 'malformed netstring, closing connection');
        finishClosing();
      }
    });
    socket.on('error', (err) => log.debug({ err }, 'rpc socket error'));
    socket.on('close', () => this.sockets.delete(socket));
  }
}
