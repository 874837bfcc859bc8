/**
 * One B2BUA call as a pure state machine (CR 8.3.2.1 step 8, the "200 OK procedure",
 * 8.3.2.1.1): `step(call, event)` gives the next call and the effects to run. The driver
 * (../b2bua.ts) turns SIP messages, relay events and timers into events and runs the
 * effects; nothing here touches a socket, a timer or the relay.
 *
 *   Call (the originating side):
 *
 *   offering --(a leg answered with media: our 200)--> answered --(caller's ACK)--> confirmed
 *      |      --(deferred: our 200, no leg; below)-->     |                           |
 *      | (CANCEL, early BYE, caller's media closed;       | (BYE either way, no ACK,  |
 *      |  every leg failed: a final; defer-failed)        |  no leg left unless       |
 *      |                                                  |  deferred, max age,       |
 *      v                                                  v  caller's media closed)   v
 *   ending <----------------------------------------------+---------------------------+
 *      |  (any state but ended -> ending also when the relay lost the session: BYE with a Reason)
 *      |  (answered/confirmed -> ending also when the caller's or the last leg's session timer ran out)
 *      |  (every leg closed, and the caller's side rejected or its BYE done)
 *      v
 *   ended
 *
 *   Caller side: invited --(final error)--> rejected;  invited --(our 2xx)--> up
 *     up --(we end it, ACK seen)--> bye-sent --(BYE answered)--> gone;  up --(their BYE)--> gone
 *     up --(we end it, no ACK yet)--> bye-held --(ACK, or 2xx given up)--> bye-sent  (RFC 3261 §15.1.1)
 *
 *   Leg (one INVITE the B2BUA sent):
 *
 *   calling --(1xx)--> early --(2xx, media)--> up --(our BYE)--> releasing --(BYE answered)--> closed
 *     (our BYE: the session or the policy ends it, or the relay closed its media)
 *     calling/early --(our CANCEL)--> cancelling --(final)--> closed   (a crossing 2xx: up, then BYE)
 *     calling/early/cancelling --(non-2xx final)--> closed;  up --(their BYE)--> closed
 *
 *   Session timer of one side (a leg, or the caller; RFC 4028, docs/b2bua.md "Session timers"):
 *   data on an up side (interval, who refreshes), no state of its own; the driver keeps
 *   the side's one timer as the arm/disarm effects say.
 *
 *   (none) --(timer-set after a 2xx or a refresh, either way)--> armed
 *     armed, we refresh   --(refresh-due at interval/2: send one)--> waiting --(timer-set)--> armed
 *     armed, they refresh --(timer-set: their refresh answered)--> armed (again from now)
 *     armed/waiting --(expired at interval - min(32, interval/3); our refresh got 408/481)--> BYE
 *   A device leg's expiry (CR 8.3.2.4): BYE that device (an ISF leg: every ISF leg), its
 *   media dropped once the BYE is answered; no device left up: BYE the caller too and,
 *   for a group session, store the Group State Object. The caller's expiry: BYE both sides.
 *
 *   Deferral (CR 8.3.2.1 step 8 a ii, 8.3.2.1.1 "deferred delivery"; settings.deferral on,
 *   docs/b2bua.md "Deferred sessions"):
 *
 *   off --(start with no target; or every leg failed with 480/408/487/500/503/504,
 *          before the ISF: effect defer)--> asked
 *   asked --(deferred: our 200 with the relay's answer, no device; offering -> answered)--> on
 *   asked --(defer-failed: that final to the caller)--> off
 *   on --(device-available, caller still up: a new device leg, not a device that failed here)--> on
 *   on --(that leg's 200 with media: the relay flushes the backlog to it)--> flushing
 *   flushing --(the relay's `delivered` for that leg: a normal call from now on)--> off
 *   flushing --(that leg closed, its BYE or its media failed: the relay stores again)--> on
 *   on --(a leg's 603: effects relay-delete, then relay-discard; BYE the caller with REASON_COMPLETED)--> off
 *   A deferred call (on, flushing) stays up with no leg ("no leg left" does not end it) and its
 *   other leg failures change nothing; the caller's BYE ends it (the stored messages stay, the
 *   rest of a backlog being flushed too: docs/deferred.md "In the B2BUA"). While flushing only
 *   the flushed leg counts: other devices up (C) do not make the call a normal one.
 *   A device whose leg failed in this call (a non-2xx) is not invited again by device-available
 *   unless `fresh` (it registered anew, not a refresh of the binding that failed).
 */
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';
import { chooseBestResponse } from '../../sip/response.js';
import { expiryDelay, refreshDelay } from '../session-timer.js';

export type CallStateName = 'offering' | 'answered' | 'confirmed' | 'ending' | 'ended';
export type LegStateName = 'calling' | 'early' | 'cancelling' | 'up' | 'releasing' | 'closed';
/** The originating side: no final yet, rejected, our 2xx sent, our BYE waiting for the ACK, our BYE sent, over. */
export type CallerSide = 'invited' | 'rejected' | 'up' | 'bye-held' | 'bye-sent' | 'gone';
/** CR 8.3.2.1.1: A first only, B first active, C all. */
export type MultiDevicePolicy = 'A' | 'B' | 'C';
export type LegId = string;
/** One side of the call: a leg, or null for the caller's. */
export type Side = LegId | null;

/** One side's RFC 4028 timer: the interval (s) and whether the B2BUA is the refresher. */
export interface SideTimer {
  readonly interval: number;
  readonly weRefresh: boolean;
}

export const CALL_NEXT: NextTable<CallStateName> = {
  offering: ['answered', 'ending'],
  answered: ['confirmed', 'ending'],
  confirmed: ['ending'],
  ending: ['ended'],
  ended: [],
};

/** Whether the call is deferred (the header's diagram). */
export type DeferState = 'off' | 'asked' | 'on' | 'flushing';

export const DEFER_NEXT: NextTable<DeferState> = {
  off: ['asked'],
  asked: ['on', 'off'],
  on: ['flushing', 'off'],
  flushing: ['off', 'on'],
};

export const LEG_NEXT: NextTable<LegStateName> = {
  calling: ['early', 'cancelling', 'up', 'closed'],
  early: ['cancelling', 'up', 'closed'],
  cancelling: ['up', 'closed'],
  up: ['releasing', 'closed'],
  releasing: ['closed'],
  closed: [],
};

/** CR 8.3.2.1.1: the BYE reason for the devices that lost under policy B (and A). */
export const REASON_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';

/** CR 8.3.2.4: the Reason of the BYE to a side whose session timer ran out. */
export const REASON_EXPIRED = 'SIP;cause=408;text="Session timer expired"';

/** The Reason of our BYEs when the relay lost the session (it died or restarted; RFC 3326). */
export const REASON_RELAY_GONE = 'SIP;cause=503;text="Media relay unavailable"';

/** CR 8.3.2.1.1: a 603 from the device of a session already accepted (deferred): the BYE's Reason to the caller. */
export const REASON_COMPLETED = 'SIP;cause=200;text="Call completed"';

/** CR 8.3.2.1.1: after these from every leg, the INVITE goes to the ISF (with interworking on), or is deferred. */
export const ISF_STATUSES: readonly number[] = [480, 408, 487, 500, 503, 504];

/** Where a leg's INVITE goes: a device (step 8), the Contact of a 302, or the ISF. */
export interface LegTarget {
  readonly kind: 'device' | 'redirect' | 'isf';
  /** The Request-URI (a redirect is never sent to one tried before). */
  readonly ruri: string;
  /** The device's key (plugin/devices/identity.ts deviceKey) for a device leg. */
  readonly device?: string;
}

export interface Leg {
  readonly id: LegId;
  readonly target: LegTarget;
  readonly state: LegStateName;
  /** The leg's final status when it failed (a non-2xx, 408 on timeout, 488 when its media failed). */
  readonly status: number | null;
  /** The relay holds a media leg for it. */
  readonly media: boolean;
  /** Its session timer once up (RFC 4028), or null. */
  readonly timer: SideTimer | null;
}

export interface CallSettings {
  readonly policy: MultiDevicePolicy;
  /** CR 8.3.2.1.1: the ISF's URI when interworking on failure is on, else null. */
  readonly isfUri: string | null;
  /** 3xx recursion depth (CR 8.3.2.1.1: follow the Contact, never loop). */
  readonly maxRedirects: number;
  /** A group session (from a Controlling Function): an expiry stores the Group State Object (CR 8.3.2.4). */
  readonly group?: boolean;
  /** CR 8.3.2.1 step 8 a ii, 8.3.2.1.1: deferred delivery on for the served user; absent: off. */
  readonly deferral?: boolean;
}

export interface Call {
  readonly state: CallStateName;
  readonly caller: CallerSide;
  readonly settings: CallSettings;
  readonly legs: readonly Leg[];
  /** The leg that keeps the session: the first answered (A) or first active (B). */
  readonly chosen: LegId | null;
  /** A 180 went to the caller. */
  readonly rung: boolean;
  readonly redirects: number;
  readonly isfTried: boolean;
  readonly nextLeg: number;
  /** The caller side's session timer (RFC 4028), or null. */
  readonly callerTimer: SideTimer | null;
  /** The Group State Object was asked for (CR 8.3.2.4, at most once). */
  readonly groupStored: boolean;
  /** Deferral (the header's diagram). */
  readonly deferred: DeferState;
  /** The Reason of our BYE to the caller held for its ACK (`bye-held`), if it has one. */
  readonly byeReason?: string;
  /** Deferral `flushing`: the leg the relay sends the stored backlog to. */
  readonly flushLeg?: LegId;
  /** The relay session was deleted before the end (a 603: its storing stopped before the discard). */
  readonly relayGone?: boolean;
}

export type CallEvent =
  /** The relay has the session: send the INVITEs (CR step 8); none and deferral on: defer. */
  | { readonly kind: 'start'; readonly targets: readonly LegTarget[] }
  /** The relay took `defer`: it stores what the originator sends (docs/media-control.md). */
  | { readonly kind: 'deferred' }
  /** The relay refused `defer` (500) or could not be reached (503). */
  | { readonly kind: 'defer-failed'; readonly status: number }
  /**
   * A suitable device of the served user registered while the call is deferred: invite it;
   * `fresh`: a new binding (not a refresh), which may retry a device that failed in this call.
   */
  | { readonly kind: 'device-available'; readonly target: LegTarget; readonly fresh?: boolean }
  /** The relay sent a deferred session's stored backlog to a leg (docs/media-control.md "Events"). */
  | { readonly kind: 'delivered'; readonly leg: LegId }
  | { readonly kind: 'leg-provisional'; readonly leg: LegId; readonly status: number }
  /** A fresh 2xx, ACKed by the driver; `media`: the relay took its answer, refused it (policy A), or it was bad. */
  | { readonly kind: 'leg-answered'; readonly leg: LegId; readonly media: 'ok' | 'refused' | 'bad' }
  /** A non-2xx final, or 408 for a timeout; `contact` from a 3xx. */
  | { readonly kind: 'leg-failed'; readonly leg: LegId; readonly status: number; readonly contact: string | null }
  /** The device sent BYE (the driver answered it). */
  | { readonly kind: 'leg-bye'; readonly leg: LegId }
  /** Our BYE to the leg was answered, or timed out. */
  | { readonly kind: 'leg-bye-done'; readonly leg: LegId }
  /** The relay saw the leg's first user message or isComposing (CR 8.3.2.1.1 B). */
  | { readonly kind: 'first-active'; readonly leg: LegId }
  /**
   * The relay closed a media leg by itself (its MSRP connection closed, or dialing the
   * originator failed; docs/media-control.md "Events"); `leg` null: the originator's.
   */
  | { readonly kind: 'media-closed'; readonly leg: LegId | null }
  /** The relay has no session for the call any more (it died, or restarted): every media leg is gone. */
  | { readonly kind: 'relay-lost' }
  | { readonly kind: 'caller-ack' }
  /** Our 2xx was never ACKed (RFC 3261 §13.3.1.4). */
  | { readonly kind: 'caller-no-ack' }
  | { readonly kind: 'caller-cancel' }
  /** The caller sent BYE (the driver answered it). */
  | { readonly kind: 'caller-bye' }
  /** Our BYE to the caller was answered, or timed out. */
  | { readonly kind: 'caller-bye-done' }
  /** The documented maximum session age was reached (a backstop behind the session timers). */
  | { readonly kind: 'max-age' }
  /**
   * A session timer was negotiated for a side: by the 2xx of its INVITE or our 2xx to the
   * caller, or by a refresh either way that succeeded (RFC 4028 §7.2, §9); null: none.
   */
  | { readonly kind: 'timer-set'; readonly side: Side; readonly timer: SideTimer | null }
  /** Half the interval is over on a side we refresh (RFC 4028 §10). */
  | { readonly kind: 'refresh-due'; readonly side: Side }
  /** A side's session expired unrefreshed (RFC 4028 §10, CR 8.3.2.4). */
  | { readonly kind: 'expired'; readonly side: Side }
  /** Our refresh on a side got a non-2xx final (408 for a timeout). */
  | { readonly kind: 'refresh-failed'; readonly side: Side; readonly status: number };

export type Effect =
  | { readonly kind: 'invite'; readonly leg: LegId; readonly target: LegTarget }
  | { readonly kind: 'cancel'; readonly leg: LegId; readonly reason?: string }
  | { readonly kind: 'bye'; readonly leg: LegId; readonly reason?: string }
  /** A provisional response to the caller. */
  | { readonly kind: 'ring'; readonly status: number }
  /** Our 200 to the caller, with the relay's answer (the 200 OK procedure); `leg` null: deferred, no device. */
  | { readonly kind: 'answer'; readonly leg: LegId | null }
  /** Ask the relay to store the session's messages (`defer`); the answer comes back as deferred / defer-failed. */
  | { readonly kind: 'defer' }
  /** CR 8.3.2.1.1 603: drop the stored messages of the session (relay `discard`). */
  | { readonly kind: 'relay-discard' }
  /** A final error to the caller. */
  | { readonly kind: 'reject'; readonly status: number }
  | { readonly kind: 'bye-caller'; readonly reason?: string }
  | { readonly kind: 'relay-drop'; readonly leg: LegId }
  | { readonly kind: 'relay-delete' }
  /** Start (or restart) a side's one timer: `refresh` feeds refresh-due, `expire` feeds expired, after `seconds`. */
  | { readonly kind: 'arm'; readonly side: Side; readonly due: 'refresh' | 'expire'; readonly seconds: number }
  /** Stop a side's timer. */
  | { readonly kind: 'disarm'; readonly side: Side }
  /** Send a session refresh on a side (UPDATE or re-INVITE, RFC 4028 §7.4). */
  | { readonly kind: 'refresh'; readonly side: Side }
  /**
   * CR 8.3.2.4: create and store the Group State Object (application/group-state-object+xml)
   * through the history storage: the driver asks the relay (`group-state`), whose store it
   * is; a relay without a store, or out of reach, is logged (docs/b2bua.md "Session timers").
   */
  | { readonly kind: 'store-group-state' };

export interface Step {
  readonly call: Call;
  readonly effects: readonly Effect[];
}

export function newCall(settings: CallSettings): Call {
  return {
    state: 'offering', caller: 'invited', settings, legs: [], chosen: null, rung: false, redirects: 0, isfTried: false, nextLeg: 1,
    callerTimer: null, groupStored: false, deferred: 'off',
  };
}

/** A leg is still in play: it may yet answer, or it holds a session. */
const ALIVE: ReadonlySet<LegStateName> = new Set(['calling', 'early', 'cancelling', 'up']);
const RINGING: ReadonlySet<LegStateName> = new Set(['calling', 'early']);

/** Working copy of one step; every state change goes through the guarded moves. */
class Draft {
  state: CallStateName;
  caller: CallerSide;
  legs: Leg[];
  chosen: LegId | null;
  rung: boolean;
  redirects: number;
  isfTried: boolean;
  nextLeg: number;
  callerTimer: SideTimer | null;
  groupStored: boolean;
  deferred: DeferState;
  byeReason: string | undefined;
  flushLeg: LegId | undefined;
  relayGone: boolean;
  readonly effects: Effect[] = [];
  constructor(readonly c: Call) {
    this.state = c.state;
    this.caller = c.caller;
    this.legs = [...c.legs];
    this.chosen = c.chosen;
    this.rung = c.rung;
    this.redirects = c.redirects;
    this.isfTried = c.isfTried;
    this.nextLeg = c.nextLeg;
    this.callerTimer = c.callerTimer;
    this.groupStored = c.groupStored;
    this.deferred = c.deferred;
    this.byeReason = c.byeReason;
    this.flushLeg = c.flushLeg;
    this.relayGone = c.relayGone === true;
  }
  get policy(): MultiDevicePolicy {
    return this.c.settings.policy;
  }
  move(to: CallStateName): void {
    if (this.state !== to) this.state = guardedTransition('B2BUA call', CALL_NEXT, this.state, to);
  }
  deferTo(to: DeferState): void {
    if (this.deferred !== to) this.deferred = guardedTransition('B2BUA deferral', DEFER_NEXT, this.deferred, to);
    if (to !== 'flushing') this.flushLeg = undefined;
  }
  /** Ask the relay to store the session (CR 8.3.2.1.1 3 i): our 200 follows its answer. */
  defer(): void {
    this.deferTo('asked');
    this.effects.push({ kind: 'defer' });
  }
  leg(id: LegId): Leg | undefined {
    return this.legs.find((l) => l.id === id);
  }
  setLeg(id: LegId, patch: Partial<Omit<Leg, 'id' | 'target'>>): void {
    this.legs = this.legs.map((l) => {
      if (l.id !== id) return l;
      const state = patch.state === undefined || patch.state === l.state ? l.state : guardedTransition('B2BUA leg', LEG_NEXT, l.state, patch.state);
      return { ...l, ...patch, state };
    });
  }
  invite(target: LegTarget): void {
    const id = `L${this.nextLeg++}`;
    this.legs.push({ id, target, state: 'calling', status: null, media: false, timer: null });
    this.effects.push({ kind: 'invite', leg: id, target });
  }
  /** BYE an up leg, CANCEL a ringing one (reason for the devices that lost, CR 8.3.2.1.1). */
  release(l: Leg, reason?: string): void {
    const r = reason === undefined ? {} : { reason };
    if (l.state === 'up') {
      this.stopTimer(l);
      this.setLeg(l.id, { state: 'releasing' });
      this.effects.push({ kind: 'bye', leg: l.id, ...r });
    } else if (RINGING.has(l.state)) {
      this.setLeg(l.id, { state: 'cancelling' });
      this.effects.push({ kind: 'cancel', leg: l.id, ...r });
    }
  }
  releaseAll(except: LegId | null, reason?: string): void {
    for (const l of this.legs) if (l.id !== except) this.release(l, reason);
  }
  closeLeg(id: LegId, status: number | null): void {
    const l = this.leg(id)!;
    this.stopTimer(l);
    this.setLeg(id, { state: 'closed', ...(status === null ? {} : { status }) });
    if (l.media) {
      this.setLeg(id, { media: false });
      this.effects.push({ kind: 'relay-drop', leg: id });
    }
  }
  /** End the session from the B2BUA's side: every leg released, the caller BYEd or rejected. */
  endAll(status: number, reason?: string): void {
    if (this.state === 'ending' || this.state === 'ended') return;
    this.releaseAll(null, reason);
    if (this.caller === 'invited') {
      this.caller = 'rejected';
      this.effects.push({ kind: 'reject', status });
    } else if (this.caller === 'up' && this.state === 'answered') {
      // RFC 3261 §15.1.1: no BYE before the ACK of our 2xx (or its retransmission gave up)
      this.stopCallerTimer();
      this.caller = 'bye-held';
      this.byeReason = reason;
    } else if (this.caller === 'up') {
      this.byeCaller(reason);
    }
    this.move('ending');
  }
  stopTimer(l: Leg): void {
    if (l.timer === null) return;
    this.setLeg(l.id, { timer: null });
    this.effects.push({ kind: 'disarm', side: l.id });
  }
  stopCallerTimer(): void {
    if (this.callerTimer === null) return;
    this.callerTimer = null;
    this.effects.push({ kind: 'disarm', side: null });
  }
  /** The side's timer, when that side is up (a leg up; the caller answered and not ending). */
  timerOf(side: Side): SideTimer | null {
    if (side === null) return this.caller === 'up' && this.state !== 'ending' ? this.callerTimer : null;
    const l = this.leg(side);
    return l?.state === 'up' ? l.timer : null;
  }
  setTimer(side: Side, t: SideTimer | null): void {
    if (side === null) this.callerTimer = t;
    else this.setLeg(side, { timer: t });
    if (t === null) this.effects.push({ kind: 'disarm', side });
    else if (t.weRefresh) this.effects.push({ kind: 'arm', side, due: 'refresh', seconds: refreshDelay(t.interval) });
    else this.effects.push({ kind: 'arm', side, due: 'expire', seconds: expiryDelay(t.interval) });
  }
  byeCaller(reason?: string): void {
    this.stopCallerTimer();
    this.caller = 'bye-sent';
    this.byeReason = undefined;
    this.effects.push(reason === undefined ? { kind: 'bye-caller' } : { kind: 'bye-caller', reason });
  }
  result(): Step {
    const call: Call = {
      state: this.state, caller: this.caller, settings: this.c.settings, legs: this.legs, chosen: this.chosen, rung: this.rung,
      redirects: this.redirects, isfTried: this.isfTried, nextLeg: this.nextLeg, callerTimer: this.callerTimer, groupStored: this.groupStored,
      deferred: this.deferred, ...(this.byeReason === undefined ? {} : { byeReason: this.byeReason }),
      ...(this.flushLeg === undefined ? {} : { flushLeg: this.flushLeg }), ...(this.relayGone ? { relayGone: true } : {}),
    };
    return { call, effects: this.effects };
  }
}

/** What follows once legs have changed: failure handling, the session's end, the relay's release. */
function settle(d: Draft): void {
  if (d.deferred === 'flushing' && d.leg(d.flushLeg ?? '')?.state !== 'up') {
    // the flushed leg left before the relay's `delivered` (its BYE, its media failed): the
    // relay stores the rest again, the call is deferred as before
    d.deferTo('on');
  }
  const alive = d.legs.some((l) => ALIVE.has(l.state));
  if (d.state === 'offering' && !alive && d.legs.length > 0 && d.deferred === 'off') {
    const statuses = d.legs.map((l) => l.status ?? 408);
    const isf = d.c.settings.isfUri;
    // CR 8.3.2.1.1 3 i: with deferred delivery on, the same statuses defer the session (before the ISF)
    if (d.c.settings.deferral === true && statuses.every((s) => ISF_STATUSES.includes(s))) {
      d.defer();
      return;
    }
    // CR 8.3.2.1.1: 480/408/487/500/503/504 from every client -> the ISF, with interworking on
    if (isf !== null && !d.isfTried && statuses.every((s) => ISF_STATUSES.includes(s))) {
      d.isfTried = true;
      d.invite({ kind: 'isf', ruri: isf });
      return;
    }
    // otherwise the best of the errors (RFC 3261 §16.7)
    d.caller = 'rejected';
    d.effects.push({ kind: 'reject', status: chooseBestResponse(statuses) });
    d.move('ending');
  } else if ((d.state === 'answered' || d.state === 'confirmed') && !alive && d.deferred === 'off') {
    // the last device left: the originating side goes too (a deferred call stays, with no leg)
    d.endAll(480);
  }
  if (d.state === 'ending' && d.legs.every((l) => l.state === 'closed') && (d.caller === 'rejected' || d.caller === 'gone')) {
    if (!d.relayGone) d.effects.push({ kind: 'relay-delete' });
    d.move('ended');
  }
}

function onAnswered(d: Draft, l: Leg, media: 'ok' | 'refused' | 'bad'): void {
  const was = l.state;
  if (!ALIVE.has(was) || was === 'up') return; // a 2xx on a leg already over: the driver ACKs and BYEs it
  d.setLeg(l.id, { state: 'up', media: media === 'ok', ...(media === 'bad' ? { status: 488 } : {}) });
  const up = d.leg(l.id)!;
  const live = d.state === 'answered' || d.state === 'confirmed';
  const keep =
    media === 'ok' &&
    was !== 'cancelling' &&
    (d.state === 'offering' || (live && (d.deferred === 'on' || d.deferred === 'flushing' || d.policy === 'C' || (d.policy === 'B' && d.chosen === null))));
  if (!keep) {
    // CR 8.3.2.1.1 A: a later 200 gets ACK and BYE; B: once one device is active, likewise
    // ("completed elsewhere" only for a device that lost to another, not for bad media)
    d.release(up, media === 'bad' || d.state === 'offering' || d.state === 'ending' ? undefined : REASON_ELSEWHERE);
    return;
  }
  if (live && d.deferred === 'flushing') return; // another device (C, B): the flushed leg decides
  if (live && d.deferred === 'on') {
    // a device joined the deferred session: the relay sends it the stored messages first;
    // the session is a normal one once they are all sent (`delivered`; A keeps this device
    // alone, as for a first 200)
    d.deferTo('flushing');
    d.flushLeg = l.id;
    if (d.policy === 'A') {
      d.chosen = l.id;
      d.releaseAll(l.id, REASON_ELSEWHERE);
    }
    return;
  }
  if (d.state === 'offering') {
    // the 200 OK procedure: our own 200 to the caller with the relay's answer
    d.caller = 'up';
    d.effects.push({ kind: 'answer', leg: l.id });
    d.move('answered');
    if (d.policy === 'A') {
      // A keeps the first only: the ones still ringing are cancelled
      d.chosen = l.id;
      d.releaseAll(l.id, REASON_ELSEWHERE);
    }
  }
}

/**
 * CR 8.3.2.4, a side's session timer ran out (or our refresh got 408/481, RFC 4028 §10).
 * A device leg: BYE it (its media goes once the BYE is answered); an ISF leg: BYE every
 * ISF leg (an interworked session); no leg left up: the caller gets BYE as well (ringing
 * legs are cancelled) and a group session's Group State Object is stored. The caller's
 * side: BYE both sides.
 */
function expire(d: Draft, side: Side): void {
  if (d.timerOf(side) === null) return;
  if (side === null) {
    d.stopCallerTimer();
    d.endAll(408);
    return;
  }
  const l = d.leg(side)!;
  const gone = l.target.kind === 'isf' ? d.legs.filter((x) => x.target.kind === 'isf' && x.state === 'up') : [l];
  for (const x of gone) d.release(x, REASON_EXPIRED);
  if (d.legs.some((x) => x.state === 'up')) return;
  if (d.c.settings.group === true && !d.groupStored) {
    d.groupStored = true;
    d.effects.push({ kind: 'store-group-state' });
  }
  d.endAll(408);
}

/** The one guarded transition function of a call: throws IllegalTransition only on a bug here. */
export function step(call: Call, ev: CallEvent): Step {
  const d = new Draft(call);
  if (call.state === 'ended') return d.result();
  switch (ev.kind) {
    case 'start':
      if (d.legs.length > 0 || d.deferred !== 'off' || d.state !== 'offering') break;
      for (const t of ev.targets) d.invite(t);
      // CR step 8 a ii: no suitable device: deferred delivery, else 480
      if (ev.targets.length === 0) {
        if (call.settings.deferral === true) d.defer();
        else d.endAll(480);
      }
      break;
    case 'deferred':
      if (d.deferred !== 'asked') break;
      if (d.state !== 'offering' || d.caller !== 'invited') {
        d.deferTo('off'); // the caller left meanwhile (CANCEL): nothing to answer
        break;
      }
      // CR 8.3.2.1.1 3: our 200 to the originating side as in the 200 OK procedure, no device
      d.deferTo('on');
      d.caller = 'up';
      d.effects.push({ kind: 'answer', leg: null });
      d.move('answered');
      break;
    case 'defer-failed':
      if (d.deferred !== 'asked') break;
      d.deferTo('off');
      d.endAll(ev.status);
      break;
    case 'device-available': {
      if (d.deferred !== 'on' || d.caller !== 'up' || (d.state !== 'answered' && d.state !== 'confirmed')) break;
      // one leg per device: a REGISTER refresh while its INVITE is out invites nobody twice
      const dev = ev.target.device;
      if (dev !== undefined && d.legs.some((l) => l.target.device === dev && ALIVE.has(l.state))) break;
      // a device that failed in this call (486, 480, ...) is not invited at each REGISTER of the user
      if (dev !== undefined && ev.fresh !== true && d.legs.some((l) => l.target.device === dev && l.status !== null)) break;
      d.invite(ev.target);
      break;
    }
    case 'leg-provisional': {
      const l = d.leg(ev.leg);
      if (!l || ev.status <= 100 || ev.status >= 200) break;
      if (l.state === 'calling') d.setLeg(l.id, { state: 'early' });
      if (d.state === 'offering' && !d.rung && ev.status >= 180 && ev.status <= 189) {
        d.rung = true;
        d.effects.push({ kind: 'ring', status: 180 });
      }
      break;
    }
    case 'leg-answered': {
      const l = d.leg(ev.leg);
      if (l) onAnswered(d, l, ev.media);
      break;
    }
    case 'leg-failed': {
      const l = d.leg(ev.leg);
      if (!l || !ALIVE.has(l.state) || l.state === 'up') break;
      d.closeLeg(l.id, ev.status);
      if (ev.status === 603 && d.deferred === 'on') {
        // CR 8.3.2.1.1: the user declined a session the PF had accepted: the stored messages
        // go, and the originating side gets BYE with Reason cause 200 "Call completed"
        // the relay stops storing first (the session goes), then drops what it stored: nothing
        // the caller sends in between is accepted into a discarded store
        d.deferTo('off');
        d.relayGone = true;
        for (const x of d.legs) if (x.media) d.setLeg(x.id, { media: false });
        d.effects.push({ kind: 'relay-delete' }, { kind: 'relay-discard' });
        d.releaseAll(null);
        d.endAll(603, REASON_COMPLETED);
        break;
      }
      const contact = ev.contact;
      // CR 8.3.2.1.1 302: the invitation goes to the Contact, never to a URI tried before
      if (
        d.state === 'offering' && ev.status >= 300 && ev.status < 400 && contact !== null &&
        d.redirects < call.settings.maxRedirects && !d.legs.some((x) => x.target.ruri === contact)
      ) {
        d.redirects++;
        d.invite({ kind: 'redirect', ruri: contact });
      }
      break;
    }
    case 'leg-bye': {
      const l = d.leg(ev.leg);
      if (l && (l.state === 'up' || l.state === 'releasing')) d.closeLeg(l.id, null);
      break;
    }
    case 'leg-bye-done': {
      const l = d.leg(ev.leg);
      // CR 8.3.2.1.1 B: the media leg goes once the BYE is answered
      if (l && l.state === 'releasing') d.closeLeg(l.id, null);
      break;
    }
    case 'delivered': {
      const l = d.leg(ev.leg);
      // the backlog reached this leg: from now on a normal call (only the flushed leg counts,
      // or any up leg the relay flushed to after the first one failed)
      if ((d.deferred !== 'flushing' && d.deferred !== 'on') || l?.state !== 'up' || !l.media) break;
      if (d.state !== 'answered' && d.state !== 'confirmed') break;
      d.deferTo('off');
      break;
    }
    case 'first-active': {
      const l = d.leg(ev.leg);
      if (d.policy !== 'B' || d.chosen !== null || !l || l.state !== 'up') break;
      if (d.state !== 'answered' && d.state !== 'confirmed') break;
      // CR 8.3.2.1.1 B: the first active device keeps the session; the others get BYE
      d.chosen = l.id;
      d.releaseAll(l.id, REASON_ELSEWHERE);
      break;
    }
    case 'media-closed': {
      if (ev.leg === null) {
        // the caller's media is gone and MSRP has no reconnect without new SDP: the session
        // ends (before any answer: its offer could not be used, 488)
        d.endAll(488);
        break;
      }
      const l = d.leg(ev.leg);
      // an echo of our own drop or delete finds the leg released or closed already
      if (!l || l.state !== 'up' || !l.media) break;
      // that device is out of the session: BYE it (the relay's leg is gone, no drop)
      d.setLeg(l.id, { media: false });
      d.release(l);
      break;
    }
    case 'relay-lost':
      // the relay's legs are gone with it: nothing to drop; BYE (CANCEL) everyone with the Reason
      for (const l of d.legs) if (l.media) d.setLeg(l.id, { media: false });
      d.endAll(503, REASON_RELAY_GONE);
      break;
    case 'caller-ack':
      if (d.state === 'answered') d.move('confirmed');
      else if (d.caller === 'bye-held') d.byeCaller(d.byeReason);
      break;
    case 'caller-no-ack':
      if (d.state === 'answered') d.endAll(408);
      // the server transaction is over without an ACK: the held BYE goes (RFC 3261 §15.1.1)
      if (d.caller === 'bye-held') d.byeCaller(d.byeReason);
      break;
    case 'max-age':
      d.endAll(408);
      break;
    case 'caller-cancel':
      // too late once our 2xx went out (RFC 3261 §9.2); the layer answered the CANCEL
      if (d.state === 'offering') d.endAll(487);
      break;
    case 'caller-bye':
      d.stopCallerTimer();
      if (d.caller === 'up' || d.caller === 'bye-held' || d.caller === 'bye-sent') d.caller = 'gone';
      if (d.state === 'answered' || d.state === 'confirmed') {
        d.releaseAll(null);
        d.move('ending');
      } else if (d.state === 'offering') {
        // a BYE of the early dialog of our 18x (RFC 3261 §15.1.2): 487 to the INVITE
        d.endAll(487);
      }
      break;
    case 'caller-bye-done':
      if (d.caller === 'bye-sent') d.caller = 'gone';
      break;
    case 'timer-set':
      // only a side that is up takes a timer (a refresh answered as the side ends: none)
      if (ev.side === null ? d.caller === 'up' && (d.state === 'answered' || d.state === 'confirmed') : d.leg(ev.side)?.state === 'up') {
        d.setTimer(ev.side, ev.timer);
      }
      break;
    case 'refresh-due': {
      const t = d.timerOf(ev.side);
      if (t === null || !t.weRefresh) break;
      // RFC 4028 §10: refresh now; without a 2xx the side expires where the other side would
      d.effects.push({ kind: 'refresh', side: ev.side }, { kind: 'arm', side: ev.side, due: 'expire', seconds: expiryDelay(t.interval) - refreshDelay(t.interval) });
      break;
    }
    case 'expired':
      expire(d, ev.side);
      break;
    case 'refresh-failed':
      // RFC 4028 §10: 408 or 481 ends the session now; other errors leave the expiry armed
      // (a 491 means their own refresh is under way)
      if (ev.status === 408 || ev.status === 481) expire(d, ev.side);
      break;
  }
  settle(d);
  return d.result();
}

/** How many legs hold a session or may still answer (for the metrics and the tests). */
export function liveLegs(call: Call): number {
  return call.legs.filter((l) => ALIVE.has(l.state)).length;
}
