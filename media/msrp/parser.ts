// Incremental MSRP frame parser (RFC 4975 §7.1, ABNF §9).
//
//   idle ──first byte──▶ head ──blank line──▶ body ──end-line──▶ idle
//                         └────end-line (no body)────────────────▶ idle
//
// Works on Buffers: body bytes are passed through as they arrive, never decoded,
// never buffered whole. Only the head (bounded by ParserLimits) is accumulated.
import { Buffer, isAscii } from 'node:buffer';
import { MsrpError, type PartialHead } from './errors.js';
import type {
  ContinuationFlag,
  Frame,
  FrameHead,
  MsrpHeader,
  ParserHandler,
  ParserLimits,
} from './types.js';

export const DEFAULT_LIMITS: Readonly<ParserLimits> = Object.freeze({
  maxStartLine: 1024,
  maxHeaderBlock: 16384,
  maxHeaders: 64,
});

export const DEFAULT_MAX_BODY = 1024 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const END_DASHES = '-------';
const EMPTY = Buffer.alloc(0);

// RFC 4975 §9: transact-id = ident = ALPHANUM 3*31ident-char.
const TID = '[A-Za-z0-9][A-Za-z0-9.\\-+%=]{3,31}';
const REQ_LINE = new RegExp(`^MSRP (${TID}) ([A-Z]+)$`);
const RESP_LINE = new RegExp(`^MSRP (${TID}) ([0-9]{3})(?: (.*))?$`, 's');
const TID_PREFIX = new RegExp(`^MSRP (${TID}) `);
// hname = ALPHA *(alphanum / "-" / "_"), generalised to an RFC 7230 token.
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*)$/s;
// utf8text may hold HTAB but no other control character.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

const utf8 = new TextDecoder('utf-8', { fatal: true });
// For a header value alone: a leading U+FEFF is data there, not a byte order mark.
const utf8Keep = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type ParserState = 'idle' | 'head' | 'body';

/** Growable byte buffer for the head; never grows past the caller's limit. */
class HeadBuffer {
  private buf = Buffer.allocUnsafe(512);
  len = 0;

  append(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.len + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.len + n) cap *= 2;
      const next = Buffer.allocUnsafe(cap);
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    src.copy(this.buf, this.len, start, end);
    this.len += n;
  }

  /** The backing bytes (valid up to len). */
  get bytes(): Buffer {
    return this.buf;
  }

  slice(start: number, end: number): Buffer {
    return this.buf.subarray(start, end);
  }

  copyOut(n: number = this.len): Buffer {
    return Buffer.from(this.buf.subarray(0, n));
  }

  reset(): void {
    this.len = 0;
    if (this.buf.length > 64 * 1024) this.buf = Buffer.allocUnsafe(512);
  }
}

function isFlag(b: number | undefined): b is 0x24 | 0x2b | 0x23 {
  return b === 0x24 || b === 0x2b || b === 0x23;
}

function decodeUtf8(b: Buffer, what: string, partial: () => PartialHead | undefined): string {
  // ASCII fast path: most heads are pure ASCII.
  if (isAscii(b)) return b.toString('latin1');
  try {
    return utf8.decode(b);
  } catch {
    throw new MsrpError('MSRP_BAD_ENCODING', `${what} is not valid UTF-8`, partial());
  }
}

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

/** Byte class table: 1 for the bytes `chars` lists (ASCII). */
function byteTable(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
// RFC 7230 token (the header name), ident first char and ident-char (RFC 4975 §9).
const TOKEN = byteTable(`${ALNUM}!#$%&'*+.^_\`|~-`);
const TID_FIRST = byteTable(ALNUM);
const TID_CHAR = byteTable(`${ALNUM}.-+%=`);
// Control characters not allowed in utf8text (HTAB is allowed).
const VALUE_CTL = (() => {
  const t = new Uint8Array(256);
  for (let b = 0; b < 0x20; b++) if (b !== 0x09) t[b] = 1;
  t[0x7f] = 1;
  return t;
})();
// Buffer#latin1Slice skips toString()'s argument and encoding dispatch (Node's own
// binding, present in every supported Node; toString() is the fallback).
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: (this: Buffer, start: number, end: number) => string }).latin1Slice;

function latin1(buf: Buffer, start: number, end: number): string {
  return latin1Slice !== undefined ? latin1Slice.call(buf, start, end) : buf.toString('latin1', start, end);
}

/** buf[start, end) in a buffer of its own (from the pool). */
function copyBytes(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

// Header names as usually written: reused instead of a new string per header line.
const KNOWN_NAMES = ['To-Path', 'From-Path', 'Message-ID', 'Byte-Range', 'Content-Type', 'Success-Report', 'Failure-Report', 'Status'];
const KNOWN_BY_LENGTH: Array<string[] | undefined> = [];
for (const n of KNOWN_NAMES) (KNOWN_BY_LENGTH[n.length] ??= []).push(n);

/** The known name spelled exactly as buf[begin, end), if any. */
function knownName(buf: Buffer, begin: number, end: number): string | undefined {
  const cands = KNOWN_BY_LENGTH[end - begin];
  if (cands === undefined) return undefined;
  for (const n of cands) {
    let i = 0;
    while (i < n.length && n.charCodeAt(i) === buf[begin + i]) i++;
    if (i === n.length) return n;
  }
  return undefined;
}

const LINE_HEADER = 0;
const LINE_BLANK = 1;
const LINE_END = 2;
const MARKER_PREFIX = 2 + END_DASHES.length;

/**
 * Streaming parser: emits frameStart(head) / body(piece)* / frameEnd(flag) per frame.
 * Throws MsrpError from feed(); after that the parser is failed for good.
 */
export class MsrpStreamParser {
  readonly limits: ParserLimits;
  private readonly handler: ParserHandler;
  private st: ParserState = 'idle';
  private failed = false;
  private readonly head = new HeadBuffer();
  private lineStart = 0;
  private tid = '';
  private method: string | undefined;
  private startLine: { kind: 'request'; method: string } | { kind: 'response'; status: number; comment?: string } | undefined;
  private headers: MsrpHeader[] = [];
  /** `CRLF "-------" tid` for the frame in its body. */
  private marker = EMPTY;
  /** Backing store of `marker`: `CRLF "-------"` then the transaction id (at most 32 bytes). */
  private readonly markerBuf = Buffer.from(`\r\n${END_DASHES}${'x'.repeat(32)}`, 'latin1');
  /** Body bytes held back because they may begin the end-line. */
  private tail = EMPTY;
  /** The read holding the start-line being parsed in place (see partial()). */
  private scanSrc: Buffer | undefined;
  private scanOff = 0;
  /** Flag of the end-line just matched in the head (bodiless frame). */
  private endFlag: ContinuationFlag = '$';

  constructor(handler: ParserHandler, limits?: Partial<ParserLimits>) {
    this.handler = handler;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  get state(): ParserState {
    return this.st;
  }

  feed(chunk: Buffer): void {
    if (this.failed) throw new MsrpError('MSRP_PARSER_FAILED', 'parser already failed');
    try {
      let off = 0;
      while (off < chunk.length) {
        off = this.st === 'body' ? this.feedBody(chunk, off) : this.feedHead(chunk, off);
      }
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /** Call at end of stream: throws MSRP_TRUNCATED when a frame is unfinished. */
  end(): void {
    if (this.failed) return;
    if (this.st !== 'idle') {
      this.failed = true;
      throw new MsrpError('MSRP_TRUNCATED', `stream ended inside a frame (${this.st})`, this.partial());
    }
  }

  private partial(): PartialHead | undefined {
    if (this.tid !== '') {
      const p: PartialHead = { transactionId: this.tid, headers: [...this.headers] };
      if (this.method !== undefined) p.method = this.method;
      return p;
    }
    // Start-line unfinished or too long: recover the transaction id if it is readable.
    const src = this.head.len > 0 || this.scanSrc === undefined
      ? this.head.slice(0, Math.min(this.head.len, 64))
      : this.scanSrc.subarray(this.scanOff, this.scanOff + 64);
    const m = TID_PREFIX.exec(src.toString('latin1'));
    return m ? { transactionId: m[1]!, headers: [] } : undefined;
  }

  private feedHead(chunk: Buffer, off: number): number {
    this.st = 'head';
    if (this.head.len === 0) return this.scanHead(chunk, off);
    const lf = chunk.indexOf(LF, off);
    const end = lf === -1 ? chunk.length : lf + 1;
    const n = end - off;
    const onStartLine = this.lineStart === 0;
    if (onStartLine && this.head.len + n > this.limits.maxStartLine) {
      // Keep what fits so partial() can still read the transaction id.
      this.head.append(chunk, off, off + Math.min(n, Math.max(0, 64 - this.head.len)));
      throw new MsrpError('MSRP_START_LINE_TOO_LARGE', `start-line exceeds ${this.limits.maxStartLine} bytes`, this.partial());
    }
    if (this.head.len + n > this.limits.maxHeaderBlock) {
      throw new MsrpError('MSRP_HEADER_TOO_LARGE', `head exceeds ${this.limits.maxHeaderBlock} bytes`, this.partial());
    }
    this.head.append(chunk, off, end);
    if (lf === -1) return end;
    // A full line sits at head[lineStart, len).
    const lineBegin = this.lineStart;
    this.lineStart = this.head.len;
    const buf = this.head.bytes;
    const r = this.onLine(buf, lineBegin, this.head.len);
    if (r === LINE_BLANK) this.emitHead(true, this.head.copyOut());
    else if (r === LINE_END) this.endBodiless(this.head.copyOut(lineBegin));
    return end;
  }

  /**
   * Fast path for a head that starts at chunk[off]: lines are parsed in place and the head
   * copied once, as `raw`. Falls back to the buffered path when the head is cut by the read.
   */
  private scanHead(chunk: Buffer, off: number): number {
    const { maxStartLine, maxHeaderBlock } = this.limits;
    let pos = off;
    // For partial(), should the start-line be bad.
    this.scanSrc = chunk;
    this.scanOff = off;
    const len = chunk.length;
    for (;;) {
      // Head lines are short: a plain loop costs less than indexOf()'s call.
      let lf = pos;
      while (lf < len && chunk[lf] !== LF) lf++;
      if (lf === len) lf = -1;
      const end = lf === -1 ? len : lf + 1;
      const size = end - off;
      if (this.startLine === undefined && size > maxStartLine) {
        // Keep what fits so partial() can still read the transaction id.
        this.head.append(chunk, off, off + Math.min(size, 64));
        throw new MsrpError('MSRP_START_LINE_TOO_LARGE', `start-line exceeds ${maxStartLine} bytes`, this.partial());
      }
      if (size > maxHeaderBlock) {
        throw new MsrpError('MSRP_HEADER_TOO_LARGE', `head exceeds ${maxHeaderBlock} bytes`, this.partial());
      }
      if (lf === -1) {
        // Head continues in a later read: buffer it and go on line by line.
        this.head.append(chunk, off, end);
        this.lineStart = pos - off;
        this.scanSrc = undefined;
        return end;
      }
      const r = this.onLine(chunk, pos, end);
      this.scanSrc = undefined;
      if (r === LINE_BLANK) {
        this.emitHead(true, copyBytes(chunk, off, end));
        return end;
      }
      if (r === LINE_END) {
        this.endBodiless(copyBytes(chunk, off, pos));
        return end;
      }
      pos = end;
    }
  }

  /** Line buf[begin, end) ends in LF: start-line, header, blank line or end-line. */
  private onLine(buf: Buffer, begin: number, end: number): number {
    const lineEnd = end - 2;
    if (lineEnd < begin || buf[lineEnd] !== CR) {
      throw new MsrpError(this.tid === '' ? 'MSRP_BAD_START_LINE' : 'MSRP_BAD_HEADER', 'line not terminated by CRLF', this.partial());
    }
    if (this.startLine === undefined) {
      if (!this.fastStartLine(buf, begin, lineEnd)) this.parseStartLine(buf.subarray(begin, lineEnd));
      return LINE_HEADER;
    }
    const len = lineEnd - begin;
    // Blank line: a body section follows (RFC 4975 §9 content-stuff).
    if (len === 0) return LINE_BLANK;
    if (len === END_DASHES.length + this.tid.length + 1 && buf[begin] === 0x2d) {
      const flag = buf[lineEnd - 1];
      if (isFlag(flag) && latin1(buf, begin, lineEnd - 1) === END_DASHES + this.tid) {
        this.endFlag = String.fromCharCode(flag) as ContinuationFlag;
        return LINE_END;
      }
    }
    if (this.headers.length >= this.limits.maxHeaders) {
      throw new MsrpError('MSRP_TOO_MANY_HEADERS', `more than ${this.limits.maxHeaders} headers`, this.partial());
    }
    if (!this.fastHeader(buf, begin, lineEnd)) this.slowHeader(buf.subarray(begin, lineEnd));
    return LINE_HEADER;
  }

  /** `Name: value` parsed on bytes; false when anything is unusual (the slow path decides). */
  private fastHeader(buf: Buffer, begin: number, end: number): boolean {
    let i = begin;
    while (i < end && TOKEN[buf[i]!] === 1) i++;
    if (i === begin || i === end || buf[i] !== 0x3a) return false;
    const colon = i++;
    while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
    const vstart = i;
    let ascii = true;
    for (; i < end; i++) {
      const b = buf[i]!;
      if (b >= 0x80) ascii = false;
      else if (VALUE_CTL[b] === 1) return false;
    }
    let value: string;
    if (ascii) value = latin1(buf, vstart, end);
    else {
      try {
        value = utf8Keep.decode(buf.subarray(vstart, end));
      } catch {
        return false;
      }
    }
    this.headers.push({ name: knownName(buf, begin, colon) ?? latin1(buf, begin, colon), value });
    return true;
  }

  private slowHeader(line: Buffer): void {
    const text = decodeUtf8(line, 'header line', () => this.partial());
    const m = HEADER_LINE.exec(text);
    if (!m || CONTROL.test(m[2]!)) {
      throw new MsrpError('MSRP_BAD_HEADER', 'malformed header line', this.partial());
    }
    this.headers.push({ name: m[1]!, value: m[2]! });
  }

  /** `MSRP tid METHOD` / `MSRP tid NNN [comment]` in plain ASCII; false leaves it to the regexes. */
  private fastStartLine(buf: Buffer, begin: number, end: number): boolean {
    if (end - begin < 11 || buf[begin] !== 0x4d || buf[begin + 1] !== 0x53 || buf[begin + 2] !== 0x52 ||
      buf[begin + 3] !== 0x50 || buf[begin + 4] !== 0x20) return false;
    const t0 = begin + 5;
    if (TID_FIRST[buf[t0]!] !== 1) return false;
    let i = t0 + 1;
    while (i < end && TID_CHAR[buf[i]!] === 1) i++;
    const tlen = i - t0;
    if (tlen < 4 || tlen > 32 || i === end || buf[i] !== 0x20) return false;
    const m0 = i + 1;
    let j = m0;
    while (j < end && buf[j]! >= 0x41 && buf[j]! <= 0x5a) j++;
    if (j === end && j > m0) {
      const method = j - m0 === 4 && buf[m0] === 0x53 && buf[m0 + 1] === 0x45 && buf[m0 + 2] === 0x4e && buf[m0 + 3] === 0x44
        ? 'SEND' : latin1(buf, m0, j);
      this.tid = latin1(buf, t0, i);
      this.method = method;
      this.startLine = { kind: 'request', method };
      return true;
    }
    if (end - m0 < 3 || !isDigit(buf[m0]) || !isDigit(buf[m0 + 1]) || !isDigit(buf[m0 + 2])) return false;
    const status = (buf[m0]! - 0x30) * 100 + (buf[m0 + 1]! - 0x30) * 10 + (buf[m0 + 2]! - 0x30);
    if (m0 + 3 === end) {
      this.tid = latin1(buf, t0, i);
      this.startLine = { kind: 'response', status };
      return true;
    }
    if (buf[m0 + 3] !== 0x20) return false;
    for (let k = m0 + 4; k < end; k++) {
      const b = buf[k]!;
      if (b >= 0x80 || VALUE_CTL[b] === 1) return false;
    }
    this.tid = latin1(buf, t0, i);
    this.startLine = { kind: 'response', status, comment: latin1(buf, m0 + 4, end) };
    return true;
  }

  private parseStartLine(line: Buffer): void {
    const text = decodeUtf8(line, 'start-line', () => this.partial());
    const req = REQ_LINE.exec(text);
    if (req) {
      this.tid = req[1]!;
      this.method = req[2]!;
      this.startLine = { kind: 'request', method: req[2]! };
      return;
    }
    const resp = RESP_LINE.exec(text);
    if (resp && !CONTROL.test(resp[3] ?? '')) {
      this.tid = resp[1]!;
      const status = Number(resp[2]);
      this.startLine = resp[3] === undefined ? { kind: 'response', status } : { kind: 'response', status, comment: resp[3] };
      return;
    }
    throw new MsrpError('MSRP_BAD_START_LINE', 'malformed start-line', this.partial());
  }

  /** raw: the head bytes (without the end-line of a bodiless frame). */
  private emitHead(hasBody: boolean, raw: Buffer): void {
    const sl = this.startLine!;
    let head: FrameHead;
    if (sl.kind === 'request') {
      head = { kind: 'request', method: sl.method, transactionId: this.tid, headers: this.headers, hasBody, raw };
    } else {
      head = { kind: 'response', status: sl.status, transactionId: this.tid, headers: this.headers, hasBody, raw };
      if (sl.comment !== undefined) head.comment = sl.comment;
    }
    this.head.reset();
    this.lineStart = 0;
    if (hasBody) {
      this.st = 'body';
      const n = MARKER_PREFIX + this.tid.length;
      this.markerBuf.write(this.tid, MARKER_PREFIX, 'latin1');
      this.marker = this.markerBuf.subarray(0, n);
      this.tail = EMPTY;
    }
    this.handler.frameStart(head);
  }

  private endBodiless(raw: Buffer): void {
    this.emitHead(false, raw);
    this.finishFrame(this.endFlag);
  }

  private finishFrame(flag: ContinuationFlag): void {
    this.st = 'idle';
    this.tid = '';
    this.method = undefined;
    this.startLine = undefined;
    this.headers = [];
    this.tail = EMPTY;
    this.handler.frameEnd(flag);
  }

  private feedBody(chunk: Buffer, off: number): number {
    const full = this.marker.length + 3; // marker + flag + CRLF
    const held = this.tail.length;
    if (held > 0) {
      const avail = chunk.length - off;
      if (avail < full - 1) {
        // Small read: search tail + read together (both short).
        return this.searchBody(Buffer.concat([this.tail, chunk.subarray(off)]), chunk, off, held);
      }
      // End-lines starting inside the held bytes are complete in tail + (full - 1) bytes.
      const region = Buffer.concat([this.tail, chunk.subarray(off, off + full - 1)]);
      for (let from = 0; ; ) {
        const idx = region.indexOf(this.marker, from);
        if (idx === -1 || idx >= held) break;
        if (this.isEndAt(region, idx)) {
          this.emitBody(region.subarray(0, idx));
          return this.endFrame(region, idx, off, held);
        }
        from = idx + 1;
      }
      // No end-line starts in the held bytes: they are body. Search the read itself, uncopied.
      this.emitBody(this.tail);
      this.tail = EMPTY;
    }
    return this.searchBody(chunk.subarray(off), chunk, off, 0);
  }

  /** Search `data` (= held tail bytes + chunk[off..]) for this frame's end-line. */
  private searchBody(data: Buffer, chunk: Buffer, off: number, held: number): number {
    const marker = this.marker;
    const full = marker.length + 3;
    for (let from = 0; ; ) {
      const idx = data.indexOf(marker, from);
      if (idx === -1) {
        // Hold back a suffix that might start the marker.
        const keep = Math.min(data.length, marker.length - 1);
        this.emitBody(data.subarray(0, data.length - keep));
        this.tail = Buffer.from(data.subarray(data.length - keep));
        return chunk.length;
      }
      if (idx + full > data.length) {
        this.emitBody(data.subarray(0, idx));
        this.tail = Buffer.from(data.subarray(idx));
        return chunk.length;
      }
      if (this.isEndAt(data, idx)) {
        this.emitBody(data.subarray(0, idx));
        return this.endFrame(data, idx, off, held);
      }
      // `-------<tid>` inside the body not followed by flag CRLF: it is data.
      from = idx + 1;
    }
  }

  private isEndAt(data: Buffer, idx: number): boolean {
    const m = this.marker.length;
    return isFlag(data[idx + m]) && data[idx + m + 1] === CR && data[idx + m + 2] === LF;
  }

  /** Finish the frame whose end-line starts at data[idx]; returns the chunk offset after it. */
  private endFrame(data: Buffer, idx: number, off: number, held: number): number {
    const flag = String.fromCharCode(data[idx + this.marker.length]!) as ContinuationFlag;
    const after = off + idx + this.marker.length + 3 - held;
    this.tail = EMPTY;
    this.finishFrame(flag);
    return after;
  }

  private emitBody(piece: Buffer): void {
    if (piece.length > 0) this.handler.body(piece);
  }
}

export interface FrameParserOptions {
  limits?: Partial<ParserLimits>;
  /** Max body bytes of one frame (chunk). Default 1 MiB. */
  maxBodySize?: number;
}

/** Convenience layer: whole frames (chunks), each body bounded by maxBodySize. */
export class MsrpFrameParser {
  private readonly stream: MsrpStreamParser;
  private readonly maxBody: number;
  private out: Frame[] = [];
  private cur: FrameHead | undefined;
  private pieces: Buffer[] = [];
  private size = 0;

  constructor(opts: FrameParserOptions = {}) {
    this.maxBody = opts.maxBodySize ?? DEFAULT_MAX_BODY;
    this.stream = new MsrpStreamParser(
      {
        frameStart: (head) => {
          this.cur = head;
          this.pieces = [];
          this.size = 0;
        },
        body: (piece) => {
          this.size += piece.length;
          if (this.size > this.maxBody) {
            const h = this.cur!;
            const p: PartialHead = { transactionId: h.transactionId, headers: h.headers };
            if (h.kind === 'request') p.method = h.method;
            throw new MsrpError('MSRP_BODY_TOO_LARGE', `body exceeds ${this.maxBody} bytes`, p);
          }
          this.pieces.push(Buffer.from(piece));
        },
        frameEnd: (flag) => {
          this.out.push({ head: this.cur!, body: Buffer.concat(this.pieces), flag });
          this.cur = undefined;
          this.pieces = [];
        },
      },
      opts.limits,
    );
  }

  get state(): ParserState {
    return this.stream.state;
  }

  /**
   * Returns the frames completed by this chunk (possibly none). When it throws, frames
   * completed earlier in the same chunk are kept for takeCompleted().
   */
  feed(chunk: Buffer): Frame[] {
    this.stream.feed(chunk);
    return this.takeCompleted();
  }

  /** Frames completed but not yet returned (non-empty only after feed() threw). */
  takeCompleted(): Frame[] {
    const done = this.out;
    this.out = [];
    return done;
  }

  end(): void {
    this.stream.end();
  }
}

/** Parse a buffer holding whole frames only. */
export function parseFrames(buf: Buffer, opts?: FrameParserOptions): Frame[] {
  const p = new MsrpFrameParser(opts);
  const frames = p.feed(buf);
  p.end();
  return frames;
}
