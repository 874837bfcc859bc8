// How the REPORTs of one relayed message are merged for its sender (RFC 4975 §7.1.2), as
// a pure function. In the media path the PF answers for the served user (CR 8.3.2.1.4):
// a message fanned out to several device legs gets at most one success and at most one
// failure story back, never one REPORT per device (docs/media-relay.md, "REPORTs").
//
// Per message (phase; moves only through movePhase(), which throws on an illegal move):
//
//   open ──success covering the whole message forwarded──▶ delivered
//     └───failure forwarded (every leg failed or gone)───▶ failed
//
// Per leg the message went to (LEG_ON below; an input that does not apply leaves it):
//
//   sending ───────────last chunk written───────────▶ awaiting
//   sending, awaiting ──success for a part──────────▶ confirmed
//   sending, awaiting, confirmed ──success, whole───▶ delivered
//   sending, awaiting, confirmed ──failure──────────▶ failed
//   sending, confirmed ──closed, chunk lost─────────▶ gone
//   (delivered, failed and gone are final)
//
// The rules, in order:
//  1. A REPORT from a leg the message did not go to is absorbed; so is everything once
//     the phase is not open.
//  2. Success (Status 000 200). Absorbed unless the message asked Success-Report: yes
//     (RFC 4975 §7.1.1). The first device whose success report arrives speaks for the
//     served user: it becomes the message's reporter and its report is forwarded; the
//     other devices' success reports are absorbed. The reporter's later reports are
//     forwarded when their Byte-Range adds bytes the sender has not been told of (a
//     device that reports per chunk); a repeated range is absorbed. If the reporter
//     fails or goes before confirming the whole message, the next device's success
//     report takes the role. A success report covering the whole message ends it.
//  3. Failure (any other status). The leg is failed and the report kept if its status
//     is better than the one kept (betterFailure). Nothing is forwarded until every leg
//     is failed or gone; then the best report kept is forwarded once, unless the
//     message asked Failure-Report: no. A leg that delivered stays delivered.
//  4. A leg that closes, or loses a chunk, before the message's last chunk was written
//     on its connection (a backlog for a leg not connected yet does not count), or after
//     confirming only a part, is gone: it cannot have the message. One that closes after
//     the last chunk was written is taken to have it (no news is good news under
//     Failure-Report: yes, RFC 4975 §7.1.1), so it never lets a failure through.

import { guardedTransition, type NextTable } from '../../lib/fsm.js';

export type Phase = 'open' | 'delivered' | 'failed';

export const PHASE_NEXT: NextTable<Phase> = {
  open: ['delivered', 'failed'],
  delivered: [],
  failed: [],
};

export type LegOutcome = 'sending' | 'awaiting' | 'confirmed' | 'delivered' | 'failed' | 'gone';

/** A byte range in the sender's coordinates, 1-based and inclusive (RFC 4975 §7.1.1). */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export type ReportInput<L, R> =
  /** The message's last chunk was written on `leg`'s connection (queued for a leg not connected is not written). */
  | { readonly kind: 'written'; readonly leg: L }
  /** `leg` closed (its connection, a drop, a delete). */
  | { readonly kind: 'closed'; readonly leg: L }
  /** A chunk for `leg` could not be relayed: it cannot get the whole message. */
  | { readonly kind: 'lost'; readonly leg: L }
  /** A success REPORT; `whole` when it covers the whole message. */
  | { readonly kind: 'success'; readonly leg: L; readonly span: Span; readonly whole: boolean; readonly report: R }
  | { readonly kind: 'failure'; readonly leg: L; readonly status: number; readonly report: R };

export interface Kept<L, R> {
  readonly leg: L;
  readonly status: number;
  readonly report: R;
}

export interface MergeState<L, R> {
  /** The message asked Success-Report: yes. */
  readonly successWanted: boolean;
  /** The message did not ask Failure-Report: no. */
  readonly failureWanted: boolean;
  readonly phase: Phase;
  readonly legs: ReadonlyMap<L, LegOutcome>;
  readonly reporter: L | undefined;
  /** Success ranges forwarded, sorted, adjacent ones joined. */
  readonly told: readonly Span[];
  /** The best failure report kept. */
  readonly best: Kept<L, R> | undefined;
}

export type Verdict<R> = { readonly action: 'absorb' } | { readonly action: 'forward'; readonly report: R };

/** Ranges told kept per message; past this a report is forwarded without being remembered. */
const MAX_TOLD = 64;

const ABSORB = { action: 'absorb' } as const;

/** What each input does to a leg's outcome; a missing entry leaves it unchanged. */
const LEG_ON: Readonly<Record<LegOutcome, Partial<Record<'written' | 'closed' | 'lost' | 'part' | 'whole' | 'failure', LegOutcome>>>> = {
  sending: { written: 'awaiting', closed: 'gone', lost: 'gone', part: 'confirmed', whole: 'delivered', failure: 'failed' },
  awaiting: { part: 'confirmed', whole: 'delivered', failure: 'failed' },
  confirmed: { closed: 'gone', lost: 'gone', whole: 'delivered', failure: 'failed' },
  delivered: {},
  failed: {},
  gone: {},
};

/**
 * A new message's state: every leg it goes to, with what its first chunks already did
 * (`news`: the last chunk written on a leg's connection, or a chunk lost).
 */
export function openMerge<L, R>(
  legs: readonly L[], successWanted: boolean, failureWanted: boolean,
  news: ReadonlyArray<{ readonly leg: L; readonly kind: 'written' | 'lost' }> = [],
): MergeState<L, R> {
  const outcomes = new Map<L, LegOutcome>();
  for (const l of legs) outcomes.set(l, 'sending');
  for (const n of news) if (outcomes.get(n.leg) === 'sending') outcomes.set(n.leg, n.kind === 'written' ? 'awaiting' : 'gone');
  return { successWanted, failureWanted, phase: 'open', legs: outcomes, reporter: undefined, told: [], best: undefined };
}

/**
 * Failure statuses, best first: the ones the sender can act on (too large, type not
 * accepted, refused, malformed, range) before the ones that only say the path broke.
 * A status not listed ranks after all of these.
 */
const FAILURE_RANK: readonly number[] = [413, 415, 403, 400, 423, 501, 408, 481, 506];

function rank(status: number): number {
  const i = FAILURE_RANK.indexOf(status);
  return i < 0 ? FAILURE_RANK.length : i;
}

/** `status` beats the kept one (an equal rank keeps the earlier report). */
export function betterFailure(status: number, kept: number | undefined): boolean {
  return kept === undefined || rank(status) < rank(kept);
}

/** `span` lies inside the ranges already told. */
export function covered(told: readonly Span[], span: Span): boolean {
  return told.some(t => t.start <= span.start && span.end <= t.end);
}

/** `told` with `span` added, sorted, overlapping and adjacent ranges joined. */
export function addSpan(told: readonly Span[], span: Span): Span[] {
  const all = [...told, span].sort((a, b) => a.start - b.start);
  const out: Span[] = [];
  for (const s of all) {
    const last = out[out.length - 1];
    if (last && s.start <= last.end + 1) out[out.length - 1] = { start: last.start, end: Math.max(last.end, s.end) };
    else out.push(s);
  }
  return out;
}

function movePhase(phase: Phase, to: Phase): Phase {
  return guardedTransition('report merge', PHASE_NEXT, phase, to);
}

function withLeg<L, R>(st: MergeState<L, R>, leg: L, move: keyof (typeof LEG_ON)[LegOutcome]): MergeState<L, R> {
  const now = st.legs.get(leg)!;
  const next = LEG_ON[now][move];
  if (next === undefined || next === now) return st;
  const legs = new Map(st.legs);
  legs.set(leg, next);
  return { ...st, legs };
}

/** Every leg failed or gone, a failure kept and wanted: forward it, once. */
function settleFailure<L, R>(st: MergeState<L, R>): { state: MergeState<L, R>; verdict: Verdict<R> } {
  if (st.phase !== 'open' || !st.failureWanted || st.best === undefined) return { state: st, verdict: ABSORB };
  for (const o of st.legs.values()) if (o !== 'failed' && o !== 'gone') return { state: st, verdict: ABSORB };
  return { state: { ...st, phase: movePhase(st.phase, 'failed') }, verdict: { action: 'forward', report: st.best.report } };
}

/** One input for one message: its new state, and whether a REPORT goes to the sender. */
export function mergeReport<L, R>(st: MergeState<L, R>, input: ReportInput<L, R>): { state: MergeState<L, R>; verdict: Verdict<R> } {
  const current = st.legs.get(input.leg);
  if (current === undefined) return { state: st, verdict: ABSORB };
  switch (input.kind) {
    case 'written':
      return { state: withLeg(st, input.leg, 'written'), verdict: ABSORB };
    case 'closed':
    case 'lost':
      return settleFailure(withLeg(st, input.leg, input.kind));
    case 'failure': {
      let next = withLeg(st, input.leg, 'failure');
      if (next.legs.get(input.leg) === 'failed' && betterFailure(input.status, st.best?.status)) {
        next = { ...next, best: { leg: input.leg, status: input.status, report: input.report } };
      }
      return settleFailure(next);
    }
    case 'success': {
      const next = withLeg(st, input.leg, input.whole ? 'whole' : 'part');
      if (next.phase !== 'open' || !next.successWanted) return { state: next, verdict: ABSORB };
      const r = next.reporter;
      const reporterHolds = r !== undefined && r !== input.leg && !['failed', 'gone'].includes(next.legs.get(r)!);
      if (reporterHolds) return { state: next, verdict: ABSORB };
      if (!input.whole && covered(next.told, input.span)) return { state: next, verdict: ABSORB };
      const told = input.whole || next.told.length >= MAX_TOLD ? next.told : addSpan(next.told, input.span);
      const phase = input.whole ? movePhase(next.phase, 'delivered') : next.phase;
      return { state: { ...next, reporter: input.leg, told, phase }, verdict: { action: 'forward', report: input.report } };
    }
  }
}
