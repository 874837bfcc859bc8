/**
 * A small, strict-enough SIP message parser (RFC 3261 §7) for the decision service.
 * Kamailio has already parsed and accepted the message; this parser only needs the
 * start line, the header fields (as a case-insensitive multi-map, compact forms
 * expanded, RFC 3261 §7.3.3) and the body. It never throws anything but SipParseError.
 */
import type { SipParseErrorCode } from '../errors.js';


export class SipParseError extends Error {
  override readonly name = 'SipParseError';
  constructor(
    readonly code: SipParseErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** RFC 3261 §7.3.3 and later RFCs' compact forms, lower-case -> canonical name. */
const COMPACT: Readonly<Record<string, string>> = {
  a: 'Accept-Contact', // RFC 3841
  b: 'Referred-By', // RFC 3892
  c: 'Content-Type',
  d: 'Request-Disposition', // RFC 3841
  e: 'Content-Encoding',
  f: 'From',
  i: 'Call-ID',
  j: 'Reject-Contact', // RFC 3841
  k: 'Supported',
  l: 'Content-Length',
  m: 'Contact',
  o: 'Event', // RFC 6665
  r: 'Refer-To', // RFC 3515
  s: 'Subject',
  t: 'To',
  u: 'Allow-Events', // RFC 6665
  v: 'Via',
  x: 'Session-Expires', // RFC 4028
  y: 'Identity', // RFC 8224
};

/** Header fields whose values may not be split at commas (RFC 3261 §7.3.1). */
const NO_COMMA_SPLIT = new Set([
  'www-authenticate',
  'authorization',
  'proxy-authenticate',
  'proxy-authorization',
  'date',
  'user-agent',
  'server',
  'subject',
  'call-id',
  'session-replaces',
  'conversation-id',
  'contribution-id',
  'inreplyto-contribution-id',
  'warning',
]);

/** Canonical (first-seen) spelling for a lower-case header name. */
export function canonicalHeaderName(name: string): string {
  // Compact forms are one letter; an own-property check keeps `constructor` & co. names.
  if (name.length !== 1) return name;
  const lower = name.toLowerCase();
  return Object.hasOwn(COMPACT, lower) ? COMPACT[lower]! : name;
}

export interface SipHeader {
  /** The name as it should be printed: compact forms expanded, else as received. */
  readonly name: string;
  readonly value: string;
}

interface Common {
  readonly headers: readonly SipHeader[];
  readonly body: string;
  /** First value of a header field, trimmed, or undefined. Case-insensitive, compact forms accepted. */
  get(name: string): string | undefined;
  /** Every header field line's value, in order (not split at commas). */
  getAll(name: string): readonly string[];
  /**
   * Every comma-separated value of a header field, across all its lines, in order.
   * Commas inside quotes and `<...>` do not split (RFC 3261 §7.3.1).
   */
  getValues(name: string): readonly string[];
}

export interface SipRequest extends Common {
  readonly kind: 'request';
  readonly method: string;
  readonly ruri: string;
}

export interface SipResponse extends Common {
  readonly kind: 'response';
  readonly status: number;
  readonly reason: string;
}

export type SipMessage = SipRequest | SipResponse;

export const MAX_SIP_MESSAGE_BYTES = 1024 * 1024;

const REQUEST_LINE = /^([A-Za-z!%*_+`'~.-]+) (\S+) SIP\/2\.0$/;
const STATUS_LINE = /^SIP\/2\.0 ([1-6]\d\d)(?: (.*))?$/;
const HEADER_NAME = /^[A-Za-z0-9!%*_+`'~.-]+$/;

/**
 * Split a header field value at top-level commas (outside quotes and angle brackets).
 * Linear in the input.
 */
export function splitCommaList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value.charCodeAt(i);
    if (inQuote) {
      if (ch === 0x5c /* \ */) i++;
      else if (ch === 0x22 /* " */) inQuote = false;
    } else if (ch === 0x22) inQuote = true;
    else if (ch === 0x3c /* < */) inAngle = true;
    else if (ch === 0x3e /* > */) inAngle = false;
    else if (ch === 0x2c /* , */ && !inAngle) {
      const part = value.slice(start, i).trim();
      if (part) out.push(part);
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last) out.push(last);
  return out;
}

/** Lower-cased name -> values in order. */
function indexHeaders(headers: readonly SipHeader[]): Map<string, string[]> {
  const index = new Map<string, string[]>();
  for (const h of headers) {
    const key = h.name.toLowerCase();
    const list = index.get(key);
    if (list) list.push(h.value);
    else index.set(key, [h.value]);
  }
  return index;
}

/** get / getAll / getValues over the lines of one lower-cased canonical name. */
abstract class HeaderFields {
  /** The lines of a lower-cased canonical name (an index key), in order. */
  abstract linesOf(key: string): readonly string[];
  get(name: string): string | undefined {
    return this.linesOf(canonicalHeaderName(name).toLowerCase())[0];
  }
  getAll(name: string): readonly string[] {
    return this.linesOf(canonicalHeaderName(name).toLowerCase());
  }
  getValues(name: string): readonly string[] {
    const key = canonicalHeaderName(name).toLowerCase();
    const lines = this.linesOf(key);
    if (NO_COMMA_SPLIT.has(key)) return lines;
    const out: string[] = [];
    for (const l of lines) {
      // no comma: one value (splitCommaList would give the same)
      if (!l.includes(',')) {
        const v = l.trim();
        if (v) out.push(v);
      } else for (const v of splitCommaList(l)) out.push(v);
    }
    return out;
  }
}

class Parsed extends HeaderFields implements Common {
  /**
   * Built on the first read and never changed (lists may be shared). Lazy: many messages
   * the B2BUA builds are only printed, and the indexes were about a tenth of the B2BUA's
   * sampled heap under load.
   */
  #index: Map<string, string[]> | null = null;
  constructor(
    readonly headers: readonly SipHeader[],
    readonly body: string,
  ) {
    super();
  }
  linesOf(key: string): readonly string[] {
    return (this.#index ??= indexHeaders(this.headers)).get(key) ?? [];
  }
}

/**
 * A parsed request with header fields removed (`drop`: lower-cased canonical names) and
 * others appended: reads go to the original's index, nothing is copied; `headers` is
 * built on first use.
 */
class EditedRequest extends HeaderFields implements SipRequest {
  readonly kind = 'request';
  #headers: readonly SipHeader[] | null = null;
  readonly #added: Map<string, string[]>;
  constructor(
    private readonly base: Request,
    private readonly drop: ReadonlySet<string>,
    private readonly appended: readonly SipHeader[],
  ) {
    super();
    this.#added = indexHeaders(appended);
  }
  get method(): string {
    return this.base.method;
  }
  get ruri(): string {
    return this.base.ruri;
  }
  get body(): string {
    return this.base.body;
  }
  get headers(): readonly SipHeader[] {
    if (this.#headers === null) {
      const out: SipHeader[] = [];
      for (const h of this.base.headers) if (!this.drop.has(h.name.toLowerCase())) out.push(h);
      for (const h of this.appended) out.push(h);
      this.#headers = out;
    }
    return this.#headers;
  }
  linesOf(key: string): readonly string[] {
    const kept = this.drop.has(key) ? [] : this.base.linesOf(key);
    const added = this.#added.get(key);
    if (!added) return kept;
    return kept.length === 0 ? added : [...kept, ...added];
  }
}

class Request extends Parsed implements SipRequest {
  readonly kind = 'request';
  constructor(
    readonly method: string,
    readonly ruri: string,
    headers: readonly SipHeader[],
    body: string,
  ) {
    super(headers, body);
  }
}

class Response extends Parsed implements SipResponse {
  readonly kind = 'response';
  constructor(
    readonly status: number,
    readonly reason: string,
    headers: readonly SipHeader[],
    body: string,
  ) {
    super(headers, body);
  }
}

/**
 * Header lines `lines[from..]` appended to `headers` (folded lines joined, RFC 3261
 * §7.3.1; empty lines skipped). Error line numbers count `lines` from 1.
 * @throws SipParseError
 */
function parseHeaderLines(lines: readonly string[], from: number, headers: SipHeader[]): void {
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    if (line[0] === ' ' || line[0] === '\t') {
      // Folded continuation of the previous header line.
      const prev = headers.pop();
      if (!prev) throw new SipParseError('SIP_BAD_HEADER', 'continuation line without a header');
      headers.push({ name: prev.name, value: `${prev.value} ${line.trim()}` });
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError('SIP_BAD_HEADER', `header line without a name: line ${i + 1}`);
    const rawName = line.slice(0, colon).trim();
    if (!HEADER_NAME.test(rawName)) {
      throw new SipParseError('SIP_BAD_HEADER', `bad header name on line ${i + 1}`);
    }
    headers.push({ name: canonicalHeaderName(rawName), value: line.slice(colon + 1).trim() });
  }
}

/**
 * The request as a proxy forwards it after `remove_hf` of `remove` (names, compact forms
 * accepted, case-insensitive) and `append_hf` of `hdrs` (whole `Name: value` CRLF lines):
 * the same SipRequest `parseSipMessage` gives on that edited text, without printing and
 * re-parsing the message. Null when `hdrs` is not plain header lines or the edited
 * message could exceed MAX_SIP_MESSAGE_BYTES (the caller then re-parses the text).
 */
export function editedRequest(msg: SipRequest, remove: readonly string[], hdrs: string): SipRequest | null {
  // Upper bound of the edited text's length: start line, header lines (removed ones
  // too), blank line, body.
  let length = msg.method.length + msg.ruri.length + 12 + hdrs.length + 2 + msg.body.length;
  for (const h of msg.headers) length += h.name.length + h.value.length + 4;
  if (length * 3 > MAX_SIP_MESSAGE_BYTES) return null;
  const drop = new Set(remove.map((r) => canonicalHeaderName(r).toLowerCase()));
  const appended: SipHeader[] = [];
  if (hdrs !== '') {
    // Only whole lines, none empty (an empty one would start the body) or folded.
    if (!hdrs.endsWith('\r\n') || hdrs.startsWith(' ') || hdrs.startsWith('\t') || hdrs.includes('\n\n') || hdrs.includes('\r\n\r\n')) return null;
    const lines = hdrs.slice(0, -2).split('\r\n');
    for (const l of lines) if (l === '' || l.includes('\n') || l[0] === ' ' || l[0] === '\t') return null;
    try {
      parseHeaderLines(lines, 0, appended);
    } catch (err) {
      if (err instanceof SipParseError) return null;
      throw err;
    }
  }
  // Parsed names are canonical, so its index keys are the names `drop` holds.
  if (msg instanceof Request) return new EditedRequest(msg, drop, appended);
  const headers = msg.headers.filter((h) => !drop.has(canonicalHeaderName(h.name).toLowerCase()));
  return new Request(msg.method, msg.ruri, [...headers, ...appended], msg.body);
}

/**
 * The message `parseSipMessage` gives for the text a printer writes from these parts
 * (`<start line>CRLF`, one `Name: value` line per header, CRLF, body), without printing
 * and parsing it: names checked and canonical, values trimmed, the method upper-cased.
 * The B2BUA's builder (plugin/b2bua/sip/build.ts) uses it for every message it sends;
 * test/unit/sip/message-parts.test.ts checks both ways agree.
 * @throws SipParseError where the printed text would not parse the same
 */
export function messageFromParts(
  start: { readonly method: string; readonly ruri: string } | { readonly status: number; readonly reason: string },
  headers: readonly (readonly [name: string, value: string])[],
  body: string,
): SipMessage {
  const fields: SipHeader[] = [];
  for (const [name, value] of headers) {
    if (!HEADER_NAME.test(name)) throw new SipParseError('SIP_BAD_HEADER', `bad header name ${JSON.stringify(name)}`);
    if (value.includes('\n') || value.includes('\r')) throw new SipParseError('SIP_BAD_HEADER', `line break in header ${name}`);
    fields.push({ name: canonicalHeaderName(name), value: value.trim() });
  }
  if ('method' in start) {
    const line = `${start.method} ${start.ruri} SIP/2.0`;
    const m = REQUEST_LINE.exec(line);
    if (!m || m[2] !== start.ruri) throw new SipParseError('SIP_BAD_START_LINE', `bad request line ${JSON.stringify(line)}`);
    return new Request(start.method.toUpperCase(), start.ruri, fields, body);
  }
  const line = `SIP/2.0 ${start.status} ${start.reason}`;
  if (!STATUS_LINE.test(line) || /[\r\n]/.test(start.reason)) throw new SipParseError('SIP_BAD_START_LINE', `bad status line ${JSON.stringify(line)}`);
  return new Response(start.status, start.reason, fields, body);
}

/**
 * Parse one SIP message. Accepts CRLF or bare LF line ends and folded header lines
 * (RFC 3261 §7.3.1). The body is everything after the first empty line; Content-Length
 * is not enforced (Kamailio framed the message already).
 * @throws SipParseError
 */
export function parseSipMessage(raw: string): SipMessage {
  // Count bytes, not characters (a character is at most 3 UTF-8 bytes in a JS string unit).
  if (raw.length > MAX_SIP_MESSAGE_BYTES || (raw.length * 3 > MAX_SIP_MESSAGE_BYTES && Buffer.byteLength(raw, 'utf8') > MAX_SIP_MESSAGE_BYTES)) {
    throw new SipParseError('SIP_TOO_LARGE', `SIP message longer than ${MAX_SIP_MESSAGE_BYTES} bytes`);
  }
  // Skip leading CRLFs (keep-alives, RFC 5626 §3.5.1).
  let pos = 0;
  while (pos < raw.length && (raw[pos] === '\r' || raw[pos] === '\n')) pos++;
  if (pos >= raw.length) throw new SipParseError('SIP_EMPTY', 'empty SIP message');

  let headEnd = raw.indexOf('\r\n\r\n', pos);
  let bodyStart = headEnd + 4;
  const lfEnd = raw.indexOf('\n\n', pos);
  if (lfEnd !== -1 && (headEnd === -1 || lfEnd < headEnd)) {
    headEnd = lfEnd;
    bodyStart = lfEnd + 2;
  }
  if (headEnd === -1) {
    headEnd = raw.length;
    bodyStart = raw.length;
  }
  const lines = raw.slice(pos, headEnd).split(/\r?\n/);
  const start = lines[0] ?? '';
  const headers: SipHeader[] = [];
  parseHeaderLines(lines, 1, headers);
  const body = raw.slice(bodyStart);

  const req = REQUEST_LINE.exec(start);
  if (req) return new Request(req[1]!.toUpperCase(), req[2]!, headers, body);
  const res = STATUS_LINE.exec(start);
  if (res) return new Response(Number(res[1]), res[2] ?? '', headers, body);
  throw new SipParseError('SIP_BAD_START_LINE', 'neither a request line nor a status line');
}
