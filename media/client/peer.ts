// MSRP test peer: plays a device (connect or listen, bind with an empty SEND, reassemble,
// answer 200s, optionally read slowly) or an originating side (chunked sends, 200 per
// chunk awaited, REPORTs collected). Built on the real stack in media/msrp.
import { Buffer } from 'node:buffer';
import { randomBase64url } from '../../lib/random.js';
import { EventEmitter } from 'node:events';
import type tls from 'node:tls';
import { MsrpEndpoint } from '../msrp/endpoint.js';
import type { MsrpConnection } from '../msrp/connection.js';
import { getHeader, parseStatus, pathTokens } from '../msrp/headers.js';
import { buildRequest, newMessageId } from '../msrp/serializer.js';
import { MessageAssembler, successReportFor, type AssembledMessage } from '../msrp/transactions.js';
import type { ConnectionOptions, Frame, FrameHead, ReportMode, ResponseHead, SessionSink, StatusValue } from '../msrp/types.js';

export interface ReceivedMessage extends AssembledMessage {
  /** From-Path of the first chunk. */
  fromPath: string;
}

export interface ReceivedReport {
  messageId: string | undefined;
  status: StatusValue | undefined;
  byteRange: string | undefined;
  head: FrameHead;
}

export interface SendOptions {
  /** Default message/cpim. */
  contentType?: string;
  /** Body bytes per chunk; default 2048. */
  chunkSize?: number;
  successReport?: boolean;
  failureReport?: ReportMode;
  messageId?: string;
  /** Per-chunk response timeout, default 5000 ms. */
  timeoutMs?: number;
  /** Extra MSRP headers on every chunk. */
  headers?: Array<{ name: string; value: string }>;
}

export interface SendResult {
  messageId: string;
  transactionIds: string[];
  /** One status per chunk; empty when responses were not requested (Failure-Report no/partial). */
  statuses: number[];
}

export interface PeerCommon {
  connection?: ConnectionOptions;
  /** Pause reading for this long after every inbound read (a slow device). */
  readDelayMs?: number;
  /** Messages whose Byte-Range total exceeds this are refused with 413. Default 16 MiB. */
  maxMessageSize?: number;
  /** Content types accepted in SENDs (`*`, `type/*` allowed); others get 415. Default all. */
  acceptTypes?: string[];
}

function typeAccepted(accept: readonly string[], ct: string | undefined): boolean {
  if (ct === undefined) return true; // no body
  const t = ct.split(';')[0]!.trim().toLowerCase();
  return accept.some((a) => {
    const x = a.toLowerCase();
    return x === '*' || x === t || (x.endsWith('/*') && t.startsWith(x.slice(0, -1)));
  });
}

export interface ConnectOptions extends PeerCommon {
  host: string;
  port: number;
  tls?: tls.ConnectionOptions;
  /** To-Path for our requests (the remote URI, after any relay URIs). */
  remotePath: string;
  /** Our session-id; random by default. Our URI is msrp://<local addr>:<local port>/<id>;tcp. */
  sessionId?: string;
}

export interface ListenOptions extends PeerCommon {
  host?: string;
  port?: number;
  tls?: { key: string | Buffer; cert: string | Buffer };
  sessionId?: string;
  /** To-Path for our own requests; default: From-Path of the first request received. */
  remotePath?: string;
}

interface Waiter<T> {
  match: (v: T) => boolean;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function randomSessionId(): string {
  return randomBase64url(9).replace(/[-_]/g, 'z');
}

export interface PeerEvents {
  /** A request head arrived (SEND chunk, REPORT, ...), before its body. */
  request: [head: FrameHead];
  response: [head: ResponseHead];
  message: [message: ReceivedMessage];
  report: [report: ReceivedReport];
  /** The peer's connection closed. */
  close: [err?: Error];
}

export class MsrpPeer extends EventEmitter<PeerEvents> {
  readonly endpoint: MsrpEndpoint;
  readonly sessionId: string;
  localUri = '';
  remotePath: string | undefined;
  readonly messages: ReceivedMessage[] = [];
  readonly reports: ReceivedReport[] = [];
  readonly responses: ResponseHead[] = [];
  /** Every request head received (including empty SENDs). */
  readonly requests: FrameHead[] = [];
  private conn: MsrpConnection | undefined;
  private readonly readDelayMs: number;
  private readonly assembler: MessageAssembler;
  private readonly pending = new Map<string, { resolve: (h: ResponseHead) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private msgWaiters: Array<Waiter<ReceivedMessage>> = [];
  private reportWaiters: Array<Waiter<ReceivedReport>> = [];
  private connWaiters: Array<Waiter<MsrpConnection>> = [];
  private readonly maxMessageSize: number;
  private readonly acceptTypes: readonly string[];

  private constructor(endpoint: MsrpEndpoint, sessionId: string, opts: PeerCommon) {
    super();
    this.endpoint = endpoint;
    this.sessionId = sessionId;
    this.readDelayMs = opts.readDelayMs ?? 0;
    this.maxMessageSize = opts.maxMessageSize ?? 16 * 1024 * 1024;
    this.acceptTypes = opts.acceptTypes ?? ['*'];
    this.assembler = new MessageAssembler({ maxMessageSize: this.maxMessageSize });
    endpoint.addSession(sessionId, this.sink());
    endpoint.on('connection', (c) => this.onConnection(c));
  }

  /** Active device/originator: connect to host:port. Call bind() to bind the session. */
  static async connect(opts: ConnectOptions): Promise<MsrpPeer> {
    const ep = new MsrpEndpoint(opts.connection ? { connection: opts.connection } : {});
    const peer = new MsrpPeer(ep, opts.sessionId ?? randomSessionId(), opts);
    peer.remotePath = opts.remotePath;
    const conn = await ep.connect(opts.tls ? { host: opts.host, port: opts.port, tls: opts.tls } : { host: opts.host, port: opts.port });
    ep.bind(peer.sessionId, conn);
    const scheme = opts.tls ? 'msrps' : 'msrp';
    peer.localUri = `${scheme}://${conn.socket.localAddress ?? '127.0.0.1'}:${conn.socket.localPort ?? 0}/${peer.sessionId};tcp`;
    return peer;
  }

  /** Passive device: listen; the other side connects to peer.localUri. */
  static async listen(opts: ListenOptions = {}): Promise<MsrpPeer> {
    const epOpts: ConstructorParameters<typeof MsrpEndpoint>[0] = { host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 };
    if (opts.tls) epOpts.tls = opts.tls;
    if (opts.connection) epOpts.connection = opts.connection;
    const ep = new MsrpEndpoint(epOpts);
    const peer = new MsrpPeer(ep, opts.sessionId ?? randomSessionId(), opts);
    peer.remotePath = opts.remotePath;
    await ep.listen();
    peer.localUri = ep.uriFor(peer.sessionId);
    return peer;
  }

  get connection(): MsrpConnection | undefined {
    return this.conn;
  }

  /** Resolves once a connection exists (listen mode: when the other side connected). */
  waitForConnection(timeoutMs = 5000): Promise<MsrpConnection> {
    if (this.conn) return Promise.resolve(this.conn);
    return this.wait(this.connWaiters, () => true, timeoutMs, 'connection');
  }

  /** Bind the session with an empty SEND (RFC 4975 §5.4); resolves to its response status. */
  async bind(timeoutMs = 5000): Promise<number> {
    const frame = buildRequest({
      method: 'SEND',
      toPath: this.needRemote(),
      fromPath: this.localUri,
      headers: [
        { name: 'Message-ID', value: newMessageId() },
        { name: 'Byte-Range', value: '1-0/0' },
      ],
    });
    const resp = await this.request(frame, timeoutMs);
    return resp.status;
  }

  /** Send one frame and await its response (by transaction id). */
  request(frame: Frame, timeoutMs = 5000): Promise<ResponseHead> {
    const conn = this.needConn();
    const tid = frame.head.transactionId;
    const p = new Promise<ResponseHead>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tid);
        reject(new Error(`no response to ${tid} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(tid, { resolve, reject, timer });
    });
    conn.sendFrame(frame);
    return p;
  }

  /** Write a frame without waiting for anything. */
  send(frame: Frame): boolean {
    return this.needConn().sendFrame(frame);
  }

  /** Send a message chunked at chunkSize; each chunk's 200 is awaited before the next. */
  async sendMessage(body: Buffer | string, opts: SendOptions = {}): Promise<SendResult> {
    const data = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const size = Math.max(1, opts.chunkSize ?? 2048);
    const messageId = opts.messageId ?? newMessageId();
    const total = data.length;
    const result: SendResult = { messageId, transactionIds: [], statuses: [] };
    const fr = opts.failureReport ?? 'yes';
    let start = 0;
    do {
      const end = Math.min(total, start + size);
      const headers = [
        { name: 'Message-ID', value: messageId },
        { name: 'Byte-Range', value: `${start + 1}-${end}/${total}` },
        ...(opts.successReport ? [{ name: 'Success-Report', value: 'yes' }] : []),
        ...(opts.failureReport ? [{ name: 'Failure-Report', value: fr }] : []),
        ...(opts.headers ?? []),
      ];
      const frame = buildRequest({
        method: 'SEND',
        toPath: this.needRemote(),
        fromPath: this.localUri,
        headers,
        contentType: opts.contentType ?? 'message/cpim',
        body: data.subarray(start, end),
        flag: end < total ? '+' : '$',
      });
      result.transactionIds.push(frame.head.transactionId);
      if (fr === 'yes') {
        const resp = await this.request(frame, opts.timeoutMs ?? 5000);
        result.statuses.push(resp.status);
        if (resp.status !== 200) break;
      } else {
        this.send(frame);
      }
      start = end;
    } while (start < total);
    return result;
  }

  waitForMessage(match: (m: ReceivedMessage) => boolean = () => true, timeoutMs = 5000): Promise<ReceivedMessage> {
    const found = this.messages.find(match);
    if (found) return Promise.resolve(found);
    return this.wait(this.msgWaiters, match, timeoutMs, 'message');
  }

  waitForReport(messageId: string | undefined, timeoutMs = 5000): Promise<ReceivedReport> {
    const match = (r: ReceivedReport): boolean => messageId === undefined || r.messageId === messageId;
    const found = this.reports.find(match);
    if (found) return Promise.resolve(found);
    return this.wait(this.reportWaiters, match, timeoutMs, 'report');
  }

  /**
   * Resolve once cond() holds; re-checked on every peer event (request, response,
   * message, report, close), so no polling. Rejects after timeoutMs.
   */
  until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const events = ['request', 'response', 'message', 'report', 'close'] as const;
      const check = (): void => {
        if (!cond()) return;
        done();
        resolve();
      };
      const done = (): void => {
        clearTimeout(timer);
        for (const e of events) this.off(e, check);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      for (const e of events) this.on(e, check);
    });
  }

  pauseReading(): void {
    this.needConn().pauseReading();
  }

  resumeReading(): void {
    this.needConn().resumeReading();
  }

  async close(): Promise<void> {
    this.conn?.close();
    await this.endpoint.close();
    const err = new Error('peer closed');
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private needConn(): MsrpConnection {
    if (!this.conn || this.conn.closed) throw new Error('no open MSRP connection');
    return this.conn;
  }

  private needRemote(): string {
    if (this.remotePath === undefined) throw new Error('remote path unknown (no request received yet)');
    return this.remotePath;
  }

  private wait<T>(list: Array<Waiter<T>>, match: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w: Waiter<T> = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = list.indexOf(w);
          if (i !== -1) list.splice(i, 1);
          reject(new Error(`no ${what} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      list.push(w);
    });
  }

  private notify<T>(list: Array<Waiter<T>>, v: T): void {
    for (const w of [...list]) {
      if (w.match(v)) {
        clearTimeout(w.timer);
        list.splice(list.indexOf(w), 1);
        w.resolve(v);
      }
    }
  }

  private onConnection(c: MsrpConnection): void {
    if (this.conn && !this.conn.closed) return;
    this.conn = c;
    if (this.readDelayMs > 0) {
      const sock = c.socket;
      sock.on('data', () => {
        sock.pause();
        setTimeout(() => {
          if (!sock.destroyed) sock.resume();
        }, this.readDelayMs);
      });
    }
    c.on('close', (cause) => {
      this.emit('close', cause);
      const err = new Error('connection closed');
      for (const [tid, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(err);
        this.pending.delete(tid);
      }
    });
    this.notify(this.connWaiters, c);
  }

  private sink(): SessionSink {
    let pieces: Buffer[] = [];
    let size = 0;
    return {
      frameStart: (_conn, head) => {
        pieces = [];
        size = 0;
        if (head.kind === 'request') {
          this.requests.push(head);
          if (this.remotePath === undefined) this.remotePath = getHeader(head, 'From-Path');
          this.emit('request', head);
          if (head.method === 'SEND') {
            // RFC 4975 §7.3.1: 415 for a type we do not take, 413 for a message too large.
            if (!typeAccepted(this.acceptTypes, getHeader(head, 'Content-Type'))) return 415;
            const total = /\/(\d+)$/.exec(getHeader(head, 'Byte-Range') ?? '')?.[1];
            if (total !== undefined && Number(total) > this.maxMessageSize) return 413;
          }
        }
        return undefined;
      },
      body: (_conn, piece) => {
        size += piece.length;
        if (size <= this.maxMessageSize) pieces.push(Buffer.from(piece));
      },
      frameEnd: (conn, head, flag) => {
        const body = Buffer.concat(pieces);
        pieces = [];
        if (head.kind === 'response') {
          this.responses.push(head);
          const p = this.pending.get(head.transactionId);
          if (p) {
            clearTimeout(p.timer);
            this.pending.delete(head.transactionId);
            p.resolve(head);
          }
          this.emit('response', head);
          return;
        }
        if (head.method === 'REPORT') {
          const st = getHeader(head, 'Status');
          let status: StatusValue | undefined;
          try {
            status = st === undefined ? undefined : parseStatus(st);
          } catch {
            status = undefined;
          }
          const r: ReceivedReport = { messageId: getHeader(head, 'Message-ID'), status, byteRange: getHeader(head, 'Byte-Range'), head };
          this.reports.push(r);
          this.notify(this.reportWaiters, r);
          this.emit('report', r);
          return;
        }
        const res = this.assembler.add(head, body, flag);
        if (res.status !== 'complete') return;
        const msg: ReceivedMessage = { ...res.message, fromPath: getHeader(res.message.head, 'From-Path') ?? '' };
        this.messages.push(msg);
        // RFC 4975 §7.1.2: Success-Report yes -> REPORT once the whole message is here.
        const total = msg.body.length;
        const rep = successReportFor(res.message.head, { start: 1, end: total, total }, pathTokens(getHeader(head, 'To-Path') ?? '').pop());
        if (rep) conn.sendFrame(rep);
        this.notify(this.msgWaiters, msg);
        this.emit('message', msg);
      },
    };
  }
}

export interface CpimSpec {
  from: string;
  to: string;
  body: Buffer | string;
  contentType?: string;
  imdnMessageId?: string;
  dateTime?: string;
  /** e.g. ['positive-delivery', 'display']. */
  dispositionNotification?: string[];
  /** Further CPIM headers, after the standard ones. */
  extraHeaders?: Array<[string, string]>;
}

/** message/cpim (RFC 3862) wrapping, with the imdn namespace (RFC 5438). */
export function buildCpim(spec: CpimSpec): Buffer {
  const body = typeof spec.body === 'string' ? Buffer.from(spec.body, 'utf8') : spec.body;
  const lines = [`From: <${spec.from}>`, `To: <${spec.to}>`, `DateTime: ${spec.dateTime ?? new Date().toISOString()}`, 'NS: imdn <urn:ietf:params:imdn>'];
  lines.push(`imdn.Message-ID: ${spec.imdnMessageId ?? newMessageId()}`);
  if (spec.dispositionNotification?.length) lines.push(`imdn.Disposition-Notification: ${spec.dispositionNotification.join(', ')}`);
  for (const [n, v] of spec.extraHeaders ?? []) lines.push(`${n}: ${v}`);
  const head = `${lines.join('\r\n')}\r\n\r\nContent-Type: ${spec.contentType ?? 'text/plain;charset=UTF-8'}\r\nContent-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}

export interface ParsedCpim {
  headers: Array<[string, string]>;
  contentHeaders: Array<[string, string]>;
  payload: Buffer;
}

/** Split a message/cpim body into its header blocks and payload (bytes kept). */
export function parseCpim(buf: Buffer): ParsedCpim {
  const a = buf.indexOf('\r\n\r\n');
  if (a === -1) throw new Error('CPIM: no end of header block');
  const b = buf.indexOf('\r\n\r\n', a + 4);
  if (b === -1) throw new Error('CPIM: no end of content headers');
  const split = (s: string): Array<[string, string]> =>
    s
      .split('\r\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const i = l.indexOf(':');
        return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
      });
  return {
    headers: split(buf.toString('utf8', 0, a)),
    contentHeaders: split(buf.toString('utf8', a + 4, b)),
    payload: buf.subarray(b + 4),
  };
}
