/**
 * JSON-RPC 2.0 client over netstring-framed TCP, the peer of wire/server.ts: requests
 * matched to responses by id (any order), a timeout per request, notifications both
 * ways, close. A request rejects with RpcError when the server answers with an `error`,
 * with WireError `RPC_TIMEOUT` or `RPC_CLOSED` otherwise (codes: wire/errors.ts).
 */
import net from 'node:net';
import { JsonRpcCode, RpcError, WireError, WireErrorCode } from './errors.js';
import { NetstringDecoder, netstringText } from './netstring.js';
import { isJsonObject } from './config.js';
import { WriteBatch } from '../lib/write-batch.js';

export interface JsonRpcClientOptions {
  readonly host: string;
  readonly port: number;
  /** Default timeout of a request (ms). Default 5000. */
  readonly timeoutMs?: number;
  /** Largest accepted netstring payload (bytes). Default 1 MiB. */
  readonly maxFrameBytes?: number;
}

export type NotificationListener = (method: string, params: unknown) => void;

interface Pending {
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class JsonRpcClient {
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<NotificationListener>();
  private readonly decoder: NetstringDecoder;
  private readonly timeoutMs: number;
  private nextId = 0;
  private closedWith: WireError | null = null;
  private readonly closedPromise: Promise<void>;
  /** The requests of one event-loop turn go out in one socket write (lib/write-batch.ts). */
  private readonly batch: WriteBatch;

  private constructor(
    private readonly socket: net.Socket,
    opts: JsonRpcClientOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.decoder = new NetstringDecoder(opts.maxFrameBytes ?? 1 << 20);
    this.batch = new WriteBatch((text) => {
      if (!socket.destroyed && socket.writable) socket.write(text);
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined); // 'close' follows and rejects what is pending
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.fail(this.closedWith ?? new WireError(WireErrorCode.Closed, 'connection closed'));
        resolve();
      });
    });
  }

  /** Connect; rejects with WireError `RPC_CLOSED` when the connection cannot be made. */
  static connect(opts: JsonRpcClientOptions): Promise<JsonRpcClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: opts.host, port: opts.port });
      const onError = (err: Error): void => {
        reject(new WireError(WireErrorCode.Closed, `cannot connect to ${opts.host}:${opts.port}: ${err.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new JsonRpcClient(socket, opts));
      });
    });
  }

  /** Send a request; resolves with its `result`. */
  request(method: string, params?: object, timeoutMs = this.timeoutMs): Promise<unknown> {
    if (this.socket.destroyed || !this.socket.writable) {
      return Promise.reject(this.closedWith ?? new WireError(WireErrorCode.Closed, 'connection closed'));
    }
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WireError(WireErrorCode.Timeout, `${method}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.write({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    });
  }

  /** Send a notification (no id, no answer). */
  notify(method: string, params?: object): void {
    this.write({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) });
  }

  /** Listen to the server's notifications; returns the function that stops listening. */
  onNotification(fn: NotificationListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Close the connection; pending requests reject with `RPC_CLOSED`. */
  close(): Promise<void> {
    this.batch.flush();
    this.socket.end();
    this.socket.destroySoon();
    return this.closedPromise;
  }

  private write(msg: object): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.batch.add(netstringText(JSON.stringify(msg)));
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.decoder.push(chunk)) {
      let msg: unknown;
      try {
        msg = JSON.parse(frame.toString('utf8'));
      } catch {
        this.abort(new WireError(WireErrorCode.BadMessage, 'the server sent a payload that is not JSON'));
        return;
      }
      this.onMessage(msg);
    }
    const err = this.decoder.error;
    if (err) this.abort(err);
  }

  private onMessage(msg: unknown): void {
    if (!isJsonObject(msg) || msg.jsonrpc !== '2.0') {
      this.abort(new WireError(WireErrorCode.BadMessage, 'the server sent something that is not JSON-RPC 2.0'));
      return;
    }
    if (typeof msg.method === 'string' && !Object.hasOwn(msg, 'id')) {
      for (const fn of this.listeners) fn(msg.method, msg.params);
      return;
    }
    const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
    // a response to nothing pending (timed out, or id null after a malformed request): dropped
    if (!p) return;
    this.pending.delete(msg.id as number);
    clearTimeout(p.timer);
    const error = msg.error;
    if (isJsonObject(error)) {
      const code = typeof error.code === 'number' ? error.code : JsonRpcCode.Internal;
      p.reject(new RpcError(code, typeof error.message === 'string' ? error.message : 'error', error.data));
    } else {
      p.resolve(msg.result);
    }
  }

  /** The peer broke the protocol: fail everything pending with that error and close. */
  private abort(err: WireError): void {
    this.closedWith = err;
    this.fail(err);
    this.socket.destroy();
  }

  private fail(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }
}
