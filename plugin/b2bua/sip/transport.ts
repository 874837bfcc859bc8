/**
 * The B2BUA's SIP transport: TCP on loopback, to and from Kamailio only (RFC 3261 §18,
 * docs/b2bua-sip.md "Transport").
 *
 * - A listener for the connections Kamailio opens to the B2BUA (its requests, and the
 *   responses it does not send back on the connection our request came in on). Each
 *   connection has its own SipStreamFramer; a FramingError closes that connection only.
 * - ONE outbound connection, used by `send` for everything the B2BUA sends: requests,
 *   ACKs and responses. Kamailio's tm matches a response by its Via branch, whatever
 *   connection it arrives on, and our Via carries `;rport`. What Kamailio sends back on
 *   this connection (§18.2.2) is framed and delivered like the rest.
 *
 * A CRLFCRLF ping on any connection gets a CRLF pong (RFC 5626 §4.4.1). `send` never
 * throws: what cannot be delivered is reported as a `sendError` event (and to
 * `onSendError`). What is sent in one event-loop turn goes out in one socket write
 * (lib/write-batch.ts): the same bytes in the same order, fewer system calls.
 *
 * The outbound connection:
 *
 *   idle --send--> connecting --connected (queue flushed)--> open
 *    ^                |  refused, timeout                       | closed by either side
 *    |                v  (every queued send fails)              v
 *    +--timer---- backoff (min, doubling, capped at max)       idle (the next send reconnects)
 *   any state --close()--> closed
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { pino, type Logger } from 'pino';
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';
import { WriteBatch } from '../../../lib/write-batch.js';
import { MAX_SIP_MESSAGE_BYTES } from '../../sip/message.js';
import { DEFAULT_MAX_HEADER_BYTES, FramingError, SipStreamFramer, type FramerOutput } from './framing.js';

export const DEFAULT_MAX_QUEUE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
export const DEFAULT_BACKOFF_MS = { min: 50, max: 1000 } as const;
/** How long close() lets the outbound connection flush before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

export interface SipTcpTransportOptions {
  /** A loopback address (127.0.0.0/8, ::1, localhost); default 127.0.0.1. */
  readonly listenHost?: string;
  /** 0 (default): a free port, then `port`. */
  readonly listenPort?: number;
  /** Kamailio's TCP SIP address. */
  readonly proxyHost: string;
  readonly proxyPort: number;
  /** Per message, both ways; default MAX_SIP_MESSAGE_BYTES. */
  readonly maxMessageBytes?: number;
  /** Head of a received message; default 65,535 (plugin/b2bua/sip/framing.ts). */
  readonly maxHeaderBytes?: number;
  /** Bytes waiting to go out (queued while connecting, or in the socket's buffer); default 4 MiB. */
  readonly maxQueueBytes?: number;
  readonly connectTimeoutMs?: number;
  /** Delay after a failed connect: `min`, doubling per failure in a row, at most `max`. */
  readonly backoffMs?: { readonly min: number; readonly max: number };
  readonly logger?: Logger;
  readonly onSendError?: (failure: SendFailure) => void;
}

export type SendFailureReason = 'connect-failed' | 'queue-full' | 'too-large' | 'connection-lost' | 'closed';

/** A send that was not delivered to Kamailio's socket (never thrown: a `sendError` event). */
export interface SendFailure {
  readonly reason: SendFailureReason;
  readonly detail: string;
  readonly text: string;
}

export interface TransportCounts {
  /** Messages framed on any connection and given to onMessage. */
  messagesIn: number;
  /** Messages written to the outbound connection (the write completed). */
  messagesOut: number;
  /** RFC 5626 pings answered. */
  pings: number;
  /** Connections closed for a FramingError. */
  framingErrors: number;
  /** Connections Kamailio opened to the listener. */
  connectionsAccepted: number;
  /** Outbound connections established, and those after the first. */
  connects: number;
  reconnects: number;
  connectFailures: number;
  /** Sends reported as a SendFailure. */
  sendFailures: number;
}

export type OutboundState = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

export const OUTBOUND_NEXT: NextTable<OutboundState> = {
  idle: ['connecting', 'closed'],
  connecting: ['open', 'backoff', 'closed'],
  open: ['idle', 'closed'],
  backoff: ['idle', 'closed'],
  closed: [],
};

export interface TransportEvents {
  sendError: [failure: SendFailure];
  /** The outbound connection's state changed. */
  outbound: [state: OutboundState];
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (also IPv4-mapped), or the name localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const v = net.isIP(host);
  return v !== 0 && LOOPBACK.check(host, v === 4 ? 'ipv4' : 'ipv6');
}

interface Queued {
  readonly text: string;
  readonly bytes: number;
}

function positiveInt(name: string, v: number): number {
  if (!(Number.isSafeInteger(v) && v > 0)) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

function whenClosed(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (sock.closed) resolve();
    else sock.once('close', () => resolve());
  });
}

export class SipTcpTransport extends EventEmitter<TransportEvents> {
  readonly counts: TransportCounts = {
    messagesIn: 0, messagesOut: 0, pings: 0, framingErrors: 0, connectionsAccepted: 0,
    connects: 0, reconnects: 0, connectFailures: 0, sendFailures: 0,
  };
  readonly listenHost: string;
  readonly proxyHost: string;
  readonly proxyPort: number;
  readonly maxMessageBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxQueueBytes: number;
  readonly connectTimeoutMs: number;
  readonly backoffMs: { readonly min: number; readonly max: number };
  readonly #log: Logger;
  readonly #onMessage: (text: string) => void;
  readonly #server: net.Server;
  readonly #inbound = new Set<net.Socket>();
  #state: OutboundState = 'idle';
  #out: net.Socket | null = null;
  /** Outbound sockets Kamailio ended (FIN) that are still closing: close() waits for them. */
  readonly #retired = new Set<net.Socket>();
  #queue: Queued[] = [];
  #queueBytes = 0;
  /** Sends of this loop turn on the open connection (lib/write-batch.ts). */
  readonly #batch = new WriteBatch((text, parts) => this.#flushBatch(text, parts));
  /** Connect failures in a row (the backoff's exponent); 0 once connected. */
  #failuresInRow = 0;
  #backoffTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | null = null;

  private constructor(opts: SipTcpTransportOptions, onMessage: (text: string) => void) {
    super();
    this.listenHost = opts.listenHost ?? '127.0.0.1';
    if (!isLoopback(this.listenHost)) throw new Error(`listenHost must be a loopback address, got ${this.listenHost}`);
    this.proxyHost = opts.proxyHost;
    this.proxyPort = opts.proxyPort;
    if (!(Number.isInteger(this.proxyPort) && this.proxyPort > 0 && this.proxyPort < 65536)) throw new RangeError(`bad proxyPort ${this.proxyPort}`);
    this.maxMessageBytes = positiveInt('maxMessageBytes', opts.maxMessageBytes ?? MAX_SIP_MESSAGE_BYTES);
    this.maxHeaderBytes = positiveInt('maxHeaderBytes', opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
    this.maxQueueBytes = positiveInt('maxQueueBytes', opts.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES);
    this.connectTimeoutMs = positiveInt('connectTimeoutMs', opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    this.backoffMs = opts.backoffMs ?? DEFAULT_BACKOFF_MS;
    positiveInt('backoffMs.min', this.backoffMs.min);
    if (positiveInt('backoffMs.max', this.backoffMs.max) < this.backoffMs.min) throw new RangeError('backoffMs.max < backoffMs.min');
    this.#log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'b2bua-sip-transport' });
    this.#onMessage = onMessage;
    if (opts.onSendError) this.on('sendError', opts.onSendError);
    this.#server = net.createServer({ noDelay: true }, (sock) => this.#accept(sock));
    this.#server.on('error', (err) => this.#log.error({ err }, 'SIP listener error'));
  }

  /** Listen, then resolve with the transport; rejects on bad options or a failed listen. */
  static async start(opts: SipTcpTransportOptions, onMessage: (text: string) => void): Promise<SipTcpTransport> {
    const t = new SipTcpTransport(opts, onMessage);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      t.#server.once('error', onError);
      t.#server.listen({ host: t.listenHost, port: opts.listenPort ?? 0 }, () => {
        t.#server.off('error', onError);
        resolve();
      });
    });
    t.#log.info({ host: t.listenHost, port: t.port, proxy: `${t.proxyHost}:${t.proxyPort}` }, 'SIP transport listening');
    return t;
  }

  /** The port the listener is bound to. */
  get port(): number {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a.port : 0;
  }

  get outboundState(): OutboundState {
    return this.#state;
  }

  /** Inbound connections open now. */
  get connections(): number {
    return this.#inbound.size;
  }

  /** Bytes queued while connecting, batched in this turn, and in the outbound socket's buffer. */
  get pendingBytes(): number {
    return this.#queueBytes + this.#batch.bytes + (this.#out?.writableLength ?? 0);
  }

  /** Send one message to Kamailio on the outbound connection. Never throws. */
  send(text: string): void {
    if (this.#state === 'closed') return this.#fail(text, 'closed', 'the transport is closed');
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.maxMessageBytes) return this.#fail(text, 'too-large', `${bytes} bytes, more than ${this.maxMessageBytes}`);
    if (this.pendingBytes + bytes > this.maxQueueBytes) {
      return this.#fail(text, 'queue-full', `${this.pendingBytes} bytes waiting, at most ${this.maxQueueBytes}`);
    }
    if (this.#state === 'open' && this.#out !== null) {
      this.#batch.add(text, bytes);
      return;
    }
    this.#enqueue(text, bytes);
  }

  #enqueue(text: string, bytes: number): void {
    this.#queue.push({ text, bytes });
    this.#queueBytes += bytes;
    if (this.#state === 'idle') this.#connect();
  }

  /** The end of a loop turn: this turn's sends in one write, or queued if the connection went away meanwhile. */
  #flushBatch(text: string, parts: readonly string[]): void {
    if (this.#state === 'open' && this.#out !== null) {
      this.#write(this.#out, text, parts);
      return;
    }
    if (this.#state === 'closed') {
      for (const part of parts) this.#fail(part, 'closed', 'the transport is closed');
      return;
    }
    for (const part of parts) this.#enqueue(part, Buffer.byteLength(part, 'utf8'));
  }

  /** Stop listening, end every connection (the outbound one flushed first); queued sends fail. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#batch.flush(); // this turn's sends still go out, before the outbound connection ends
    this.#move('closed');
    clearTimeout(this.#backoffTimer);
    this.#failQueue('closed', 'the transport closed');
    const waits: Promise<void>[] = [new Promise<void>((resolve) => this.#server.close(() => resolve()))];
    for (const sock of this.#inbound) {
      waits.push(whenClosed(sock));
      sock.destroy();
    }
    for (const sock of this.#retired) {
      waits.push(whenClosed(sock));
      sock.destroy();
    }
    const out = this.#out;
    if (out !== null) {
      waits.push(whenClosed(out));
      if (out.connecting) {
        out.destroy();
      } else {
        const grace = setTimeout(() => out.destroy(), CLOSE_GRACE_MS);
        out.once('close', () => clearTimeout(grace));
        out.end();
      }
    }
    this.#closing = Promise.all(waits).then(() => {
      this.#log.info(this.counts, 'SIP transport closed');
    });
    return this.#closing;
  }

  #move(to: OutboundState): void {
    this.#state = guardedTransition('SIP outbound connection', OUTBOUND_NEXT, this.#state, to);
    this.emit('outbound', to);
  }

  #fail(text: string, reason: SendFailureReason, detail: string): void {
    this.counts.sendFailures++;
    this.emit('sendError', { reason, detail, text });
  }

  #failQueue(reason: SendFailureReason, detail: string): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#queueBytes = 0;
    for (const q of queue) this.#fail(q.text, reason, detail);
  }

  /** One write of `text`, the messages `parts` joined: each is counted or reported on its own. */
  #write(sock: net.Socket, text: string, parts: readonly string[]): void {
    sock.write(text, 'utf8', (err) => {
      if (!err) {
        this.counts.messagesOut += parts.length;
        return;
      }
      const reason = this.#state === 'closed' ? 'closed' : 'connection-lost';
      for (const part of parts) this.#fail(part, reason, err.message);
    });
  }

  #connect(): void {
    this.#move('connecting');
    const sock = net.connect({ host: this.proxyHost, port: this.proxyPort, noDelay: true });
    this.#out = sock;
    let lastError: Error | undefined;
    const timer = setTimeout(() => sock.destroy(new Error(`no connection within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      this.#opened(sock);
    });
    sock.on('error', (err) => {
      lastError = err;
    });
    // Kamailio's FIN (an idle connection it closes): the next send opens a new one
    // rather than writing into this one, which is closing.
    sock.once('end', () => {
      if (this.#out !== sock) return;
      this.#retired.add(sock);
      this.#outClosed(sock, undefined);
    });
    sock.once('close', () => {
      clearTimeout(timer);
      this.#retired.delete(sock);
      this.#outClosed(sock, lastError);
    });
    this.#frame(sock, 'outbound');
  }

  #opened(sock: net.Socket): void {
    if (this.#out !== sock || this.#state !== 'connecting') return;
    this.#move('open');
    if (this.counts.connects++ > 0) this.counts.reconnects++;
    if (this.#failuresInRow > 0) this.#log.info({ failures: this.#failuresInRow }, 'connected to Kamailio again');
    this.#failuresInRow = 0;
    const queue = this.#queue;
    this.#queue = [];
    this.#queueBytes = 0;
    if (queue.length > 0) {
      const parts = queue.map((q) => q.text);
      this.#write(sock, parts.join(''), parts);
    }
  }

  #outClosed(sock: net.Socket, err: Error | undefined): void {
    if (this.#out !== sock) return;
    this.#out = null;
    if (this.#state === 'connecting') {
      this.counts.connectFailures++;
      const delay = Math.min(this.backoffMs.max, this.backoffMs.min * 2 ** Math.min(this.#failuresInRow, 20));
      // Logged at warn once per run of failures; the rest at debug.
      const level = this.#failuresInRow++ === 0 ? 'warn' : 'debug';
      this.#log[level]({ err, proxy: `${this.proxyHost}:${this.proxyPort}`, retryInMs: delay }, 'cannot connect to Kamailio');
      this.#failQueue('connect-failed', err?.message ?? 'connection closed while connecting');
      this.#move('backoff');
      this.#backoffTimer = setTimeout(() => {
        this.#move('idle');
        if (this.#queue.length > 0) this.#connect();
      }, delay);
      this.#backoffTimer.unref();
    } else if (this.#state === 'open') {
      this.#log.info({ err }, 'connection to Kamailio closed by either side; the next send reconnects');
      // this turn's sends, not yet written, go first on the next connection
      for (const part of this.#batch.take()) {
        const bytes = Buffer.byteLength(part, 'utf8');
        this.#queue.push({ text: part, bytes });
        this.#queueBytes += bytes;
      }
      this.#move('idle');
      if (this.#queue.length > 0) this.#connect();
    }
  }

  #accept(sock: net.Socket): void {
    if (this.#state === 'closed') {
      sock.destroy();
      return;
    }
    this.counts.connectionsAccepted++;
    this.#inbound.add(sock);
    sock.once('close', () => this.#inbound.delete(sock));
    sock.on('error', (err) => this.#log.debug({ err, remote: `${sock.remoteAddress}:${sock.remotePort}` }, 'inbound SIP connection error'));
    this.#frame(sock, 'inbound');
  }

  /** Frame what arrives on `sock`: messages to onMessage, pings answered, a FramingError closes it. */
  #frame(sock: net.Socket, direction: 'inbound' | 'outbound'): void {
    const framer = new SipStreamFramer({ maxMessageBytes: this.maxMessageBytes, maxHeaderBytes: this.maxHeaderBytes });
    sock.on('data', (chunk: Buffer) => {
      if (framer.state === 'failed') return;
      let out: FramerOutput;
      let error: FramingError | undefined;
      try {
        out = framer.push(chunk);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        error = err;
        out = framer.takeCompleted();
      }
      this.#deliver(sock, out);
      if (error) {
        this.counts.framingErrors++;
        this.#log.warn({ code: error.code, err: error, direction, remote: `${sock.remoteAddress}:${sock.remotePort}` }, 'SIP stream cannot be framed: connection closed');
        sock.destroy();
      }
    });
  }

  #deliver(sock: net.Socket, out: FramerOutput): void {
    if (out.pings > 0) {
      this.counts.pings += out.pings;
      if (!sock.destroyed) sock.write('\r\n'.repeat(out.pings)); // RFC 5626 §4.4.1 pong
    }
    for (const text of out.messages) {
      this.counts.messagesIn++;
      try {
        this.#onMessage(text);
      } catch (err) {
        this.#log.error({ err }, 'onMessage threw');
      }
    }
  }
}
