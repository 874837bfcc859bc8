// MSRP endpoint: passive listener (RFC 6135: we are the passive side), session binding
// (RFC 4975 §5.4) and automatic hop-by-hop responses (§7.2).
//
// Per inbound frame:
//   request  ─ paths bad ─▶ 400        response ─ known session ─▶ sink
//     │─ unknown session ─▶ 481 (REPORT: dropped)      └─ otherwise dropped
//     │─ method not SEND/REPORT ─▶ 501
//     │─ sink.frameStart returns a status ─▶ that status, body dropped
//     └─ accepted ─▶ sink; SEND answered 200 at its end-line (autoRespond)
// Responses are subject to Failure-Report (responseFor).
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { DEFAULT_HEADER_TIMEOUT_MS, MsrpConnection, type ConnectTarget } from './connection.js';
import type { MsrpError } from './errors.js';
import { getHeader, parseByteRange, parsePath, toPathSessionId } from './headers.js';
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
          // A TLS peer that never finishes its handshake is dropped like a silent one.
          { key: this.opts.tls.key, cert: this.opts.tls.cert, handshakeTimeout: accepted.firstFrameTimeoutMs || 120_000 },
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

  hasSession(sessionId: string): boolean {
    return this.sinks.has(sessionId);
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
      if (r.status !== undefined && head.kind === 'request') {
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

  private route(conn: MsrpConnection, head: FrameHead): Routing {
    const sid = toPathSessionId(head);
    const sink = sid === undefined ? undefined : this.sinks.get(sid);
    if (head.kind === 'response') {
      // Responses to our own requests come back to the session that sent them.
      if (sink === undefined || sid === undefined) return { head, sink: undefined, status: undefined };
      this.bind(sid, conn);
      sink.frameStart(conn, head);
      return { head, sink, status: undefined };
    }
    try {
      parsePath(getHeader(head, 'To-Path') ?? '');
      parsePath(getHeader(head, 'From-Path') ?? '');
      const br = getHeader(head, 'Byte-Range');
      if (br !== undefined) parseByteRange(br);
    } catch {
      return { head, sink: undefined, status: 400 };
    }
    if (sink === undefined || sid === undefined) {
      // RFC 4975 §7.3.1 / §5.4: no such session.
      this.emit('unknownSession', conn, sid, head);
      return { head, sink: undefined, status: head.method === 'REPORT' ? undefined : 481 };
    }
    if (head.method !== 'SEND' && head.method !== 'REPORT') {
      return { head, sink: undefined, status: 501 };
    }
    this.bind(sid, conn);
    const refused = sink.frameStart(conn, head);
    if (typeof refused === 'number') return { head, sink: undefined, status: refused };
    const auto = this.opts.autoRespond ?? true;
    return { head, sink, status: head.method === 'SEND' && auto ? 200 : undefined };
  }
}
