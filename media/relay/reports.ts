// REPORTs (RFC 4975 §7.1.2) of relayed messages: which ones go back to the sender.
// docs/media-relay.md, "REPORTs".
//
//  - Only the legs a message was relayed to for real count. The copies marked
//    `Message-Direction: sent` (direct delivery, CR 8.3.2.1.4 3.C and 4.B) are the
//    relay's own: their REPORTs are absorbed, never forwarded, so success reports come
//    from a message's recipient only.
//  - The REPORTs of a message that went to several devices are merged into at most one
//    success and one failure story for the sender (report-merge.ts, the pure rule).
//
// Per session, Message-ID -> the message's record, in two generations: the current one
// becomes the old one when it holds maxTracked / 2 records or is TTL / 2 old, and the
// old one is forgotten. So at most maxTracked are kept per session, and a message's
// record lives at least TTL / 2 after its last chunk (at most 1.5 TTL). A REPORT with no
// record (forgotten, unknown, or its message settled) is absorbed.

import { getHeader, parseStatus, reportMode, type MsrpHeader, type RequestHead } from '../msrp/index.js';
import { parseByteRange } from '../cpim/direction.js';
import type { Leg } from './leg.js';
import { mergeReport, openMerge, type MergeState, type ReportInput, type Span } from './report-merge.js';
import type { Session } from './session.js';

/** How long a message's REPORTs are waited for (see the header). */
const REPORT_TTL_MS = 120_000;

type Headers = readonly MsrpHeader[];

interface Tracked {
  readonly src: Leg;
  state: MergeState<Leg, Headers>;
}

/** A REPORT to write: to the message's sender, with the headers of the REPORT it forwards. */
export interface ReportOut {
  readonly to: Leg;
  readonly headers: Headers;
}

/** One session's records, bounded in number and age (see the header). */
export class ReportBook {
  private current = new Map<string, Tracked>();
  private old = new Map<string, Tracked>();
  private since: number;

  constructor(
    private readonly maxTracked: number,
    private readonly ttlMs = REPORT_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.since = now();
  }

  get size(): number {
    return this.current.size + this.old.size;
  }

  add(messageId: string, t: Tracked): void {
    this.age();
    if (this.current.size >= Math.max(1, this.maxTracked >> 1)) this.turn(this.current);
    this.old.delete(messageId);
    this.current.set(messageId, t);
  }

  get(messageId: string): Tracked | undefined {
    this.age();
    return this.current.get(messageId) ?? this.old.get(messageId);
  }

  /** The message is still flowing: keep its record young. */
  touch(messageId: string): Tracked | undefined {
    const t = this.get(messageId);
    if (t && !this.current.has(messageId)) this.add(messageId, t);
    return t;
  }

  delete(messageId: string): void {
    this.current.delete(messageId);
    this.old.delete(messageId);
  }

  entries(): Array<[string, Tracked]> {
    this.age();
    return [...this.old, ...this.current];
  }

  private turn(old: Map<string, Tracked>): void {
    this.old = old;
    this.current = new Map();
    this.since = this.now();
  }

  private age(): void {
    const elapsed = this.now() - this.since;
    if (elapsed < this.ttlMs / 2) return;
    // The current generation's records are at least TTL / 2 old once it is TTL old.
    this.turn(elapsed < this.ttlMs ? this.current : new Map());
  }
}

const books = new WeakMap<Session, ReportBook>();
/** The book a device or originator leg's REPORTs are looked up in. */
const bookOfLeg = new WeakMap<Leg, ReportBook>();

/**
 * A message's first chunks went out: remember where its REPORTs go. `legs` are the legs
 * it is relayed to for real (not the Message-Direction copies); `news` what became of
 * those chunks.
 */
export function trackMessage(
  s: Session, src: Leg, messageId: string, headers: Headers, legs: readonly Leg[], news: readonly Delivery[], maxTracked: number,
): void {
  const success = reportMode(headers, 'Success-Report') === 'yes';
  const failure = reportMode(headers, 'Failure-Report') !== 'no';
  let book = books.get(s);
  // RFC 4975 §7.1.1: nothing asked for, nothing to route; any REPORT is absorbed.
  if (legs.length === 0 || (!success && !failure)) {
    book?.delete(messageId);
    return;
  }
  if (!book) {
    book = new ReportBook(maxTracked);
    books.set(s, book);
  }
  for (const leg of legs) if (bookOfLeg.get(leg) !== book) bookOfLeg.set(leg, book);
  book.add(messageId, { src, state: openMerge(legs, success, failure, news) });
}

/** What became of a message's chunk on one leg. */
export interface Delivery {
  readonly leg: Leg;
  /** written: its last chunk went out on the leg's connection; lost: a chunk was dropped. */
  readonly kind: 'written' | 'lost';
}

/** News of a message's delivery; a lost chunk may settle a failure. */
export function deliveryNews(s: Session, messageId: string, news: readonly Delivery[]): ReportOut[] {
  const book = books.get(s);
  const t = book?.touch(messageId);
  if (!t || !book) return [];
  const out: ReportOut[] = [];
  for (const n of news) {
    const r = apply(book, messageId, t, n);
    if (r) out.push(r);
  }
  return out;
}

/** A REPORT arrived from `from`: what, if anything, goes back to the message's sender. */
export function reportFrom(from: Leg, head: RequestHead): ReportOut | undefined {
  const messageId = getHeader(head.headers, 'Message-ID');
  const book = bookOfLeg.get(from);
  const t = messageId === undefined ? undefined : book?.get(messageId);
  if (!t || !book || messageId === undefined) return undefined;
  const input = reportInput(from, head);
  return input ? apply(book, messageId, t, input) : undefined;
}

/** Legs of the session closed: failures they were the last to owe may now be due. */
export function legsClosed(s: Session): ReportOut[] {
  const book = books.get(s);
  if (!book) return [];
  const out: ReportOut[] = [];
  for (const [messageId, t] of book.entries()) {
    for (const leg of t.state.legs.keys()) {
      if (leg.state !== 'closed') continue;
      const r = apply(book, messageId, t, { kind: 'closed', leg });
      if (r) out.push(r);
    }
  }
  return out;
}

/** The session ended: its records go. */
export function forgetSenders(s: Session): void {
  books.delete(s);
}

function apply(book: ReportBook, messageId: string, t: Tracked, input: ReportInput<Leg, Headers>): ReportOut | undefined {
  const { state, verdict } = mergeReport(t.state, input);
  t.state = state;
  // Settled: later REPORTs find no record and are absorbed.
  if (state.phase !== 'open') book.delete(messageId);
  if (verdict.action === 'absorb' || t.src.state === 'closed') return undefined;
  return { to: t.src, headers: verdict.report };
}

/** A REPORT's Status and Byte-Range as a merge input; undefined for a malformed one (absorbed). */
function reportInput(from: Leg, head: RequestHead): ReportInput<Leg, Headers> | undefined {
  const statusText = getHeader(head.headers, 'Status');
  if (statusText === undefined) return undefined;
  let code: number;
  try {
    const st = parseStatus(statusText);
    if (st.namespace !== 0) return undefined;
    code = st.code;
  } catch {
    return undefined;
  }
  if (code !== 200) return { kind: 'failure', leg: from, status: code, report: head.headers };
  const r = parseByteRange(getHeader(head.headers, 'Byte-Range'));
  if (!r) return { kind: 'success', leg: from, span: { start: 1, end: Number.MAX_SAFE_INTEGER }, whole: true, report: head.headers };
  const end = r.end !== '*' ? r.end : r.total !== '*' ? r.total : r.start;
  const span: Span = { start: r.start, end };
  return { kind: 'success', leg: from, span, whole: r.start === 1 && r.total !== '*' && end >= r.total, report: head.headers };
}
