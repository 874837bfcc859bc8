// Ingress: frames from the endpoint to sessions and legs (RFC 4975 §5.4). The endpoint
// has matched the session by the last To-Path URI; here the leg is found (on the device
// URI by the last From-Path URI, compared per §6.1, or by session-id for a CEMA peer,
// RFC 6714), the transport checked, the body
// collected up to maxChunk, and the whole chunk handed to forwarding. A device's chunks
// sent on a connection parked before its answer are held and relayed once it is answered.
// A SEND that deferred delivery takes (deferral.ts owns()) is answered by deferral, not
// by the endpoint: the 200 of a stored message waits until it is durable.

import {
  getHeader, type ContinuationFlag, type FrameHead, type MsrpConnectionLike, type SessionSink,
} from '../msrp/index.js';
import { parseByteRange, type ByteRange } from '../cpim/direction.js';
import { heldBytes, pathUris, type Binder } from './binding.js';
import type { RelayContext } from './context.js';
import { corkUntilNextTick } from './flow.js';
import type { Deferrals } from './deferral.js';
import type { Forwarder } from './forwarding.js';
import { Body } from './frames.js';
import { peerMatches, type Leg } from './leg.js';
import type { EarlyConnection, Session } from './session.js';

/** Per connection: the frame being received. */
interface Receiving {
  readonly session: Session;
  /** The leg it came from; undefined for a chunk held on a parked connection (`early`). */
  readonly leg: Leg | undefined;
  readonly early?: EarlyConnection;
  readonly head: FrameHead;
  parts: Buffer[];
  size: number;
  /** Byte-Range as read at frame start (SEND only). */
  readonly range: ByteRange | undefined;
  readonly rangeText: string | undefined;
  /** Deferral answers this SEND itself (deferral.ts take()). */
  readonly own: boolean;
}

export type Side = 'orig' | 'device';

export class Ingress {
  private readonly receiving = new Map<string, Receiving>();
  /** The last frameStart took a SEND that deferral answers itself. */
  private lastOwn = false;

  constructor(
    private readonly ctx: RelayContext,
    private readonly binder: Binder,
    private readonly forwarder: Forwarder,
    private readonly deferrals?: Deferrals,
  ) {}

  /** The endpoint's sink for one of the session's ids on one listener. */
  sinkFor(s: Session, side: Side, tls: boolean): SessionSink {
    const maxChunk = this.ctx.limits.maxChunk;
    const trace = this.ctx.trace;
    return {
      frameStart: trace === undefined
        ? (conn, head) => this.frameStart(s, side, tls, conn, head)
        : (conn, head) => {
            const status = this.frameStart(s, side, tls, conn, head);
            trace.received(head, status);
            return status;
          },
      // asked by the endpoint right after frameStart accepted a SEND (no lookup on the hot path)
      respondsItself: () => this.lastOwn,
      body: (conn, piece) => {
        const r = this.receiving.get(conn.id);
        if (!r) return;
        r.size += piece.length;
        if (r.size <= maxChunk) r.parts.push(piece);
      },
      frameEnd: (conn, head, flag) => this.frameEnd(conn, head, flag),
      connectionClosed: (conn, err) => {
        this.forget(conn);
        this.binder.connectionClosed(s, conn, err);
      },
    };
  }

  /** The live view: a new session's relay URIs belong to its call (hep-trace.ts). */
  traceSession(s: Session): void {
    this.ctx.trace?.session(s.callId, s.devTlsUri === undefined ? [s.origUri, s.devUri] : [s.origUri, s.devUri, s.devTlsUri]);
  }

  /** The connection closed: drop its frame in progress. */
  forget(conn: MsrpConnectionLike): void {
    this.receiving.delete(conn.id);
  }

  private frameStart(s: Session, side: Side, tls: boolean, conn: MsrpConnectionLike, head: FrameHead): number | undefined {
    this.lastOwn = false;
    if (s.state === 'deleted') return 481;
    const leg = side === 'orig' ? s.originator : this.deviceByFromPath(s, head);
    if (!leg && side === 'device' && this.binder.park(s, conn, head, tls)) return undefined;
    if (!leg && side === 'device') return this.holdEarly(s, conn, head);
    // RFC 4975 §5.4: a frame that does not belong to a known peer of this session. §6.1:
    // msrp and msrps URIs differ, so a TLS leg is not reached over plain TCP (nor back).
    if (!leg || leg.state === 'closed' || leg.tls !== tls) return 481;
    if (head.kind === 'request' && head.method !== 'SEND' && head.method !== 'REPORT') return 501;
    if (head.kind === 'response' && !head.hasBody) {
      // A hop-by-hop response ends here: it only binds and counts (and may answer a
      // dialed leg's binding SEND).
      if (!this.binder.bind(s, leg, conn)) return undefined;
      leg.framesIn += 1;
      if (leg.bindTid !== undefined) this.binder.bindAnswered(s, leg, head.transactionId, head.status);
      if (s.deferred !== undefined) this.deferrals?.response(s, leg, head.transactionId, head.status);
      return undefined;
    }
    let range: ByteRange | undefined;
    let rangeText: string | undefined;
    if (head.kind === 'request' && head.method === 'SEND') {
      rangeText = getHeader(head.headers, 'Byte-Range');
      range = parseByteRange(rangeText);
      if (range && range.end !== '*' && range.end - range.start + 1 > this.ctx.limits.maxChunk) return 413;
    }
    // a TLS peer whose certificate does not match its a=fingerprint is closed (binding.ts)
    if (!this.binder.bind(s, leg, conn)) return undefined;
    // The endpoint's hop-by-hop 200 and our forwards leave in one write per tick.
    corkUntilNextTick(conn);
    leg.framesIn += 1;
    const own = s.deferred !== undefined && head.kind === 'request' && head.method === 'SEND' && this.deferrals?.owns(s, leg, head) === true;
    this.receiving.set(conn.id, { session: s, leg, head, parts: [], size: 0, range, rangeText, own });
    this.lastOwn = own;
    return undefined;
  }

  /**
   * A SEND with a body on a connection parked before its answer (binding.ts holdFor):
   * taken (undefined: the endpoint's 200) and held; 481 for anything else from no known
   * device (RFC 4975 §5.4), or when the connection is not parked or its hold is full.
   */
  private holdEarly(s: Session, conn: MsrpConnectionLike, head: FrameHead): number | undefined {
    if (head.kind !== 'request' || head.method !== 'SEND') return 481;
    const rangeText = getHeader(head.headers, 'Byte-Range');
    const range = parseByteRange(rangeText);
    const declared = range && range.end !== '*' ? range.end - range.start + 1 : 0;
    if (declared > this.ctx.limits.maxChunk) return 413;
    const early = this.binder.holdFor(s, conn, head, declared);
    if (!early) return 481;
    this.receiving.set(conn.id, { session: s, leg: undefined, early, head, parts: [], size: 0, range, rangeText, own: false });
    return undefined;
  }

  private frameEnd(conn: MsrpConnectionLike, head: FrameHead, flag: ContinuationFlag): void {
    const r = this.receiving.get(conn.id);
    this.receiving.delete(conn.id);
    if (!r || r.head !== head) return;
    if (r.leg === undefined) {
      const early = r.early;
      if (!early || head.kind !== 'request' || r.size > this.ctx.limits.maxChunk) return;
      const leg = early.adoptedBy;
      if (leg) {
        // `answer` came while this chunk was arriving: it follows the held ones at once
        leg.framesIn += 1;
        leg.bytesIn += r.size;
        if (r.session.state !== 'deleted') this.relay(r.session, leg, conn, head, new Body(r.parts, r.size), flag, r.range, r.rangeText);
        return;
      }
      if (heldBytes(r.session) + r.size > this.ctx.limits.maxPending) return;
      // a copy: held across ticks, it must not pin the connection's read buffers
      early.held.push({ head, body: new Body([Buffer.concat(r.parts, r.size)], r.size), flag, range: r.range, rangeText: r.rangeText });
      early.heldBytes += r.size;
      return;
    }
    r.leg.bytesIn += r.size;
    if (r.own && this.deferrals && head.kind === 'request') {
      const oversize = r.size > this.ctx.limits.maxChunk;
      this.deferrals.take(r.session, r.leg, conn, head, new Body(r.parts, oversize ? 0 : r.size), flag, r.range, r.rangeText, oversize);
      return;
    }
    if (r.session.state === 'deleted' || head.kind !== 'request') return; // hop-by-hop responses end here
    if (r.size > this.ctx.limits.maxChunk) {
      r.leg.dropped += 1;
      return;
    }
    this.relay(r.session, r.leg, conn, head, new Body(r.parts, r.size), flag, r.range, r.rangeText);
  }

  /**
   * `answer` named a device: bind the connection it parked, then relay, in order, what it
   * sent before (binding.ts adoptEarly, holdFor).
   */
  adoptEarly(s: Session, leg: Leg): void {
    const adopted = this.binder.adoptEarly(s, leg);
    if (!adopted) return;
    for (const f of adopted.held) {
      leg.framesIn += 1;
      leg.bytesIn += f.body.length;
      this.relay(s, leg, adopted.conn, f.head, f.body, f.flag, f.range, f.rangeText);
    }
  }

  /** A whole chunk from `leg` to forwarding (no object per frame: this is the hot path). */
  private relay(
    s: Session, leg: Leg, conn: MsrpConnectionLike, head: FrameHead, body: Body, flag: ContinuationFlag,
    range: ByteRange | undefined, rangeText: string | undefined,
  ): void {
    try {
      if (head.kind !== 'request') return;
      // already answered by the endpoint (held early, or deferred since its start): deferral takes it all the same
      if (head.method === 'SEND' && s.deferred !== undefined && this.deferrals?.owns(s, leg, head) === true) {
        this.deferrals.take(s, leg, conn, head, body, flag, range, rangeText, false, true);
        return;
      }
      if (head.method === 'SEND') this.forwarder.send(s, leg, conn, head, body, flag, range, rangeText);
      else if (head.method === 'REPORT') this.forwarder.report(leg, head);
    } catch (err) {
      // A malformed frame costs the frame, never the relay.
      leg.dropped += 1;
      this.ctx.log?.warn({ err, callId: s.callId, leg: leg.tag }, 'frame not relayed');
    }
  }

  private deviceByFromPath(s: Session, head: FrameHead): Leg | undefined {
    const from = getHeader(head.headers, 'From-Path');
    if (!from) return undefined;
    const cached = s.fromCache.get(from);
    if (cached) return cached;
    const found = matchDevice(s, from);
    // Bounded: only exact strings that matched a leg; cleared when legs change.
    if (found && s.fromCache.size < 64) s.fromCache.set(from, found);
    return found;
  }
}

/** The device leg whose a=path ends with the last From-Path URI (the device itself; peerMatches). */
function matchDevice(s: Session, from: string): Leg | undefined {
  const uris = pathUris(from);
  const last = uris?.[uris.length - 1];
  if (!last) return undefined;
  for (const d of s.devices.values()) {
    if (peerMatches(d, last)) return d;
  }
  return undefined;
}
