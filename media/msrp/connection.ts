// One MSRP transport connection (TCP, or TLS for msrps) with bounded output and
// slowloris/idle protection. Frames are not interpreted here; MsrpEndpoint routes them.
//
// Output bound: bytes waiting in Node's socket buffer (socket.writableLength). write()
// returns false above highWaterMark and 'drain' follows; above maxQueuedBytes the
// connection is destroyed (MSRP_QUEUE_OVERFLOW). So a peer that never reads costs at most
// maxQueuedBytes + one write of process memory (plus the kernel's socket buffer).
import { EventEmitter } from 'node:events';
import { Buffer } from 'node:buffer';
import type { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { MsrpError } from './errors.js';
import { MsrpStreamParser } from './parser.js';
import { serializeFrame } from './serializer.js';
import type { ConnectionOptions, ContinuationFlag, Frame, FrameHead, MsrpConnectionLike } from './types.js';

export const DEFAULT_HIGH_WATER = 256 * 1024;
export const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;

let nextId = 1;

export interface MsrpConnectionEvents {
  frameStart: [head: FrameHead];
  body: [piece: Buffer];
  frameEnd: [head: FrameHead, flag: ContinuationFlag];
  /** Parser error; the connection closes right after the listeners ran. */
  parseError: [err: MsrpError];
  drain: [];
  close: [err?: Error];
}

export interface ConnectTarget {
  host: string;
  port: number;
  /** Use TLS (msrps); options go to tls.connect (e.g. ca, servername, rejectUnauthorized). */
  tls?: tls.ConnectionOptions;
  /** Connect timeout, default 5 s. */
  timeoutMs?: number;
  /** Abort the attempt: the socket is destroyed and the promise rejects. */
  signal?: AbortSignal;
}

export class MsrpConnection extends EventEmitter<MsrpConnectionEvents> implements MsrpConnectionLike {
  readonly id: string;
  readonly socket: net.Socket;
  readonly sessions = new Set<string>();
  readonly highWaterMark: number;
  readonly maxQueuedBytes: number;
  private readonly parser: MsrpStreamParser;
  private readonly headerTimeoutMs: number;
  private headerTimer: NodeJS.Timeout | undefined;
  private current: FrameHead | undefined;
  private needDrain = false;
  private sawFrame = false;
  private isClosed = false;
  private closeErr: Error | undefined;
  /** Highest queuedBytes seen (for tests and metrics). */
  peakQueuedBytes = 0;

  constructor(socket: net.Socket, opts: ConnectionOptions = {}) {
    super();
    this.id = `c${nextId++}`;
    this.socket = socket;
    this.highWaterMark = opts.highWaterMark ?? DEFAULT_HIGH_WATER;
    this.maxQueuedBytes = Math.max(opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED, this.highWaterMark);
    this.headerTimeoutMs = opts.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
    this.parser = new MsrpStreamParser(
      {
        frameStart: (head) => {
          this.sawFrame = true;
          this.clearHeaderTimer();
          this.current = head;
          this.emit('frameStart', head);
        },
        body: (piece) => this.emit('body', piece),
        frameEnd: (flag) => {
          const head = this.current!;
          this.current = undefined;
          this.emit('frameEnd', head, flag);
        },
      },
      opts.limits,
    );
    socket.setNoDelay(true);
    if (opts.firstFrameTimeoutMs) {
      // Counts as an unfinished head until the first frame head completes.
      this.headerTimer = setTimeout(() => {
        this.headerTimer = undefined;
        this.close(new MsrpError('MSRP_HEADER_TIMEOUT', `no frame within ${opts.firstFrameTimeoutMs} ms of connecting`));
      }, opts.firstFrameTimeoutMs);
    }
    if (opts.idleTimeoutMs) {
      socket.setTimeout(opts.idleTimeoutMs, () => this.close(new MsrpError('MSRP_IDLE_TIMEOUT', 'connection idle')));
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      if (this.needDrain && !this.isClosed) {
        this.needDrain = false;
        this.emit('drain');
      }
    });
    socket.on('end', () => {
      try {
        this.parser.end();
        this.close();
      } catch (err) {
        this.close(err as Error);
      }
    });
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => {
      this.isClosed = true;
      this.clearHeaderTimer();
      this.emit('close', this.closeErr);
    });
  }

  /** Open an active connection (TCP or TLS). */
  static connect(target: ConnectTarget, opts: ConnectionOptions = {}): Promise<MsrpConnection> {
    return new Promise((resolve, reject) => {
      const signal = target.signal;
      if (signal?.aborted) {
        reject(new Error(`connect to ${target.host}:${target.port} aborted`));
        return;
      }
      const socket = target.tls
        ? tls.connect({ ...target.tls, host: target.host, port: target.port })
        : net.connect({ host: target.host, port: target.port });
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: Error): void => {
        settle();
        socket.destroy();
        reject(err);
      };
      const onAbort = (): void => fail(new Error(`connect to ${target.host}:${target.port} aborted`));
      const timer = setTimeout(() => fail(new Error(`connect to ${target.host}:${target.port} timed out`)), target.timeoutMs ?? 5000);
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', fail);
      socket.once(target.tls ? 'secureConnect' : 'connect', () => {
        settle();
        socket.off('error', fail);
        resolve(new MsrpConnection(socket, opts));
      });
    });
  }

  /** Over TLS: the peer's certificate (RFC 4975 §14.1 fingerprint checks); undefined over TCP or without one. */
  peerCertificate(): X509Certificate | undefined {
    return this.socket instanceof tls.TLSSocket ? this.socket.getPeerX509Certificate() : undefined;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  write(data: Buffer): boolean {
    if (this.isClosed || this.socket.destroyed) return false;
    this.socket.write(data);
    const q = this.socket.writableLength;
    if (q > this.peakQueuedBytes) this.peakQueuedBytes = q;
    if (q > this.maxQueuedBytes) {
      // The peer does not read: drop it rather than buffer without bound.
      this.close(new MsrpError('MSRP_QUEUE_OVERFLOW', `output queue above ${this.maxQueuedBytes} bytes`));
      return false;
    }
    if (q > this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  sendFrame(frame: Frame): boolean {
    return this.write(serializeFrame(frame));
  }

  /** Stop reading from the socket (used by the test client to act as a slow reader). */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Read-side flow control for relays: stop reading until resume(); 'drain' tells when output went below the mark. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Hold writes until uncork(), to send several frames in one syscall; false when the socket is gone. */
  cork(): boolean {
    if (this.socket.destroyed) return false;
    this.socket.cork();
    return true;
  }

  uncork(): void {
    this.socket.uncork();
  }

  /**
   * Close. Without error: flush what is queued, then end. With an error: destroy at once
   * (queue overflow, timeouts, protocol errors after the 400 was queued are flushed first).
   */
  close(err?: Error): void {
    if (this.closeErr === undefined && err !== undefined) this.closeErr = err;
    if (this.isClosed) return;
    this.isClosed = true;
    this.clearHeaderTimer();
    const code = err instanceof MsrpError ? err.code : undefined;
    if (code === 'MSRP_QUEUE_OVERFLOW' || code === 'MSRP_HEADER_TIMEOUT' || code === 'MSRP_IDLE_TIMEOUT' || (err && !code)) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    // Do not wait forever for a peer that never reads our final bytes.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
    try {
      this.parser.feed(chunk);
    } catch (err) {
      if (err instanceof MsrpError) {
        this.emit('parseError', err);
        this.close(err);
      } else {
        // A bug in a listener: drop this connection, report it through 'close'.
        this.close(err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    if (!this.sawFrame && this.headerTimer !== undefined) return; // first-frame timer still runs
    if (this.parser.state === 'head' && this.headerTimeoutMs > 0) {
      if (this.headerTimer === undefined) {
        this.headerTimer = setTimeout(() => {
          this.headerTimer = undefined;
          this.close(new MsrpError('MSRP_HEADER_TIMEOUT', `frame head not complete within ${this.headerTimeoutMs} ms`));
        }, this.headerTimeoutMs);
      }
    } else {
      this.clearHeaderTimer();
    }
  }

  private clearHeaderTimer(): void {
    if (this.headerTimer !== undefined) {
      clearTimeout(this.headerTimer);
      this.headerTimer = undefined;
    }
  }
}
