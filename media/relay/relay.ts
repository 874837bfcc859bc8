// B2BUA-mode MSRP relay (CR 8.3.2.1.4, RFC 4975, RFC 6135): the facade over the modules
// listed in docs/media-relay.md, "Modules". It holds the listeners and the session table
// and answers the control verbs (docs/media-control.md).
//
// One relay session per originating call. It owns two relay URIs:
//   orig URI    - given to the originating side in our SDP answer;
//   device URI  - given to every device in our SDP offer.
//
//   originator --SEND--> [orig URI]  relay  [device URI] --SEND--> each device
//   originator <--SEND-- [orig URI]  relay  [device URI] <--SEND-- a device
//                                      \--- copy with Message-Direction: sent --> other devices

import { EventEmitter } from 'node:events';
import { X509Certificate, randomBytes } from 'node:crypto';
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import { MsrpEndpoint, msrpUriEquals } from '../msrp/index.js';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Binder } from './binding.js';
import { DeferParamsSchema, DeferredKeyParamsSchema, DeliverParamsSchema } from './control-schema.js';
import { Deferrals, newDeferral } from './deferral.js';
import { limitsOf, type RelayContext, type RelayOptions } from './context.js';
import { Dial, dialSettings, type Connector, type DialSettings, type DialTarget } from './dial.js';
import { Backpressure } from './flow.js';
import { Forwarder } from './forwarding.js';
import { HistoryRecorder } from './history-recorder.js';
import { formatGroupState } from '../history/mss.js';
import { Ingress } from './ingress.js';
import { ORIGINATOR, legInfo, moveLeg, newLeg, peerUri } from './leg.js';
import { admitDevice } from './multi-device.js';
import { fail, isNonEmpty, offerReply, readAnswer, readOffer, sessionFromOffer, sessionWarnings } from './negotiation.js';
import type { RelayEndpoint } from './sdp.js';
import { devicesChanged, legsOf, moveSession, newSession, type Session } from './session.js';
import { relaySdp } from './sdp.js';
import type {
  AnswerParams, AnswerReply, DeferParams, DeferredKeyParams, DeferredStateReply, DeliverParams, DeliverReply, DiscardReply, DropParams,
  GroupStateParams, KeyParams, OfferParams, OfferReply, QueryReply, RelayEvent, SimpleReply,
} from './types.js';

export type { RelayOptions } from './context.js';

function freshId(): string {
  return randomBytes(12).toString('base64url');
}

const deferCheck = TypeCompiler.Compile(DeferParamsSchema);
const deliverCheck = TypeCompiler.Compile(DeliverParamsSchema);
const deferredKeyCheck = TypeCompiler.Compile(DeferredKeyParamsSchema);

/**
 * The peer offer a delivery session's device SDP is made from (relaySdp keeps its
 * accept-types): stored messages are message/cpim of any wrapped type.
 */
const DELIVERY_TEMPLATE = 'v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n' +
  'm=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=accept-wrapped-types:*\r\na=path:msrp://0.0.0.0:9/t;tcp\r\n';

export class MsrpRelay extends EventEmitter<{ event: [RelayEvent] }> {
  readonly endpoint: MsrpEndpoint;
  /** The msrps listener, when TLS is configured. */
  readonly tlsEndpoint: MsrpEndpoint | undefined;
  /** RFC 4572 fingerprint of our certificate (a=fingerprint), when TLS is configured. */
  private readonly fingerprint: string | undefined;
  private readonly sessions = new Map<string, Session>();
  private readonly host: string;
  private readonly history: HistoryRecorder;
  private readonly binder: Binder;
  private readonly ingress: Ingress;
  private port = 0;
  private tlsPort = 0;
  private readonly tlsClient: ConnectionOptions;
  private readonly dialSettings: DialSettings;
  /** Deferred delivery, when a deferred store is configured. */
  private readonly deferrals: Deferrals | undefined;
  private readonly log: RelayOptions['log'];

  constructor(options: RelayOptions = {}) {
    super();
    this.log = options.log;
    this.host = options.host ?? '127.0.0.1';
    this.tlsClient = options.tlsClient ?? {};
    this.dialSettings = dialSettings(options.dial);
    const ctx: RelayContext = {
      limits: limitsOf(options),
      log: options.log,
      ...(options.trace ? { trace: options.trace } : {}),
      emit: e => {
        options.log?.info(e, 'relay event');
        // A closed leg may settle REPORTs that waited for it (reports.ts).
        if (e.event === 'leg-closed') forwarder.legsClosed(this.sessions.get(e['call-id']));
        this.emit('event', e);
        // After the event: leg-connected goes out before the backlog's own events (deferral.ts).
        if (e.event === 'leg-connected') this.deferrals?.legConnected(this.sessions.get(e['call-id']), e.leg);
        else if (e.event === 'leg-closed') this.deferrals?.legClosed(this.sessions.get(e['call-id']), e.leg);
      },
    };
    const connection = options.connection ? { connection: options.connection } : {};
    this.endpoint = new MsrpEndpoint({ host: this.host, port: options.port ?? 2855, ...connection });
    this.tlsEndpoint = options.tls
      ? new MsrpEndpoint({ host: this.host, port: options.tlsPort ?? 0, tls: options.tls, ...connection })
      : undefined;
    // Fails here, not at listen(), on a bad certificate or a key that does not match it.
    if (options.tls) createSecureContext(options.tls);
    this.fingerprint = options.tls ? `sha-256 ${new X509Certificate(options.tls.cert).fingerprint256}` : undefined;
    this.history = new HistoryRecorder(options.store, options.log, ctx.limits.maxHistoryMessage, ctx.limits.historyBatchMs);
    const flow = new Backpressure(ctx.limits.highWaterMark, conn => this.ingress.forget(conn));
    const forwarder = new Forwarder(ctx, flow, this.history);
    this.binder = new Binder(ctx, forwarder, flow);
    this.deferrals = options.deferred
      ? new Deferrals(ctx, forwarder, this.history, { closeLeg: (s, leg, reason) => this.binder.closeLeg(s, leg, reason) }, options.deferred)
      : undefined;
    this.ingress = new Ingress(ctx, this.binder, forwarder, this.deferrals);
  }

  /** Listen on the TCP port and, with TLS configured, the TLS port; resolves to the TCP port. */
  async listen(): Promise<number> {
    this.port = await this.endpoint.listen();
    if (this.tlsEndpoint) this.tlsPort = await this.tlsEndpoint.listen();
    // the expiry sweep: at start, then every 30 s (docs/deferred.md "Expiry")
    this.deferrals?.startSweeps();
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
    await this.deferrals?.close();
    await this.flushHistory();
  }

  /** Run the deferred store's expiry sweep now (as the timer does); `now` for tests. */
  async sweepDeferred(now?: number): Promise<void> {
    await this.deferrals?.sweep(now);
  }

  /** History writes in flight are done. */
  async flushHistory(): Promise<void> {
    await this.history.flush();
  }

  // ---- control verbs (docs/media-control.md) ----------------------------------------

  /** Create a session from the originator's offer. */
  offer(p: OfferParams): OfferReply {
    if (!isNonEmpty(p['call-id']) || !isNonEmpty(p.sdp)) return fail('BAD_PARAMS', 'call-id and sdp are required');
    if (p.policy !== undefined && !['A', 'B', 'C'].includes(p.policy)) return fail('BAD_PARAMS', 'policy must be A, B or C');
    if (this.sessions.has(p['call-id'])) return fail('SESSION_EXISTS', 'session exists for this call-id');
    const media = readOffer(p.sdp, this.tlsEndpoint !== undefined);
    if ('result' in media) return media;
    const origId = freshId();
    const devId = freshId();
    const uris = {
      origId, devId, origUri: media.tls ? this.tlsEndpoint!.uriFor(origId) : this.endpoint.uriFor(origId),
      devUri: this.endpoint.uriFor(devId), devTlsUri: this.tlsEndpoint?.uriFor(devId),
    };
    const s = sessionFromOffer(p, media, uris);
    this.sessions.set(s.callId, s);
    this.ingress.traceSession(s);
    // Both session-ids on both listeners; a leg's frames are taken on its own transport only.
    this.endpoint.addSession(origId, this.ingress.sinkFor(s, 'orig', false));
    this.endpoint.addSession(devId, this.ingress.sinkFor(s, 'device', false));
    this.tlsEndpoint?.addSession(origId, this.ingress.sinkFor(s, 'orig', true));
    this.tlsEndpoint?.addSession(devId, this.ingress.sinkFor(s, 'device', true));
    this.history.openFolder(s);
    const reply = offerReply(p.sdp, s, media, (uri, tls) => this.own(uri, tls), [...media.warnings, ...sessionWarnings(s)]);
    // A passive originator (RFC 4145 §4.1): the relay connects, right after the offer,
    // since the B2BUA's 200 with our answer follows it (docs/media-relay.md, "Dialing out").
    if (media.dial) this.dialOriginator(s, media.dial);
    return reply;
  }

  /** Dials under way (a connection attempt or a backoff timer held). */
  get dialing(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.dial?.busy) n += 1;
    return n;
  }

  /** Add a device leg from its SDP answer. */
  answer(p: AnswerParams): AnswerReply {
    if (!isNonEmpty(p['call-id']) || !isNonEmpty(p.leg) || !isNonEmpty(p.sdp)) {
      return fail('BAD_PARAMS', 'call-id, leg and sdp are required');
    }
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    if (p.leg === ORIGINATOR || s.devices.has(p.leg)) return fail('LEG_EXISTS', 'leg exists');
    const admission = admitDevice(s.policy, s.devices.size);
    if (!admission.admit) return fail('POLICY_REJECTED', admission.reason);
    const media = readAnswer(p.sdp, s.devTlsUri !== undefined);
    if ('result' in media) return media;
    const leg = newLeg(p.leg, 'device', media.path, media.pathText, media.tls ? s.devTlsUri! : s.devUri, media.tls, media.cema, media.fingerprint);
    for (const d of s.devices.values()) {
      if (d.state !== 'closed' && msrpUriEquals(peerUri(d), peerUri(leg))) return fail('LEG_EXISTS', 'another leg has the same a=path');
    }
    s.devices.set(p.leg, leg);
    devicesChanged(s);
    this.ingress.adoptEarly(s, leg);
    return { result: 'ok', leg: p.leg, ...(media.warnings.length ? { warnings: media.warnings } : {}) };
  }

  /** Drop a device leg (after its BYE, CR 8.3.2.1.4 4.A.i.2): release its media. */
  drop(p: DropParams): SimpleReply {
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    const leg = s.devices.get(p.leg);
    if (!leg) return fail('UNKNOWN_LEG', 'no such device leg');
    s.devices.delete(p.leg);
    devicesChanged(s);
    this.binder.closeLeg(s, leg, 'dropped');
    return { result: 'ok' };
  }

  delete(p: KeyParams): SimpleReply {
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    this.deleteSession(s, 'deleted');
    return { result: 'ok' };
  }

  /**
   * CR 8.3.2.4: store a group session's Group State Object (application/group-state-object+xml)
   * in its history folder, queued like the session's messages. Without a history store the
   * reply says so in a warning.
   */
  groupState(p: GroupStateParams): SimpleReply {
    const xml = formatGroupState({ contributionId: p['contribution-id'], focus: p.focus, participants: p.participants ?? [] });
    const stored = this.history.groupState({ conversationId: p['conversation-id'], contributionId: p['contribution-id'] }, xml, p['call-id']);
    return stored ? { result: 'ok' } : { result: 'ok', warnings: ['no history store: the Group State Object is not kept'] };
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
      legs: legsOf(s).map(legInfo),
    };
  }

  // ---- deferred delivery (docs/media-control.md, "Deferred delivery"; deferral.ts) ----

  /** CR 8.3.2.1.1 step 3 i: the session stores its originator's messages under deferred-id. */
  defer(p: DeferParams): SimpleReply {
    if (!deferCheck.Check(p)) return fail('BAD_PARAMS', 'call-id, deferred-id (32 hex digits), served-user and expires-at are required');
    if (!this.deferrals) return fail('STORE_UNAVAILABLE', 'the relay has no deferred store');
    const s = this.sessions.get(p['call-id']);
    if (!s) return fail('UNKNOWN_SESSION', 'no session for this call-id');
    const id = p['deferred-id'];
    if (s.deferred) {
      return s.deferred.id === id && s.deferred.role === 'store' ? { result: 'ok' } : fail('SESSION_EXISTS', 'the session is already deferred or delivering');
    }
    const user = this.deferrals.original(id);
    if (user !== undefined || this.deferrals.busy(id, 'messages')) return fail('SESSION_EXISTS', 'deferred-id is in use by another session');
    this.deferrals.deferred(s, newDeferral('store', id, 'messages', p['served-user'], p['expires-at']), s.callId);
    return { result: 'ok' };
  }

  /** A session with no originator that sends the stored items of deferred-id to the peer of its `answer`. */
  async deliver(p: DeliverParams): Promise<DeliverReply> {
    if (!deliverCheck.Check(p)) return fail('BAD_PARAMS', 'call-id, deferred-id (32 hex digits) and what (messages or notifications) are required');
    const deferrals = this.deferrals;
    if (!deferrals) return fail('STORE_UNAVAILABLE', 'the relay has no deferred store');
    const callId = p['call-id'];
    const id = p['deferred-id'];
    if (this.sessions.has(callId)) return fail('SESSION_EXISTS', 'session exists for this call-id');
    let counts: { messages: number; notifications: number };
    try {
      counts = await deferrals.store.counts(id);
    } catch (err) {
      this.log?.error({ err, deferredId: id }, 'deferred store failed');
      return fail('STORE_UNAVAILABLE', 'the deferred store failed');
    }
    if ((p.what === 'messages' ? counts.messages : counts.notifications) === 0) return fail('UNKNOWN_SESSION', `no ${p.what} stored for this deferred-id`);
    // checked again: the store answered asynchronously
    if (this.sessions.has(callId)) return fail('SESSION_EXISTS', 'session exists for this call-id');
    if (deferrals.busy(id, p.what)) return fail('SESSION_EXISTS', `a delivery of these ${p.what} is under way`);
    const origId = freshId();
    const devId = freshId();
    const devUri = this.endpoint.uriFor(devId);
    const devTlsUri = this.tlsEndpoint?.uriFor(devId);
    // No originator: a leg that is closed from the start, on no session-id of ours.
    const none = newLeg(ORIGINATOR, 'originator', [], [], this.endpoint.uriFor(origId), false);
    moveLeg(none, 'closed');
    // CR 8.5: a messages delivery of a recorded session records the peer's notifications in
    // the original session's folder (deferral.ts fromPeer). A notifications delivery goes to
    // the sender: nothing of it is the served user's history (the sender's PF records it).
    const record = p.record === true && p.what === 'messages';
    const conversationId = record && isNonEmpty(p['conversation-id']) ? p['conversation-id'] : undefined;
    const contributionId = record && isNonEmpty(p['contribution-id']) ? p['contribution-id'] : undefined;
    const s = newSession({
      callId, policy: 'A', directDelivery: false, record, origId, devId, origUri: none.ownUri, devUri, originator: none,
      ...(p['served-user'] ? { servedUser: p['served-user'] } : {}),
      ...(devTlsUri !== undefined ? { devTlsUri } : {}),
      ...(conversationId !== undefined ? { conversationId } : {}),
      ...(contributionId !== undefined ? { contributionId } : {}),
    });
    this.sessions.set(callId, s);
    this.ingress.traceSession(s);
    this.endpoint.addSession(devId, this.ingress.sinkFor(s, 'device', false));
    this.tlsEndpoint?.addSession(devId, this.ingress.sinkFor(s, 'device', true));
    deferrals.delivering(s, newDeferral('delivery', id, p.what, p['served-user'], 0));
    // the folder exists since the original session's `offer`; ensured again (idempotent, CR 8.5 step 8a)
    this.history.openFolder(s);
    const tcp = relaySdp(DELIVERY_TEMPLATE, this.own(devUri, false));
    const tls = devTlsUri !== undefined ? relaySdp(DELIVERY_TEMPLATE, this.own(devTlsUri, true)) : undefined;
    const warnings = record && (conversationId === undefined || contributionId === undefined)
      ? ['record without conversation-id/contribution-id: history off'] : [];
    return {
      result: 'ok', 'device-sdp': tcp, 'device-relay-uri': devUri, ...(warnings.length ? { warnings } : {}),
      ...(tls !== undefined && devTlsUri !== undefined
        ? { 'device-sdp-tcp': tcp, 'device-sdp-tls': tls, 'device-relay-uri-tcp': devUri, 'device-relay-uri-tls': devTlsUri }
        : {}),
    };
  }

  /** CR 8.3.2.1.1: the user rejected the session after the PF accepted it; its stored items go. */
  async discard(p: DeferredKeyParams): Promise<DiscardReply> {
    if (!deferredKeyCheck.Check(p)) return fail('BAD_PARAMS', 'deferred-id (32 hex digits) is required');
    if (!this.deferrals) return fail('STORE_UNAVAILABLE', 'the relay has no deferred store');
    try {
      return { result: 'ok', discarded: await this.deferrals.store.discard(p['deferred-id']) };
    } catch (err) {
      this.log?.error({ err, deferredId: p['deferred-id'] }, 'deferred store failed');
      return fail('STORE_UNAVAILABLE', 'the deferred store failed');
    }
  }

  async deferredState(p: DeferredKeyParams): Promise<DeferredStateReply> {
    if (!deferredKeyCheck.Check(p)) return fail('BAD_PARAMS', 'deferred-id (32 hex digits) is required');
    if (!this.deferrals) return fail('STORE_UNAVAILABLE', 'the relay has no deferred store');
    try {
      const c = await this.deferrals.store.counts(p['deferred-id']);
      return { result: 'ok', messages: c.messages, notifications: c.notifications, ...(c.oldest === undefined ? {} : { oldest: c.oldest }) };
    } catch (err) {
      this.log?.error({ err, deferredId: p['deferred-id'] }, 'deferred store failed');
      return fail('STORE_UNAVAILABLE', 'the deferred store failed');
    }
  }

  /** The relay's side of a leg, for its SDP. */
  private own(uri: string, tls: boolean): RelayEndpoint {
    const fingerprint = tls && this.fingerprint ? { fingerprint: this.fingerprint } : {};
    return { host: this.host, port: tls ? this.tlsPort : this.port, uri, tls, ...fingerprint };
  }

  private dialOriginator(s: Session, target: DialTarget): void {
    const leg = s.originator;
    const ep = leg.tls && this.tlsEndpoint ? this.tlsEndpoint : this.endpoint;
    const connect: Connector = (t, timeoutMs, signal) =>
      ep.connect({ host: t.host, port: t.port, timeoutMs, signal, ...(t.tls ? { tls: { ...this.tlsClient } } : {}) });
    s.dial = new Dial(target, this.dialSettings, connect, outcome => {
      if ('error' in outcome) {
        this.binder.dialFailed(s, leg, outcome.error);
        return;
      }
      // The endpoint hands this connection's frames, and its close, to the session's sink.
      if (s.state !== 'deleted') ep.bind(s.origId, outcome.conn);
      this.binder.dialed(s, leg, outcome.conn);
    });
  }

  private deleteSession(s: Session, reason: string): void {
    moveSession(s, 'deleted');
    this.deferrals?.sessionDeleted(s);
    this.sessions.delete(s.callId);
    for (const ep of [this.endpoint, this.tlsEndpoint]) {
      ep?.removeSession(s.origId);
      ep?.removeSession(s.devId);
    }
    this.binder.endSession(s, reason);
  }
}
