// Forwarding (docs/media-relay.md, "Forwarding"): each SEND chunk is relayed on its own,
// with To-Path and From-Path rewritten and a fresh transaction-id, to the legs that
// routing.ts picks; REPORTs go back to the sender, merged per message (reports.ts). A
// leg not connected yet gets a bounded backlog, flushed when it binds.

import { getHeader, type ContinuationFlag, type MsrpConnectionLike, type RequestHead } from '../msrp/index.js';
import { cpimAddress } from '../cpim/head.js';
import { formatByteRange, injectIntoChunk, planInjection, shiftRange, type ByteRange, type Injection } from '../cpim/direction.js';
import { HeadTracker, type HeadDecision } from '../cpim/tracker.js';
import type { RelayContext } from './context.js';
import { corkUntilNextTick, type Backpressure } from './flow.js';
import { Body, EMPTY, frameParts, type Chunk } from './frames.js';
import type { HistoryRecorder } from './history-recorder.js';
import type { Leg, Route } from './leg.js';
import { firstActiveAfter, type Payload } from './multi-device.js';
import { deliveryNews, legsClosed, reportFrom, trackMessage, type Delivery, type ReportOut } from './reports.js';
import { needsCpimHead, routeMessage, type Routing } from './routing.js';
import type { InMessage, Session } from './session.js';

/** Chunked messages in progress per session; the oldest is forgotten beyond this. */
const MAX_OPEN_MESSAGES = 32;
const UNREAD: HeadDecision = { kind: 'chat', prefix: EMPTY };

const NO_NEWS: readonly Delivery[] = [];

/** A frame written on the leg's connection, queued until it connects, or dropped. */
export type Written = 'sent' | 'queued' | 'dropped';

export class Forwarder {
  constructor(
    private readonly ctx: RelayContext,
    private readonly flow: Backpressure,
    private readonly history: HistoryRecorder,
  ) {}

  /** One SEND chunk from `src`, taken whole. */
  send(
    s: Session, src: Leg, conn: MsrpConnectionLike, head: RequestHead, body: Body, flag: ContinuationFlag,
    parsed: ByteRange | undefined, rangeText: string | undefined,
  ): void {
    const messageId = getHeader(head.headers, 'Message-ID');
    // RFC 4975 §7.1: an empty SEND only binds the connection; nothing to relay.
    if (!messageId || (!head.hasBody && body.length === 0)) return;
    const range = parsed ?? { start: 1, end: body.length, total: body.length };
    const fixed: ByteRange = { start: range.start, end: range.end === '*' && flag !== '+' ? range.start + body.length - 1 : range.end, total: range.total };
    const final = flag !== '+';
    const m = this.message(s, src, head, messageId, final);
    // A chunk that may be held (head not known yet) gets its own copy, so it does not pin
    // the socket's read buffer.
    const held = m.tracker !== undefined && m.tracker.decided === undefined;
    const own = held ? new Body([Buffer.from(body.buffer)], body.length) : body;
    const chunk: Chunk = { head, body: own, range: fixed, flag, hasRange: rangeText !== undefined };
    let release: Chunk[] = [chunk];
    let decision = UNREAD;
    if (m.tracker) {
      const out = m.tracker.push(chunk, own.buffer, fixed.start, final);
      if (!out) return;
      release = out.release;
      decision = out.decision;
    }
    let recipients: Leg[] | undefined;
    if (!m.routes) {
      m.decision = decision;
      if (src.role === 'device') {
        const bytes = typeof fixed.total === 'number' ? fixed.total : body.length;
        this.noteActivity(s, src, { msrpType: getHeader(head.headers, 'Content-Type'), head: decision.head, bytes });
      }
      const routed = this.routesFor(s, src, decision);
      m.routes = routed.routes;
      m.history = this.history.wants(s, src.role, getHeader(head.headers, 'Content-Type'));
      recipients = routed.recipients;
    }
    // What the REPORT merge needs to know: chunks lost, and the last chunk written (reports.ts).
    let news: Delivery[] | undefined;
    for (const c of release) {
      for (const route of m.routes) {
        const w = this.forward(route, c);
        if (w === 'dropped' || (w === 'sent' && c.flag !== '+')) (news ??= []).push({ leg: route.leg, kind: w === 'sent' ? 'written' : 'lost' });
      }
      if (m.history) this.history.record(s, m.history, c);
    }
    if (recipients) trackMessage(s, src, messageId, head.headers, recipients, news ?? NO_NEWS, this.ctx.limits.maxTracked);
    else if (news) for (const out of deliveryNews(s, messageId, news)) this.sendReport(out);
    this.flow.throttle(conn, m.routes);
  }

  /** RFC 4975 §7.1.2: a REPORT goes back to the message's sender, merged (reports.ts). */
  report(from: Leg, head: RequestHead): void {
    const out = reportFrom(from, head);
    if (out) this.sendReport(out);
  }

  /** Legs of `s` closed (relay.ts, on leg-closed): failures that were waiting for them. */
  legsClosed(s: Session | undefined): void {
    if (s) for (const out of legsClosed(s)) this.sendReport(out);
  }

  /** Write to a leg, or keep a bounded backlog while it has not connected. */
  write(leg: Leg, parts: Buffer[]): Written {
    const conn = leg.conn;
    if (!conn || conn.closed) {
      if (leg.state === 'closed') return 'dropped';
      const size = parts.reduce((n, b) => n + b.length, 0);
      if (leg.pendingBytes + size > this.ctx.limits.maxPending) {
        leg.dropped += 1;
        return 'dropped';
      }
      leg.pending.push(parts.map(b => Buffer.from(b))); // copies: do not pin read buffers
      leg.pendingBytes += size;
      return 'queued';
    }
    corkUntilNextTick(conn);
    for (const b of parts) if (b.length > 0) conn.write(b);
    if (this.ctx.trace !== undefined && parts[0] !== undefined) this.ctx.trace.sent(parts[0]);
    return 'sent';
  }

  private sendReport(out: ReportOut): void {
    out.to.framesOut += 1;
    this.write(out.to, frameParts('REPORT', out.headers, out.to.toPathText, out.to.ownUri, undefined, EMPTY, false, '$'));
  }

  /** The message a chunk belongs to; a chunked one is kept until its last chunk. */
  private message(s: Session, src: Leg, head: RequestHead, messageId: string, final: boolean): InMessage {
    const key = `${src.tag}\0${messageId}`;
    let m = s.inbound.size === 0 ? undefined : s.inbound.get(key);
    if (m) {
      if (final) s.inbound.delete(key);
      return m;
    }
    const needHead = needsCpimHead({ source: src.role, directDelivery: s.directDelivery, policy: s.policy, firstActive: s.firstActive });
    m = needHead ? { tracker: new HeadTracker<Chunk>(getHeader(head.headers, 'Content-Type')) } : {};
    if (!final) {
      // Bound the messages left open (interleaved or never finished) per session.
      if (s.inbound.size >= MAX_OPEN_MESSAGES) {
        s.inbound.delete(s.inbound.keys().next().value!);
        src.dropped += 1;
      }
      s.inbound.set(key, m);
    }
    return m;
  }

  /**
   * Where a message goes (routing.ts), with its Message-Direction injection, and its
   * recipients: the legs whose REPORTs go back to the sender. The copies marked sent are
   * the relay's own, not the message's delivery (reports.ts).
   */
  private routesFor(s: Session, src: Leg, d: HeadDecision): { routes: Route[]; recipients: Leg[] } {
    const head = d.head;
    const fromServedUser = d.kind === 'chat' && src.role === 'originator' && s.directDelivery && s.servedUser !== undefined && head !== undefined &&
      cpimAddress(head.headers.find(h => h.name.toLowerCase() === 'from')?.value) === s.servedUser;
    const r = routeMessage({ source: src.role, kind: d.kind, directDelivery: s.directDelivery, cpimHead: head !== undefined, fromServedUser });
    const inj = r.markSent && head ? planInjection(head) : null;
    const routes = this.routesOf(s, src, r, inj);
    const recipients: Leg[] = [];
    for (const x of routes) if (x.leg.state !== 'closed' && !(r.markSent && x.leg.role === 'device')) recipients.push(x.leg);
    return { routes, recipients };
  }

  private routesOf(s: Session, src: Leg, r: Routing, inj: Injection | null): Route[] {
    if (r.toDevices === 'none') return s.toOriginator;
    if (r.toDevices === 'all') {
      // Without injection the routes only depend on the device set (forward() skips legs
      // closed since): kept until answer/drop changes it.
      if (inj === null && s.origRoutes !== undefined) return s.origRoutes;
      const routes = [...s.devices.values()].filter(l => l.state !== 'closed').map(leg => ({ leg, injection: inj }));
      if (inj === null) s.origRoutes = routes;
      return routes;
    }
    const routes: Route[] = r.toOriginator ? [{ leg: s.originator, injection: null }] : [];
    for (const leg of s.devices.values()) {
      if (leg !== src && leg.state !== 'closed') routes.push({ leg, injection: inj });
    }
    return routes;
  }

  /** CR 8.3.2.1.1 B (and A): the first device to show activity is reported once. */
  private noteActivity(s: Session, src: Leg, p: Payload): void {
    const first = firstActiveAfter(s.policy, s.firstActive, src.tag, p);
    if (!first) return;
    s.firstActive = first.leg;
    this.ctx.emit({ event: 'first-active', 'call-id': s.callId, leg: first.leg, kind: first.kind });
  }

  private forward(route: Route, c: Chunk): Written | 'skipped' {
    const dest = route.leg;
    if (dest.state === 'closed') return 'skipped';
    const body = route.injection ? injectIntoChunk(c.body.buffer, c.range.start, route.injection) : c.body;
    const range = c.hasRange || route.injection ? formatByteRange(shiftRange(c.range, route.injection)) : undefined;
    dest.framesOut += 1;
    dest.bytesOut += body.length;
    return this.write(dest, frameParts('SEND', c.head.headers, dest.toPathText, dest.ownUri, range, body, c.head.hasBody, c.flag));
  }
}
