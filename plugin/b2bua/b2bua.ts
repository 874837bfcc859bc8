/**
 * The B2BUA (CR 8.3.2.1 step 8 and the 200 OK procedure): the transaction user of the SIP
 * layer (./sip/layer.ts). It turns what arrives (the caller's INVITE, CANCEL, ACK and BYE,
 * each leg's responses and BYE, the relay's events, timers) into events of the pure call
 * machine (./call/machine.ts), and runs the machine's effects: SIP messages built by the
 * pure stages (plugin/rules/stages/device-invites.ts, b2bua-answer.ts) and relay verbs
 * through its control client. Each call's events run one after another (a queue per
 * call), so a relay reply and a SIP message never interleave inside a step.
 *
 * Each side (the caller's dialog, each leg's) has at most one session timer (RFC 4028,
 * ./session-timer.ts), armed only once that side has a 2xx; re-INVITE, UPDATE, INFO,
 * OPTIONS and MESSAGE in a dialog are answered on the leg they arrive on
 * (./call/mid-session.ts).
 *
 * A confirmed call keeps only serializable state (its setup, transactions and parsed
 * messages are dropped) and is written to the call store (./store.ts) at each change;
 * `restore` takes the stored calls back after a restart and re-arms their timers,
 * `checkRelay` ends those whose relay session is gone (docs/b2bua.md "Restart", "Faults").
 *
 * A deferred call (CR 8.3.2.1 step 8 a ii, 8.3.2.1.1; docs/b2bua.md "Deferred sessions")
 * is answered with no device while the relay stores the messages; its helpers (the
 * record, the leg source, the index by served user) are in ./deferral.ts. A device that
 * registers meanwhile joins it (`deviceRegistered`); when it ends with its messages still
 * stored, `onDeferredEnded` hands its record to the delivery module (./deferred/).
 *
 * docs/b2bua.md has the message flow and how Kamailio and the B2BUA recognise each other.
 */
import type { Logger } from 'pino';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { parseNameAddr } from '../sip/uri.js';
import { cseqOf, newBranch, newCallId, newTag, printRequest, responseTo, tagOf, type Built, type Header } from './sip/build.js';
import { buildInDialog, dialogAsUas, dialogId, incomingDialogId, checkRemoteCseq, refreshTarget, type Dialog, DialogError } from './sip/dialog.js';
import { reInviteVerdict, Retransmit2xx, UacInvite } from './sip/invite-usage.js';
import { InviteServerTransaction } from './sip/invite-server.js';
import type { InviteClientTransaction } from './sip/invite-client.js';
import type { ServerTransaction, TransactionLayer, TransactionUser } from './sip/layer.js';
import type { Clock, TimerHandle, TimerValues } from './sip/timers.js';
import { newCall, step, type Call, type CallEvent, type Effect, type Leg, type LegId, type LegTarget, type MultiDevicePolicy, type Side, type SideTimer } from './call/machine.js';
import { ALLOW_METHODS, hasSdp, inDialogVerdict, movesMedia, outOfDialogStatus } from './call/mid-session.js';
import {
  answerHeaders, negotiateUas, RFC_MIN_SE, refreshHeaders, retryAfter422, uacTimer, weRefresh, type Offered, type SessionTimer,
} from './session-timer.js';
import { inviteFacts } from '../rules/facts.js';
import type { B2buaPlan, TicketStore } from './tickets.js';
import { deviceInvite, SDP_TYPE, targetInvite } from '../rules/stages/device-invites.js';
import { callerAnswer } from '../rules/stages/b2bua-answer.js';
import { PF_LEG_HEADER, PF_TICKET_HEADER } from '../rules/b2bua-headers.js';
import { deviceKey } from '../devices/identity.js';
import type {
  AnswerReply, DeferParams, DeferredKeyParams, DiscardReply, OfferReply, QueryReply, RelayEvent, SimpleReply,
} from '../../media/relay/types.js';
import { ORIGINATOR } from '../../media/relay/leg.js';
import { STORE_VERSION, type CallStore, type Deadline, type StoredCall, type StoredSide } from './store.js';
import type { Device } from '../devices/types.js';
import type { DeferredEndedListener, DeferredRecord } from './deferred/record.js';
import { Deferrals, type CallDeferral, type LegSource } from './deferral.js';

/** The relay verbs the B2BUA uses (RelayControlClient has them). */
export interface RelayPort {
  offer(p: {
    'call-id': string; sdp: string; 'served-user'?: string; policy?: MultiDevicePolicy; 'direct-delivery'?: boolean;
    'conversation-id'?: string; 'contribution-id'?: string; record?: boolean;
  }): Promise<OfferReply>;
  answer(p: { 'call-id': string; leg: string; sdp: string }): Promise<AnswerReply>;
  drop(p: { 'call-id': string; leg: string }): Promise<SimpleReply>;
  delete(p: { 'call-id': string }): Promise<SimpleReply>;
  /** Whether the relay still has a session (after a restart, after the link was lost). */
  query(p: { 'call-id': string }): Promise<QueryReply>;
  /** CR 8.3.2.4: store a group session's Group State Object (the history store is the relay's). */
  groupState(p: { 'call-id': string; 'conversation-id': string; 'contribution-id': string; focus: string }): Promise<SimpleReply>;
  /** CR 8.3.2.1.1 3 i: store the originator's messages under a deferred-id (docs/media-control.md "Deferred delivery"). */
  defer(p: DeferParams): Promise<SimpleReply>;
  /** CR 8.3.2.1.1 603: drop what is stored under a deferred-id. */
  discard(p: DeferredKeyParams): Promise<DiscardReply>;
}

export interface B2buaSettings {
  /** Our Via sent-by, host:port (the listener Kamailio reaches). */
  readonly sentBy: string;
  /** Our Contact URI (the 200 to the caller, every leg INVITE). */
  readonly contact: string;
  /** Kamailio as outbound proxy: the Route of every leg INVITE (a loose-routing URI). */
  readonly outboundProxy: string;
  /** The secret that tells pf.cfg a leg INVITE comes from us (X-PF-Leg). */
  readonly legToken: string;
  /** RFC 4028 Session-Expires of the device INVITEs and the caller's 200, seconds. */
  readonly sessionExpires: number;
  /** RFC 4028 Min-SE: the smallest interval we accept (at least 90), seconds. */
  readonly minSE: number;
  /** How long one RFC 4028 second lasts, ms: 1000, less only in tests (b2bua.sessionTimerUnitMs). */
  readonly timerUnitMs: number;
  /** Our User-Agent, with the PF's CPM release version (CR Appendix D). */
  readonly userAgent: string;
  /** CR 8.3.2.1.1, for one served user (its key). */
  readonly policy: (servedUser: string) => MultiDevicePolicy;
  /** CR 8.3.2.1.4 direct delivery of originated chat messages. */
  readonly directDelivery: boolean;
  /** The ISF when interworking on failure is on (CR 8.3.2.1.1), else null. */
  readonly isfUri: string | null;
  readonly maxRedirects: number;
  /** A session older than this ends (BYE both ways), a backstop behind the session timers; ms. */
  readonly maxSessionAgeMs: number;
  /** Host in Warning headers. */
  readonly pfHost: string;
}

export interface B2buaDeps {
  readonly settings: B2buaSettings;
  readonly relay: RelayPort;
  readonly tickets: TicketStore;
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly log: Logger;
  /** Sends one message to Kamailio (the transport). */
  readonly send: (text: string) => void;
  /** Where confirmed calls are kept across a restart (./store.ts); none: memory only. */
  readonly store?: CallStore;
  /** Wall clock, epoch ms (stored deadlines survive a restart); default Date.now. */
  readonly wallNow?: () => number;
}

/** One side's mid-session state (the caller's dialog, or a leg's): its timer and refreshes. */
interface SideState {
  /** The side's one session timer (RFC 4028), armed after its 2xx. */
  timer: TimerHandle | null;
  /** The negotiated interval (s), for our refresh requests. */
  interval: number;
  /** Our refresh goes as UPDATE (the peer's Allow lists it, RFC 3311), else as re-INVITE. */
  useUpdate: boolean;
  /** The SDP we gave on this side (the answer to a refresh offer, the body of our re-INVITE). */
  readonly localSdp: string;
  /** The peer's SDP on this side (a refresh offer must keep its MSRP media). */
  readonly remoteSdp: string;
  /** Our re-INVITE or UPDATE has no final response yet. */
  ourRefresh: 'INVITE' | 'UPDATE' | null;
  /** Our 2xx to their re-INVITE, retransmitted until its ACK (RFC 3261 §13.3.1.4). */
  theirInvite: { readonly seq: number; readonly retransmit: Retransmit2xx } | null;
  /** What the armed timer fires and when (epoch ms), as stored. */
  deadline: Deadline | null;
}

interface LegRecord {
  readonly id: LegId;
  readonly target: LegTarget;
  /** The leg's INVITE, until its transaction is over (then only the dialog is kept). */
  uac: UacInvite | null;
  tx: InviteClientTransaction | null;
  /** RFC 4028 §7.4: what the INVITE offered, and how many 422s it was sent again after. */
  readonly offered: Offered;
  readonly retries: number;
  /** The dialog of the 2xx the machine took for this leg. */
  dialog: Dialog | null;
  /** Once the leg is up. */
  side: SideState | null;
}

/** What only the call's setup needs: dropped once it is confirmed and no leg rings (compact). */
interface Setup {
  readonly invite: SipRequest;
  readonly tx: InviteServerTransaction;
  readonly plan: B2buaPlan;
  offer: { sdp: string; deviceSdp: string } | null;
  /** RFC 4028 §9: the caller's timer, negotiated on its INVITE. */
  readonly callerTimer: SessionTimer | null;
}

interface CallRecord {
  readonly callId: string;
  /** Until the call is confirmed and no leg rings; null after (and for a call reloaded after a restart). */
  setup: Setup | null;
  readonly servedUser: string;
  readonly contributionId: string | null;
  readonly conversationId: string | null;
  /** The caller's Contact URI (the focus of a Group State Object, CR 8.3.2.4). */
  readonly focus: string;
  /** Epoch ms (b2bua.maxSessionAgeS counts from it). */
  readonly startedAt: number;
  machine: Call;
  callerDialog: Dialog | null;
  /** The caller side's mid-session state, once our 200 went. */
  callerSide: SideState | null;
  retransmit: Retransmit2xx | null;
  readonly legs: Map<LegId, LegRecord>;
  maxAge: TimerHandle | null;
  queue: Promise<void>;
  /** Relay session created (offer ok) and not yet deleted. */
  relayHeld: boolean;
  /** Its dialog ids in #byDialog (forgotten with the call). */
  readonly dialogs: Set<string>;
  /** A write of its record is queued for the end of this turn. */
  dirty: boolean;
  /** Its record is in the store. */
  stored: boolean;
  /** Deferred delivery on for its served user; null: off. */
  deferral: CallDeferral | null;
}

type DialogOwner = { readonly call: CallRecord; readonly leg: LegId | null };

export interface B2buaCounts {
  calls: number;
  /** Calls confirmed (the caller ACKed our 200): the ones the store keeps. */
  confirmed: number;
  started: number;
  refused: number;
  ended: number;
  /** Calls reloaded from the store at start (docs/b2bua.md "Restart"). */
  restored: number;
  /** Stored records skipped at start: not JSON, or not the schema. */
  skipped: number;
}

/** One call as GET /sessions shows it (B2bua.sessions). */
export interface B2buaSessionView {
  readonly callId: string;
  readonly servedUser: string;
  readonly state: Call['state'];
  readonly legs: readonly { readonly id: LegId; readonly device: string | null; readonly state: Leg['state'] }[];
}

/** A leg whose INVITE transaction timed out counts as 408 (RFC 3261 §8.1.3.1). */
const LEG_TIMEOUT_STATUS = 408;

/** RFC 4028 §7.4: a leg INVITE is sent again after at most this many 422s. */
const MAX_422_RETRIES = 2;

/** What the B2BUA takes (405 and 501 name it, RFC 3261 §20.5). */
const ALLOW: Header = ['Allow', ALLOW_METHODS];

/** RFC 3261 §12.1.1: a response that makes a dialog copies the request's Record-Route. */
function recordRoutes(req: SipRequest): Header[] {
  return req.getAll('Record-Route').map((v) => ['Record-Route', v] as const);
}

export class B2bua implements TransactionUser {
  layer: TransactionLayer | null = null;
  readonly #calls = new Map<string, CallRecord>();
  readonly #byTx = new Map<InviteServerTransaction, CallRecord>();
  readonly #byDialog = new Map<string, DialogOwner>();
  readonly #counts = { started: 0, refused: 0, ended: 0, restored: 0, skipped: 0 };
  readonly #wallNow: () => number;
  /**
   * Deferred calls (./deferral.ts): its `onDeferred` (a call was deferred) and
   * `onDeferredEnded` (a call ended deferred: the record to keep as pending delivery) are
   * set by the delivery module.
   */
  readonly deferrals: Deferrals;
  readonly #lookup = (callId: string): CallRecord | undefined => this.#calls.get(callId);

  constructor(private readonly deps: B2buaDeps) {
    this.#wallNow = deps.wallNow ?? Date.now;
    this.deferrals = new Deferrals({ relay: deps.relay, log: deps.log, wallNow: this.#wallNow });
  }

  get counts(): B2buaCounts {
    let confirmed = 0;
    for (const c of this.#calls.values()) if (c.machine.state === 'confirmed') confirmed++;
    return { calls: this.#calls.size, confirmed, ...this.#counts };
  }

  /** The calls in progress, read-only (GET /sessions). */
  sessions(): B2buaSessionView[] {
    return [...this.#calls.values()].map((c) => ({
      callId: c.callId, servedUser: c.servedUser, state: c.machine.state,
      legs: c.machine.legs.map((l) => ({ id: l.id, device: l.target.device ?? null, state: l.state })),
    }));
  }

  /** CR 8.3.2.1 step 9 Session-Replaces in B2BUA mode: the devices up in sessions of this Contribution-ID. */
  connectedDevices(contributionId: string): string[] | null {
    const out: string[] = [];
    let known = false;
    for (const c of this.#calls.values()) {
      if (c.contributionId !== contributionId) continue;
      known = true;
      for (const l of c.machine.legs) if (l.state === 'up' && l.target.device !== undefined) out.push(l.target.device);
    }
    return known ? out : null;
  }

  /** A call was deferred: the relay stores its messages from now on (CR 8.3.2.1.1 3 i; a group session's conference is followed from here). */
  get onDeferred(): DeferredEndedListener | null {
    return this.deferrals.onDeferred;
  }
  set onDeferred(l: DeferredEndedListener | null) {
    this.deferrals.onDeferred = l;
  }
  /** A deferred call ended with its messages stored (the caller's BYE, or any end but the user's 603): the record to keep as pending delivery. */
  get onDeferredEnded(): DeferredEndedListener | null {
    return this.deferrals.onDeferredEnded;
  }
  set onDeferredEnded(l: DeferredEndedListener | null) {
    this.deferrals.onDeferredEnded = l;
  }

  /**
   * A device of `servedUser` registered (the delivery module calls this on `pf.registered`,
   * once Kamailio has saved the binding, docs/deferred.md "Trigger and order"): each live
   * deferred call of that user that the device can take (./deferral.ts deviceTakes)
   * invites it at once. True when some call took it (then the delivery module does nothing more).
   */
  deviceRegistered(servedUser: string, device: Device): boolean {
    const joins = this.deferrals.registered(servedUser, device, this.#lookup);
    for (const j of joins) this.#feed(j.call, j.ev);
    return joins.length > 0;
  }

  /** The deferred calls of `servedUser` whose caller is still there (a device that registers joins them). */
  deferredCalls(servedUser: string): DeferredRecord[] {
    return this.deferrals.records(servedUser, this.#lookup);
  }

  // ---- TransactionUser ----

  request(req: SipRequest, tx: ServerTransaction): void {
    const hasToTag = tagOf(req.get('To')) !== null;
    if (req.method === 'INVITE' && !hasToTag && tx instanceof InviteServerTransaction) {
      this.#newCall(req, tx);
      return;
    }
    if (!hasToTag) {
      // out of dialog: a keepalive OPTIONS gets 200, an UPDATE or BYE 481, anything else is not ours
      tx.respond(responseTo(req, outOfDialogStatus(req.method), { toTag: newTag(), headers: [ALLOW] }));
      return;
    }
    const id = incomingDialogId(req);
    const owner = id === null ? undefined : this.#byDialog.get(id);
    if (!owner) {
      const early = req.method === 'BYE' ? this.#earlyCall(req) : undefined;
      if (early) {
        // the caller ends the early dialog of our 18x (RFC 3261 §15.1.2): 200, then 487 to its INVITE
        tx.respond(responseTo(req, 200));
        this.#feed(early, { kind: 'caller-bye' });
        return;
      }
      tx.respond(responseTo(req, 481));
      return;
    }
    const dialog = owner.leg === null ? owner.call.callerDialog : owner.call.legs.get(owner.leg)?.dialog ?? null;
    if (dialog) {
      const cseq = checkRemoteCseq(dialog, req);
      if (!cseq.ok) {
        tx.respond(responseTo(req, cseq.status));
        return;
      }
      this.#setDialog(owner, cseq.dialog);
    }
    const v = inDialogVerdict(req.method, req.get('Info-Package'));
    switch (v.kind) {
      case 'bye': {
        tx.respond(responseTo(req, 200));
        this.#dropDialog(id!);
        if (owner.leg === null) owner.call.retransmit?.stop(); // a BYE that overtakes the ACK (§15)
        // a BYE crossing a refresh: our 2xx to their re-INVITE need not wait for its ACK
        this.#side(owner.call, owner.leg)?.theirInvite?.retransmit.stop();
        this.#feed(owner.call, owner.leg === null ? { kind: 'caller-bye' } : { kind: 'leg-bye', leg: owner.leg });
        return;
      }
      case 'refresh':
        {
          // the dialog with this request's CSeq remembered
          const current = this.#dialogOf(owner.call, owner.leg);
          if (current) this.#theirRefresh(owner, current, req, tx);
          else tx.respond(responseTo(req, 481));
        }
        return;
      case 'respond':
        tx.respond(responseTo(req, v.status, { headers: v.headers }));
    }
  }

  ack(req: SipRequest): void {
    const id = incomingDialogId(req);
    const owner = id === null ? undefined : this.#byDialog.get(id);
    if (!owner) return;
    const side = this.#side(owner.call, owner.leg);
    const pending = side?.theirInvite;
    if (side && pending && cseqOf(req)?.seq === pending.seq) {
      // the ACK of our 2xx to their re-INVITE; an answer in it that moves the media cannot
      // be refused any more (RFC 3264 §5): logged, the relay keeps the media where it was
      pending.retransmit.stop();
      side.theirInvite = null;
      if (hasSdp(req.get('Content-Type'), req.body) && movesMedia(side.remoteSdp, req.body)) {
        this.deps.log.warn({ callId: owner.call.callId, side: owner.leg }, 'b2bua: ACK answer moves the MSRP media: ignored');
      }
      return;
    }
    if (owner.leg !== null) return;
    owner.call.retransmit?.stop();
    owner.call.retransmit = null;
    this.#feed(owner.call, { kind: 'caller-ack' });
  }

  cancel(invite: InviteServerTransaction): void {
    const call = this.#byTx.get(invite);
    if (call) this.#feed(call, { kind: 'caller-cancel' });
    else if (invite.final === null) invite.respond(responseTo(invite.request, 487, { toTag: invite.toTag }));
  }

  /** An event of the relay (subscribe). */
  relayEvent(e: RelayEvent): void {
    const call = this.#calls.get(e['call-id']);
    if (!call) return;
    if (e.event === 'first-active') this.#feed(call, { kind: 'first-active', leg: e.leg });
    else if (e.event === 'leg-closed') this.#feed(call, { kind: 'media-closed', leg: e.leg === ORIGINATOR ? null : e.leg });
    else if (e.event === 'delivered' && e.leg !== ORIGINATOR) this.#feed(call, { kind: 'delivered', leg: e.leg });
  }

  /** Every call ends now (shutdown): BYE and CANCEL go out, the relay sessions are deleted. */
  async stop(): Promise<void> {
    const calls = [...this.#calls.values()];
    for (const c of calls) {
      this.#feed(c, { kind: 'max-age' });
      // a BYE held for the ACK of our 200 goes now: no ACK will be waited for
      this.#feed(c, { kind: 'caller-no-ack' });
    }
    await Promise.all(calls.map((c) => c.queue));
  }

  /** The call whose early dialog (our 18x's To-tag, no final yet) the caller's request names. */
  #earlyCall(req: SipRequest): CallRecord | undefined {
    const call = this.#calls.get(req.get('Call-ID') ?? '');
    const setup = call?.setup;
    if (!call || !setup || setup.tx.final !== null || tagOf(req.get('To')) !== setup.tx.toTag) return undefined;
    return tagOf(req.get('From')) === tagOf(setup.invite.get('From')) ? call : undefined;
  }

  // ---- a new call ----

  #newCall(req: SipRequest, tx: InviteServerTransaction): void {
    const { settings } = this.deps;
    const callId = req.get('Call-ID')!;
    const plan = this.deps.tickets.take(req.get(PF_TICKET_HEADER), callId);
    if (!plan) {
      // not through pf.invite: an INVITE forged to skip the PF, or one whose ticket expired
      this.#counts.refused++;
      this.deps.log.warn({ callId }, 'b2bua: INVITE without a valid ticket refused');
      tx.respond(responseTo(req, 403, { toTag: tx.toTag, headers: [['Warning', `399 ${settings.pfHost} "Not through the PF"`]] }));
      return;
    }
    if (this.#calls.has(callId)) {
      tx.respond(responseTo(req, 482, { toTag: tx.toTag, reason: 'Loop Detected' }));
      return;
    }
    // RFC 4028 §9: a Session-Expires below our Min-SE gets 422 (the caller tries again, and
    // its new INVITE goes through pf.invite again), a malformed one 400
    const neg = negotiateUas(req, { sessionExpires: settings.sessionExpires, minSE: settings.minSE });
    if (neg.kind !== 'ok') {
      tx.respond(responseTo(req, neg.status, {
        toTag: tx.toTag, ...(neg.kind === 'bad' ? { reason: neg.why } : {}), headers: neg.kind === 'reject' ? [['Min-SE', String(neg.minSE)]] : [],
      }));
      return;
    }
    const cid = req.get('Contribution-ID') ?? null;
    const machine = newCall({
      policy: settings.policy(plan.servedUser), isfUri: settings.isfUri, maxRedirects: settings.maxRedirects, group: inviteFacts(req).group,
      ...(plan.deferral ? { deferral: true } : {}),
    });
    const conversationId = req.get('Conversation-ID') ?? null;
    const call: CallRecord = {
      callId, setup: { invite: req, tx, plan, offer: null, callerTimer: neg.timer }, servedUser: plan.servedUser, contributionId: cid,
      conversationId, focus: parseNameAddr(req.getValues('Contact')[0] ?? '')?.uri ?? parseNameAddr(req.get('From') ?? '')?.uri ?? '',
      startedAt: this.#wallNow(), machine, callerDialog: null, callerSide: null, retransmit: null, legs: new Map(), maxAge: null,
      queue: Promise.resolve(), relayHeld: false, dialogs: new Set(), dirty: false, stored: false,
      deferral: plan.deferral ? { ttlS: plan.deferral.ttlS, record: null, source: null } : null,
    };
    this.#calls.set(callId, call);
    this.#byTx.set(tx, call);
    this.#counts.started++;
    call.maxAge = this.deps.clock.setTimer(settings.maxSessionAgeMs, () => this.#feed(call, { kind: 'max-age' }));
    this.#enqueue(call, async () => {
      const sdp = req.body;
      let reply: OfferReply;
      try {
        reply = await this.deps.relay.offer({
          'call-id': callId, sdp, 'served-user': plan.servedUser, policy: call.machine.settings.policy, 'direct-delivery': settings.directDelivery,
          ...(conversationId ? { 'conversation-id': conversationId } : {}),
          ...(cid ? { 'contribution-id': cid } : {}),
          ...(plan.record === true ? { record: true } : {}),
        });
      } catch (err) {
        this.deps.log.error({ err, callId }, 'b2bua: relay offer failed');
        // A slow relay may still create the session after our time-out: ask it to delete
        // the session too (after the offer on the same connection; UNKNOWN_SESSION if not).
        this.deps.relay.delete({ 'call-id': callId }).catch(() => undefined);
        this.#abort(call, 503, 'Media relay unavailable');
        return;
      }
      if (reply.result !== 'ok') {
        this.#abort(call, reply['error-code'] === 'BAD_SDP' ? 488 : 500, reply['error-reason']);
        return;
      }
      call.relayHeld = true;
      if (call.setup) call.setup.offer = { sdp: reply.sdp, deviceSdp: reply['device-sdp'] };
      const targets: LegTarget[] = plan.targets.map((d) => ({ kind: 'device', ruri: d.pubGruu ?? plan.servedUser, device: deviceKey(d) }));
      await this.#apply(call, { kind: 'start', targets });
    });
  }

  /** The call never started (no relay session): a final to the caller and it is gone. */
  #abort(call: CallRecord, status: number, why: string): void {
    const setup = call.setup;
    if (setup && setup.tx.final === null) {
      setup.tx.respond(responseTo(setup.invite, status, { toTag: setup.tx.toTag, headers: [['Warning', `399 ${this.deps.settings.pfHost} ${JSON.stringify(why.replace(/["\\\r\n]/g, ' ').slice(0, 120))}`]] }));
    }
    this.#forget(call);
  }

  // ---- events and effects ----

  #enqueue(call: CallRecord, job: () => Promise<void>): void {
    call.queue = call.queue.then(job).catch((err: unknown) => this.deps.log.error({ err, callId: call.callId }, 'b2bua: call step failed'));
  }

  #feed(call: CallRecord, ev: CallEvent): void {
    this.#enqueue(call, () => this.#apply(call, ev));
  }

  async #apply(call: CallRecord, ev: CallEvent): Promise<void> {
    if (!this.#calls.has(call.callId)) return;
    const r = step(call.machine, ev);
    call.machine = r.call;
    if (this.deps.log.isLevelEnabled('debug')) {
      this.deps.log.debug({ callId: call.callId, ev, state: r.call.state, legs: r.call.legs.map((l) => `${l.id}:${l.state}`), effects: r.effects }, 'b2bua: step');
    }
    for (const e of r.effects) await this.#run(call, e);
    this.deferrals.afterStep(call);
    if (call.machine.state === 'ended') this.#forget(call);
    else {
      this.#compact(call);
      this.#touch(call);
    }
  }

  async #run(call: CallRecord, e: Effect): Promise<void> {
    const { relay, log } = this.deps;
    switch (e.kind) {
      case 'invite':
        this.#sendLegInvite(call, e.leg, e.target);
        return;
      case 'cancel': {
        const leg = call.legs.get(e.leg);
        // the machine's Reason (A/B: "Call completed elsewhere", RFC 3326 §2) goes in the CANCEL
        if (leg?.tx) this.#layer().cancel(leg.tx, { response: () => {}, timeout: () => {}, terminated: () => {} }, e.reason);
        return;
      }
      case 'bye': {
        const leg = call.legs.get(e.leg);
        if (!leg?.dialog) {
          this.#feed(call, { kind: 'leg-bye-done', leg: e.leg });
          return;
        }
        this.#dropDialog(dialogId(leg.dialog));
        this.#sendBye(leg.dialog, e.reason, (d) => (leg.dialog = d), () => this.#feed(call, { kind: 'leg-bye-done', leg: e.leg }));
        return;
      }
      case 'ring': {
        const s = call.setup;
        s?.tx.respond(
          responseTo(s.invite, e.status, { toTag: s.tx.toTag, headers: [...recordRoutes(s.invite), ['Contact', `<${this.deps.settings.contact}>`]] }),
        );
        return;
      }
      case 'answer':
        this.#answerCaller(call);
        return;
      case 'reject': {
        const s = call.setup;
        if (s && s.tx.final === null) s.tx.respond(responseTo(s.invite, e.status, { toTag: s.tx.toTag }));
        return;
      }
      case 'bye-caller': {
        const d = call.callerDialog;
        call.retransmit?.stop();
        if (!d) {
          this.#feed(call, { kind: 'caller-bye-done' });
          return;
        }
        this.#dropDialog(dialogId(d));
        this.#sendBye(d, e.reason, (nd) => (call.callerDialog = nd), () => this.#feed(call, { kind: 'caller-bye-done' }));
        return;
      }
      case 'relay-drop':
        if (!call.relayHeld) return; // the session was deleted already (a 603's relay-delete)
        await relay.drop({ 'call-id': call.callId, leg: e.leg }).catch((err: unknown) => log.warn({ err, callId: call.callId }, 'b2bua: relay drop failed'));
        return;
      case 'relay-delete':
        if (!call.relayHeld) return;
        call.relayHeld = false;
        await relay.delete({ 'call-id': call.callId }).catch((err: unknown) => log.warn({ err, callId: call.callId }, 'b2bua: relay delete failed'));
        return;
      case 'arm': {
        const side = this.#side(call, e.side);
        if (!side) return;
        if (side.timer !== null) this.deps.clock.clearTimer(side.timer);
        const ms = e.seconds * this.deps.settings.timerUnitMs;
        side.deadline = { due: e.due, at: this.#wallNow() + ms };
        this.#armSide(call, e.side, side, ms);
        return;
      }
      case 'disarm': {
        const side = this.#side(call, e.side);
        if (side?.timer != null) this.deps.clock.clearTimer(side.timer);
        if (side) {
          side.timer = null;
          side.deadline = null;
        }
        return;
      }
      case 'refresh':
        this.#ourRefresh(call, e.side);
        return;
      case 'store-group-state':
        await this.#storeGroupState(call);
        return;
      case 'defer': {
        const s = call.setup;
        const setup = s?.offer ? { invite: s.invite, service: s.plan.service, deviceSdp: s.offer.deviceSdp, targets: s.plan.targets, record: s.plan.record === true } : null;
        this.#feed(call, await this.deferrals.defer(call, setup));
        return;
      }
      case 'relay-discard':
        await this.deferrals.discard(call);
        return;
    }
  }

  #layer(): TransactionLayer {
    if (!this.layer) throw new Error('b2bua: no transaction layer');
    return this.layer;
  }

  #setDialog(owner: DialogOwner, d: Dialog): void {
    if (owner.leg === null) owner.call.callerDialog = d;
    else {
      const leg = owner.call.legs.get(owner.leg);
      if (leg) leg.dialog = d;
    }
    // a CSeq used or seen is stored even when no call event follows (OPTIONS, INFO, our refresh in flight)
    this.#touch(owner.call);
  }

  #own(call: CallRecord, id: string, leg: LegId | null): void {
    this.#byDialog.set(id, { call, leg });
    call.dialogs.add(id);
  }

  #dropDialog(id: string): void {
    this.#byDialog.delete(id);
  }

  /** The 200 OK procedure: our 200 with the relay's answer; retransmitted until the ACK (RFC 3261 §13.3.1.4). */
  #answerCaller(call: CallRecord): void {
    const { settings } = this.deps;
    const setup = call.setup;
    if (!setup?.offer) return;
    const a = callerAnswer({
      original: setup.invite, contact: settings.contact, sessionExpires: settings.sessionExpires, userAgent: settings.userAgent,
      answerSdp: setup.offer.sdp, timer: setup.callerTimer,
    });
    const res = responseTo(setup.invite, 200, {
      toTag: setup.tx.toTag, headers: [...recordRoutes(setup.invite), ...a.headers, ALLOW, ['Content-Type', a.contentType]], body: a.body,
    });
    if (!setup.tx.respond(res)) {
      // the INVITE transaction already ended: as if our 200 were never ACKed (the machine's
      // BYE to the caller waits for that ACK, RFC 3261 §15.1.1, and nothing else would come)
      this.#feed(call, { kind: 'caller-no-ack' });
      return;
    }
    const d = dialogAsUas(setup.invite, res.msg);
    call.callerDialog = d;
    this.#own(call, dialogId(d), null);
    call.retransmit = new Retransmit2xx(this.deps.clock, this.deps.timers, this.deps.send, res.text, () =>
      this.#feed(call, { kind: 'caller-no-ack' }),
    );
    const t = setup.callerTimer;
    call.callerSide = this.#newSide(a.body, setup.invite.body, setup.invite, t?.interval ?? settings.sessionExpires);
    this.#feed(call, { kind: 'timer-set', side: null, timer: t === null ? null : { interval: t.interval, weRefresh: weRefresh(t, false) } });
  }

  /**
   * A leg's INVITE; `again`: sent again after a 422 (RFC 4028 §7.4) with the larger Min-SE,
   * the same Call-ID and From, the next CSeq (as RFC 3261 §8.1.3.5 does for a retry).
   */
  #sendLegInvite(call: CallRecord, id: LegId, target: LegTarget, again?: { readonly offered: Offered; readonly prev: LegRecord }): void {
    const { settings } = this.deps;
    const src = this.#legSource(call);
    if (!src) {
      // only a call in setup, or a deferred one, sends INVITEs (compact keeps the setup while a leg may still start)
      this.#feed(call, { kind: 'leg-failed', leg: id, status: 500, contact: null });
      return;
    }
    const offered: Offered = again?.offered ?? { sessionExpires: Math.max(settings.sessionExpires, settings.minSE), minSE: settings.minSE };
    const common = {
      original: src.invite, servedUser: call.servedUser, service: src.service, offerSdp: src.deviceSdp,
      contact: settings.contact, sessionExpires: offered.sessionExpires, userAgent: settings.userAgent,
    };
    const key = target.kind === 'device' ? target.device : undefined;
    const device = key === undefined ? undefined : (call.setup?.plan.targets.find((d) => deviceKey(d) === key) ?? call.deferral?.source?.devices.get(key));
    const built = device ? deviceInvite({ ...common, device }) : targetInvite({ ...common, ruri: target.ruri });
    for (const w of built.warnings) this.deps.log.info({ callId: call.callId, leg: id, warning: w }, 'b2bua: leg INVITE');
    const from = parseNameAddr(src.invite.get('From') ?? '');
    const to = parseNameAddr(src.invite.get('To') ?? '');
    const prev = again?.prev.uac?.invite;
    const fromValue = prev?.get('From') ?? `${from?.display ? `"${from.display.replace(/["\\]/g, '')}" ` : ''}<${from?.uri ?? 'sip:anonymous@anonymous.invalid'}>;tag=${newTag()}`;
    const toValue = `<${to?.uri ?? call.servedUser}>`;
    const h: Header[] = [
      ['Via', `SIP/2.0/TCP ${settings.sentBy};branch=${newBranch()};rport`],
      ['Max-Forwards', '70'],
      ['Route', `<${settings.outboundProxy}>`],
      ['From', fromValue],
      ['To', toValue],
      ['Call-ID', prev?.get('Call-ID') ?? newCallId(settings.sentBy.split(':')[0] ?? 'b2bua')],
      ['CSeq', `${prev ? (cseqOf(prev)?.seq ?? 1) + 1 : 1} INVITE`],
      // ;direct: Kamailio relays it to the Request-URI, not to the served user's devices
      [PF_LEG_HEADER, target.kind === 'device' ? settings.legToken : `${settings.legToken};direct`],
      // the caller's Allow is not carried (NOT_CARRIED); ours follows (UPDATE: RFC 3311 §5)
      ...built.headers,
      // RFC 4028 §7.1: Min-SE only when above the floor everyone assumes
      ...(offered.minSE > RFC_MIN_SE ? [['Min-SE', String(offered.minSE)] as const] : []),
      ALLOW,
      ['Content-Type', built.contentType],
    ];
    let req: Built<SipRequest>;
    try {
      req = printRequest('INVITE', built.ruri, h, built.body);
    } catch (err) {
      this.deps.log.warn({ err, callId: call.callId, leg: id }, 'b2bua: leg INVITE could not be built');
      this.#feed(call, { kind: 'leg-failed', leg: id, status: 500, contact: null });
      return;
    }
    const uac = new UacInvite(req.msg, settings.sentBy);
    const tx = this.#layer().sendRequest(req, {
      response: (res) => this.#legResponse(call, id, uac, res),
      timeout: () => this.#feed(call, { kind: 'leg-failed', leg: id, status: LEG_TIMEOUT_STATUS, contact: null }),
      terminated: () => {
        // the INVITE is over (RFC 6026 Accepted included): only the leg's dialog is kept
        const l = call.legs.get(id);
        if (l?.uac === uac) {
          l.uac = null;
          l.tx = null;
        }
      },
    }) as InviteClientTransaction;
    call.legs.set(id, { id, target, uac, tx, offered, retries: again ? again.prev.retries + 1 : 0, dialog: null, side: null });
  }

  #legResponse(call: CallRecord, id: LegId, uac: UacInvite, res: SipResponse): void {
    const leg = call.legs.get(id);
    // a response to an INVITE of this leg sent before a 422 retry is not this one's
    if (!leg || leg.uac !== uac || leg.uac === null) return;
    const out = leg.uac.receive(res);
    switch (out.kind) {
      case 'provisional':
        this.#feed(call, { kind: 'leg-provisional', leg: id, status: res.status });
        return;
      case 'rejected': {
        const retry = res.status === 422 && leg.retries < MAX_422_RETRIES ? retryAfter422(res, leg.offered) : null;
        const mine = call.machine.legs.find((l) => l.id === id);
        if (retry && (mine?.state === 'calling' || mine?.state === 'early')) {
          // RFC 4028 §7.4: the device wants a longer interval: the INVITE again with its Min-SE
          this.#sendLegInvite(call, id, leg.target, { offered: retry, prev: leg });
          return;
        }
        const contact = res.status >= 300 && res.status < 400 ? (parseNameAddr(res.getValues('Contact')[0] ?? '')?.uri ?? null) : null;
        // a 422 we could not satisfy is our failure, not a Session-Expires the caller must change
        this.#feed(call, { kind: 'leg-failed', leg: id, status: res.status === 422 ? 500 : res.status, contact });
        return;
      }
      case 'ignored':
        this.deps.log.info({ callId: call.callId, leg: id, why: out.why }, 'b2bua: leg response ignored');
        return;
      case 'accepted': {
        this.#layer().sendAck(out.ack);
        if (!out.fresh) return;
        if (leg.dialog !== null) {
          // a second 2xx for one leg (the core forked it): ACKed, then BYE; only one dialog per leg
          this.#sendBye(out.dialog, undefined, () => {}, () => {});
          return;
        }
        leg.dialog = out.dialog;
        this.#own(call, dialogId(out.dialog), id);
        this.#enqueue(call, async () => {
          const media = await this.#relayAnswer(call, id, res);
          await this.#apply(call, { kind: 'leg-answered', leg: id, media });
          if (media !== 'ok') return;
          // RFC 4028 §7.2: the 2xx says the interval and who refreshes (none: no timer)
          const t = uacTimer(res);
          leg.side = this.#newSide(this.#legSource(call)?.deviceSdp ?? '', res.body, res, t?.interval ?? leg.offered.sessionExpires);
          await this.#apply(call, { kind: 'timer-set', side: id, timer: t === null ? null : { interval: t.interval, weRefresh: weRefresh(t, true) } });
        });
        return;
      }
    }
  }

  /** What a leg's INVITE is built from: the setup, or (once it is gone) a deferred call's source. */
  #legSource(call: CallRecord): Pick<LegSource, 'invite' | 'service' | 'deviceSdp'> | null {
    const setup = call.setup;
    if (setup?.offer) return { invite: setup.invite, service: setup.plan.service, deviceSdp: setup.offer.deviceSdp };
    return call.deferral?.source ?? null;
  }

  async #relayAnswer(call: CallRecord, id: LegId, res: SipResponse): Promise<'ok' | 'refused' | 'bad'> {
    const mine = call.machine.legs.find((l) => l.id === id);
    if (!call.relayHeld || !mine || mine.state === 'cancelling' || call.machine.state === 'ending') return 'refused';
    if (!/^application\/sdp\b/i.test(res.get('Content-Type') ?? '') || res.body.trim() === '') return 'bad';
    try {
      const r = await this.deps.relay.answer({ 'call-id': call.callId, leg: id, sdp: res.body });
      if (r.result === 'ok') return 'ok';
      return r['error-code'] === 'POLICY_REJECTED' ? 'refused' : 'bad';
    } catch (err) {
      this.deps.log.warn({ err, callId: call.callId, leg: id }, 'b2bua: relay answer failed');
      return 'bad';
    }
  }

  #sendBye(d: Dialog, reason: string | undefined, update: (d: Dialog) => void, done: () => void): void {
    let built;
    try {
      built = buildInDialog(d, 'BYE', { sentBy: this.deps.settings.sentBy, headers: reason === undefined ? [] : [['Reason', reason]] });
    } catch (err) {
      if (!(err instanceof DialogError)) throw err;
      this.deps.log.warn({ err }, 'b2bua: BYE could not be built');
      done();
      return;
    }
    update(built.dialog);
    let finished = false;
    const once = (): void => {
      if (finished) return;
      finished = true;
      done();
    };
    this.#layer().sendRequest(built.request, { response: (r) => r.status >= 200 && once(), timeout: once, terminated: once });
  }

  /**
   * CR 8.3.2.4: the Group State Object of a group session whose last device expired, in
   * the session's history folder. The history store is the relay's (docs/history.md), so
   * the relay formats and stores it (`group-state`). The focus is the Controlling
   * Function's Contact; the participant list stays empty until the PF follows group
   * membership (docs/history.md).
   */
  async #storeGroupState(call: CallRecord): Promise<void> {
    const { relay, log } = this.deps;
    const { conversationId, contributionId, focus } = call;
    if (!conversationId || !contributionId) {
      log.warn({ callId: call.callId, servedUser: call.servedUser }, 'b2bua: Group State Object not stored (no Conversation-ID or Contribution-ID)');
      return;
    }
    try {
      const r = await relay.groupState({ 'call-id': call.callId, 'conversation-id': conversationId, 'contribution-id': contributionId, focus });
      if (r.result === 'error' || (r.warnings?.length ?? 0) > 0) log.warn({ callId: call.callId, reply: r }, 'b2bua: Group State Object not stored by the relay');
    } catch (err) {
      log.warn({ err, callId: call.callId }, 'b2bua: Group State Object not stored (relay unreachable)');
    }
  }

  // ---- session timers and mid-session requests (RFC 4028, RFC 3311, docs/b2bua.md) ----

  #side(call: CallRecord, side: Side): SideState | null {
    return side === null ? call.callerSide : (call.legs.get(side)?.side ?? null);
  }

  #newSide(localSdp: string, remoteSdp: string, peer: SipRequest | SipResponse, interval: number): SideState {
    const useUpdate = peer.getValues('Allow').some((m) => m.trim().toUpperCase() === 'UPDATE');
    return { timer: null, interval, useUpdate, localSdp, remoteSdp, ourRefresh: null, theirInvite: null, deadline: null };
  }

  #dialogOf(call: CallRecord, side: Side): Dialog | null {
    return side === null ? call.callerDialog : (call.legs.get(side)?.dialog ?? null);
  }

  #setDialogOf(call: CallRecord, side: Side, d: Dialog): void {
    this.#setDialog({ call, leg: side }, d);
  }

  /**
   * Their re-INVITE or UPDATE on the side it arrives on: glare (RFC 3261 §14.2), the
   * target refresh, an SDP offer that must keep the MSRP media (else 488), the session
   * timer (RFC 4028 §9: 422 when too short), then our 2xx with the SDP already given on
   * that side. Nothing is sent to the other sides.
   */
  #theirRefresh(owner: DialogOwner, dialog: Dialog, req: SipRequest, tx: ServerTransaction): void {
    const { call, leg: sideId } = owner;
    const side = this.#side(call, sideId);
    const { settings } = this.deps;
    const no = (status: number, headers: readonly Header[] = [], reason?: string): void => {
      tx.respond(responseTo(req, status, { headers, ...(reason === undefined ? {} : { reason }) }));
    };
    if (!side) return no(481);
    const invite = req.method === 'INVITE';
    if (invite) {
      const g = reInviteVerdict({ ours: side.ourRefresh === 'INVITE', theirs: side.theirInvite !== null || (sideId === null && call.retransmit?.state === 'retransmitting') });
      if (g) return no(g.status, g.retryAfter === undefined ? [] : [['Retry-After', String(g.retryAfter)]]);
    }
    let d = dialog;
    if (invite || req.getValues('Contact').length > 0) {
      try {
        d = refreshTarget(dialog, req); // §12.2.2 (RFC 3311 §5.2 for UPDATE)
      } catch {
        return no(400, [], 'Bad or missing Contact');
      }
    }
    const offer = req.body.trim() !== '';
    if (offer && !hasSdp(req.get('Content-Type'), req.body)) return no(415, [['Accept', SDP_TYPE]]);
    if (offer && movesMedia(side.remoteSdp, req.body)) {
      return no(488, [['Warning', `399 ${settings.pfHost} "MSRP media change not supported mid-session"`]]);
    }
    const neg = negotiateUas(req, { sessionExpires: settings.sessionExpires, minSE: settings.minSE });
    if (neg.kind === 'reject') return no(422, [['Min-SE', String(neg.minSE)]]);
    if (neg.kind === 'bad') return no(400, [], neg.why);
    // a re-INVITE always gets SDP (an answer, or our offer when it had none); an UPDATE only answers one
    const body = invite || offer ? side.localSdp : '';
    const res = responseTo(req, 200, {
      headers: [['Contact', `<${settings.contact}>`], ...answerHeaders(neg), ALLOW, ...(body === '' ? [] : [['Content-Type', SDP_TYPE] as const])],
      body,
    });
    if (!tx.respond(res)) return;
    this.#setDialogOf(call, sideId, d);
    if (invite) {
      const seq = cseqOf(req)?.seq ?? 0;
      side.theirInvite = {
        seq,
        retransmit: new Retransmit2xx(this.deps.clock, this.deps.timers, this.deps.send, res.text, () => {
          // §13.3.1.4: never ACKed: that side's session ends, as after a failed refresh
          if (side.theirInvite?.seq === seq) side.theirInvite = null;
          this.#feed(call, { kind: 'refresh-failed', side: sideId, status: 408 });
        }),
      };
    }
    if (neg.timer) side.interval = neg.timer.interval;
    const t: SideTimer | null = neg.timer === null ? null : { interval: neg.timer.interval, weRefresh: weRefresh(neg.timer, false) };
    this.#feed(call, { kind: 'timer-set', side: sideId, timer: t });
  }

  /**
   * Our refresh on a side (RFC 4028 §7.4): UPDATE when the peer allows it, else a
   * re-INVITE with the SDP already given (unchanged, so its version stays, RFC 3264 §8).
   * Its 2xx sets the timer again; 408/481 or no answer end that side; 405/501 to an
   * UPDATE: a re-INVITE at once.
   */
  #ourRefresh(call: CallRecord, sideId: Side): void {
    const side = this.#side(call, sideId);
    const d = this.#dialogOf(call, sideId);
    if (!side || !d || side.ourRefresh !== null) return;
    const { settings } = this.deps;
    const method = side.useUpdate ? 'UPDATE' : 'INVITE';
    const headers: Header[] = [['Contact', `<${settings.contact}>`], ...refreshHeaders(side.interval, settings.minSE), ALLOW];
    if (method === 'INVITE') headers.push(['Content-Type', SDP_TYPE]);
    let built;
    try {
      built = buildInDialog(d, method, { sentBy: settings.sentBy, headers, body: method === 'INVITE' ? side.localSdp : '' });
    } catch (err) {
      if (!(err instanceof DialogError)) throw err;
      this.deps.log.warn({ err, callId: call.callId, side: sideId }, 'b2bua: refresh could not be built');
      return;
    }
    this.#setDialogOf(call, sideId, built.dialog);
    side.ourRefresh = method;
    const seq = cseqOf(built.request.msg)?.seq ?? 0;
    let ack: Built<SipRequest> | null = null;
    let done = false;
    const finish = (ev: CallEvent): void => {
      if (done) return;
      done = true;
      side.ourRefresh = null;
      this.#feed(call, ev);
    };
    this.#layer().sendRequest(built.request, {
      response: (r) => {
        if (r.status < 200) return;
        if (method === 'INVITE' && r.status < 300) {
          // §13.2.2.4: every 2xx (and each retransmission) gets the ACK
          if (ack === null) {
            const cur = this.#dialogOf(call, sideId) ?? built.dialog;
            try {
              ack = buildInDialog(cur, 'ACK', { sentBy: settings.sentBy, seq }).request;
            } catch (err) {
              this.deps.log.warn({ err, callId: call.callId }, 'b2bua: ACK of our re-INVITE could not be built');
            }
          }
          if (ack) this.#layer().sendAck(ack);
        }
        if (done) return;
        if (r.status >= 300) {
          if (method === 'UPDATE' && (r.status === 405 || r.status === 501)) {
            side.useUpdate = false;
            finish({ kind: 'refresh-due', side: sideId });
            return;
          }
          finish({ kind: 'refresh-failed', side: sideId, status: r.status });
          return;
        }
        const cur = this.#dialogOf(call, sideId);
        if (cur && r.getValues('Contact').length === 1) {
          try {
            this.#setDialogOf(call, sideId, refreshTarget(cur, r)); // §12.2.1.2
          } catch {
            // a 2xx with a bad Contact keeps the old target
          }
        }
        // §7.2; a peer without RFC 4028 answers without Session-Expires: we go on refreshing
        const t = uacTimer(r) ?? { interval: side.interval, refresher: 'uac' as const };
        side.interval = t.interval;
        finish({ kind: 'timer-set', side: sideId, timer: { interval: t.interval, weRefresh: weRefresh(t, true) } });
      },
      timeout: () => finish({ kind: 'refresh-failed', side: sideId, status: 408 }),
      terminated: () => {},
    });
  }

  // ---- the store and a restart (docs/b2bua.md "Restart") ----

  /** A side's one timer, `ms` from now; a deadline already past fires at once. */
  #armSide(call: CallRecord, sideId: Side, side: SideState, ms: number): void {
    if (side.timer !== null) this.deps.clock.clearTimer(side.timer);
    const due = side.deadline?.due ?? 'expire';
    const ev: CallEvent = due === 'refresh' ? { kind: 'refresh-due', side: sideId } : { kind: 'expired', side: sideId };
    side.timer = this.deps.clock.setTimer(Math.max(0, ms), () => {
      side.timer = null;
      side.deadline = null;
      this.#feed(call, ev);
    });
  }

  /**
   * Once the call is confirmed and no leg can still answer, only the serializable state is
   * kept: the caller's INVITE, its transaction, the plan and the relay's offer go (the
   * transaction layer keeps a transaction until it ends by itself), and so does the 2xx
   * retransmission once the ACK came. A leg's INVITE goes when its transaction ends.
   */
  #compact(call: CallRecord): void {
    if (call.retransmit?.state === 'done') call.retransmit = null;
    const setup = call.setup;
    if (!setup || call.machine.state !== 'confirmed') return;
    if (call.machine.legs.some((l) => l.state === 'calling' || l.state === 'early' || l.state === 'cancelling')) return;
    this.#byTx.delete(setup.tx);
    call.setup = null;
  }

  /** The call's record is written at the end of this turn (one write per turn at most). */
  #touch(call: CallRecord): void {
    const store = this.deps.store;
    if (!store || call.dirty) return;
    if (call.machine.state !== 'confirmed' && !call.stored) return;
    call.dirty = true;
    queueMicrotask(() => {
      call.dirty = false;
      if (!this.#calls.has(call.callId)) return;
      // only a confirmed call is kept: one still in setup, or ending, is not resumed after a restart
      if (call.machine.state === 'confirmed') {
        store.put(this.#record(call));
        call.stored = true;
      } else if (call.stored) {
        // a deferred call's pending entry is written first: a crash in between leaves one of them
        call.stored = false;
        void Deferrals.handedOver(call).then(() => store.delete(call.callId));
      }
    });
  }

  #storedSide(side: SideState | null): StoredSide | null {
    return side === null
      ? null
      : { interval: side.interval, useUpdate: side.useUpdate, localSdp: side.localSdp, remoteSdp: side.remoteSdp, deadline: side.deadline };
  }

  #record(call: CallRecord): StoredCall {
    return {
      v: STORE_VERSION, callId: call.callId, servedUser: call.servedUser, contributionId: call.contributionId, conversationId: call.conversationId,
      focus: call.focus, startedAt: call.startedAt, relayHeld: call.relayHeld, machine: { ...call.machine, legs: [...call.machine.legs] },
      caller: { dialog: call.callerDialog, side: this.#storedSide(call.callerSide) },
      legs: [...call.legs.values()].map((l) => ({ id: l.id, dialog: l.dialog, side: this.#storedSide(l.side) })),
      ...this.deferrals.stored(call),
    };
  }

  /**
   * Reload the calls of the store (at start, before any SIP arrives): damaged records are
   * reported and skipped; each call's dialogs answer in-dialog requests again, its side
   * timers are armed at their stored deadlines (a deadline already past fires at once:
   * an expiry ends that side, a refresh goes now), its maximum age counts from its start.
   * Then `checkRelay` ends those whose relay session is gone. `taken`: instead of this
   * node's stored calls, those claimed from a dead node (./takeover.ts; the caller then
   * ends each with `relayGone`).
   */
  async restore(taken?: readonly StoredCall[]): Promise<void> {
    const { store, log, settings } = this.deps;
    if (!store) return;
    const { calls, bad } = taken ? { calls: taken, bad: [] } : await store.load();
    for (const b of bad) {
      this.#counts.skipped++;
      log.warn({ key: b.key, why: b.why }, 'b2bua: stored call skipped (damaged record)');
    }
    const now = this.#wallNow();
    for (const r of calls) {
      if (this.#calls.has(r.callId) || r.machine.state !== 'confirmed') continue;
      const side = (s: StoredSide | null): SideState | null =>
        s === null ? null : { ...s, timer: null, ourRefresh: null, theirInvite: null };
      const call: CallRecord = {
        callId: r.callId, setup: null, servedUser: r.servedUser, contributionId: r.contributionId, conversationId: r.conversationId,
        focus: r.focus, startedAt: r.startedAt, machine: r.machine, callerDialog: r.caller.dialog, callerSide: side(r.caller.side),
        retransmit: null, legs: new Map(), maxAge: null, queue: Promise.resolve(), relayHeld: r.relayHeld, dialogs: new Set(), dirty: false,
        stored: true, deferral: this.deferrals.restored(r),
      };
      for (const l of r.legs) {
        const target = r.machine.legs.find((m) => m.id === l.id)?.target;
        if (!target) continue;
        const offered: Offered = { sessionExpires: settings.sessionExpires, minSE: settings.minSE };
        call.legs.set(l.id, { id: l.id, target, uac: null, tx: null, offered, retries: 0, dialog: l.dialog, side: side(l.side) });
      }
      this.#calls.set(call.callId, call);
      this.#counts.restored++;
      this.deferrals.reloaded(call);
      if (call.callerDialog && call.machine.caller === 'up') this.#own(call, dialogId(call.callerDialog), null);
      for (const l of call.legs.values()) {
        const m = call.machine.legs.find((x) => x.id === l.id);
        if (l.dialog && m?.state === 'up') this.#own(call, dialogId(l.dialog), l.id);
      }
      call.maxAge = this.deps.clock.setTimer(Math.max(0, call.startedAt + settings.maxSessionAgeMs - now), () => this.#feed(call, { kind: 'max-age' }));
      for (const [id, s] of [[null, call.callerSide] as const, ...[...call.legs.values()].map((l) => [l.id, l.side] as const)]) {
        if (s?.deadline) this.#armSide(call, id, s, s.deadline.at - now);
      }
      // what was in flight died with the old process (decision 0001): a leg still ringing
      // has failed (its INVITE transaction is gone), our BYE to a leg counts as done
      for (const m of call.machine.legs) {
        if (m.state === 'calling' || m.state === 'early' || m.state === 'cancelling') {
          this.#feed(call, { kind: 'leg-failed', leg: m.id, status: LEG_TIMEOUT_STATUS, contact: null });
        } else if (m.state === 'releasing') this.#feed(call, { kind: 'leg-bye-done', leg: m.id });
      }
    }
    if (calls.length > 0 || bad.length > 0) log.info({ restored: this.#counts.restored, skipped: bad.length }, 'b2bua: calls reloaded');
  }

  /**
   * Whether the relay still holds each call's session (after a restart, or when the relay
   * link was lost): one it no longer has, or every one when the relay cannot be reached,
   * ends with BYE on every leg and to the caller, with REASON_RELAY_GONE.
   */
  async checkRelay(): Promise<void> {
    let reachable = true;
    for (const call of [...this.#calls.values()]) {
      if (!call.relayHeld || call.machine.state === 'ended') continue;
      let gone = !reachable;
      if (reachable) {
        try {
          const r = await this.deps.relay.query({ 'call-id': call.callId });
          gone = r.result === 'error' && r['error-code'] === 'UNKNOWN_SESSION';
        } catch (err) {
          this.deps.log.warn({ err }, 'b2bua: relay unreachable: its sessions end');
          reachable = false;
          gone = true;
        }
      }
      if (gone) this.relayGone(call.callId);
    }
  }

  /** The relay lost this call's session: every leg and the caller get BYE with the Reason. */
  relayGone(callId: string): void {
    const call = this.#calls.get(callId);
    if (!call) return;
    call.relayHeld = false;
    this.deps.log.warn({ callId }, 'b2bua: relay session gone: the call ends');
    this.#feed(call, { kind: 'relay-lost' });
  }

  #forget(call: CallRecord): void {
    if (!this.#calls.delete(call.callId)) return;
    this.#counts.ended++;
    if (call.setup) this.#byTx.delete(call.setup.tx);
    const store = this.deps.store;
    if (call.stored && store) void Deferrals.handedOver(call).then(() => store.delete(call.callId));
    call.stored = false;
    if (call.maxAge !== null) this.deps.clock.clearTimer(call.maxAge);
    call.retransmit?.stop();
    for (const side of [call.callerSide, ...[...call.legs.values()].map((l) => l.side)]) {
      if (!side) continue;
      if (side.timer !== null) this.deps.clock.clearTimer(side.timer);
      side.timer = null;
      side.theirInvite?.retransmit.stop();
    }
    for (const k of call.dialogs) this.#byDialog.delete(k);
    if (call.relayHeld) {
      call.relayHeld = false;
      this.deps.relay.delete({ 'call-id': call.callId }).catch(() => {});
    }
  }
}
