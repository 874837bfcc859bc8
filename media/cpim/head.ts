// CPIM (RFC 3862) head parsing and payload classification for the relay.
// Works on the first bytes of an MSRP message body; never reads the payload.

export interface CpimHeader {
  readonly name: string;
  readonly value: string;
}

export interface CpimHead {
  /** CPIM message headers (From, To, DateTime, NS, imdn.*, Message-Direction, ...). */
  readonly headers: readonly CpimHeader[];
  /** Inner MIME headers (Content-Type, Content-Length, ...). */
  readonly inner: readonly CpimHeader[];
  /** Offset of the CRLF that ends the CPIM header block (RFC 3862 §3.3). */
  readonly headerBlockEnd: number;
  /** Offset of the first payload byte. */
  readonly bodyOffset: number;
}

export type HeadResult =
  | { readonly state: 'complete'; readonly head: CpimHead }
  | { readonly state: 'incomplete' }
  | { readonly state: 'invalid'; readonly reason: string };

export type PayloadKind = 'chat' | 'isComposing' | 'imdn' | 'empty';

export const CPIM_TYPE = 'message/cpim';
/** The relay looks for a CPIM head in a message's first bytes only (tracker.ts). */
export const CPIM_HEAD_LIMIT = 16 * 1024;
export const ISCOMPOSING_TYPE = 'application/im-iscomposing+xml';
export const IMDN_TYPE = 'message/imdn+xml';

const CR = 0x0d;
const LF = 0x0a;

/** Index of the CRLF that starts an empty line, searching from `from`, or -1. */
function findBlankLine(buf: Buffer, from: number): number {
  // The block is empty when it starts with CRLF.
  if (buf.length >= from + 2 && buf[from] === CR && buf[from + 1] === LF) return from;
  const i = buf.indexOf('\r\n\r\n', from, 'latin1');
  return i < 0 ? -1 : i + 2;
}

function parseLines(text: string): CpimHeader[] | null {
  const out: CpimHeader[] = [];
  if (text === '') return out;
  for (const line of text.split('\r\n')) {
    // RFC 3862 §3.3: no folding in CPIM headers; a continuation line is invalid.
    const colon = line.indexOf(':');
    if (colon <= 0 || line[0] === ' ' || line[0] === '\t') return null;
    out.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() });
  }
  return out;
}

/**
 * Parse the CPIM header block and the inner MIME headers from a body prefix.
 * `incomplete` until both blocks have ended inside `buf`.
 */
export function parseCpimHead(buf: Buffer): HeadResult {
  const end1 = findBlankLine(buf, 0);
  if (end1 < 0) return { state: 'incomplete' };
  const end2 = findBlankLine(buf, end1 + 2);
  if (end2 < 0) return { state: 'incomplete' };
  // Header lines are UTF-8 (RFC 3862 §3.1); the block excludes its final CRLF.
  const headers = parseLines(buf.toString('utf8', 0, Math.max(0, end1 - 2)));
  const inner = parseLines(buf.toString('utf8', end1 + 2, Math.max(end1 + 2, end2 - 2)));
  if (headers === null) return { state: 'invalid', reason: 'bad CPIM header line' };
  if (inner === null) return { state: 'invalid', reason: 'bad MIME header line' };
  return { state: 'complete', head: { headers, inner, headerBlockEnd: end1, bodyOffset: end2 + 2 } };
}

export function headerValue(headers: readonly CpimHeader[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find(h => h.name.toLowerCase() === lower)?.value;
}

/** Media type without parameters, lower-cased. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Classify a SEND's payload (CR 8.3.2.1.4 step 4.A.i; docs/media-relay.md "Payload classification").
 * `msrpType` is the MSRP Content-Type; `head` the parsed CPIM head when it is message/cpim.
 */
export function classify(msrpType: string | undefined, head: CpimHead | undefined): PayloadKind {
  const outer = mediaType(msrpType);
  if (outer === '') return 'empty';
  const inner = outer === CPIM_TYPE ? mediaType(head ? headerValue(head.inner, 'Content-Type') : undefined) : outer;
  if (inner === ISCOMPOSING_TYPE) return 'isComposing';
  if (inner === IMDN_TYPE) return 'imdn';
  return 'chat';
}

/** Normalised addr-spec of a CPIM From/To value: `"Bob" <sip:bob@x>` -> `sip:bob@x`. */
export function cpimAddress(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const lt = value.indexOf('<');
  const gt = value.indexOf('>', lt + 1);
  const uri = lt >= 0 && gt > lt ? value.slice(lt + 1, gt) : value.trim();
  return normaliseUri(uri);
}

/** Compare SIP/tel URIs by scheme, user and host; parameters are ignored. */
export function normaliseUri(uri: string): string {
  let u = uri.trim();
  const q = u.indexOf('?');
  if (q >= 0) u = u.slice(0, q);
  const at = u.indexOf('@');
  const semi = u.indexOf(';', at < 0 ? 0 : at);
  if (semi >= 0) u = u.slice(0, semi);
  if (at < 0) return u.toLowerCase();
  // RFC 3261 §19.1.4: the host is case-insensitive; the user part is not.
  return u.slice(0, at).replace(/^[a-z]+:/i, s => s.toLowerCase()) + u.slice(at).toLowerCase();
}

/**
 * CR 8.5: is a whole message one that history records, a chat message or a disposition
 * notification (`classify` says 'chat' or 'imdn'), not isComposing and not empty? The same
 * answer as `classify` with the parsed head, but the head is parsed only when its inner
 * header block names "composing" in some case: a chat message or an IMDN never needs it.
 */
export function isRecordedKind(msrpType: string | undefined, data: Buffer): boolean {
  const outer = msrpType === CPIM_TYPE ? CPIM_TYPE : mediaType(msrpType);
  if (outer !== CPIM_TYPE) {
    const kind = classify(msrpType, undefined);
    return kind === 'chat' || kind === 'imdn';
  }
  // As the relay reads a head (tracker.ts): within its first CPIM_HEAD_LIMIT bytes, or not at all.
  const prefix = data.length > CPIM_HEAD_LIMIT ? data.subarray(0, CPIM_HEAD_LIMIT) : data;
  // Without both header blocks there is no head, and classify says chat.
  const end1 = findBlankLine(prefix, 0);
  const end2 = end1 < 0 ? -1 : findBlankLine(prefix, end1 + 2);
  if (end2 < 0 || !/composing/i.test(prefix.toString('latin1', end1, end2))) return true;
  const r = parseCpimHead(prefix);
  return classify(msrpType, r.state === 'complete' ? r.head : undefined) !== 'isComposing';
}
