/**
 * Where a traced call stands, as the caller sees it (docs/lab.md "Live view"): read from
 * the messages between Kamailio and the caller only, so a forked branch's 487 or a
 * B2BUA leg's 200 does not move it. Pure.
 *
 *   trying ──1xx──▶ ringing ──2xx──▶ established ──BYE──▶ ended
 *     │  └───────────2xx──────────────▶ ▲
 *     ├──≥300──▶ failed ◀──≥300── ringing
 *     └──BYE / CANCEL (early) ──────────────────────────▶ ended
 *
 * An event that does not apply where the call is (a 180 retransmitted after the 200, a
 * second 2xx of a fork) changes nothing; a move the table does not allow is a bug
 * (IllegalTransition, lib/fsm.ts).
 */
import { guardedTransition, type NextTable } from '../../lib/fsm.js';

export type CallState = 'trying' | 'ringing' | 'established' | 'failed' | 'ended';

export type CallEvent = 'provisional' | 'answered' | 'rejected' | 'bye';

export const CALL_NEXT: NextTable<CallState> = {
  trying: ['ringing', 'established', 'failed', 'ended'],
  ringing: ['established', 'failed', 'ended'],
  established: ['ended'],
  failed: [],
  ended: [],
};

/** Where each event leads from each state; absent: the event changes nothing there. */
const TARGET: Readonly<Record<CallState, Partial<Record<CallEvent, CallState>>>> = {
  trying: { provisional: 'ringing', answered: 'established', rejected: 'failed', bye: 'ended' },
  ringing: { answered: 'established', rejected: 'failed', bye: 'ended' },
  established: { bye: 'ended' },
  failed: {},
  ended: {},
};

export function callStep(state: CallState, ev: CallEvent): CallState {
  const to = TARGET[state][ev];
  return to === undefined ? state : guardedTransition('live call', CALL_NEXT, state, to);
}

/** Still in progress: set up or being set up. */
export function isLive(s: CallState): boolean {
  return s === 'trying' || s === 'ringing' || s === 'established';
}
