// MSRP endpoint: listener, and connect() for the active side (RFC 4145 §4.1, RFC 6135),
// session binding (RFC 4975 §5.4) and automatic hop-by-hop responses (§7.2).
//
// Per inbound frame:
//   request  ─ paths bad ─▶ 400        response ─ known session ─▶ sink
//     │─ unknown session ─▶ 481 (REPORT: dropped)      └─ otherwise dropped
//     │─ method not SEND/REPORT ─▶ 501
//     │─ sink.frameStart returns a status ─▶ that status, body dropped
//     └─ accepted ─▶ sink; SEND answered 200 at its end-line (autoRespond)
// Responses are subject to Failure-Report (responseFor).
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { DEFAULT_HEADER_TIMEOUT_MS, MsrpConnection, type ConnectTarget } from './connection.js';
import type { MsrpError } from './errors.js';
import { parseByteRange, parsePath, pathTokens, reportMode } from './headers.js';
import { parseMsrpUri } from './uri.js';
import { responseFor } from './transactions.js';
import type { ConnectionOptions, ContinuationFlag, FrameHead, SessionSink } from './types.js';

export interface EndpointOptions {
  /** Listen address, default 127.0.0.1. */
  host?: string;
  /** Listen port, default 0 (any free port). */
  port?: number;
  /** Serve msrps (TLS) with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  connection?: ConnectionOptions;
  /** Answer accepted SENDs with 200 at their end-line. Default true. */
  autoRespond?: boolean;
  /** Refuse inbound connections above this many (net.Server maxConnections). Default unlimited. */
  maxConnections?: number;
}

export interface EndpointEvents {
  connection: [conn: MsrpConnection];
  /** A request for a session nobody registered (answered 481). */
  unknownSession: [conn: MsrpConnection, sessionId: string | undefined, head: FrameHead];
  /** Framing error on a connection (answered 400 when possible, then closed). */
  protocolError: [conn: MsrpConnection, err: MsrpError];
}

interface Routing {
  head: FrameHead;
  sink: SessionSink | undefined;
  /** Response to send at the end-line, if any. */
  status: number | undefined;
  /** The 200 to send at the end-line, ready to write (accepted SENDs). */
  reply: string | undefined;
}

export class MsrpEndpoint extends EventEmitter<EndpointEvents> {
  private readonly opts: EndpointOptions;
  private readonly sinks = new Map<string, SessionSink>();
  private readonly bound = new Map<string, Set<MsrpConnection>>();
  private readonly conns = new Set<MsrpConnection>();
  private readonly rawSockets = new Set<net.Socket>();
  private server: net.Server | undefined;
  private boundPort = 0;

  constructor(opts: EndpointOptions = {}) {
    super();
    this.opts = opts;
  }

  get port(): number {
    return this.boundPort;
  }

  get host(): string {
    return this.opts.host ?? '127.0.0.1';
  }

  /** Start listening; resolves to the bound port. */
  listen(): Promise<number> {
    // Accepted connections must send a frame head within the header timeout (silent slowloris).
    const co = this.opts.connection ?? {};
    const accepted: ConnectionOptions = { ...co, firstFrameTimeoutMs: co.firstFrameTimeoutMs ?? co.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS };
    const onSocket = (socket: net.Socket): void => {
      this.attach(new MsrpConnection(socket, accepted));
    };
    const server = this.opts.tls
      ? tls.createServer(
          // A TLS peer that never finishes its handshake is dropped like a silent one. The peer's
          // certificate is asked for, not checked against a CA: the relay compares it with the
          // peer's a=fingerprint (RFC 4975 §14.1; media/relay/fingerprint.ts).
          {
            key: this.opts.tls.key, cert: this.opts.tls.cert, handshakeTimeout: accepted.firstFrameTimeoutMs || 120_000,
            requestCert: true, rejectUnauthorized: false,
          },
          onSocket,
        )
      : net.createServer(onSocket);
    if (server instanceof tls.Server) {
      // Handshake timeout or failure: Node only reports it; drop the socket.
      server.on('tlsClientError', (_err, sock) => sock.destroy());
    }
    // Every raw socket, including TLS ones still in their handshake, so close() ends them all.
    server.on('connection', (sock: net.Socket) => {
      this.rawSockets.add(sock);
      sock.once('close', () => this.rawSockets.delete(sock));
    });
    if (this.opts.maxConnections !== undefined) server.maxConnections = this.opts.maxConnections;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, this.host, () => {
        server.off('error', reject);
        const addr = server.address();
        this.boundPort = typeof addr === 'object' && addr ? addr.port : 0;
        resolve(this.boundPort);
      });
    });
  }

  /** This endpoint's URI for a session (a=path value). */
  uriFor(sessionId: string): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${this.opts.tls ? 'msrps' : 'msrp'}://${host}:${this.boundPort}/${sessionId};tcp`;
  }

  addSession(sessionId: string, sink: SessionSink): void {
    this.sinks.set(sessionId, sink);
  }

  /** Forget a session; its connections stay open (they may carry other sessions). */
  removeSession(sessionId: string): void {
    this.sinks.delete(sessionId);
    for (const c of this.bound.get(sessionId) ?? []) c.sessions.delete(sessionId);
    this.bound.delete(sessionId);
  }

  /** Open connections bound to the session (most recent last). */
  connectionsFor(sessionId: string): MsrpConnection[] {
    return [...(this.bound.get(sessionId) ?? [])].filter((c) => !c.closed);
  }

  get connections(): ReadonlySet<MsrpConnection> {
    return this.conns;
  }

  /** Active side: connect out; inbound frames on it are routed like on accepted ones. */
  async connect(target: ConnectTarget): Promise<MsrpConnection> {
    const conn = await MsrpConnection.connect(target, this.opts.connection);
    this.attach(conn);
    return conn;
  }

  /** Bind a session to a connection before any frame arrived (e.g. the active side). */
  bind(sessionId: string, conn: MsrpConnection): void {
    conn.sessions.add(sessionId);
    let set = this.bound.get(sessionId);
    if (!set) this.bound.set(sessionId, (set = new Set()));
    set.add(conn);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.close(new Error('endpoint closed'));
    for (const sock of this.rawSockets) sock.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private attach(conn: MsrpConnection): void {
    this.conns.add(conn);
    let cur: Routing | undefined;
    conn.on('frameStart', (head) => {
      cur = this.route(conn, head);
    });
    conn.on('body', (piece) => {
      if (cur?.sink) cur.sink.body(conn, piece);
    });
    conn.on('frameEnd', (head: FrameHead, flag: ContinuationFlag) => {
      const r = cur;
      cur = undefined;
      if (!r) return;
      // ASCII only: URIs that parsed and a transaction id.
      if (r.reply !== undefined) conn.write(Buffer.from(r.reply, 'latin1'));
      else if (r.status !== undefined && head.kind === 'request') {
        const resp = responseFor(head, r.status);
        if (resp) conn.sendFrame(resp);
      }
      if (r.sink) r.sink.frameEnd(conn, head, flag);
    });
    conn.on('parseError', (err) => {
      // RFC 4975 §7.3: 400 when the request is unintelligible and we can address the answer.
      const p = err.partialHead;
      if (p?.method !== undefined) {
        try {
          const resp = responseFor(p, 400);
          if (resp) conn.sendFrame(resp);
        } catch {
          // unanswerable (e.g. unusable paths): the connection closes anyway
        }
      }
      this.emit('protocolError', conn, err);
    });
    conn.on('close', (err) => {
      this.conns.delete(conn);
      for (const sid of conn.sessions) {
        this.bound.get(sid)?.delete(conn);
        this.sinks.get(sid)?.connectionClosed?.(conn, err);
      }
    });
    this.emit('connection', conn);
  }

  /**
   * Path header value -> what route() needs from it, parsed once per distinct value
   * (a session sends the same To-Path/From-Path text in every frame). Bounded: cleared
   * when full.
   */
  private readonly paths = new Map<string, PathInfo>();

  private pathInfo(value: string): PathInfo {
    let info = this.paths.get(value);
    if (info === undefined) {
      info = analysePath(value);
      if (this.paths.size >= MAX_CACHED_PATHS) this.paths.clear();
      this.paths.set(value, info);
    }
    return info;
  }

  private route(conn: MsrpConnection, head: FrameHead): Routing {
    const f = pickHeaders(head);
    const to = f.toPath === undefined ? undefined : this.pathInfo(f.toPath);
    const sid = to?.sessionId;
    const sink = sid === undefined ? undefined : this.sinks.get(sid);
    if (head.kind === 'response') {
      // Responses to our own requests come back to the session that sent them.
      if (sink === undefined || sid === undefined) return { head, sink: undefined, status: undefined, reply: undefined };
      if (!conn.sessions.has(sid)) this.bind(sid, conn);
      sink.frameStart(conn, head);
      return { head, sink, status: undefined, reply: undefined };
    }
    const from = f.fromPath === undefined ? undefined : this.pathInfo(f.fromPath);
    if (to?.valid !== true || from?.valid !== true || (f.byteRange !== undefined && !validByteRange(f.byteRange))) {
      return { head, sink: undefined, status: 400, reply: undefined };
    }
    if (sink === undefined || sid === undefined) {
      // RFC 4975 §7.3.1 / §5.4: no such session.
      this.emit('unknownSession', conn, sid, head);
      return { head, sink: undefined, status: head.method === 'REPORT' ? undefined : 481, reply: undefined };
    }
    if (head.method !== 'SEND' && head.method !== 'REPORT') {
      return { head, sink: undefined, status: 501, reply: undefined };
    }
    if (!conn.sessions.has(sid)) this.bind(sid, conn);
    const refused = sink.frameStart(conn, head);
    if (typeof refused === 'number') return { head, sink: undefined, status: refused, reply: undefined };
    const auto = this.opts.autoRespond ?? true;
    if (head.method !== 'SEND' || !auto || sink.respondsItself?.(conn, head) === true) return { head, sink, status: undefined, reply: undefined };
    // RFC 4975 §7.2: the 200, addressed from the paths already validated, unless
    // Failure-Report is no/partial (responseFor's rules).
    const mode = f.failureReport === undefined ? 'yes' : reportMode(head.headers, 'Failure-Report');
    if (mode !== 'yes') return { head, sink, status: undefined, reply: undefined };
    const tid = head.transactionId;
    return {
      head, sink, status: undefined,
      reply: `MSRP ${tid} 200 OK\r\nTo-Path: ${from.first}\r\nFrom-Path: ${to.first}\r\n-------${tid}$\r\n`,
    };
  }
}

/** Parsed once per distinct path header value. */
interface PathInfo {
  /** Every URI parses (parsePath succeeds). */
  valid: boolean;
  /** Session-id of the last URI (RFC 4975 §5.4), when that URI parses. */
  sessionId: string | undefined;
  /** First URI text (where a hop-by-hop response goes). */
  first: string;
}

const MAX_CACHED_PATHS = 4096;

function analysePath(value: string): PathInfo {
  const t = pathTokens(value);
  let valid = true;
  try {
    parsePath(value);
  } catch {
    valid = false;
  }
  let sessionId: string | undefined;
  const last = t[t.length - 1];
  if (last !== undefined) {
    try {
      sessionId = parseMsrpUri(last).sessionId;
    } catch {
      sessionId = undefined;
    }
  }
  return { valid, sessionId, first: t[0] ?? '' };
}

function validByteRange(v: string): boolean {
  try {
    parseByteRange(v);
    return true;
  } catch {
    return false;
  }
}

interface Picked {
  toPath: string | undefined;
  fromPath: string | undefined;
  byteRange: string | undefined;
  failureReport: string | undefined;
}

/** The first To-Path, From-Path, Byte-Range and Failure-Report values, in one pass. */
function pickHeaders(head: FrameHead): Picked {
  const out: Picked = { toPath: undefined, fromPath: undefined, byteRange: undefined, failureReport: undefined };
  for (const h of head.headers) {
    const n = h.name;
    // Compare lower-cased only names of a matching length.
    switch (n.length) {
      case 7:
        if (out.toPath === undefined && n.toLowerCase() === 'to-path') out.toPath = h.value;
        break;
      case 9:
        if (out.fromPath === undefined && n.toLowerCase() === 'from-path') out.fromPath = h.value;
        break;
      case 10:
        if (out.byteRange === undefined && n.toLowerCase() === 'byte-range') out.byteRange = h.value;
        break;
      case 14:
        if (out.failureReport === undefined && n.toLowerCase() === 'failure-report') out.failureReport = h.value;
        break;
      default:
        break;
    }
  }
  return out;
}
