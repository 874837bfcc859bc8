/**
 * The B2BUA (CR 8.3.2.1 step 8 and the 200 OK procedure): the transaction user of the SIP
 * layer (./sip/layer.ts). It turns what arrives (the caller's INVITE, CANCEL, ACK and BYE,
 * each leg's responses and BYE, the relay's events, timers) into events of the pure call
 * machine (./call/machine.ts), and runs the machine's effects: SIP messages built by the
 * pure stages (plugin/rules/stages/device-invites.ts, b2bua-answer.ts) and relay verbs
 * through its control client. Each call's events run one after another (a queue per
 * call), so a relay reply and a SIP message never interleave inside a step.
 *
 * docs/b2bua.md has the message flow and how Kamailio and the B2BUA recognise each other.
 */
import type { Logger } from 'pino';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { parseNameAddr } from '../sip/uri.js';
import { newBranch, newCallId, newTag, printRequest, responseTo, tagOf, type Built, type Header } from './sip/build.js';
import { buildInDialog, dialogAsUas, dialogId, incomingDialogId, checkRemoteCseq, type Dialog, DialogError } from './sip/dialog.js';
import { Retransmit2xx, UacInvite } from './sip/invite-usage.js';
import { InviteServerTransaction } from './sip/invite-server.js';
import type { InviteClientTransaction } from './sip/invite-client.js';
import type { ServerTransaction, TransactionLayer, TransactionUser } from './sip/layer.js';
import type { Clock, TimerHandle, TimerValues } from './sip/timers.js';
import { newCall, step, type Call, type CallEvent, type Effect, type LegId, type LegTarget, type MultiDevicePolicy } from './call/machine.js';
import type { B2buaPlan, TicketStore } from './tickets.js';
import { deviceInvite, targetInvite } from '../rules/stages/device-invites.js';
import { callerAnswer } from '../rules/stages/b2bua-answer.js';
import { PF_LEG_HEADER, PF_TICKET_HEADER } from '../rules/b2bua-headers.js';
import { deviceKey } from '../devices/identity.js';
import type { AnswerReply, OfferReply, RelayEvent, SimpleReply } from '../../media/relay/types.js';
import { ORIGINATOR } from '../../media/relay/leg.js';

/** The relay verbs the B2BUA uses (RelayControlClient has them). */
export interface RelayPort {
  offer(p: {
    'call-id': string; sdp: string; 'served-user'?: string; policy?: MultiDevicePolicy; 'direct-delivery'?: boolean;
    'conversation-id'?: string; 'contribution-id'?: string;
  }): Promise<OfferReply>;
  answer(p: { 'call-id': string; leg: string; sdp: string }): Promise<AnswerReply>;
  drop(p: { 'call-id': string; leg: string }): Promise<SimpleReply>;
  delete(p: { 'call-id': string }): Promise<SimpleReply>;
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
  /** Our User-Agent, with the PF's CPM release version (CR Appendix D). */
  readonly userAgent: string;
  /** CR 8.3.2.1.1, for one served user (its key). */
  readonly policy: (servedUser: string) => MultiDevicePolicy;
  /** CR 8.3.2.1.4 direct delivery of originated chat messages. */
  readonly directDelivery: boolean;
  /** The ISF when interworking on failure is on (CR 8.3.2.1.1), else null. */
  readonly isfUri: string | null;
  readonly maxRedirects: number;
  /** A session older than this ends (BYE both ways) until RFC 4028 timers land; ms. */
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
}

interface LegRecord {
  readonly id: LegId;
  readonly target: LegTarget;
  readonly uac: UacInvite;
  readonly tx: InviteClientTransaction;
  /** The dialog of the 2xx the machine took for this leg. */
  dialog: Dialog | null;
}

interface CallRecord {
  readonly callId: string;
  readonly invite: SipRequest;
  readonly tx: InviteServerTransaction;
  readonly plan: B2buaPlan;
  readonly contributionId: string | null;
  machine: Call;
  offer: { sdp: string; deviceSdp: string } | null;
  callerDialog: Dialog | null;
  retransmit: Retransmit2xx | null;
  readonly legs: Map<LegId, LegRecord>;
  maxAge: TimerHandle | null;
  queue: Promise<void>;
  /** Relay session created (offer ok) and not yet deleted. */
  relayHeld: boolean;
  /** Its dialog ids in #byDialog (forgotten with the call). */
  readonly dialogs: Set<string>;
}

type DialogOwner = { readonly call: CallRecord; readonly leg: LegId | null };

export interface B2buaCounts {
  calls: number;
  started: number;
  refused: number;
  ended: number;
}

/** A leg whose INVITE transaction timed out counts as 408 (RFC 3261 §8.1.3.1). */
const LEG_TIMEOUT_STATUS = 408;

/** What the B2BUA takes (405 and 501 name it, RFC 3261 §20.5). */
const ALLOW: Header = ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS'];

/** RFC 3261 §12.1.1: a response that makes a dialog copies the request's Record-Route. */
function recordRoutes(req: SipRequest): Header[] {
  return req.getAll('Record-Route').map((v) => ['Record-Route', v] as const);
}

export class B2bua implements TransactionUser {
  layer: TransactionLayer | null = null;
  readonly #calls = new Map<string, CallRecord>();
  readonly #byTx = new Map<InviteServerTransaction, CallRecord>();
  readonly #byDialog = new Map<string, DialogOwner>();
  readonly #counts = { started: 0, refused: 0, ended: 0 };

  constructor(private readonly deps: B2buaDeps) {}

  get counts(): B2buaCounts {
    return { calls: this.#calls.size, ...this.#counts };
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

  // ---- TransactionUser ----

  request(req: SipRequest, tx: ServerTransaction): void {
    const hasToTag = tagOf(req.get('To')) !== null;
    if (req.method === 'INVITE' && !hasToTag && tx instanceof InviteServerTransaction) {
      this.#newCall(req, tx);
      return;
    }
    if (!hasToTag) {
      // out of dialog: a keepalive OPTIONS gets 200, anything else is not ours
      tx.respond(responseTo(req, req.method === 'OPTIONS' ? 200 : 405, { toTag: newTag(), headers: [ALLOW] }));
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
    switch (req.method) {
      case 'BYE':
        tx.respond(responseTo(req, 200));
        this.#dropDialog(id!);
        if (owner.leg === null) owner.call.retransmit?.stop(); // a BYE that overtakes the ACK (§15)
        this.#feed(owner.call, owner.leg === null ? { kind: 'caller-bye' } : { kind: 'leg-bye', leg: owner.leg });
        return;
      case 'OPTIONS':
        tx.respond(responseTo(req, 200));
        return;
      default:
        // re-INVITE and UPDATE (session refresh, RFC 4028) are not taken yet: the session goes on.
        tx.respond(responseTo(req, 501, { headers: [ALLOW] }));
    }
  }

  ack(req: SipRequest): void {
    const id = incomingDialogId(req);
    const owner = id === null ? undefined : this.#byDialog.get(id);
    if (!owner || owner.leg !== null) return;
    owner.call.retransmit?.stop();
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
    if (!call || call.tx.final !== null || tagOf(req.get('To')) !== call.tx.toTag) return undefined;
    return tagOf(req.get('From')) === tagOf(call.invite.get('From')) ? call : undefined;
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
    const cid = req.get('Contribution-ID') ?? null;
    const call: CallRecord = {
      callId, invite: req, tx, plan, contributionId: cid, machine: newCall({ policy: settings.policy(plan.servedUser), isfUri: settings.isfUri, maxRedirects: settings.maxRedirects }),
      offer: null, callerDialog: null, retransmit: null, legs: new Map(), maxAge: null, queue: Promise.resolve(), relayHeld: false,
      dialogs: new Set(),
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
          ...(req.get('Conversation-ID') ? { 'conversation-id': req.get('Conversation-ID')! } : {}),
          ...(cid ? { 'contribution-id': cid } : {}),
        });
      } catch (err) {
        this.deps.log.error({ err, callId }, 'b2bua: relay offer failed');
        this.#abort(call, 503, 'Media relay unavailable');
        return;
      }
      if (reply.result !== 'ok') {
        this.#abort(call, reply['error-code'] === 'BAD_SDP' ? 488 : 500, reply['error-reason']);
        return;
      }
      call.relayHeld = true;
      call.offer = { sdp: reply.sdp, deviceSdp: reply['device-sdp'] };
      const targets: LegTarget[] = plan.targets.map((d) => ({ kind: 'device', ruri: d.pubGruu ?? plan.servedUser, device: deviceKey(d) }));
      await this.#apply(call, { kind: 'start', targets });
    });
  }

  /** The call never started (no relay session): a final to the caller and it is gone. */
  #abort(call: CallRecord, status: number, why: string): void {
    if (call.tx.final === null) {
      call.tx.respond(responseTo(call.invite, status, { toTag: call.tx.toTag, headers: [['Warning', `399 ${this.deps.settings.pfHost} ${JSON.stringify(why.replace(/["\\\r\n]/g, ' ').slice(0, 120))}`]] }));
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
    if (call.machine.state === 'ended') this.#forget(call);
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
        if (leg) this.#layer().cancel(leg.tx, { response: () => {}, timeout: () => {}, terminated: () => {} }, e.reason);
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
      case 'ring':
        call.tx.respond(
          responseTo(call.invite, e.status, { toTag: call.tx.toTag, headers: [...recordRoutes(call.invite), ['Contact', `<${this.deps.settings.contact}>`]] }),
        );
        return;
      case 'answer':
        this.#answerCaller(call);
        return;
      case 'reject':
        if (call.tx.final === null) call.tx.respond(responseTo(call.invite, e.status, { toTag: call.tx.toTag }));
        return;
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
        await relay.drop({ 'call-id': call.callId, leg: e.leg }).catch((err: unknown) => log.warn({ err, callId: call.callId }, 'b2bua: relay drop failed'));
        return;
      case 'relay-delete':
        if (!call.relayHeld) return;
        call.relayHeld = false;
        await relay.delete({ 'call-id': call.callId }).catch((err: unknown) => log.warn({ err, callId: call.callId }, 'b2bua: relay delete failed'));
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
    const a = callerAnswer({
      original: call.invite, contact: settings.contact, sessionExpires: settings.sessionExpires, userAgent: settings.userAgent,
      answerSdp: call.offer!.sdp,
    });
    const res = responseTo(call.invite, 200, { toTag: call.tx.toTag, headers: [...recordRoutes(call.invite), ...a.headers, ['Content-Type', a.contentType]], body: a.body });
    if (!call.tx.respond(res)) {
      // the INVITE transaction already ended: as if our 200 were never ACKed (the machine's
      // BYE to the caller waits for that ACK, RFC 3261 §15.1.1, and nothing else would come)
      this.#feed(call, { kind: 'caller-no-ack' });
      return;
    }
    const d = dialogAsUas(call.invite, res.msg);
    call.callerDialog = d;
    this.#own(call, dialogId(d), null);
    call.retransmit = new Retransmit2xx(this.deps.clock, this.deps.timers, this.deps.send, res.text, () =>
      this.#feed(call, { kind: 'caller-no-ack' }),
    );
  }

  #sendLegInvite(call: CallRecord, id: LegId, target: LegTarget): void {
    const { settings } = this.deps;
    const common = {
      original: call.invite, servedUser: call.plan.servedUser, service: call.plan.service, offerSdp: call.offer!.deviceSdp,
      contact: settings.contact, sessionExpires: settings.sessionExpires, userAgent: settings.userAgent,
    };
    const device = target.kind === 'device' ? call.plan.targets.find((d) => deviceKey(d) === target.device) : undefined;
    const built = device ? deviceInvite({ ...common, device }) : targetInvite({ ...common, ruri: target.ruri });
    for (const w of built.warnings) this.deps.log.info({ callId: call.callId, leg: id, warning: w }, 'b2bua: leg INVITE');
    const from = parseNameAddr(call.invite.get('From') ?? '');
    const to = parseNameAddr(call.invite.get('To') ?? '');
    const fromValue = `${from?.display ? `"${from.display.replace(/["\\]/g, '')}" ` : ''}<${from?.uri ?? 'sip:anonymous@anonymous.invalid'}>;tag=${newTag()}`;
    const toValue = `<${to?.uri ?? call.plan.servedUser}>`;
    const h: Header[] = [
      ['Via', `SIP/2.0/TCP ${settings.sentBy};branch=${newBranch()};rport`],
      ['Max-Forwards', '70'],
      ['Route', `<${settings.outboundProxy}>`],
      ['From', fromValue],
      ['To', toValue],
      ['Call-ID', newCallId(settings.sentBy.split(':')[0] ?? 'b2bua')],
      ['CSeq', '1 INVITE'],
      // ;direct: Kamailio relays it to the Request-URI, not to the served user's devices
      [PF_LEG_HEADER, target.kind === 'device' ? settings.legToken : `${settings.legToken};direct`],
      ...built.headers,
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
      response: (res) => this.#legResponse(call, id, res),
      timeout: () => this.#feed(call, { kind: 'leg-failed', leg: id, status: LEG_TIMEOUT_STATUS, contact: null }),
      terminated: () => {},
    }) as InviteClientTransaction;
    call.legs.set(id, { id, target, uac, tx, dialog: null });
  }

  #legResponse(call: CallRecord, id: LegId, res: SipResponse): void {
    const leg = call.legs.get(id);
    if (!leg) return;
    const out = leg.uac.receive(res);
    switch (out.kind) {
      case 'provisional':
        this.#feed(call, { kind: 'leg-provisional', leg: id, status: res.status });
        return;
      case 'rejected': {
        const contact = res.status >= 300 && res.status < 400 ? (parseNameAddr(res.getValues('Contact')[0] ?? '')?.uri ?? null) : null;
        this.#feed(call, { kind: 'leg-failed', leg: id, status: res.status, contact });
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
        });
        return;
      }
    }
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

  #forget(call: CallRecord): void {
    if (!this.#calls.delete(call.callId)) return;
    this.#counts.ended++;
    this.#byTx.delete(call.tx);
    if (call.maxAge !== null) this.deps.clock.clearTimer(call.maxAge);
    call.retransmit?.stop();
    for (const k of call.dialogs) this.#byDialog.delete(k);
    if (call.relayHeld) {
      call.relayHeld = false;
      this.deps.relay.delete({ 'call-id': call.callId }).catch(() => {});
    }
  }
}
