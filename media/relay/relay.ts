// B2BUA-mode MSRP relay (CR 8.3.2.1.4, RFC 4975, RFC 6135).
//
// One relay session per originating call. It owns two relay URIs:
//   orig URI    - given to the originating side in our SDP answer;
//   device URI  - given to every device in our SDP offer.
// Frames are matched by the session-id of the last To-Path URI (RFC 4975 §5.4);
// on the device URI the sending device is told apart by its From-Path, which must
// equal the a=path of its SDP answer. Every peer connects to us (a=setup:passive).
//
//   originator --SEND--> [orig URI]  relay  [device URI] --SEND--> each device
//   originator <--SEND-- [orig URI]  relay  [device URI] <--SEND-- a device
//                                      \--- copy with Message-Direction: sent --> other devices
//
// Each chunk is taken whole, then forwarded with To-Path/From-Path rewritten and a new
// transaction-id; Message-ID and every other header keep their wire order. The stack's
// endpoint answers each SEND hop by hop with 200 (481 for an unknown session).

import { EventEmitter } from 'node:events';
import { X509Certificate, randomBytes } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import {
  MsrpEndpoint,
  getHeader,
  msrpUriEquals,
  parseMsrpUri,
  parsePath,
  type ConnectionOptions,
  type ContinuationFlag,
  type FrameHead,
  type MsrpConnectionLike,
  type MsrpHeader,
  type MsrpUri,
  type RequestHead,
  type SessionSink,
} from '../msrp/index.js';
import { cpimAddress, type PayloadKind } from '../cpim/head.js';
import {
  formatByteRange, injectIntoChunk, parseByteRange, planInjection, shiftRange, unshiftRange,
  type ByteRange, type Injection,
} from '../cpim/direction.js';
import { HeadTracker, type HeadDecision } from '../cpim/tracker.js';
import type { MessageStore } from '../history/store.js';
import { relaySdp, readMsrpMedia, type RelayEndpoint } from './sdp.js';
import { corkUntilNextTick, pauseConnection, resumeConnection } from './flow.js';
import { fastTransactionId } from './ids.js';
import type {
  AnswerParams, AnswerReply, DropParams, Failure, KeyParams, LegInfo, MultiDevicePolicy, OfferParams, OfferReply,
  QueryReply, RelayEvent, SimpleReply, ControlErrorCode,
} from './types.js';

export interface RelayOptions {
  host?: string;
  /** MSRP listen port; 0 picks a free one. */
  port?: number;
  /**
   * Serve msrps (RFC 4975 §6, TCP/TLS/MSRP) on a second listener with this key and
   * certificate (PEM). Without it, TLS offers are answered with TCP/MSRP and a warning.
   */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** TLS listen port (with `tls`); 0 picks a free one. Default 0. */
  tlsPort?: number;
  store?: MessageStore;
  log?: Logger;
  connection?: ConnectionOptions;
  /** Largest chunk taken whole (bytes); larger chunks get 413 (RFC 4975 §7.3.1). Default 4 MiB. */
  maxChunk?: number;
  /** Bytes kept for a leg that has not connected yet. Default 1 MiB. */
  maxPending?: number;
  /** Largest message reassembled for history. Default 4 MiB. */
  maxHistoryMessage?: number;
  /** REPORT mappings kept per session, the oldest forgotten first (the newest maxTracked / 2 at least). Default 4096. */
  maxTracked?: number;
}

interface Counters {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
}

interface Leg extends Counters {
  readonly tag: string;
  readonly role: 'originator' | 'device';
  /** Peer a=path: the To-Path we use toward it. */
  readonly path: MsrpUri[];
  readonly pathText: string[];
  /** pathText as one To-Path value. */
  readonly toPathText: string;
  /** Our URI toward this peer (its To-Path ends with it; our From-Path). */
  ownUri: string;
  /** The leg runs over TLS (msrps): its frames are taken on the TLS listener only. */
  tls: boolean;
  conn?: MsrpConnectionLike;
  state: 'waiting' | 'connected' | 'closed';
  /** Frames queued before the peer connected, bounded by maxPending. */
  pending: Buffer[][];
  /** Message-ID of a message forwarded to this leg -> where its REPORTs go back to. */
  sent: Map<string, SentEntry>;
  /** The previous generation of `sent` (see Session.sentCount). */
  sentOld?: Map<string, SentEntry>;
  /** The SentEntry of messages from this leg forwarded without injection. */
  plain?: SentEntry;
  pendingBytes: number;
}

interface SentEntry {
  readonly src: Leg;
  readonly injection: Injection | null;
}

/** One incoming message (per source leg and Message-ID) while its chunks flow. */
interface InMessage {
  readonly tracker?: HeadTracker<Chunk>;
  decision?: HeadDecision;
  routes?: Route[];
  history?: { parts: Buffer[]; size: number; overflow: boolean };
}

interface Route {
  readonly leg: Leg;
  readonly injection: Injection | null;
}

/** Body pieces as read from the socket; joined only when something needs one buffer. */
class Body {
  private joined: Buffer | undefined;
  constructor(readonly parts: Buffer[], readonly length: number) {
    if (parts.length === 1) this.joined = parts[0];
    else if (parts.length === 0) this.joined = EMPTY;
  }
  get buffer(): Buffer {
    this.joined ??= Buffer.concat(this.parts, this.length);
    return this.joined;
  }
}

interface Chunk {
  readonly head: RequestHead;
  readonly body: Body;
  /** The frame had a Byte-Range header (else it is not added unless the range changes). */
  readonly hasRange: boolean;
  readonly range: ByteRange;
  readonly flag: ContinuationFlag;
}

interface Session {
  readonly callId: string;
  readonly policy: MultiDevicePolicy;
  readonly directDelivery: boolean;
  readonly record: boolean;
  readonly servedUser?: string;
  readonly conversationId?: string;
  readonly contributionId?: string;
  readonly origId: string;
  readonly devId: string;
  /** The originator's relay URI (msrp or msrps, as its offer asked and we can serve). */
  readonly origUri: string;
  /** The device session-id's URI on the TCP listener, and on the TLS listener if any. */
  readonly devUri: string;
  readonly devTlsUri?: string;
  readonly originator: Leg;
  readonly devices: Map<string, Leg>;
  firstActive?: string;
  readonly inbound: Map<string, InMessage>;
  /**
   * REPORT mappings added to the legs' current generation (Leg.sent). At maxTracked / 2
   * every leg's current generation becomes its old one and the old one is forgotten:
   * at most maxTracked are kept, the oldest forgotten first. (A Map with deletions at
   * this rate cost about 2 µs per message.)
   */
  sentCount: number;
  /** Routes from the originator without injection, while the device set is unchanged. */
  origRoutes: Route[] | undefined;
  /** Route from a device to the originator alone. */
  readonly toOriginator: Route[];
  /** From-Path value -> device leg, for frames on the device URI. */
  readonly fromCache: Map<string, Leg>;
  /** From-Path value -> connection that bound before its device was answered. */
  readonly early: Map<string, { conn: MsrpConnectionLike; tls: boolean }>;
  closed: boolean;
}

/** Per connection: the frame being received. */
interface Receiving {
  readonly session: Session;
  readonly leg: Leg;
  readonly head: FrameHead;
  parts: Buffer[];
  size: number;
  /** Byte-Range as read at frame start (SEND only). */
  readonly range: ByteRange | undefined;
  readonly rangeText: string | undefined;
}

const ORIGINATOR = 'originator';
/** Chunked messages in progress per session; the oldest is forgotten beyond this. */
const MAX_OPEN_MESSAGES = 32;

function fail(code: ControlErrorCode, reason: string): Failure {
  return { result: 'error', 'error-code': code, 'error-reason': reason };
}

function freshId(): string {
  return randomBytes(12).toString('base64url');
}

function isNonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

export class MsrpRelay extends EventEmitter<{ event: [RelayEvent] }> {
  readonly endpoint: MsrpEndpoint;
  /** The msrps listener, when TLS is configured. */
  readonly tlsEndpoint: MsrpEndpoint | undefined;
  /** RFC 4572 fingerprint of our certificate (a=fingerprint), when TLS is configured. */
  private readonly fingerprint: string | undefined;
  private readonly sessions = new Map<string, Session>();
  private readonly receiving = new Map<string, Receiving>();
  /** Source connection id -> destination connections it waits on. */
  private readonly blockedOn = new Map<string, { src: MsrpConnectionLike; dests: Set<string> }>();
  private readonly drainHooked = new WeakSet<MsrpConnectionLike>();
  private readonly host: string;
  private readonly opts: Required<Pick<RelayOptions, 'maxChunk' | 'maxPending' | 'maxHistoryMessage' | 'maxTracked'>>;
  private port = 0;
  private tlsPort = 0;

  constructor(private readonly options: RelayOptions = {}) {
    super();
    this.host = options.host ?? '127.0.0.1';
    this.opts = {
      maxChunk: options.maxChunk ?? 4 * 1024 * 1024,
      maxPending: options.maxPending ?? 1024 * 1024,
      maxHistoryMessage: options.maxHistoryMessage ?? 4 * 1024 * 1024,
      maxTracked: options.maxTracked ?? 4096,
    };
    this.endpoint = new MsrpEndpoint({
      host: this.host,
      port: options.port ?? 2855,
      ...(options.connection ? { connection: options.connection } : {}),
    });
    this.tlsEndpoint = options.tls
      ? new MsrpEndpoint({
          host: this.host,
          port: options.tlsPort ?? 0,
          tls: options.tls,
          ...(options.connection ? { connection: options.connection } : {}),
        })
      : undefined;
    // Fails here, not at listen(), on a bad certificate or a key that does not match it.
    if (options.tls) createSecureContext(options.tls);
    this.fingerprint = options.tls ? `sha-256 ${new X509Certificate(options.tls.cert).fingerprint256}` : undefined;
  }

  /** Listen on the TCP port and, with TLS configured, the TLS port; resolves to the TCP port. */
  async listen(): Promise<number> {
    this.port = await this.endpoint.listen();
    if (this.tlsEndpoint) this.tlsPort = await this.tlsEndpoint.listen();
    return this.port;
  }

  get listenPort(): number {
    return this.port;
  }

  /** The TLS listener's port; 0 without TLS. */
  get tlsListenPort(): number {
    return this.tlsPort;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    for (const s of [...this.sessions.values()]) this.deleteSession(s, 'relay stopped');
    await this.endpoint.close();
    await this.tlsEndpoint?.close();
    await this.flushHistory();
  }

  // ---- control verbs ------------------------------------------------------------

  /** Create a session from the originator's offer. */
  offer(p: OfferParams): OfferReply {
    if (!isNonEmpty(p['call-id']) || !isNonEmpty(p.sdp)) return fail('BAD_PARAMS', 'call-id and sdp are required');
    if (p.policy !== undefined && !['A', 'B', 'C'].includes(p.policy)) return fail('BAD_PARAMS', 'policy must be A, B or C');
    if (this.sessions.has(p['call-id'])) return fail('SESSION_EXISTS', 'session exists for this call-id');
    const warnings: string[] = [];
    let path: MsrpUri[];
    let pathText: string[];
    let offeredTls: boolean;
    try {
      const media = readMsrpMedia(p.sdp);
      pathText = media.path;
      path = media.path.map(u => parseMsrpUri(u));
      offeredTls = isTlsProtocol(media.protocol);
      // RFC 6135: we are always passive; a passive offerer cannot reach us.
      if (media.setup === 'passive') warnings.push('offer has a=setup:passive; the relay only accepts connections');
    } catch (err) {
      return fail('BAD_SDP', (err as Error).message);
    }
    if (offeredTls && !this.tlsEndpoint) {
      warnings.push('offer is TCP/TLS/MSRP but the relay has no TLS configured: answered with TCP/MSRP (unencrypted)');
    }
    const origTls = offeredTls && this.tlsEndpoint !== undefined;
    const origId = freshId();
    const devId = freshId();
    const origUri = origTls ? this.tlsEndpoint!.uriFor(origId) : this.endpoint.uriFor(origId);
    const devUri = this.endpoint.uriFor(devId);
    const devTlsUri = this.tlsEndpoint?.uriFor(devId);
    const s: Session = {
      callId: p['call-id'],
      policy: p.policy ?? 'C',
      directDelivery: p['direct-delivery'] === true,
      record: p.record === true,
      ...(isNonEmpty(p['served-user']) ? { servedUser: cpimAddress(p['served-user'])! } : {}),
      ...(isNonEmpty(p['conversation-id']) ? { conversationId: p['conversation-id'] } : {}),
      ...(isNonEmpty(p['contribution-id']) ? { contributionId: p['contribution-id'] } : {}),
      origId,
      devId,
      origUri,
      devUri,
      ...(devTlsUri !== undefined ? { devTlsUri } : {}),
      originator: newLeg(ORIGINATOR, 'originator', path, pathText, origUri, origTls),
      devices: new Map(),
      inbound: new Map(),
      sentCount: 0,
      origRoutes: undefined,
      toOriginator: [],
      fromCache: new Map(),
      early: new Map(),
      closed: false,
    };
    s.toOriginator.push({ leg: s.originator, injection: null });
    if (s.directDelivery && !s.servedUser) warnings.push('direct-delivery without served-user: only device copies are marked');
    if (s.record && (!s.conversationId || !s.contributionId)) warnings.push('record without conversation-id/contribution-id: history off');
    this.sessions.set(s.callId, s);
    // Both session-ids on both listeners; a leg's frames are taken on its own transport only.
    this.endpoint.addSession(origId, this.sinkFor(s, 'orig', false));
    this.endpoint.addSession(devId, this.sinkFor(s, 'device', false));
    this.tlsEndpoint?.addSession(origId, this.sinkFor(s, 'orig', true));
    this.tlsEndpoint?.addSession(devId, this.sinkFor(s, 'device', true));
    if (s.record && s.conversationId && s.contributionId && this.options.store) {
      // CR 8.5: ensure the Session History Folder exists, with its session info object.
      this.track(this.options.store.ensureSessionFolder(
        { conversationId: s.conversationId, contributionId: s.contributionId },
        { callId: s.callId, ...(s.servedUser ? { to: s.servedUser } : {}), startedAt: new Date().toISOString() },
      ), s);
    }
    const sdp = relaySdp(p.sdp, this.own(origUri, origTls));
    // Devices are offered the originator's transport; with TLS configured both variants
    // are returned, so a B2BUA may offer each device either (each leg independently).
    const deviceTcpSdp = relaySdp(p.sdp, this.own(devUri, false));
    const deviceTlsSdp = devTlsUri !== undefined ? relaySdp(p.sdp, this.own(devTlsUri, true)) : undefined;
    return {
      result: 'ok',
      sdp,
      'device-sdp': origTls && deviceTlsSdp !== undefined ? deviceTlsSdp : deviceTcpSdp,
      'relay-uri': origUri,
      'device-relay-uri': origTls && devTlsUri !== undefined ? devTlsUri : devUri,
      ...(deviceTlsSdp !== undefined && devTlsUri !== undefined
        ? { 'device-sdp-tcp': deviceTcpSdp, 'device-sdp-tls': deviceTlsSdp, 'device-relay-uri-tcp': devUri, 'device-relay-uri-tls': devTlsUri }
        : {}),
      ...(warnings.length ? { warnings } : {}),
    };
  }

  private own(uri: string, tls: boolean): RelayEndpoint {
    return tls
      ? { host: this.host, port: this.tlsPort, uri, tls: true, ...(this.fingerprint ? { fingerprint: this.fingerprint } : {}) }
      : { host: this.host, port: this.port, uri, tls: false };
  }

  /** Add a device leg from its SDP answer. */
  answer(p: AnswerParams): AnswerReply {
    if (!isNonEmpty(p['call-id']) || !isNonEmpty(p.leg) || !isNonEmpty(p.sdp)) {
      return fail('BAD_PARAMS', 'call-id, leg and sdp are required');
    }
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    if (p.leg === ORIGINATOR || s.devices.has(p.leg)) return fail('LEG_EXISTS', 'leg exists');
    // CR 8.3.2.1.1 A: keep only the first client that answered.
    if (s.policy === 'A' && s.devices.size > 0) return fail('POLICY_REJECTED', 'policy A keeps only the first device');
    let pathText: string[];
    let path: MsrpUri[];
    let answeredTls: boolean;
    try {
      const media = readMsrpMedia(p.sdp);
      pathText = media.path;
      path = pathText.map(u => parseMsrpUri(u));
      answeredTls = isTlsProtocol(media.protocol);
    } catch (err) {
      return fail('BAD_SDP', (err as Error).message);
    }
    const warnings: string[] = [];
    // The answer's protocol (RFC 4566 O/A: that of the offer it answers) picks the
    // device's transport and so which of our URIs it talks to.
    const tls = answeredTls && s.devTlsUri !== undefined;
    if (answeredTls && !tls) {
      warnings.push('answer is TCP/TLS/MSRP but the relay has no TLS configured: the leg is TCP/MSRP (unencrypted)');
    }
    const last = path[path.length - 1]!;
    for (const d of s.devices.values()) {
      if (d.state !== 'closed' && msrpUriEquals(d.path[d.path.length - 1]!, last)) {
        return fail('LEG_EXISTS', 'another leg has the same a=path');
      }
    }
    const leg = newLeg(p.leg, 'device', path, pathText, tls ? s.devTlsUri! : s.devUri, tls);
    s.devices.set(p.leg, leg);
    s.fromCache.clear();
    s.origRoutes = undefined;
    // A device that connected and bound before its answer reached us (on its own transport).
    for (const [from, early] of s.early) {
      const uris = pathUris(from);
      if (!uris || !msrpUriEquals(uris[uris.length - 1]!, last) || early.tls !== tls) continue;
      s.early.delete(from);
      if (!early.conn.closed) this.bind(s, leg, early.conn);
      break;
    }
    return { result: 'ok', leg: p.leg, ...(warnings.length ? { warnings } : {}) };
  }

  /**
   * The device is active (RFC 6135) and may connect and send its binding empty SEND
   * before the B2BUA has passed on its 200's SDP. Such an empty SEND is accepted (200)
   * and its connection parked until `answer` names the device; anything with a body
   * still gets 481. At most 16 parked connections per session.
   */
  private parkEarlyBind(s: Session, conn: MsrpConnectionLike, head: FrameHead, tls: boolean): boolean {
    if (head.kind !== 'request' || head.method !== 'SEND' || head.hasBody) return false;
    const from = getHeader(head.headers, 'From-Path');
    if (!from || !pathUris(from) || s.early.size >= 16) return false;
    if (!s.early.has(from)) {
      s.early.set(from, { conn, tls });
      conn.on('close', () => {
        if (s.early.get(from)?.conn === conn) s.early.delete(from);
      });
    }
    return true;
  }

  /** Drop a device leg (after its BYE): release its media. */
  drop(p: DropParams): SimpleReply {
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    const leg = s.devices.get(p.leg);
    if (!leg) return fail('UNKNOWN_LEG', 'no such device leg');
    s.devices.delete(p.leg);
    s.fromCache.clear();
    s.origRoutes = undefined;
    this.closeLeg(s, leg, 'dropped');
    return { result: 'ok' };
  }

  delete(p: KeyParams): SimpleReply {
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    this.deleteSession(s, 'deleted');
    return { result: 'ok' };
  }

  query(p: KeyParams): QueryReply {
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    return {
      result: 'ok',
      'call-id': s.callId,
      policy: s.policy,
      'direct-delivery': s.directDelivery,
      record: s.record,
      ...(s.firstActive !== undefined ? { 'first-active': s.firstActive } : {}),
      legs: [s.originator, ...s.devices.values()].map(legInfo),
    };
  }

  // ---- media plane --------------------------------------------------------------

  private sinkFor(s: Session, side: 'orig' | 'device', tls: boolean): SessionSink {
    return {
      frameStart: (conn, head) => this.onFrameStart(s, side, tls, conn, head),
      body: (conn, piece) => {
        const r = this.receiving.get(conn.id);
        if (!r) return;
        r.size += piece.length;
        if (r.size <= this.opts.maxChunk) r.parts.push(piece);
      },
      frameEnd: (conn, head, flag) => this.onFrameEnd(conn, head, flag),
      connectionClosed: (conn, err) => this.onConnectionClosed(s, conn, err),
    };
  }

  private onFrameStart(
    s: Session, side: 'orig' | 'device', tls: boolean, conn: MsrpConnectionLike, head: FrameHead,
  ): number | undefined {
    if (s.closed) return 481;
    const leg = side === 'orig' ? s.originator : this.deviceByFromPath(s, head);
    if (!leg && side === 'device' && this.parkEarlyBind(s, conn, head, tls)) return undefined;
    // RFC 4975 §5.4: a frame that does not belong to a known peer of this session. §6.1:
    // msrp and msrps URIs differ, so a TLS leg is not reached over plain TCP (nor back).
    if (!leg || leg.state === 'closed' || leg.tls !== tls) return 481;
    if (head.kind === 'request' && head.method !== 'SEND' && head.method !== 'REPORT') return 501;
    if (head.kind === 'response' && !head.hasBody) {
      // A hop-by-hop response ends here: it only binds and counts.
      this.bind(s, leg, conn);
      leg.framesIn += 1;
      return undefined;
    }
    let range: ByteRange | undefined;
    let rangeText: string | undefined;
    if (head.kind === 'request' && head.method === 'SEND') {
      rangeText = getHeader(head.headers, 'Byte-Range');
      range = parseByteRange(rangeText);
      if (range && range.end !== '*' && range.end - range.start + 1 > this.opts.maxChunk) return 413;
    }
    this.bind(s, leg, conn);
    // The endpoint's hop-by-hop 200 and our forwards leave in one write per tick.
    corkUntilNextTick(conn);
    leg.framesIn += 1;
    this.receiving.set(conn.id, { session: s, leg, head, parts: [], size: 0, range, rangeText });
    return undefined;
  }

  private deviceByFromPath(s: Session, head: FrameHead): Leg | undefined {
    const from = getHeader(head.headers, 'From-Path');
    if (!from) return undefined;
    const cached = s.fromCache.get(from);
    if (cached) return cached;
    const found = this.matchDevice(s, from);
    // Bounded: only exact strings that matched a leg; cleared when legs change.
    if (found && s.fromCache.size < 64) s.fromCache.set(from, found);
    return found;
  }

  private matchDevice(s: Session, from: string): Leg | undefined {
    const uris = pathUris(from);
    if (!uris) return undefined;
    // The first From-Path URI is the previous hop; the last is the device itself.
    const last = uris[uris.length - 1];
    if (!last) return undefined;
    for (const d of s.devices.values()) {
      if (msrpUriEquals(d.path[d.path.length - 1]!, last)) return d;
    }
    return undefined;
  }

  private bind(s: Session, leg: Leg, conn: MsrpConnectionLike): void {
    if (leg.conn === conn) return;
    leg.conn = conn;
    leg.state = 'connected';
    this.hookDrain(conn);
    this.emitEvent({ event: 'leg-connected', 'call-id': s.callId, leg: leg.tag });
    // Flush what waited for this peer.
    const pending = leg.pending;
    leg.pending = [];
    leg.pendingBytes = 0;
    for (const b of pending) this.write(leg, b);
  }

  private onFrameEnd(conn: MsrpConnectionLike, head: FrameHead, flag: ContinuationFlag): void {
    const r = this.receiving.get(conn.id);
    this.receiving.delete(conn.id);
    if (!r || r.head !== head) return;
    r.leg.bytesIn += r.size;
    if (r.session.closed || head.kind !== 'request') return; // hop-by-hop responses end here
    if (r.size > this.opts.maxChunk) {
      r.leg.dropped += 1;
      return;
    }
    const body = new Body(r.parts, r.size);
    try {
      if (head.method === 'SEND') this.onSend(r.session, r.leg, conn, head, body, flag, r.range, r.rangeText);
      else if (head.method === 'REPORT') this.onReport(r.session, r.leg, head);
    } catch (err) {
      // A malformed frame costs the frame, never the relay.
      r.leg.dropped += 1;
      this.options.log?.warn({ err, callId: r.session.callId, leg: r.leg.tag }, 'frame not relayed');
    }
  }

  private onSend(
    s: Session, src: Leg, conn: MsrpConnectionLike, head: RequestHead, body: Body, flag: ContinuationFlag,
    parsed: ByteRange | undefined, rangeText: string | undefined,
  ): void {
    const messageId = getHeader(head.headers, 'Message-ID');
    // RFC 4975 §7.1: an empty SEND only binds the connection; nothing to relay.
    if (!messageId || (!head.hasBody && body.length === 0)) return;
    const range = parsed ?? { start: 1, end: body.length, total: body.length };
    const fixed: ByteRange = { start: range.start, end: range.end === '*' && flag !== '+' ? range.start + body.length - 1 : range.end, total: range.total };
    const key = `${src.tag}\0${messageId}`;
    const final = flag !== '+';
    let m = s.inbound.size === 0 ? undefined : s.inbound.get(key);
    if (!m) {
      // The CPIM head is read only when something depends on it.
      const needHead = s.directDelivery || (s.record && this.options.store !== undefined) ||
        (src.role === 'device' && s.policy !== 'C' && s.firstActive === undefined);
      m = needHead ? { tracker: new HeadTracker<Chunk>(getHeader(head.headers, 'Content-Type')) } : {};
      if (!final) {
        // Bound the messages left open (interleaved or never finished) per session.
        if (s.inbound.size >= MAX_OPEN_MESSAGES) {
          s.inbound.delete(s.inbound.keys().next().value!);
          src.dropped += 1;
        }
        s.inbound.set(key, m);
      }
    } else if (final) {
      s.inbound.delete(key);
    }
    // A chunk that may be held (head not known yet) gets its own copy, so it does not pin
    // the socket's read buffer.
    const held = m.tracker !== undefined && m.tracker.decided === undefined;
    const own = held ? new Body([Buffer.from(body.buffer)], body.length) : body;
    const chunk: Chunk = { head, body: own, range: fixed, flag, hasRange: rangeText !== undefined };
    let release: Chunk[] = [chunk];
    let decision: HeadDecision = { kind: 'chat', prefix: EMPTY };
    if (m.tracker) {
      const out = m.tracker.push(chunk, own.buffer, fixed.start, final);
      if (!out) return;
      release = out.release;
      decision = out.decision;
    }
    if (!m.routes) {
      m.decision = decision;
      m.routes = this.routesFor(s, src, decision);
      if (s.record && this.options.store && (decision.kind === 'chat' || decision.kind === 'imdn')) {
        m.history = { parts: [], size: 0, overflow: false };
      }
    }
    for (const c of release) {
      for (const route of m.routes) this.forward(s, src, route, c, messageId);
      if (m.history) this.recordChunk(s, m, c);
    }
    this.throttle(conn, m.routes);
  }

  /** Where a message goes, and with which Message-Direction injection. */
  private routesFor(s: Session, src: Leg, d: HeadDecision): Route[] {
    const kind = d.kind;
    if (src.role === 'originator') {
      // CR 8.3.2.1.4 step 3: to every connected device. Step 3.C (our reading, see
      // docs/media-relay.md): a message the served user sent is marked as sent.
      const fromUser = s.directDelivery && kind === 'chat' && s.servedUser !== undefined && d.head !== undefined &&
        cpimAddress(d.head.headers.find(h => h.name.toLowerCase() === 'from')?.value) === s.servedUser;
      const inj = fromUser && d.head ? planInjection(d.head) : null;
      // Without injection the routes only depend on the device set (forward() skips legs
      // closed since): kept until answer/drop changes it.
      if (inj === null && s.origRoutes !== undefined) return s.origRoutes;
      const routes = [...s.devices.values()].filter(l => l.state !== 'closed').map(leg => ({ leg, injection: inj }));
      if (inj === null) s.origRoutes = routes;
      return routes;
    }
    this.noteActivity(s, src, kind);
    if (!(s.directDelivery && kind === 'chat' && d.head)) return s.toOriginator;
    const routes: Route[] = [{ leg: s.originator, injection: null }];
    // CR 8.3.2.1.4 step 4.B: copy the user's own chat message to the user's other devices,
    // marked sent. Only CPIM can carry the mark, so a message without a readable CPIM head
    // is not copied (the other devices would show it as received).
    if (s.directDelivery && kind === 'chat' && d.head) {
      const inj = planInjection(d.head);
      for (const leg of s.devices.values()) {
        if (leg !== src && leg.state !== 'closed') routes.push({ leg, injection: inj });
      }
    }
    return routes;
  }

  /** CR 8.3.2.1.1 B (and A): the first device to send a chat message or isComposing. */
  private noteActivity(s: Session, src: Leg, kind: PayloadKind): void {
    if (s.firstActive !== undefined || s.policy === 'C') return;
    if (kind !== 'chat' && kind !== 'isComposing') return;
    s.firstActive = src.tag;
    this.emitEvent({ event: 'first-active', 'call-id': s.callId, leg: src.tag, kind });
  }

  private forward(s: Session, src: Leg, route: Route, c: Chunk, messageId: string): void {
    const dest = route.leg;
    if (dest.state === 'closed') return;
    const ownUri = dest.ownUri;
    const body = route.injection ? injectIntoChunk(c.body.buffer, c.range.start, route.injection) : c.body;
    const range = c.hasRange || route.injection ? formatByteRange(shiftRange(c.range, route.injection)) : undefined;
    // Remember where REPORTs for this message go back to (bounded per session).
    if (!dest.sent.has(messageId)) {
      if (++s.sentCount > Math.max(1, this.opts.maxTracked >> 1)) {
        s.sentCount = 1;
        for (const leg of [s.originator, ...s.devices.values()]) {
          leg.sentOld = leg.sent;
          leg.sent = new Map();
        }
      }
      // Without injection, the source's one shared entry (nothing more to keep per message).
      dest.sent.set(messageId, route.injection === null ? (src.plain ??= { src, injection: null }) : { src, injection: route.injection });
    }
    dest.framesOut += 1;
    dest.bytesOut += body.length;
    this.write(dest, frameParts('SEND', c.head.headers, dest.toPathText, ownUri, range, body, c.head.hasBody, c.flag));
  }

  /** RFC 4975 §7.1.2: a REPORT goes back to the message's sender, its Byte-Range mapped back. */
  private onReport(s: Session, from: Leg, head: RequestHead): void {
    const messageId = getHeader(head.headers, 'Message-ID');
    if (!messageId) return;
    const t = from.sent.get(messageId) ?? from.sentOld?.get(messageId);
    if (!t || t.src.state === 'closed') return;
    const back = t.src;
    const r = parseByteRange(getHeader(head.headers, 'Byte-Range'));
    const range = r ? formatByteRange(unshiftRange(r, t.injection)) : undefined;
    back.framesOut += 1;
    const own = back.ownUri;
    this.write(back, frameParts('REPORT', head.headers, back.toPathText, own, range, EMPTY, false, '$'));
  }

  private recordChunk(s: Session, m: InMessage, c: Chunk): void {
    const h = m.history!;
    if (!h.overflow) {
      h.size += c.body.length;
      if (h.size > this.opts.maxHistoryMessage) {
        h.overflow = true;
        h.parts = [];
      } else {
        h.parts.push(c.body.buffer);
      }
    }
    if (c.flag !== '$') {
      if (c.flag === '#') h.parts = [];
      return;
    }
    if (h.overflow || !s.conversationId || !s.contributionId) {
      if (h.overflow) this.options.log?.warn({ callId: s.callId }, 'message too large for history');
      return;
    }
    // Store the message as message/cpim (CR 8.5), in byte order.
    const data = Buffer.concat(h.parts);
    h.parts = [];
    this.track(this.options.store!.append({ conversationId: s.conversationId, contributionId: s.contributionId }, 'message/cpim', data), s);
  }

  private write(leg: Leg, parts: Buffer[]): void {
    const conn = leg.conn;
    if (!conn || conn.closed) {
      if (leg.state === 'closed') return;
      // Not connected yet: keep a bounded backlog for when it binds.
      const size = parts.reduce((n, b) => n + b.length, 0);
      if (leg.pendingBytes + size > this.opts.maxPending) {
        leg.dropped += 1;
        return;
      }
      leg.pending.push(parts.map(b => Buffer.from(b))); // copies: do not pin read buffers
      leg.pendingBytes += size;
      return;
    }
    corkUntilNextTick(conn);
    for (const b of parts) if (b.length > 0) conn.write(b);
  }

  /** Backpressure: stop reading from `src` while a destination is over its high-water mark. */
  private throttle(src: MsrpConnectionLike, routes: Route[]): void {
    const hwm = this.options.connection?.highWaterMark ?? 256 * 1024;
    for (const r of routes) {
      const d = r.leg.conn;
      if (!d || d.closed || d === src || d.queuedBytes <= hwm) continue;
      let b = this.blockedOn.get(src.id);
      if (!b) {
        b = { src, dests: new Set() };
        this.blockedOn.set(src.id, b);
        pauseConnection(src);
      }
      b.dests.add(d.id);
    }
  }

  private hookDrain(conn: MsrpConnectionLike): void {
    if (this.drainHooked.has(conn)) return;
    this.drainHooked.add(conn);
    const release = (): void => {
      for (const [id, b] of this.blockedOn) {
        if (!b.dests.delete(conn.id)) continue;
        if (b.dests.size === 0) {
          this.blockedOn.delete(id);
          resumeConnection(b.src);
        }
      }
    };
    conn.on('drain', release);
    conn.on('close', () => {
      release();
      this.blockedOn.delete(conn.id);
      this.receiving.delete(conn.id);
    });
  }

  private onConnectionClosed(s: Session, conn: MsrpConnectionLike, err?: Error): void {
    this.receiving.delete(conn.id);
    for (const leg of [s.originator, ...s.devices.values()]) {
      if (leg.conn !== conn) continue;
      leg.conn = undefined;
      if (leg.state === 'closed') continue;
      leg.state = 'closed';
      // Messages half-received from this leg will not complete.
      for (const k of [...s.inbound.keys()]) if (k.startsWith(`${leg.tag}\0`)) s.inbound.delete(k);
      this.emitEvent({ event: 'leg-closed', 'call-id': s.callId, leg: leg.tag, reason: err ? err.message : 'connection closed' });
    }
  }

  private closeLeg(s: Session, leg: Leg, reason: string): void {
    const conn = leg.conn;
    const wasOpen = leg.state !== 'closed';
    leg.state = 'closed';
    leg.conn = undefined;
    leg.pending = [];
    leg.pendingBytes = 0;
    for (const k of [...s.inbound.keys()]) if (k.startsWith(`${leg.tag}\0`)) s.inbound.delete(k);
    // Close the connection unless it also carries another session (RFC 4975 §5.4 sharing),
    // or another leg of this one.
    const others = conn ? [...conn.sessions].some(id => id !== s.origId && id !== s.devId) : false;
    const sibling = [s.originator, ...s.devices.values()].some(l => l !== leg && l.conn === conn);
    if (conn && !others && !sibling) conn.close();
    if (wasOpen) this.emitEvent({ event: 'leg-closed', 'call-id': s.callId, leg: leg.tag, reason });
  }

  private deleteSession(s: Session, reason: string): void {
    s.closed = true;
    this.sessions.delete(s.callId);
    this.endpoint.removeSession(s.origId);
    this.endpoint.removeSession(s.devId);
    this.tlsEndpoint?.removeSession(s.origId);
    this.tlsEndpoint?.removeSession(s.devId);
    for (const leg of [...s.devices.values(), s.originator]) this.closeLeg(s, leg, reason);
    s.inbound.clear();
    for (const leg of [s.originator, ...s.devices.values()]) {
      leg.sent = new Map();
      leg.sentOld = undefined;
    }
    s.sentCount = 0;
    for (const e of s.early.values()) e.conn.close();
    s.early.clear();
  }

  /** History writes in flight; `flushHistory()` waits for them. */
  private readonly writes = new Set<Promise<unknown>>();

  private track(p: Promise<unknown>, s: Session): void {
    const w = p.catch((err: unknown) => this.options.log?.error({ err, callId: s.callId }, 'history write failed'));
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
  }

  async flushHistory(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  private emitEvent(e: RelayEvent): void {
    this.options.log?.info(e, 'relay event');
    this.emit('event', e);
  }
}

const EMPTY = Buffer.alloc(0);

/** TCP/TLS/MSRP (RFC 4975 §8.1); protocol names compare case-insensitively. */
function isTlsProtocol(protocol: string): boolean {
  return protocol.toUpperCase() === 'TCP/TLS/MSRP';
}

function pathUris(value: string): MsrpUri[] | undefined {
  try {
    return parsePath(value);
  } catch {
    return undefined;
  }
}

/**
 * A relayed frame as buffers to write (RFC 4975 §7.1): the start-line with a fresh
 * transaction-id, the headers in wire order with To-Path, From-Path and Byte-Range
 * rewritten, the body, and the end-line. Written with writev, never concatenated.
 * Header values come from the parser (no CR/LF) or from our own SDP-derived URIs.
 */
function frameParts(
  method: string, headers: readonly MsrpHeader[], toPath: string, fromPath: string,
  range: string | undefined, body: Buffer | Body, hasBody: boolean, flag: ContinuationFlag,
): Buffer[] {
  const tid = fastTransactionId();
  let head = `MSRP ${tid} ${method}\r\n`;
  let rangeDone = range === undefined;
  for (const h of headers) {
    const n = h.name.length === 7 || h.name.length === 9 || h.name.length === 10 ? h.name.toLowerCase() : '';
    if (n === 'to-path') head += `To-Path: ${toPath}\r\n`;
    else if (n === 'from-path') head += `From-Path: ${fromPath}\r\n`;
    else if (n === 'byte-range' && range !== undefined) {
      if (!rangeDone) head += `Byte-Range: ${range}\r\n`;
      rangeDone = true;
    } else head += `${h.name}: ${h.value}\r\n`;
  }
  if (!rangeDone) head += `Byte-Range: ${range}\r\n`;
  const withBody = hasBody || body.length > 0;
  if (withBody) head += '\r\n';
  const end = `${withBody ? '\r\n' : ''}-------${tid}${flag}\r\n`;
  // Small frames go out as one buffer (one socket write); large bodies are not copied.
  const parts = body instanceof Body ? body.parts : [body];
  if (body.length <= 4096) {
    const hl = Buffer.byteLength(head, 'utf8');
    const out = Buffer.allocUnsafe(hl + body.length + end.length);
    out.write(head, 0, 'utf8');
    let at = hl;
    for (const p of parts) at += p.copy(out, at);
    out.write(end, at, 'latin1');
    return [out];
  }
  return [Buffer.from(head, 'utf8'), ...parts, Buffer.from(end, 'latin1')];
}

function newLeg(tag: string, role: 'originator' | 'device', path: MsrpUri[], pathText: string[], ownUri: string, tls: boolean): Leg {
  return {
    tag, role, path, pathText, toPathText: pathText.join(' '), ownUri, tls, state: 'waiting', pending: [], pendingBytes: 0, sent: new Map(),
    framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0,
  };
}

function legInfo(l: Leg): LegInfo {
  return {
    leg: l.tag,
    role: l.role,
    transport: l.tls ? 'tls' : 'tcp',
    state: l.state,
    path: l.pathText,
    'frames-in': l.framesIn,
    'frames-out': l.framesOut,
    'bytes-in': l.bytesIn,
    'bytes-out': l.bytesOut,
    dropped: l.dropped,
  };
}
