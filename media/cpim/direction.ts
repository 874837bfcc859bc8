// Message-Direction injection (CR Appendix C.1.x) and the Byte-Range arithmetic
// it forces on every chunk of the message (RFC 4975 §7.1.1).
//
// The header goes at the end of the CPIM header block, just before its blank line,
// so the bytes before it are forwarded unchanged. All positions below are
// 0-based offsets into the original message body unless noted.

import { headerValue, type CpimHead } from './head.js';

export const MESSAGE_DIRECTION = 'Message-Direction';

export interface Injection {
  /** Offset in the original body where `bytes` go (the blank line's CR). */
  readonly offset: number;
  readonly bytes: Buffer;
}

/** A Byte-Range header value (RFC 4975 §9): 1-based, inclusive; `*` = unknown. */
export interface ByteRange {
  readonly start: number;
  readonly end: number | '*';
  readonly total: number | '*';
}

/**
 * Plan the insertion of `Message-Direction: <value>`.
 * CR C.1.x: at most one per message, so none is added when one is present,
 * whatever its value (an unknown value is the receiver's to ignore).
 */
export function planInjection(head: CpimHead, value = 'sent'): Injection | null {
  if (headerValue(head.headers, MESSAGE_DIRECTION) !== undefined) return null;
  return { offset: head.headerBlockEnd, bytes: Buffer.from(`${MESSAGE_DIRECTION}: ${value}\r\n`, 'latin1') };
}

/** Map a 1-based original position of a chunk's first byte. */
function mapStart(start: number, inj: Injection): number {
  // A chunk that starts exactly at the insertion point carries the inserted bytes first.
  return start - 1 > inj.offset ? start + inj.bytes.length : start;
}

function mapEnd(end: number, inj: Injection): number {
  return end - 1 >= inj.offset ? end + inj.bytes.length : end;
}

/** Byte-Range of an outgoing chunk, given the incoming chunk's range. */
export function shiftRange(r: ByteRange, inj: Injection | null): ByteRange {
  if (!inj) return r;
  const L = inj.bytes.length;
  return {
    start: mapStart(r.start, inj),
    end: r.end === '*' ? '*' : mapEnd(r.end, inj),
    total: r.total === '*' ? '*' : r.total + L,
  };
}

/**
 * Map a range the receiver reports (REPORT, RFC 4975 §7.1.2) back to the sender's
 * coordinates. Inserted bytes map onto the original byte next to them.
 */
export function unshiftRange(r: ByteRange, inj: Injection | null): ByteRange {
  if (!inj) return r;
  const L = inj.bytes.length;
  const p = inj.offset; // first inserted byte is at 1-based p + 1
  const back = (pos: number, isEnd: boolean): number => {
    if (pos <= p) return pos;
    if (pos <= p + L) return isEnd ? p : p + 1;
    return pos - L;
  };
  const start = back(r.start, false);
  let end: number | '*' = r.end === '*' ? '*' : back(r.end, true);
  // A range made only of inserted bytes shrinks to nothing; report the byte after it.
  if (end !== '*' && end < start) end = start;
  return { start, end, total: r.total === '*' ? '*' : Math.max(0, r.total - L) };
}

/**
 * Apply the injection to one chunk body whose first byte is at 1-based `start`.
 * Exactly one chunk holds the insertion point; the others pass unchanged.
 */
export function injectIntoChunk(body: Buffer, start: number, inj: Injection | null): Buffer {
  if (!inj) return body;
  const first = start - 1;
  const at = inj.offset - first;
  // The chunk holding original byte `offset` (or, for an empty block at the end, none).
  if (at < 0 || at >= body.length) return body;
  return Buffer.concat([body.subarray(0, at), inj.bytes, body.subarray(at)]);
}

export function formatByteRange(r: ByteRange): string {
  return `${r.start}-${r.end}/${r.total}`;
}

export function parseByteRange(v: string | undefined): ByteRange | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*(\d+)-(\d+|\*)\/(\d+|\*)\s*$/.exec(v);
  if (!m) return undefined;
  const start = Number(m[1]);
  if (!Number.isSafeInteger(start) || start < 1) return undefined;
  return { start, end: rangeNum(m[2]!), total: rangeNum(m[3]!) };
}

function rangeNum(s: string): number | '*' {
  return s === '*' ? '*' : Number(s);
}
