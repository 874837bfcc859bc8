// Binding connections to legs (RFC 4975 §5.4): a connection is bound to its leg by its
// first frame, which may be an empty SEND; a connection the relay dialed (dial.ts) is
// bound when it is up, after the relay's own empty SEND. A device may bind before the B2BUA has
// passed on its answer (early bind, docs/media-control.md "answer"). When the
// connection closes, the leg is closed for good. Every leg and session state change
// made here goes through moveLeg() / moveSession().

import {
  buildRequest, getHeader, newMessageId, parsePath, type FrameHead, type MsrpConnectionLike, type MsrpUri,
} from '../msrp/index.js';
import type { RelayContext } from './context.js';
import type { Backpressure } from './flow.js';
import type { Forwarder } from './forwarding.js';
import { moveLeg, peerMatches, type Leg } from './leg.js';
import { fingerprintMismatch } from './fingerprint.js';
import { forgetSenders } from './reports.js';
import { forgetInbound, legsOf, moveSession, type EarlyConnection, type HeldFrame, type Session } from './session.js';

/** Connections parked per session before their answer. */
const MAX_EARLY = 16;

export function pathUris(value: string): MsrpUri[] | undefined {
  try {
    return parsePath(value);
  } catch {
    return undefined;
  }
}

/** Bytes held for every parked connection of a session (at most MAX_EARLY of them). */
export function heldBytes(s: Session): number {
  let n = 0;
  for (const e of s.early.values()) n += e.heldBytes;
  return n;
}

export class Binder {
  constructor(
    private readonly ctx: RelayContext,
    private readonly forwarder: Forwarder,
    private readonly flow: Backpressure,
  ) {}

  /**
   * Bind `conn` to `leg` (waiting or connected) and flush what waited for it. A TLS leg
   * whose peer gave a=fingerprint takes only a connection whose certificate matches it
   * (RFC 4975 §14.1, RFC 8122 §5): another is closed, logged with the session and the
   * reason, and the leg stays as it was (its real peer may still come). Returns whether
   * `conn` is now the leg's.
   */
  bind(s: Session, leg: Leg, conn: MsrpConnectionLike): boolean {
    if (leg.conn === conn) return true;
    if (!this.certified(s, leg, conn)) return false;
    moveLeg(leg, 'connected');
    leg.conn = conn;
    if (leg.role === 'originator' && s.state === 'offered') moveSession(s, 'active');
    this.flow.watch(conn);
    this.ctx.emit({ event: 'leg-connected', 'call-id': s.callId, leg: leg.tag });
    const pending = leg.pending;
    leg.pending = [];
    leg.pendingBytes = 0;
    for (const b of pending) this.forwarder.write(leg, b);
    return true;
  }

  /** The fingerprint check of bind(): false (conn closed, logged) when the certificate does not match. */
  private certified(s: Session, leg: Leg, conn: MsrpConnectionLike): boolean {
    if (!leg.tls || leg.fingerprint === undefined) return true;
    const reason = fingerprintMismatch(leg.fingerprint, conn.peerCertificate?.());
    if (reason === undefined) return true;
    this.ctx.log?.warn({ 'call-id': s.callId, leg: leg.tag, reason }, 'msrps connection refused');
    conn.close();
    return false;
  }

  /**
   * The device is active (RFC 6135) and may connect and send its binding empty SEND
   * before the B2BUA has passed on its 200's SDP. Such an empty SEND is accepted (200)
   * and its connection parked until `answer` names the device. At most MAX_EARLY parked
   * connections per session. A first frame with a body gets 481 (nothing says whose it is).
   */
  park(s: Session, conn: MsrpConnectionLike, head: FrameHead, tls: boolean): boolean {
    if (head.kind !== 'request' || head.method !== 'SEND' || head.hasBody) return false;
    const from = getHeader(head.headers, 'From-Path');
    if (!from || !pathUris(from) || s.early.size >= MAX_EARLY) return false;
    if (!s.early.has(from)) {
      s.early.set(from, { conn, tls, held: [], heldBytes: 0, adoptedBy: undefined });
      conn.on('close', () => {
        if (s.early.get(from)?.conn === conn) s.early.delete(from);
      });
    }
    return true;
  }

  /**
   * A SEND with a body on a parked connection, under the From-Path it bound with: the
   * device sends right after its binding SEND's 200, and its answer may still be on its
   * way through the B2BUA. Held (up to maxPending bytes per session, all parked
   * connections together) and relayed when `answer` adopts the connection; dropped with
   * it otherwise.
   */
  holdFor(s: Session, conn: MsrpConnectionLike, head: FrameHead, bytes: number): EarlyConnection | undefined {
    if (head.kind !== 'request' || head.method !== 'SEND') return undefined;
    const from = getHeader(head.headers, 'From-Path');
    const early = from === undefined ? undefined : s.early.get(from);
    if (!early || early.conn !== conn || heldBytes(s) + bytes > this.ctx.limits.maxPending) return undefined;
    return early;
  }

  /**
   * A device just answered: bind the connection it parked, if any (on its own transport).
   * Returns what that connection sent while parked, in order, for ingress to relay.
   */
  adoptEarly(s: Session, leg: Leg): { conn: MsrpConnectionLike; held: HeldFrame[] } | undefined {
    for (const [from, early] of s.early) {
      const uris = pathUris(from);
      if (!uris || !peerMatches(leg, uris[uris.length - 1]!) || early.tls !== leg.tls) continue;
      s.early.delete(from);
      if (early.conn.closed) return undefined;
      if (!this.bind(s, leg, early.conn)) return undefined;
      early.adoptedBy = leg;
      return { conn: early.conn, held: early.held };
    }
    return undefined;
  }

  /**
   * The relay dialed this leg's peer (it is the active end, RFC 4145 §4.1) and the
   * connection is up: the relay's first frame is an empty SEND, so that the passive peer
   * can bind the connection to its session (RFC 4975 §5.4, RFC 6135), then the leg is
   * bound and its backlog follows.
   */
  dialed(s: Session, leg: Leg, conn: MsrpConnectionLike): void {
    if (s.state === 'deleted' || leg.state !== 'waiting') {
      conn.close();
      return;
    }
    const frame = buildRequest({
      method: 'SEND',
      toPath: leg.toPathText,
      fromPath: leg.ownUri,
      headers: [
        { name: 'Message-ID', value: newMessageId() },
        { name: 'Byte-Range', value: '1-0/0' },
      ],
    });
    // the passive peer's certificate first: nothing goes to a peer that is not the one in the SDP
    if (!this.certified(s, leg, conn)) {
      this.closeLeg(s, leg, 'the dialed peer does not match its a=fingerprint');
      return;
    }
    leg.bindTid = frame.head.transactionId;
    conn.sendFrame(frame);
    leg.framesOut += 1;
    this.bind(s, leg, conn);
  }

  /**
   * A response on a dialed leg: the one to the binding SEND tells whether the peer took
   * the session. Anything but 200 (481: no such session, RFC 4975 §7.3.1) closes the leg.
   */
  bindAnswered(s: Session, leg: Leg, tid: string, status: number): void {
    if (leg.bindTid !== tid) return;
    leg.bindTid = undefined;
    if (status !== 200) this.closeLeg(s, leg, `the peer answered ${status} to the relay's binding SEND`);
  }

  /** Dialing this leg's peer failed: the leg is closed, with the reason. */
  dialFailed(s: Session, leg: Leg, reason: string): void {
    if (s.state === 'deleted') return;
    this.closeLeg(s, leg, reason);
  }

  /** A connection carrying this session closed: its legs are closed for good. */
  connectionClosed(s: Session, conn: MsrpConnectionLike, err?: Error): void {
    for (const leg of legsOf(s)) {
      if (leg.conn !== conn) continue;
      leg.conn = undefined;
      if (leg.state === 'closed') continue;
      moveLeg(leg, 'closed');
      forgetInbound(s, leg);
      this.ctx.emit({ event: 'leg-closed', 'call-id': s.callId, leg: leg.tag, reason: err ? err.message : 'connection closed' });
    }
  }

  /** Close a leg (drop, delete) and its connection, unless that carries something else. */
  closeLeg(s: Session, leg: Leg, reason: string): void {
    const conn = leg.conn;
    const wasOpen = leg.state !== 'closed';
    if (wasOpen) moveLeg(leg, 'closed');
    leg.conn = undefined;
    leg.pending = [];
    leg.pendingBytes = 0;
    forgetInbound(s, leg);
    // Close the connection unless it also carries another session (RFC 4975 §5.4 sharing),
    // or another leg of this one.
    const others = conn ? [...conn.sessions].some(id => id !== s.origId && id !== s.devId) : false;
    const sibling = legsOf(s).some(l => l !== leg && l.conn === conn);
    if (conn && !others && !sibling) conn.close();
    if (wasOpen) this.ctx.emit({ event: 'leg-closed', 'call-id': s.callId, leg: leg.tag, reason });
  }

  /** A deleted session: every leg closed, its state and parked connections released. */
  endSession(s: Session, reason: string): void {
    s.dial?.cancel();
    for (const leg of [...s.devices.values(), s.originator]) this.closeLeg(s, leg, reason);
    s.inbound.clear();
    forgetSenders(s);
    for (const e of s.early.values()) e.conn.close();
    s.early.clear();
  }
}
