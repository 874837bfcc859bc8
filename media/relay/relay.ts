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
import { Binder } from './binding.js';
import { limitsOf, type RelayContext, type RelayOptions } from './context.js';
import { Dial, dialSettings, type Connector, type DialSettings, type DialTarget } from './dial.js';
import { Backpressure } from './flow.js';
import { Forwarder } from './forwarding.js';
import { HistoryRecorder } from './history-recorder.js';
import { formatGroupState } from '../history/mss.js';
import { Ingress } from './ingress.js';
import { ORIGINATOR, legInfo, newLeg, peerUri } from './leg.js';
import { admitDevice } from './multi-device.js';
import { fail, isNonEmpty, offerReply, readAnswer, readOffer, sessionFromOffer, sessionWarnings } from './negotiation.js';
import type { RelayEndpoint } from './sdp.js';
import { devicesChanged, legsOf, moveSession, type Session } from './session.js';
import type {
  AnswerParams, AnswerReply, DeferParams, DeferredKeyParams, DeferredStateReply, DeliverParams, DeliverReply, DiscardReply, DropParams,
  GroupStateParams, KeyParams, OfferParams, OfferReply, QueryReply, RelayEvent, SimpleReply,
} from './types.js';

export type { RelayOptions } from './context.js';

function freshId(): string {
  return randomBytes(12).toString('base64url');
}

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

  constructor(options: RelayOptions = {}) {
    super();
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
    this.history = new HistoryRecorder(options.store, options.log, ctx.limits.maxHistoryMessage);
    const flow = new Backpressure(ctx.limits.highWaterMark, conn => this.ingress.forget(conn));
    const forwarder = new Forwarder(ctx, flow, this.history);
    this.binder = new Binder(ctx, forwarder, flow);
    this.ingress = new Ingress(ctx, this.binder, forwarder);
  }

  /** Listen on the TCP port and, with TLS configured, the TLS port; resolves to the TCP port. */
  async listen(): Promise<number> {
    this.port = await this.endpoint.listen();
    if (this.tlsEndpoint) this.tlsPort = await this.tlsEndpoint.listen();
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

  // ---- deferred delivery (docs/media-control.md, "Deferred delivery") ----------------

  defer(_p: DeferParams): SimpleReply {
    return fail('STORE_UNAVAILABLE', 'deferred delivery is not implemented yet');
  }

  deliver(_p: DeliverParams): Promise<DeliverReply> {
    return Promise.resolve(fail('STORE_UNAVAILABLE', 'deferred delivery is not implemented yet'));
  }

  discard(_p: DeferredKeyParams): Promise<DiscardReply> {
    return Promise.resolve(fail('STORE_UNAVAILABLE', 'deferred delivery is not implemented yet'));
  }

  deferredState(_p: DeferredKeyParams): Promise<DeferredStateReply> {
    return Promise.resolve(fail('STORE_UNAVAILABLE', 'deferred delivery is not implemented yet'));
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
    this.sessions.delete(s.callId);
    for (const ep of [this.endpoint, this.tlsEndpoint]) {
      ep?.removeSession(s.origId);
      ep?.removeSession(s.devId);
    }
    this.binder.endSession(s, reason);
  }
}
