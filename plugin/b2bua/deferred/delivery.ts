/**
 * One delivery call as a pure state machine (docs/deferred.md "Delivery"): the B2BUA as
 * UAC delivers what the relay stored for a deferred session whose caller has left, to a
 * device of the served user (`messages`), or the disposition notifications pending for
 * the original sender, to the sender (`notifications`). The driver
 * (./delivery-driver.ts) feeds events and runs the effects.
 *
 *   preparing --(deliver ok: invite)--> inviting --(2xx: relay-answer)--> answering
 *       |                                 |  |                               |
 *       | (deliver refused: kept/empty)   |  +--(603: relay-delete, discard)--> discarding --(discard-done)--> done
 *       v                                 +--(other final, timeout)---------------------------------------> done (kept)
 *     done                                                                                       |
 *   answering --(relay answer ok)--> sending --(relay `delivered`: arm-linger)--> lingering --(linger over)--+
 *       |                               |                                          |                          |
 *       +-(answer refused, relay lost)--+--(leg-closed, relay lost, stalled)-------+--(leg-closed)-----------+--> releasing (bye)
 *                                                                                                             |
 *   releasing --(bye-done: relay-delete)--> done (delivered when `delivered` came, else kept)
 *   a peer BYE in answering/sending/lingering/releasing --> done (relay-delete), outcome as above
 *
 * Outcomes: `delivered` (record done: removed, or on to the notifications), `kept` (the
 * record stays for the next REGISTER), `discarded` (CR 8.3.2.1.1: a 603 after accept
 * discards the stored messages; the caller is gone, so no BYE goes to it), `empty` (the
 * relay had nothing to deliver: the record is done).
 *
 * An event a state does not expect (a late relay event, a response after the end) is
 * ignored; a move the NEXT table forbids is a bug and throws (lib/fsm.ts).
 */
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';

export type DeliveryState = 'preparing' | 'inviting' | 'answering' | 'sending' | 'lingering' | 'releasing' | 'discarding' | 'done';
export type What = 'messages' | 'notifications';
export type Outcome = 'delivered' | 'kept' | 'discarded' | 'empty';

export const DELIVERY_NEXT: NextTable<DeliveryState> = {
  preparing: ['inviting', 'done'],
  inviting: ['answering', 'discarding', 'releasing', 'done'],
  answering: ['sending', 'lingering', 'releasing', 'done'],
  sending: ['lingering', 'releasing', 'done'],
  lingering: ['releasing', 'done'],
  releasing: ['done'],
  discarding: ['done'],
  done: [],
};

export interface Delivery {
  readonly state: DeliveryState;
  readonly what: What;
  /** The relay reported the backlog sent (`delivered`). */
  readonly delivered: boolean;
  /** The relay session went away (restart, lost link): nothing more will be delivered. */
  readonly relayGone: boolean;
  readonly outcome: Outcome | null;
  /** The final status of the INVITE when it failed, for the log. */
  readonly status: number | null;
}

export type DeliveryEvent =
  | { readonly kind: 'deliver-ok' }
  /** `nothing`: the relay has nothing stored under the deferred-id (UNKNOWN_SESSION). */
  | { readonly kind: 'deliver-failed'; readonly nothing: boolean }
  | { readonly kind: 'provisional' }
  | { readonly kind: 'answered' }
  | { readonly kind: 'rejected'; readonly status: number }
  /** The device rang too long: CANCEL (its 487 then comes as `rejected`). */
  | { readonly kind: 'no-answer' }
  | { readonly kind: 'relay-answered'; readonly ok: boolean }
  | { readonly kind: 'delivered' }
  | { readonly kind: 'linger-over' }
  /** The relay's leg-closed for the peer's MSRP connection. */
  | { readonly kind: 'media-closed' }
  | { readonly kind: 'relay-lost' }
  /** No `delivered` within the delivery's time limit. */
  | { readonly kind: 'stalled' }
  | { readonly kind: 'peer-bye' }
  | { readonly kind: 'bye-done' }
  | { readonly kind: 'discard-done' };

export type DeliveryEffect =
  | { readonly kind: 'invite' }
  | { readonly kind: 'cancel' }
  | { readonly kind: 'relay-answer' }
  | { readonly kind: 'arm-linger' }
  | { readonly kind: 'bye' }
  | { readonly kind: 'relay-delete' }
  | { readonly kind: 'discard' }
  | { readonly kind: 'finish'; readonly outcome: Outcome };

export interface DeliveryStep {
  readonly delivery: Delivery;
  readonly effects: readonly DeliveryEffect[];
}

/** RFC 3261 §21.6.2: the user declined; CR 8.3.2.1.1: the stored messages are discarded. */
export const DECLINE = 603;

export function newDelivery(what: What): Delivery {
  return { state: 'preparing', what, delivered: false, relayGone: false, outcome: null, status: null };
}

function move(d: Delivery, to: DeliveryState, patch: Partial<Delivery>, effects: DeliveryEffect[]): DeliveryStep {
  const state = guardedTransition('delivery', DELIVERY_NEXT, d.state, to);
  return { delivery: { ...d, ...patch, state }, effects };
}

const stay = (d: Delivery, patch: Partial<Delivery> = {}, effects: DeliveryEffect[] = []): DeliveryStep => ({ delivery: { ...d, ...patch }, effects });

/** The outcome of a call that ends now. */
const ending = (d: Delivery): Outcome => (d.delivered ? 'delivered' : 'kept');

function finishNow(d: Delivery, patch: Partial<Delivery>, outcome: Outcome, effects: DeliveryEffect[]): DeliveryStep {
  return move(d, 'done', { ...patch, outcome }, [...effects, { kind: 'finish', outcome }]);
}

/** One event. Pure. */
export function stepDelivery(d: Delivery, ev: DeliveryEvent): DeliveryStep {
  switch (d.state) {
    case 'preparing':
      if (ev.kind === 'deliver-ok') return move(d, 'inviting', {}, [{ kind: 'invite' }]);
      if (ev.kind === 'deliver-failed') return finishNow(d, {}, ev.nothing ? 'empty' : 'kept', []);
      return stay(d);
    case 'inviting':
      switch (ev.kind) {
        case 'answered':
          // the relay already lost the session: nothing to send, end the dialog at once
          return d.relayGone ? move(d, 'releasing', {}, [{ kind: 'bye' }]) : move(d, 'answering', {}, [{ kind: 'relay-answer' }]);
        case 'rejected':
          if (ev.status === DECLINE) return move(d, 'discarding', { status: ev.status }, [{ kind: 'relay-delete' }, { kind: 'discard' }]);
          return finishNow(d, { status: ev.status }, 'kept', [{ kind: 'relay-delete' }]);
        case 'no-answer':
          return stay(d, {}, [{ kind: 'cancel' }]);
        case 'relay-lost':
          return stay(d, { relayGone: true }, [{ kind: 'cancel' }]);
        default:
          return stay(d);
      }
    case 'answering':
      switch (ev.kind) {
        case 'relay-answered':
          if (!ev.ok) return move(d, 'releasing', {}, [{ kind: 'bye' }]);
          return d.delivered ? move(d, 'lingering', {}, [{ kind: 'arm-linger' }]) : move(d, 'sending', {}, []);
        // the relay's event may overtake the reply to our answer
        case 'delivered':
          return stay(d, { delivered: true });
        case 'relay-lost':
          return move(d, 'releasing', { relayGone: true }, [{ kind: 'bye' }]);
        case 'peer-bye':
          return finishNow(d, {}, ending(d), [{ kind: 'relay-delete' }]);
        default:
          return stay(d);
      }
    case 'sending':
      switch (ev.kind) {
        case 'delivered':
          return move(d, 'lingering', { delivered: true }, [{ kind: 'arm-linger' }]);
        case 'media-closed':
        case 'stalled':
          return move(d, 'releasing', {}, [{ kind: 'bye' }]);
        case 'relay-lost':
          return move(d, 'releasing', { relayGone: true }, [{ kind: 'bye' }]);
        case 'peer-bye':
          return finishNow(d, {}, 'kept', [{ kind: 'relay-delete' }]);
        default:
          return stay(d);
      }
    case 'lingering':
      switch (ev.kind) {
        case 'linger-over':
        case 'media-closed':
          return move(d, 'releasing', {}, [{ kind: 'bye' }]);
        case 'relay-lost':
          return move(d, 'releasing', { relayGone: true }, [{ kind: 'bye' }]);
        case 'peer-bye':
          return finishNow(d, {}, 'delivered', [{ kind: 'relay-delete' }]);
        default:
          return stay(d);
      }
    case 'releasing':
      if (ev.kind === 'bye-done' || ev.kind === 'peer-bye') return finishNow(d, {}, ending(d), [{ kind: 'relay-delete' }]);
      // `delivered` crossing our BYE (a leg-closed came first): the backlog was sent
      if (ev.kind === 'delivered') return stay(d, { delivered: true });
      return stay(d);
    case 'discarding':
      if (ev.kind === 'discard-done') return finishNow(d, {}, 'discarded', []);
      return stay(d);
    case 'done':
      return stay(d);
  }
}
