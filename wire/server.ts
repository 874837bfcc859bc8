/**
 * JSON-RPC 2.0 over netstring-framed TCP (docs/jsonrpc.md): what Kamailio's janssonrpcc
 * speaks, and the relay's control interface (docs/media-control.md). Many requests per
 * connection, answered as they complete (matched by id); notifications get no answer;
 * batches are refused with -32600. The server may send notifications of its own to a
 * connection (`notifyEach`). A malformed netstring gets one
 * error with id null after the requests already received are answered, then the
 * connection closes; other connections are not affected.
 *
 * Only the peers in `allowedPeers` (addresses or CIDR blocks; loopback by default) may
 * connect: any other connection is destroyed before a byte is read, logged and counted
 * (docs/deployment.md "Threat model"). So is one over `maxConnections`.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { JsonRpcCode, type WireErrorCode } from './errors.js';
import { JsonRpcDispatcher, errorResponse, refuse, type RpcHooks, type RpcMethod, type RpcResponse } from './dispatcher.js';
import { NetstringDecoder, netstringText } from './netstring.js';
import { WriteBatch } from '../lib/write-batch.js';

/**
 * What a method handler of the server gets as `ctx`: the connection the request came
 * on, or undefined when it is called in process (`dispatcher.invoke`, `dispatch`).
 */
export type ServerContext = RpcConnection | undefined;

/**
 * One client connection. The frames written in one event-loop turn go out in one socket
 * write (lib/write-batch.ts); a peer that does not read stops being read from (backpressure).
 */
export class RpcConnection {
  /** `address:port` of the peer, for logs. */
  readonly peer: string;
  readonly #batch: WriteBatch;

  constructor(private readonly socket: net.Socket) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#batch = new WriteBatch((text) => {
      if (socket.destroyed || !socket.writable) return;
      if (!socket.write(text) && !socket.isPaused()) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
  }

  /** Queue one encoded frame for this turn's write. */
  write(frame: string): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.#batch.add(frame);
  }

  /** Write what this turn queued, then end the connection. */
  end(): void {
    this.#batch.flush();
    this.socket.end();
  }
}

export interface RpcServerHooks extends RpcHooks {
  /** A connection sent a malformed netstring (it is closed). */
  readonly framingError?: (code: WireErrorCode) => void;
  /** A connection was destroyed on accept: its peer is not allowed, or too many are open. */
  readonly connectionRefused?: (reason: RefusedReason) => void;
}

export type RefusedReason = 'peer' | 'limit';

/** Peers allowed when none are configured: loopback only (127.0.0.2 is loopback too, but not allowed). */
export const LOOPBACK_PEERS: readonly string[] = ['127.0.0.1', '::1'];

/**
 * `127.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8` -> a BlockList holding them. Throws on an
 * entry that is not an address or a block.
 */
export function peerList(entries: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const entry of entries) {
    const [addr = '', bits, ...rest] = entry.trim().split('/');
    const family = net.isIPv4(addr) ? 'ipv4' : net.isIPv6(addr) ? 'ipv6' : null;
    const prefix = bits === undefined ? null : Number(bits);
    if (family === null || rest.length > 0 || (prefix !== null && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= (family === 'ipv4' ? 32 : 128)))) {
      throw new Error(`not an address or address/prefix: ${entry}`);
    }
    if (prefix === null) list.addAddress(addr, family);
    else list.addSubnet(addr, prefix, family);
  }
  return list;
}

/** Whether `address` (as a socket reports it; IPv4-mapped IPv6 is read as IPv4) is in `list`. */
export function peerAllowed(list: net.BlockList, address: string | undefined): boolean {
  if (address === undefined) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) return list.check(mapped, 'ipv4');
  return net.isIPv4(address) ? list.check(address, 'ipv4') : net.isIPv6(address) && list.check(address, 'ipv6');
}

export interface RpcServerOptions {
  readonly methods: Readonly<Record<string, RpcMethod<RpcConnection> | RpcMethod>>;
  readonly log: Logger;
  /** Largest accepted netstring payload (bytes). */
  readonly maxFrameBytes: number;
  readonly hooks?: RpcServerHooks;
  /** Called once when a connection closes (to forget subscribers). */
  readonly onClose?: (conn: RpcConnection) => void;
  /** Peer addresses or CIDR blocks that may connect; default LOOPBACK_PEERS. */
  readonly allowedPeers?: readonly string[];
  /** Open connections at most; one more is destroyed on accept. Default: no limit. */
  readonly maxConnections?: number;
  /**
   * Requests awaiting an asynchronous answer per connection at most; one more is answered
   * -32002 (Busy) at once, without running. Default: no limit.
   */
  readonly maxInflight?: number;
}

export class JsonRpcServer {
  readonly dispatcher: JsonRpcDispatcher<RpcConnection>;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly allowed: net.BlockList;
  #refused = 0;

  constructor(private readonly opts: RpcServerOptions) {
    this.allowed = peerList(opts.allowedPeers ?? LOOPBACK_PEERS);
    const hooks = opts.hooks ?? {};
    this.dispatcher = new JsonRpcDispatcher(opts.methods, {
      ...hooks,
      internalError:
        hooks.internalError ?? ((method, err) => opts.log.error({ err, method }, 'rpc method failed')),
    });
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** Open connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Connections destroyed on accept (peer not allowed, or over maxConnections) since start. */
  get refused(): number {
    return this.#refused;
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

  /** A server-initiated notification (no id, no answer) to each connection, encoded once. */
  notifyEach(conns: Iterable<RpcConnection>, method: string, params: unknown): void {
    let frame: string | undefined;
    for (const c of conns) {
      frame ??= netstringText(JSON.stringify({ jsonrpc: '2.0', method, params }));
      c.write(frame);
    }
  }

  /** Destroy a connection we will not serve, before reading from it. */
  private refuse(socket: net.Socket, reason: RefusedReason): void {
    this.#refused++;
    this.opts.hooks?.connectionRefused?.(reason);
    this.opts.log.warn(
      { peer: `${socket.remoteAddress}:${socket.remotePort}`, reason },
      reason === 'peer' ? 'rpc connection refused: peer address not allowed' : 'rpc connection refused: too many connections',
    );
    socket.destroy();
  }

  private onConnection(socket: net.Socket): void {
    if (!peerAllowed(this.allowed, socket.remoteAddress)) return this.refuse(socket, 'peer');
    if (this.opts.maxConnections !== undefined && this.sockets.size >= this.opts.maxConnections) return this.refuse(socket, 'limit');
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const conn = new RpcConnection(socket);
    const log = this.opts.log.child({ peer: conn.peer });
    const decoder = new NetstringDecoder(this.opts.maxFrameBytes);
    const dispatcher = this.dispatcher;
    let closing = false;
    let inflight = 0;
    const maxInflight = this.opts.maxInflight;
    const send = (res: RpcResponse | null): void => {
      if (res !== null) conn.write(netstringText(JSON.stringify(res)));
    };
    /** After a framing error: answer what was already received, then the error, then close. */
    const finishClosing = (): void => {
      if (!closing || inflight > 0) return;
      const err = decoder.error;
      send(errorResponse(null, JsonRpcCode.InvalidRequest, 'Invalid Request: malformed netstring', err?.code));
      conn.end();
    };
    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      const frames = decoder.push(chunk);
      for (const frame of frames) {
        if (maxInflight !== undefined && inflight >= maxInflight) {
          this.opts.hooks?.outcome?.('-', JsonRpcCode.Busy);
          send(refuse(frame, JsonRpcCode.Busy, `Server busy: ${maxInflight} requests in flight on this connection`));
          continue;
        }
        let res: RpcResponse | null | Promise<RpcResponse | null>;
        try {
          res = dispatcher.dispatchNow(frame, conn);
        } catch (err) {
          log.error({ err }, 'rpc dispatch failed');
          continue;
        }
        // a synchronous method's answer is queued now, before the next frame is handled
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
        this.opts.hooks?.framingError?.(err.code);
        log.warn({ code: err.code }, 'malformed netstring, closing connection');
        finishClosing();
      }
    });
    socket.on('error', (err) => log.debug({ err }, 'rpc socket error'));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.opts.onClose?.(conn);
    });
  }
}
