/**
 * Deferred delivery, the B2BUA side (docs/deferred.md "Delivery"; CR 8.3.2.1.1 step 3 i,
 * 8.3.2.9): what happens to a deferred session once its caller has left.
 *
 * - `callerLeft(record)`: the B2BUA hands over a deferred session whose caller left; it
 *   is kept in the pending store (./pending-store.ts). A group session's participant
 *   information is followed on the user's behalf: SUBSCRIBE `Event: conference`
 *   (RFC 4575) to the focus through Kamailio (`X-PF-Leg: <secret>;direct`), each NOTIFY
 *   answered 200 and its conference-info (./conference-info.ts) kept in the entry,
 *   refreshed before it expires.
 * - `registered(user, devices)` (pf.registered, once Kamailio saved the binding): first
 *   the live deferred calls are offered the devices (`offerLive`, the B2BUA's own call
 *   machine), then the user's pending entries are delivered one at a time in creation
 *   order to a suitable device, each by a delivery call (./delivery.ts): relay
 *   `deliver`, INVITE with the relay's device SDP, relay `answer` on the 200, the relay's
 *   `delivered`, a short linger for the device's IMDNs, BYE. A 603 discards (relay `discard`, the entry removed); another failure
 *   keeps the entry for the next REGISTER.
 * - After the messages, the relay's `deferred-state`: pending notifications for the
 *   original sender go in a notification call (`deliver` what=notifications), an INVITE
 *   to the sender through Kamailio as a new originating request of the served user (no
 *   X-PF-Leg: the sender's own terminating PF treats it); likewise on `deferred-expired`.
 * - One delivery per entry at a time (a lock by deferred-id), one user's entries one
 *   after the other (REGISTER refreshes during a delivery only ask for another pass).
 *   Several nodes on one store: a node takes the entry's claim first (./claim.ts); an
 *   entry another live node holds ends this node's pass (docs/deferred.md "Several nodes").
 * - Restart: each entry keeps the delivery call in flight and the subscription dialog;
 *   `start` ends or resumes them (docs/deferred.md "Delivery", restart).
 */
import type { Logger } from 'pino';
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { parseNameAddr } from '../../sip/uri.js';
import type { Device } from '../../devices/types.js';
import { deviceKey } from '../../devices/identity.js';
import { newBranch, newCallId, newTag, printRequest, responseTo, type Built, type Header } from '../sip/build.js';
import { buildInDialog, checkRemoteCseq, DialogError, type Dialog } from '../sip/dialog.js';
import { UacInvite } from '../sip/invite-usage.js';
import type { InviteClientTransaction } from '../sip/invite-client.js';
import type { ServerTransaction, TransactionLayer } from '../sip/layer.js';
import type { Clock, TimerHandle } from '../sip/timers.js';
import type { DialogClaimer } from '../sip/tu-router.js';
import {
  dialogFromNotify, dialogFromSubscribe2xx, expiresOf, initialSubscribe, refreshInMs, subscribeInDialog, subscriptionState,
} from '../sip/subscription.js';
import { deviceAddress, deviceInvite, SDP_TYPE } from '../../rules/stages/device-invites.js';
import { deviceCapable } from '../../rules/stages/no-suitable-device.js';
import { ICSI_GROUP, ICSI_SESSION, type SessionIcsi } from '../../rules/cpm.js';
import { PF_LEG_HEADER } from '../../rules/b2bua-headers.js';
import type {
  AnswerParams, AnswerReply, DeferredKeyParams, DeferredStateReply, DeliverParams, DeliverReply, DiscardReply, GroupStateParams, KeyParams,
  QueryReply, RelayEvent, SimpleReply,
} from '../../../media/relay/types.js';
import { newDelivery, stepDelivery, type Delivery, type DeliveryEffect, type DeliveryEvent, type Outcome, type What } from './delivery.js';
import { newEntry, type PendingDeliveries, type PendingEntry, type Subscription } from './pending-store.js';
import { deliverParamsOf, type DeferredRecord } from './record.js';
import { applyConferenceInfo, CONFERENCE_INFO_TYPE, parseConferenceInfo } from './conference-info.js';
import { releaseClaim, takeClaim, type AliveCheck } from './claim.js';

/** The relay verbs delivery uses (RelayLink has them). */
export interface DeliveryRelay {
  deliver(p: DeliverParams): Promise<DeliverReply>;
  answer(p: AnswerParams): Promise<AnswerReply>;
  delete(p: KeyParams): Promise<SimpleReply>;
  discard(p: DeferredKeyParams): Promise<DiscardReply>;
  deferredState(p: DeferredKeyParams): Promise<DeferredStateReply>;
  query(p: KeyParams): Promise<QueryReply>;
  groupState(p: GroupStateParams): Promise<SimpleReply>;
}

export interface DeliverySettings {
  readonly sentBy: string;
  readonly contact: string;
  readonly outboundProxy: string;
  readonly legToken: string;
  readonly sessionExpires: number;
  readonly userAgent: string;
  /** After `delivered`, how long the call stays up for the device's IMDNs (ms). Default 2000. */
  readonly lingerMs?: number;
  /** A delivery INVITE ringing this long is cancelled (ms). Default 60000. */
  readonly ringMs?: number;
  /** A delivery that has not reported `delivered` this long after its 200 ends (ms). Default 300000. */
  readonly stallMs?: number;
  /** Expires asked in the conference SUBSCRIBE (s). Default 3600. */
  readonly subscribeExpires?: number;
  /** Entries stay this long past expiresAt for the relay's `deferred-expired` notifications (ms). Default 300000. */
  readonly expiryGraceMs?: number;
  /** How often expired entries are swept (ms). Default 60000. */
  readonly sweepMs?: number;
}

export interface DeliveryDeps {
  readonly settings: DeliverySettings;
  readonly relay: DeliveryRelay;
  readonly store: PendingDeliveries;
  readonly clock: Clock;
  readonly log: Logger;
  readonly layer: () => TransactionLayer;
  /** Wall clock, epoch ms (expiresAt, createdAt). */
  readonly wallNow: () => number;
  /** The live deferred calls of the B2BUA take the device first (CR: the original call still up). */
  readonly offerLive?: (servedUser: string, device: Device) => void;
  /** The deferred-ids of `servedUser`'s live deferred calls (B2bua.deferredCalls): a live entry no call has is stale. */
  readonly liveDeferred?: (servedUser: string) => readonly string[];
  /** This node: the name in an entry's claim and of its lease (./claim.ts). Default 'local' (one host). */
  readonly node?: string;
  /**
   * The node leases, given when several nodes share the store: entries are claimed, and a
   * claim whose node's lease ran out is taken over. Absent (one host): no claims, the local
   * lock is enough.
   */
  readonly leases?: AliveCheck;
}

export interface DeliveryCounts {
  pending: number;
  calls: number;
  subscriptions: number;
  delivered: number;
  discarded: number;
  kept: number;
  notificationCalls: number;
}

interface ActiveCall {
  readonly deferredId: string;
  readonly callId: string;
  readonly what: What;
  machine: Delivery;
  readonly invite: Built<SipRequest>;
  readonly uac: UacInvite;
  tx: InviteClientTransaction | null;
  dialog: Dialog | null;
  /** The relay leg: the To-tag of the peer's 200. */
  leg: string | null;
  answerSdp: string;
  readonly offerSdp: string;
  timers: TimerHandle[];
  queue: Promise<void>;
  readonly finished: (o: Outcome) => void;
}

interface LiveSubscription {
  readonly deferredId: string;
  /** Our initial SUBSCRIBE (a NOTIFY before its 2xx makes the dialog from it); null when taken back after a restart. */
  readonly request: Built<SipRequest> | null;
  sub: Subscription;
  timer: TimerHandle | null;
  ending: boolean;
}

const CHAT_STREAM = { media: 'message', port: 9, proto: 'TCP/MSRP', acceptTypes: null, fileTransfer: false } as const;
const CONFERENCE_EVENT = 'conference';
const DEFAULTS = { lingerMs: 2000, ringMs: 60_000, stallMs: 300_000, subscribeExpires: 3600, expiryGraceMs: 300_000, sweepMs: 60_000 };
/** RFC 6665 §4.1.2.2: a refresh the notifier does not know any more. */
const SUB_GONE = new Set([404, 405, 408, 481, 489, 501]);

/**
 * The relay session of a delivery call: its Call-ID with a prefix. Not the Call-ID itself:
 * a notification call to a sender in B2BUA mode comes back into this B2BUA as a new call
 * with that Call-ID, whose own relay session is keyed by it.
 */
const RELAY_KEY_PREFIX = 'delivery;';
export const relayKeyOf = (callId: string): string => `${RELAY_KEY_PREFIX}${callId}`;

/** The URI inside a name-addr value (From, To of the record). */
function uriOf(value: string): string | null {
  return parseNameAddr(value)?.uri ?? null;
}

/** `+g.3gpp.icsi-ref` value as a feature tag string (RFC 3840 §9: percent-encoded colons). */
const icsiTag = (icsi: SessionIcsi): string => `*;+g.3gpp.icsi-ref="${icsi.replace(/:/g, '%3A')}"`;

/**
 * A suitable device for a delivery (CR 8.3.2.1 step 6, plugin/rules/stages/no-suitable-device.ts):
 * registered, capable of the session's chat stream, addressable on its own; the most
 * recently registered first (it just came online), then by q. Pure.
 */
export function pickDevice(devices: readonly Device[], record: DeferredRecord, now: number): Device | null {
  const icsi: SessionIcsi = record.group ? ICSI_GROUP : ICSI_SESSION;
  const ok = devices.filter(
    (d) => d.aor === record.servedUser && d.expiresAt > now && deviceCapable(d.params, icsi, [CHAT_STREAM]) && deviceAddress(d, record.servedUser) !== null,
  );
  ok.sort((a, b) => b.registeredAt - a.registeredAt || b.q - a.q);
  return ok[0] ?? null;
}

/**
 * The original INVITE as far as the delivery INVITE carries it (CR 8.3.2.1 step 8 c: the
 * session identifiers, P-Asserted-Identity), for deviceInvite. Pure.
 */
export function originalOf(record: DeferredRecord): SipRequest {
  const icsi = record.group ? ICSI_GROUP : ICSI_SESSION;
  const h: Header[] = [
    ...record.pAssertedIdentity.map((p) => ['P-Asserted-Identity', p] as const),
    ...(record.conversationId ? [['Conversation-ID', record.conversationId] as const] : []),
    ...(record.contributionId ? [['Contribution-ID', record.contributionId] as const] : []),
    ...(record.inReplyToContributionId ? [['InReplyTo-Contribution-ID', record.inReplyToContributionId] as const] : []),
    ['Accept-Contact', icsiTag(icsi)],
  ];
  return printRequest('INVITE', record.servedUser, h).msg;
}

export class DeliveryDriver implements DialogClaimer {
  readonly #calls = new Map<string, ActiveCall>();
  readonly #subs = new Map<string, LiveSubscription>();
  /** `${callId};${localTag}` of each subscription: its NOTIFYs are ours. */
  readonly #subKeys = new Map<string, string>();
  /** The per-entry lock: a deferred-id being delivered. */
  readonly #busy = new Set<string>();
  /** One pass per user at a time; `again`: a REGISTER came meanwhile. */
  readonly #users = new Map<string, { devices: readonly Device[]; again: boolean }>();
  /** Writes of one entry, one after the other (a NOTIFY and a delivery never lose each other's change). */
  readonly #writes = new Map<string, Promise<unknown>>();
  readonly #counts = { delivered: 0, discarded: 0, kept: 0, notificationCalls: 0 };
  #sweeper: TimerHandle | null = null;
  #stopped = false;
  readonly #s: Required<DeliverySettings>;

  constructor(private readonly deps: DeliveryDeps) {
    this.#s = { ...DEFAULTS, ...deps.settings } as Required<DeliverySettings>;
  }

  get counts(): Omit<DeliveryCounts, 'pending'> {
    return { calls: this.#calls.size, subscriptions: this.#subs.size, ...this.#counts };
  }

  // ---- entry points ----

  /**
   * The B2BUA deferred a call (its caller still there): a group session's participant
   * information is followed from now on (CR 8.3.2.1.1 step 3 i); its entry is `live`
   * (a REGISTER joins that call, no delivery call) until the caller leaves.
   */
  deferred(record: DeferredRecord): Promise<void> {
    return this.#keep(record, true);
  }

  /** The B2BUA's deferred call ended with its caller gone: keep it until a device registers. */
  callerLeft(record: DeferredRecord): Promise<void> {
    return this.#keep(record, false);
  }

  /** Notification calls retried by the sweep: the next try (epoch ms) and how many went. */
  readonly #retry = new Map<string, { at: number; n: number }>();

  #keep(record: DeferredRecord, live: boolean): Promise<void> {
    let kept: PendingEntry | null = null;
    // messages of the live call expired meanwhile (#expired): their notification call goes once the caller left
    let notify = false;
    return this.#update(record.deferredId, (e) => {
      notify = !live && e?.live === true && e.notifications;
      return (kept = e ? { ...e, record, live } : newEntry(record, this.deps.wallNow(), live));
    }).then(async () => {
      // a live entry is its call's node's (another node's sweep leaves it); handed over, anyone's
      if (this.deps.leases) {
        await (live ? takeClaim(this.deps.store, this.deps.leases, record.deferredId, this.#node) : releaseClaim(this.deps.store, record.deferredId, this.#node))
            .catch((err: unknown) => this.deps.log.warn({ err, deferredId: record.deferredId }, 'deferred: claim not written'));
      }
      if (!live) this.deps.log.info({ deferredId: record.deferredId, servedUser: record.servedUser }, 'deferred: pending delivery kept');
      if (kept && record.group && record.focus && !this.#subs.has(record.deferredId)) this.#subscribe(kept);
      if (notify) {
        void this.#claimed(record.deferredId, () => this.#deliverNotifications(record.deferredId))
          .catch((err: unknown) => this.deps.log.error({ err, deferredId: record.deferredId }, 'deferred: expiry notifications failed'));
      }
    });
  }

  /** pf.registered (Kamailio saved a binding of `user`): live calls first, then the pending entries. */
  registered(user: string, devices: readonly Device[]): void {
    if (this.#stopped) return;
    const now = this.deps.wallNow();
    if (this.deps.offerLive) {
      for (const d of devices) {
        if (d.expiresAt > now) {
          try {
            this.deps.offerLive(user, d);
          } catch (err) {
            this.deps.log.warn({ err, user }, 'deferred: live call offer failed');
          }
        }
      }
    }
    this.#schedule(user, devices);
  }

  /** The relay's events: those of delivery calls and `deferred-expired`. */
  relayEvent(e: RelayEvent): void {
    if (e.event === 'deferred-expired') {
      if (e.notifications > 0) this.#expired(e['deferred-id']).catch((err: unknown) => this.deps.log.error({ err }, 'deferred: expiry notifications failed'));
      return;
    }
    const id = e['call-id'];
    const call = this.#calls.get(id.startsWith(RELAY_KEY_PREFIX) ? id.slice(RELAY_KEY_PREFIX.length) : id);
    if (!call) return;
    if (e.event === 'delivered') this.#feed(call, { kind: 'delivered' });
    else if (e.event === 'leg-closed') this.#feed(call, { kind: 'media-closed' });
  }

  /** The relay lost its sessions (restarted, link lost): calls in flight end, their entries stay. */
  relayLost(): void {
    for (const c of this.#calls.values()) this.#feed(c, { kind: 'relay-lost' });
  }

  /**
   * After a restart: a delivery call the old process had in flight is ended (BYE when its
   * dialog was up, relay `delete`: what the relay sent and got a 200 for stays delivered),
   * its entry kept for the next REGISTER; subscriptions are refreshed or taken back; and
   * the sweep starts.
   */
  async start(): Promise<void> {
    const now = this.deps.wallNow();
    const entries = await this.deps.store.all(now - this.#s.expiryGraceMs);
    for (const e of entries) {
      // a call in flight of another live node is that node's (several nodes on one store)
      // (a takeover has ended it already: read again)
      if (e.attempt) await this.#claimed(e.record.deferredId, async () => {
        const x = await this.deps.store.get(e.record.deferredId);
        if (x?.attempt) await this.#resume(x);
      });
      if (!e.messages || !e.record.group || !e.record.focus) continue;
      // a subscription with its dialog goes on; one without (no 2xx yet at the crash), or none, starts again
      if (e.subscription?.dialog) this.#takeBack(e.record.deferredId, e.subscription);
      else this.#subscribe(e);
    }
    this.#armSweep();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#sweeper !== null) this.deps.clock.clearTimer(this.#sweeper);
    for (const s of this.#subs.values()) if (s.timer !== null) this.deps.clock.clearTimer(s.timer);
    for (const c of this.#calls.values()) for (const t of c.timers) this.deps.clock.clearTimer(t);
    await Promise.all([...this.#writes.values()].map((p) => p.catch(() => undefined)));
  }

  // ---- DialogClaimer ----

  claims(callId: string, localTag: string): boolean {
    const c = this.#calls.get(callId);
    if (c) return c.dialog?.localTag === localTag || tagOfFrom(c.invite.msg) === localTag;
    return this.#subKeys.has(`${callId};${localTag}`);
  }

  request(req: SipRequest, tx: ServerTransaction): void {
    const callId = req.get('Call-ID') ?? '';
    const call = this.#calls.get(callId);
    if (call) {
      this.#callRequest(call, req, tx);
      return;
    }
    const id = this.#subKeys.get(`${callId};${tagOfTo(req) ?? ''}`);
    const sub = id === undefined ? undefined : this.#subs.get(id);
    if (sub && req.method === 'NOTIFY') {
      this.#notify(sub, req, tx);
      return;
    }
    tx.respond(responseTo(req, req.method === 'BYE' ? 481 : 405, { headers: [['Allow', 'NOTIFY']] }));
  }

  ack(): void {
    // the ACK of our 200 to a device's re-INVITE: nothing to do (TCP to Kamailio)
  }

  // ---- one user's pass over its pending entries ----

  #schedule(user: string, devices: readonly Device[]): void {
    const run = this.#users.get(user);
    if (run) {
      run.devices = devices;
      run.again = true;
      return;
    }
    const state = { devices, again: false };
    this.#users.set(user, state);
    void (async () => {
      try {
        do {
          state.again = false;
          await this.#pass(user, state);
        } while (state.again && !this.#stopped);
      } catch (err) {
        this.deps.log.error({ err, user }, 'deferred: delivery pass failed');
      } finally {
        this.#users.delete(user);
      }
    })();
  }

  /** Each entry of `user` in creation order; stops at the first one the device did not take. */
  async #pass(user: string, state: { devices: readonly Device[] }): Promise<void> {
    const entries = await this.deps.store.forUser(user, this.deps.wallNow());
    for (const e of entries) {
      if (this.#stopped) return;
      const id = e.record.deferredId;
      if (this.#busy.has(id) || e.live) continue;
      const fresh = await this.deps.store.get(id);
      if (!fresh || fresh.live) continue;
      let result: Outcome | 'held' | null = null;
      if (fresh.messages) {
        const device = pickDevice(state.devices, fresh.record, this.deps.wallNow());
        if (!device) return;
        result = await this.#claimed(id, () => this.#deliverMessages(fresh, device));
        if (result === 'kept' || result === 'held') return;
      } else if (fresh.notifications) {
        // another node delivering one of the user's entries goes on with the others itself
        if ((await this.#claimed(id, () => this.#deliverNotifications(id))) === 'held') return;
      }
    }
  }

  get #node(): string {
    return this.deps.node ?? 'local';
  }

  /**
   * `f` under the local lock and the entry's claim (./claim.ts): null when busy here,
   * 'held' when another live node holds it. A claim taken over from a node whose lease ran
   * out ends that node's call in flight first (as after a restart); the delivery then
   * starts again from what the relay has not marked done.
   */
  async #claimed<T>(id: string, f: () => Promise<T>): Promise<T | 'held' | null> {
    const leases = this.deps.leases;
    if (!leases) return this.#locked(id, f);
    return this.#locked(id, async () => {
      const took = await takeClaim(this.deps.store, leases, id, this.#node);
      if (!took.ok) {
        this.deps.log.debug({ deferredId: id, holder: took.holder }, 'deferred: entry held by another node');
        return 'held' as const;
      }
      try {
        if (took.why === 'takeover') {
          this.deps.log.info({ deferredId: id, from: took.from }, 'deferred: entry taken over from a node whose lease ran out');
          const e = await this.deps.store.get(id);
          if (e?.attempt) await this.#resume(e);
        }
        return await f();
      } finally {
        await releaseClaim(this.deps.store, id, this.#node).catch((err: unknown) => this.deps.log.warn({ err, deferredId: id }, 'deferred: claim not released'));
      }
    });
  }

  async #locked<T>(id: string, f: () => Promise<T>): Promise<T | null> {
    if (this.#busy.has(id)) return null;
    this.#busy.add(id);
    try {
      return await f();
    } finally {
      this.#busy.delete(id);
    }
  }

  async #deliverMessages(entry: PendingEntry, device: Device): Promise<Outcome> {
    const { record } = entry;
    const outcome = await this.#call(record, 'messages', { device });
    if (outcome === 'discarded') {
      this.#counts.discarded++;
      this.#unsubscribe(record.deferredId);
      await this.#update(record.deferredId, () => null);
      this.deps.log.info({ deferredId: record.deferredId, device: deviceKey(device) }, 'deferred: declined (603): stored messages discarded');
      return outcome;
    }
    if (outcome === 'kept') {
      this.#counts.kept++;
      await this.#update(record.deferredId, (e) => (e ? { ...e, attempt: null } : null));
      return outcome;
    }
    this.#counts.delivered++;
    this.deps.log.info({ deferredId: record.deferredId, device: deviceKey(device), outcome }, 'deferred: messages delivered');
    const latest = await this.deps.store.get(record.deferredId);
    if (record.group) await this.#storeGroupState(record, latest);
    this.#unsubscribe(record.deferredId);
    const pending = await this.#pendingNotifications(record.deferredId);
    await this.#update(record.deferredId, (e) => (e && pending ? { ...e, messages: false, notifications: true, attempt: null, subscription: null } : null));
    if (pending) await this.#deliverNotifications(record.deferredId);
    return outcome;
  }

  /**
   * The relay's `deferred-state`: notifications pending for the sender. Unknown (the relay
   * unreachable or refusing): taken as pending, so the entry stays and a later notification
   * call finds out (one with nothing to send ends at once, `empty`).
   */
  async #pendingNotifications(deferredId: string): Promise<boolean> {
    try {
      const s = await this.deps.relay.deferredState({ 'deferred-id': deferredId });
      if (s.result === 'ok') return s.notifications > 0;
      this.deps.log.warn({ deferredId, reply: s }, 'deferred: relay refused deferred-state');
    } catch (err) {
      this.deps.log.warn({ err, deferredId }, 'deferred: deferred-state failed');
    }
    return true;
  }

  async #deliverNotifications(deferredId: string): Promise<void> {
    const entry = await this.deps.store.get(deferredId);
    if (!entry) return;
    this.#counts.notificationCalls++;
    const outcome = await this.#call(entry.record, 'notifications', null);
    this.deps.log.info({ deferredId, outcome }, 'deferred: notification call');
    await this.#update(deferredId, (e) => {
      if (!e) return null;
      if (outcome === 'kept') return { ...e, attempt: null, notifications: true };
      return e.messages ? { ...e, attempt: null, notifications: false } : null;
    });
  }

  /** The relay swept expired messages; their failure IMDNs wait for the sender. */
  async #expired(deferredId: string): Promise<void> {
    const entry = await this.deps.store.get(deferredId);
    if (!entry) return;
    await this.#update(deferredId, (e) => (e ? { ...e, notifications: true } : null));
    // a live call's notifications wait for its end: the caller leaving sends them (#keep)
    if (entry.live) return;
    await this.#claimed(deferredId, () => this.#deliverNotifications(deferredId));
  }

  // ---- one delivery call ----

  /** Run one delivery call to its end; its outcome. `target`: the device (messages), or null (the sender). */
  #call(record: DeferredRecord, what: What, target: { device: Device } | null): Promise<Outcome> {
    const { settings } = this.deps;
    const host = settings.sentBy.split(':')[0] ?? 'b2bua';
    const callId = newCallId(host);
    return new Promise<Outcome>((resolve) => {
      void (async () => {
        await this.#update(record.deferredId, (e) => (e ? { ...e, attempt: { callId, what, dialog: null, startedAt: this.deps.wallNow() } } : null));
        let reply: DeliverReply;
        try {
          reply = await this.deps.relay.deliver(deliverParamsOf(record, what, relayKeyOf(callId)));
        } catch (err) {
          this.deps.log.warn({ err, deferredId: record.deferredId }, 'deferred: relay deliver failed');
          resolve('kept');
          return;
        }
        if (reply.result !== 'ok') {
          if (reply['error-code'] !== 'UNKNOWN_SESSION') this.deps.log.warn({ deferredId: record.deferredId, reply }, 'deferred: relay refused deliver');
          resolve(reply['error-code'] === 'UNKNOWN_SESSION' ? 'empty' : 'kept');
          return;
        }
        let invite: Built<SipRequest>;
        try {
          invite = what === 'messages' && target ? this.#deviceInvite(record, target.device, callId, reply['device-sdp']) : this.#senderInvite(record, callId, reply['device-sdp']);
        } catch (err) {
          this.deps.log.warn({ err, deferredId: record.deferredId }, 'deferred: delivery INVITE could not be built');
          await this.deps.relay.delete({ 'call-id': relayKeyOf(callId) }).catch(() => undefined);
          resolve('kept');
          return;
        }
        const call: ActiveCall = {
          deferredId: record.deferredId, callId, what, machine: stepDelivery(newDelivery(what), { kind: 'deliver-ok' }).delivery, invite,
          uac: new UacInvite(invite.msg, settings.sentBy), tx: null, dialog: null, leg: null, answerSdp: '', offerSdp: reply['device-sdp'],
          timers: [], queue: Promise.resolve(), finished: resolve,
        };
        this.#calls.set(callId, call);
        this.#sendInvite(call);
      })().catch((err: unknown) => {
        this.deps.log.error({ err }, 'deferred: delivery call failed');
        resolve('kept');
      });
    });
  }

  /** CR 8.3.2.1 step 8: as a device leg (X-PF-Leg), From and identifiers of the original INVITE. */
  #deviceInvite(record: DeferredRecord, device: Device, callId: string, sdp: string): Built<SipRequest> {
    const { settings } = this.deps;
    const icsi = record.group ? ICSI_GROUP : ICSI_SESSION;
    const built = deviceInvite({
      original: originalOf(record), servedUser: record.servedUser, service: { remove: [], hdrs: `P-Asserted-Service: ${icsi}\r\n` },
      offerSdp: sdp, contact: settings.contact, sessionExpires: settings.sessionExpires, userAgent: settings.userAgent, device,
    });
    const h: Header[] = [
      ['Via', `SIP/2.0/TCP ${settings.sentBy};branch=${newBranch()};rport`],
      ['Max-Forwards', '70'],
      ['Route', `<${settings.outboundProxy}>`],
      ['From', `${record.from};tag=${newTag()}`],
      ['To', record.to],
      ['Call-ID', callId],
      ['CSeq', '1 INVITE'],
      [PF_LEG_HEADER, settings.legToken],
      ...built.headers,
      ['Content-Type', built.contentType],
    ];
    return printRequest('INVITE', built.ruri, h, built.body);
  }

  /**
   * The notification call: a new originating INVITE of the served user to the original
   * sender, through Kamailio without X-PF-Leg, so the sender's own terminating PF treats
   * it; in the same conversation, replying to the original contribution.
   */
  #senderInvite(record: DeferredRecord, callId: string, sdp: string): Built<SipRequest> {
    const { settings } = this.deps;
    const sender = uriOf(record.from);
    if (!sender) throw new DialogError('the original From has no URI');
    const icsi = record.group ? ICSI_GROUP : ICSI_SESSION;
    const h: Header[] = [
      ['Via', `SIP/2.0/TCP ${settings.sentBy};branch=${newBranch()};rport`],
      ['Max-Forwards', '70'],
      ['Route', `<${settings.outboundProxy}>`],
      ['From', `<${record.servedUser}>;tag=${newTag()}`],
      ['To', `<${sender}>`],
      ['Call-ID', callId],
      ['CSeq', '1 INVITE'],
      ['P-Asserted-Identity', `<${record.servedUser}>`],
      ['P-Preferred-Service', icsi],
      ['Accept-Contact', icsiTag(icsi)],
      ...(record.conversationId ? [['Conversation-ID', record.conversationId] as const] : []),
      ['Contribution-ID', newTag() + newTag()],
      ...(record.contributionId ? [['InReplyTo-Contribution-ID', record.contributionId] as const] : []),
      ['Contact', `<${settings.contact}>;+g.3gpp.icsi-ref="${icsi.replace(/:/g, '%3A')}"`],
      ['Supported', 'timer'],
      ['Session-Expires', `${Math.max(90, settings.sessionExpires)};refresher=uas`],
      ['User-Agent', settings.userAgent],
      ['Content-Type', SDP_TYPE],
    ];
    return printRequest('INVITE', sender, h, sdp);
  }

  #sendInvite(call: ActiveCall): void {
    const tx = this.deps.layer().sendRequest(call.invite, {
      response: (res) => this.#inviteResponse(call, res),
      timeout: () => this.#feed(call, { kind: 'rejected', status: 408 }),
      terminated: () => {
        call.tx = null;
      },
    }) as InviteClientTransaction;
    call.tx = tx;
    call.timers.push(this.deps.clock.setTimer(this.#s.ringMs, () => this.#feed(call, { kind: 'no-answer' })));
  }

  #inviteResponse(call: ActiveCall, res: SipResponse): void {
    const out = call.uac.receive(res);
    switch (out.kind) {
      case 'provisional':
        this.#feed(call, { kind: 'provisional' });
        return;
      case 'rejected':
        this.#feed(call, { kind: 'rejected', status: out.status });
        return;
      case 'ignored':
        this.deps.log.info({ callId: call.callId, why: out.why }, 'deferred: delivery response ignored');
        return;
      case 'accepted': {
        this.deps.layer().sendAck(out.ack);
        if (!out.fresh) return;
        if (call.dialog !== null) {
          // a second 2xx (the core forked it): only one dialog per delivery
          this.#bye(out.dialog, () => {});
          return;
        }
        call.dialog = out.dialog;
        call.leg = out.dialog.remoteTag;
        call.answerSdp = res.body;
        void this.#update(call.deferredId, (e) => (e?.attempt?.callId === call.callId ? { ...e, attempt: { ...e.attempt, dialog: out.dialog } } : e));
        this.#feed(call, { kind: 'answered' });
      }
    }
  }

  /** A request in a delivery call's dialog: BYE ends it; a refresh gets 200; the rest 405. */
  #callRequest(call: ActiveCall, req: SipRequest, tx: ServerTransaction): void {
    if (call.dialog) {
      const c = checkRemoteCseq(call.dialog, req);
      if (!c.ok) {
        tx.respond(responseTo(req, c.status));
        return;
      }
      call.dialog = c.dialog;
    }
    const { settings } = this.deps;
    switch (req.method) {
      case 'BYE':
        tx.respond(responseTo(req, 200));
        this.#feed(call, { kind: 'peer-bye' });
        return;
      case 'INVITE':
        tx.respond(responseTo(req, 200, { headers: [['Contact', `<${settings.contact}>`], ['Content-Type', SDP_TYPE]], body: call.offerSdp }));
        return;
      case 'UPDATE':
      case 'OPTIONS':
      case 'INFO':
        tx.respond(responseTo(req, 200, { headers: [['Contact', `<${settings.contact}>`]] }));
        return;
      default:
        tx.respond(responseTo(req, 405, { headers: [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO']] }));
    }
  }

  #feed(call: ActiveCall, ev: DeliveryEvent): void {
    call.queue = call.queue
      .then(async () => {
        if (call.machine.state === 'done') return;
        const r = stepDelivery(call.machine, ev);
        call.machine = r.delivery;
        if (this.deps.log.isLevelEnabled('debug')) {
          this.deps.log.debug({ callId: call.callId, deferredId: call.deferredId, ev, state: r.delivery.state, effects: r.effects }, 'deferred: step');
        }
        for (const e of r.effects) await this.#effect(call, e);
      })
      .catch((err: unknown) => this.deps.log.error({ err, callId: call.callId }, 'deferred: delivery step failed'));
  }

  async #effect(call: ActiveCall, e: DeliveryEffect): Promise<void> {
    const { relay, log, clock } = this.deps;
    switch (e.kind) {
      case 'invite':
        return; // sent by #call once the relay session exists
      case 'cancel':
        if (call.tx) this.deps.layer().cancel(call.tx, { response: () => {}, timeout: () => {}, terminated: () => {} });
        return;
      case 'relay-answer': {
        let ok = false;
        try {
          const r = await relay.answer({ 'call-id': relayKeyOf(call.callId), leg: call.leg ?? 'peer', sdp: call.answerSdp });
          ok = r.result === 'ok';
          if (!ok) log.warn({ callId: call.callId, reply: r }, 'deferred: relay refused the answer');
        } catch (err) {
          log.warn({ err, callId: call.callId }, 'deferred: relay answer failed');
        }
        if (ok) call.timers.push(clock.setTimer(this.#s.stallMs, () => this.#feed(call, { kind: 'stalled' })));
        this.#feed(call, { kind: 'relay-answered', ok });
        return;
      }
      case 'arm-linger':
        call.timers.push(clock.setTimer(this.#s.lingerMs, () => this.#feed(call, { kind: 'linger-over' })));
        return;
      case 'bye':
        if (!call.dialog) {
          this.#feed(call, { kind: 'bye-done' });
          return;
        }
        this.#bye(call.dialog, () => this.#feed(call, { kind: 'bye-done' }));
        return;
      case 'relay-delete':
        await relay.delete({ 'call-id': relayKeyOf(call.callId) }).catch(() => undefined);
        return;
      case 'discard':
        try {
          const r = await relay.discard({ 'deferred-id': call.deferredId });
          if (r.result !== 'ok') log.warn({ deferredId: call.deferredId, reply: r }, 'deferred: relay refused discard');
        } catch (err) {
          log.warn({ err, deferredId: call.deferredId }, 'deferred: relay discard failed');
        }
        this.#feed(call, { kind: 'discard-done' });
        return;
      case 'finish':
        for (const t of call.timers) clock.clearTimer(t);
        call.timers = [];
        this.#calls.delete(call.callId);
        call.finished(e.outcome);
        return;
    }
  }

  #bye(d: Dialog, done: () => void): void {
    let built;
    try {
      built = buildInDialog(d, 'BYE', { sentBy: this.deps.settings.sentBy });
    } catch (err) {
      this.deps.log.warn({ err }, 'deferred: BYE could not be built');
      done();
      return;
    }
    let over = false;
    const once = (): void => {
      if (over) return;
      over = true;
      done();
    };
    this.deps.layer().sendRequest(built.request, { response: (r) => r.status >= 200 && once(), timeout: once, terminated: once });
  }

  /** A call of the old process (restart): end it, keep the entry; the relay keeps what got its 200. */
  async #resume(e: PendingEntry): Promise<void> {
    const a = e.attempt;
    if (!a) return;
    if (a.dialog) this.#bye(a.dialog, () => {});
    await this.deps.relay.delete({ 'call-id': relayKeyOf(a.callId) }).catch(() => undefined);
    await this.#update(e.record.deferredId, (x) => (x ? { ...x, attempt: null } : null));
    this.deps.log.info({ deferredId: e.record.deferredId, callId: a.callId }, 'deferred: delivery of before the restart ended; kept for the next REGISTER');
  }

  // ---- the Group State Object and the conference subscription (RFC 4575, RFC 6665) ----

  async #storeGroupState(record: DeferredRecord, entry: PendingEntry | null): Promise<void> {
    const { log, relay } = this.deps;
    if (!record.conversationId || !record.contributionId) {
      log.warn({ deferredId: record.deferredId }, 'deferred: Group State Object not stored (no Conversation-ID or Contribution-ID)');
      return;
    }
    const participants = entry?.conference?.participants ?? [];
    try {
      const r = await relay.groupState({
        'call-id': record.callId, 'conversation-id': record.conversationId, 'contribution-id': record.contributionId,
        focus: record.focus ?? '', participants: participants.map((p) => (p.name === undefined ? { uri: p.uri } : { uri: p.uri, name: p.name })),
      });
      if (r.result === 'error' || (r.warnings?.length ?? 0) > 0) log.warn({ deferredId: record.deferredId, reply: r }, 'deferred: Group State Object not stored by the relay');
    } catch (err) {
      log.warn({ err, deferredId: record.deferredId }, 'deferred: Group State Object not stored (relay unreachable)');
    }
  }

  #subscribe(entry: PendingEntry): void {
    const { record } = entry;
    const { settings } = this.deps;
    if (!record.focus || this.#subs.has(record.deferredId) || this.#stopped) return;
    const callId = newCallId(settings.sentBy.split(':')[0] ?? 'b2bua');
    const localTag = newTag();
    let request: Built<SipRequest>;
    try {
      request = initialSubscribe({
        sentBy: settings.sentBy, target: record.focus, subscriber: record.servedUser, callId, localTag, contact: settings.contact,
        outboundProxy: settings.outboundProxy, event: CONFERENCE_EVENT, accept: CONFERENCE_INFO_TYPE, expires: this.#s.subscribeExpires,
        headers: [[PF_LEG_HEADER, `${settings.legToken};direct`], ['User-Agent', settings.userAgent]],
      });
    } catch (err) {
      this.deps.log.warn({ err, deferredId: record.deferredId }, 'deferred: conference SUBSCRIBE could not be built');
      return;
    }
    const sub: Subscription = { dialog: null, callId, localTag, expiresAt: this.deps.wallNow() + this.#s.subscribeExpires * 1000 };
    const live: LiveSubscription = { deferredId: record.deferredId, request, sub, timer: null, ending: false };
    this.#subs.set(record.deferredId, live);
    this.#subKeys.set(`${callId};${localTag}`, record.deferredId);
    this.#saveSub(live);
    this.deps.layer().sendRequest(request, {
      response: (res) => {
        if (res.status < 200) return;
        if (res.status >= 300) {
          this.deps.log.warn({ deferredId: record.deferredId, status: res.status }, 'deferred: conference SUBSCRIBE refused');
          this.#dropSub(live);
          return;
        }
        if (live.sub.dialog === null) {
          try {
            live.sub = { ...live.sub, dialog: dialogFromSubscribe2xx(request.msg, res) };
          } catch (err) {
            this.deps.log.warn({ err, deferredId: record.deferredId }, 'deferred: conference SUBSCRIBE 2xx unusable');
          }
        }
        this.#armRefresh(live, expiresOf(res) ?? this.#s.subscribeExpires);
      },
      timeout: () => {
        if (live.sub.dialog === null) this.#dropSub(live);
      },
      terminated: () => {},
    });
  }

  /** A subscription of the old process (restart): NOTIFYs are ours again, a refresh at its time. */
  #takeBack(deferredId: string, sub: Subscription): void {
    if (!sub.dialog) return;
    const live: LiveSubscription = { deferredId, request: null, sub, timer: null, ending: false };
    this.#subs.set(deferredId, live);
    this.#subKeys.set(`${sub.callId};${sub.localTag}`, deferredId);
    const left = Math.max(0, (sub.expiresAt - this.deps.wallNow()) / 1000);
    this.#armRefresh(live, left);
  }

  #armRefresh(live: LiveSubscription, seconds: number): void {
    if (live.timer !== null) this.deps.clock.clearTimer(live.timer);
    live.sub = { ...live.sub, expiresAt: this.deps.wallNow() + seconds * 1000 };
    this.#saveSub(live);
    live.timer = this.deps.clock.setTimer(refreshInMs(seconds), () => {
      live.timer = null;
      this.#refreshSub(live, this.#s.subscribeExpires);
    });
  }

  /** A refresh (expires > 0) or the end (0) of a subscription, in its dialog. */
  #refreshSub(live: LiveSubscription, expires: number): void {
    const d = live.sub.dialog;
    if (!d) {
      if (expires === 0) this.#dropSub(live);
      return;
    }
    const { settings } = this.deps;
    let built;
    try {
      built = subscribeInDialog(d, { sentBy: settings.sentBy, contact: settings.contact, event: CONFERENCE_EVENT, accept: CONFERENCE_INFO_TYPE, expires });
    } catch (err) {
      this.deps.log.warn({ err, deferredId: live.deferredId }, 'deferred: conference SUBSCRIBE refresh could not be built');
      this.#dropSub(live);
      return;
    }
    live.sub = { ...live.sub, dialog: built.dialog };
    if (expires === 0) {
      live.ending = true;
      this.#dropSub(live);
    }
    this.deps.layer().sendRequest(built.request, {
      response: (res) => {
        if (res.status < 200 || expires === 0) return;
        if (res.status < 300) this.#armRefresh(live, expiresOf(res) ?? this.#s.subscribeExpires);
        else if (SUB_GONE.has(res.status)) this.#dropSub(live);
        else live.timer = this.deps.clock.setTimer(30_000, () => this.#refreshSub(live, this.#s.subscribeExpires));
      },
      timeout: () => {
        if (expires !== 0) this.#dropSub(live);
      },
      terminated: () => {},
    });
  }

  /** RFC 6665 §4.1.3: every NOTIFY of ours gets 200 (a bad body too: it is logged); terminated ends it. */
  #notify(live: LiveSubscription, req: SipRequest, tx: ServerTransaction): void {
    if (live.sub.dialog === null) {
      if (live.request === null) {
        tx.respond(responseTo(req, 481));
        return;
      }
      try {
        live.sub = { ...live.sub, dialog: dialogFromNotify(live.request.msg, req) };
      } catch {
        tx.respond(responseTo(req, 400, { reason: 'Bad Contact' }));
        return;
      }
    } else {
      const c = checkRemoteCseq(live.sub.dialog, req);
      if (!c.ok) {
        tx.respond(responseTo(req, c.status));
        return;
      }
      live.sub = { ...live.sub, dialog: c.dialog };
    }
    if ((req.get('Event') ?? '').split(';')[0]?.trim().toLowerCase() !== CONFERENCE_EVENT) {
      tx.respond(responseTo(req, 489, { reason: 'Bad Event' }));
      return;
    }
    tx.respond(responseTo(req, 200));
    const state = subscriptionState(req.get('Subscription-State'));
    const body = req.body;
    const type = (req.get('Content-Type') ?? '').split(';')[0]?.trim().toLowerCase();
    let conference: ((prev: PendingEntry['conference']) => PendingEntry['conference']) | null = null;
    if (body.trim() !== '' && type === CONFERENCE_INFO_TYPE) {
      const parsed = parseConferenceInfo(body);
      if (parsed.ok) {
        conference = (prev) => {
          const next = applyConferenceInfo(prev, parsed.doc);
          return { version: next.version, participants: [...next.participants] };
        };
      }
      else this.deps.log.warn({ deferredId: live.deferredId, why: parsed.why }, 'deferred: conference-info ignored');
    }
    void this.#update(live.deferredId, (e) => {
      if (!e) return null;
      const next = { ...e, subscription: state?.state === 'terminated' ? null : live.sub };
      return conference ? { ...next, conference: conference(e.conference) } : next;
    });
    if (state?.state === 'terminated') this.#dropSub(live);
  }

  #unsubscribe(deferredId: string): void {
    const live = this.#subs.get(deferredId);
    if (live && !live.ending) this.#refreshSub(live, 0);
  }

  #dropSub(live: LiveSubscription): void {
    if (live.timer !== null) this.deps.clock.clearTimer(live.timer);
    live.timer = null;
    this.#subs.delete(live.deferredId);
    this.#subKeys.delete(`${live.sub.callId};${live.sub.localTag}`);
    void this.#update(live.deferredId, (e) => (e && e.subscription?.callId === live.sub.callId ? { ...e, subscription: null } : e));
  }

  #saveSub(live: LiveSubscription): void {
    void this.#update(live.deferredId, (e) => (e && this.#subs.get(live.deferredId) === live ? { ...e, subscription: live.sub } : e));
  }

  // ---- the store ----

  /** One entry's read-modify-write, after the earlier ones of that entry; `f` returning null removes it. */
  #update(deferredId: string, f: (e: PendingEntry | null) => PendingEntry | null): Promise<void> {
    const { store } = this.deps;
    const prev = this.#writes.get(deferredId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(async () => {
        const cur = await store.get(deferredId);
        const out = f(cur);
        if (out === cur) return;
        if (out === null) await store.remove(deferredId);
        else await store.put(out);
      });
    this.#writes.set(deferredId, next);
    // never rejects: a write the store refused (a full disk) is logged, the delivery goes on
    return next
      .catch((err: unknown) => this.deps.log.error({ err, deferredId }, 'deferred: pending delivery not written'))
      .finally(() => {
        if (this.#writes.get(deferredId) === next) this.#writes.delete(deferredId);
      });
  }

  #armSweep(): void {
    if (this.#stopped) return;
    this.#sweeper = this.deps.clock.setTimer(this.#s.sweepMs, () => {
      void this.#sweep().finally(() => this.#armSweep());
    });
  }

  /**
   * Entries past expiresAt that still have notifications for the sender (CR 8.3.2.9: the
   * failure notices of expired messages): the relay's deferred-state decides; none left,
   * the entry goes; else, the caller gone and no call in progress, the notification call
   * is retried on a backoff (1 min doubling, at most 1 h), since the sender is not our
   * user and no REGISTER of theirs comes here.
   */
  async #sweepNotifications(now: number): Promise<void> {
    for (const e of await this.deps.store.all(0)) {
      const id = e.record.deferredId;
      if (!e.notifications || e.live || e.attempt || e.record.expiresAt > now) continue;
      const r = this.#retry.get(id) ?? { at: 0, n: 0 };
      if (r.at > now) continue;
      if (!(await this.#pendingNotifications(id))) {
        this.#retry.delete(id);
        await this.#update(id, (x) => (x && !x.live && !x.attempt ? null : x));
        continue;
      }
      this.#retry.set(id, { at: now + Math.min(3_600_000, 60_000 * 2 ** r.n), n: r.n + 1 });
      void this.#claimed(id, () => this.#deliverNotifications(id))
        .catch((err: unknown) => this.deps.log.error({ err, deferredId: id }, 'deferred: notification retry failed'));
    }
  }

  /** Entries past expiresAt (and the grace for the relay's expiry IMDNs) go, with their subscriptions. */
  async #sweep(): Promise<void> {
    const now = this.deps.wallNow();
    try {
      for (const e of await this.deps.store.all(0)) {
        const id = e.record.deferredId;
        if (e.record.expiresAt <= now && this.#subs.has(id)) this.#unsubscribe(id);
        // a live entry whose call is gone without a handover (a device answered it, or 603): done
        const calls = this.deps.liveDeferred?.(e.record.servedUser);
        if (e.live && calls && !calls.includes(id)) {
          // another live node's call (several nodes on one store) is not stale
          if (this.deps.leases && !(await takeClaim(this.deps.store, this.deps.leases, id, this.#node)).ok) continue;
          this.#unsubscribe(id);
          await this.#update(id, (x) => (x?.live ? null : x));
          if (this.deps.leases) await releaseClaim(this.deps.store, id, this.#node);
        }
      }
      await this.#sweepNotifications(now);
      const gone = await this.deps.store.sweep(now - this.#s.expiryGraceMs);
      if (gone.length > 0) this.deps.log.info({ gone: gone.length }, 'deferred: expired pending deliveries removed');
    } catch (err) {
      this.deps.log.warn({ err }, 'deferred: sweep failed');
    }
  }
}

function tagOfFrom(req: SipRequest): string | null {
  return /;\s*tag=([^;\s]+)/i.exec(req.get('From') ?? '')?.[1] ?? null;
}
function tagOfTo(req: SipRequest): string | null {
  return /;\s*tag=([^;\s]+)/i.exec(req.get('To') ?? '')?.[1] ?? null;
}

