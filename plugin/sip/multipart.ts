/**
 * MIME multipart bodies in SIP (RFC 2046 §5.1, RFC 5621): a parser and a printer.
 * The parser is total: bad input gives an error value (`MultipartError`), never a throw.
 * Linear in the body (each delimiter search starts where the last one ended).
 *
 * Readings (docs/policy.md "Step 8"):
 * - Line ends: CRLF as RFC 2046 writes them; a bare LF is accepted too (as the SIP parser
 *   does). The line end before a delimiter belongs to the delimiter (§5.1.1).
 * - A delimiter line is `--boundary` at the start of the body or of a line, then optional
 *   transport padding (spaces, tabs) and the line end; the close delimiter adds `--`.
 *   `--boundary` followed by anything else is content (another, longer boundary).
 * - Preamble and epilogue are ignored.
 * - Every part must have header fields: RFC 2046 lets a part without any default to
 *   text/plain, but none of the parts a CPM INVITE carries does, so such a part is an
 *   error (`part-without-headers`).
 */
import { parseParams, type ParamValue } from './uri.js';

export type PartHeader = readonly [name: string, value: string];

export interface BodyPart {
  /** Header fields in order, names as received (compare case-insensitively). */
  readonly headers: readonly PartHeader[];
  readonly body: string;
}

export interface MediaType {
  /** Lower-cased, e.g. `multipart`, `mixed`. */
  readonly type: string;
  readonly subtype: string;
  /** Parameters, names lower-cased, values unquoted (RFC 2045 §5.1). */
  readonly params: Readonly<Record<string, ParamValue>>;
}

export type MultipartErrorCode =
  | 'not-multipart' // Content-Type is not multipart/*
  | 'no-boundary' // no boundary parameter
  | 'bad-boundary' // not 1-70 bchars, or ends in a space (RFC 2046 §5.1.1)
  | 'no-delimiter' // the boundary never starts a line
  | 'no-close-delimiter' // the body ends before `--boundary--`
  | 'part-without-headers'
  | 'bad-part-header' // a line in a part's header section that is no header field
  | 'too-many-parts';

export interface MultipartError {
  readonly kind: 'error';
  readonly code: MultipartErrorCode;
  readonly why: string;
}

export interface Multipart {
  readonly kind: 'ok';
  /** The multipart subtype, lower-cased (`mixed`, `related`, ...). */
  readonly subtype: string;
  readonly parts: readonly BodyPart[];
}

/** Parts beyond this many: `too-many-parts` (a CPM INVITE carries two or three). */
export const MAX_PARTS = 64;

/** RFC 2046 §5.1.1: `0*69<bchars> bcharsnospace`. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
/** RFC 2045 §5.1 token: a parameter value outside it is quoted. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

function fail(code: MultipartErrorCode, why: string): MultipartError {
  return { kind: 'error', code, why };
}

/** `type/subtype *(; param)` (RFC 2045 §5.1), or null when unreadable. */
export function parseMediaType(value: string): MediaType | null {
  const semi = value.indexOf(';');
  const full = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
  const slash = full.indexOf('/');
  if (slash <= 0 || slash === full.length - 1) return null;
  const type = full.slice(0, slash).trim();
  const subtype = full.slice(slash + 1).trim();
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) return null;
  const params = semi === -1 ? {} : parseParams(value.slice(semi));
  return params ? { type, subtype, params } : null;
}

/** First value of a part header field (case-insensitive name), trimmed, or undefined. */
export function partHeader(part: BodyPart, name: string): string | undefined {
  const lower = name.toLowerCase();
  return part.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
}

/** The disposition type of a Content-Disposition value (RFC 2183 §2), lower-cased, or null. */
export function dispositionType(value: string | undefined): string | null {
  if (value === undefined) return null;
  const semi = value.indexOf(';');
  const t = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
  return TOKEN.test(t) ? t : null;
}

interface Delimiter {
  /** Where the content before it ends (its preceding line end excluded). */
  readonly contentEnd: number;
  /** Where the next part starts (after the delimiter line's line end). */
  readonly next: number;
  readonly close: boolean;
}

function skipPadding(body: string, i: number): number {
  while (i < body.length && (body[i] === ' ' || body[i] === '\t')) i++;
  return i;
}

/** The line end at `i` (CRLF or LF): its length, 0 at the end of the body, -1 if none. */
function lineEnd(body: string, i: number): number {
  if (i === body.length) return 0;
  if (body[i] === '\n') return 1;
  if (body[i] === '\r' && body[i + 1] === '\n') return 2;
  return -1;
}

/** The next delimiter line at or after `from`, or null. */
function findDelimiter(body: string, dash: string, from: number): Delimiter | null {
  let i = body.indexOf(dash, from);
  while (i !== -1) {
    if (i === 0 || body[i - 1] === '\n') {
      let j = i + dash.length;
      const close = body.startsWith('--', j);
      if (close) j += 2;
      j = skipPadding(body, j);
      const end = lineEnd(body, j);
      if (end !== -1) {
        const contentEnd = i === 0 ? 0 : body[i - 2] === '\r' ? i - 2 : i - 1;
        return { contentEnd, next: j + end, close };
      }
    }
    i = body.indexOf(dash, i + 1);
  }
  return null;
}

/** One part's text: header section, blank line, body (RFC 2046 §5.1.1 body-part). */
function parsePart(text: string, n: number): BodyPart | MultipartError {
  if (text === '' || lineEnd(text, 0) > 0) return fail('part-without-headers', `part ${n} has no header fields`);
  const blank = /\r?\n\r?\n/.exec(text);
  const head = blank ? text.slice(0, blank.index) : text.replace(/\r?\n$/, '');
  const body = blank ? text.slice(blank.index + blank[0].length) : '';
  const headers: [string, string][] = [];
  for (const line of head.split(/\r?\n/)) {
    if (line[0] === ' ' || line[0] === '\t') {
      // RFC 5322 §2.2.3 folding: a continuation of the previous field
      const prev = headers[headers.length - 1];
      if (!prev) return fail('bad-part-header', `part ${n} starts with a continuation line`);
      prev[1] = `${prev[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon <= 0 ? '' : line.slice(0, colon).trim();
    if (!HEADER_NAME.test(name)) return fail('bad-part-header', `part ${n}: a header line without a name`);
    headers.push([name, line.slice(colon + 1).trim()]);
  }
  return { headers, body };
}

/**
 * Parse a multipart body given its Content-Type value (RFC 2046 §5.1.1). Never throws.
 */
export function parseMultipart(contentType: string, body: string): Multipart | MultipartError {
  const mt = parseMediaType(contentType);
  if (!mt || mt.type !== 'multipart') return fail('not-multipart', 'Content-Type is not multipart/*');
  const boundary = mt.params['boundary'];
  if (typeof boundary !== 'string' || boundary === '') return fail('no-boundary', 'multipart Content-Type without a boundary');
  if (!BOUNDARY.test(boundary)) return fail('bad-boundary', 'boundary is not 1-70 RFC 2046 characters');
  const dash = `--${boundary}`;
  let d = findDelimiter(body, dash, 0);
  if (!d) return fail('no-delimiter', 'the boundary delimiter is not in the body');
  if (d.close) return fail('no-delimiter', 'the body has a close delimiter but no part');
  const parts: BodyPart[] = [];
  while (!d.close) {
    const start = d.next;
    const nextDelimiter = findDelimiter(body, dash, start);
    if (!nextDelimiter) return fail('no-close-delimiter', 'the body ends before the close delimiter');
    if (parts.length === MAX_PARTS) return fail('too-many-parts', `more than ${MAX_PARTS} parts`);
    const part = parsePart(body.slice(start, Math.max(start, nextDelimiter.contentEnd)), parts.length + 1);
    if ('kind' in part) return part;
    parts.push(part);
    d = nextDelimiter;
  }
  return { kind: 'ok', subtype: mt.subtype, parts };
}

/** A boundary that occurs in no part (deterministic: the function stays pure). */
function chooseBoundary(parts: readonly BodyPart[]): string {
  const occurs = (b: string): boolean => parts.some((p) => p.body.includes(b) || p.headers.some(([n, v]) => n.includes(b) || v.includes(b)));
  let b = 'pf-part-boundary';
  for (let n = 1; occurs(b); n++) b = `pf-part-boundary-${n}`;
  return b;
}

/**
 * Print parts as a multipart body (RFC 2046 §5.1.1, CRLF line ends) with a boundary that
 * occurs in none of them. Returns the Content-Type value to send with it.
 */
export function printMultipart(parts: readonly BodyPart[], subtype = 'mixed'): { readonly contentType: string; readonly body: string } {
  const boundary = chooseBoundary(parts);
  let body = '';
  for (const p of parts) {
    body += `--${boundary}\r\n`;
    for (const [name, value] of p.headers) body += `${name}: ${value}\r\n`;
    body += `\r\n${p.body}\r\n`;
  }
  body += `--${boundary}--\r\n`;
  return { contentType: `multipart/${subtype};boundary=${boundary}`, body };
}
