// Incremental MSRP frame parser (RFC 4975 §7.1, ABNF §9).
//
//   idle ──first byte──▶ head ──blank line──▶ body ──end-line──▶ idle
//                         └────end-line (no body)────────────────▶ idle
//
// Works on Buffers: body bytes are passed through as they arrive, never decoded,
// never buffered whole. Only the head (bounded by ParserLimits) is accumulated.
import { Buffer } from 'node:buffer';
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

  byteAt(i: number): number {
    return this.buf[i]!;
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

function decodeUtf8(b: Buffer, what: string, partial?: PartialHead): string {
  // ASCII fast path: most heads are pure ASCII.
  let ascii = true;
  for (let i = 0; i < b.length; i++) {
    if (b[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return b.toString('latin1');
  try {
    return utf8.decode(b);
  } catch {
    throw new MsrpError('MSRP_BAD_ENCODING', `${what} is not valid UTF-8`, partial);
  }
}

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
  private marker = Buffer.alloc(0);
  /** Body bytes held back because they may begin the end-line. */
  private tail = Buffer.alloc(0);

  constructor(handler: ParserHandler, limits?: Partial<ParserLimits>) {
    this.handler = handler;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  get state(): ParserState {
    return this.st;
  }

  /** Bytes of an unfinished head currently held. */
  get pendingHeadBytes(): number {
    return this.head.len;
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
    const m = TID_PREFIX.exec(this.head.slice(0, Math.min(this.head.len, 64)).toString('latin1'));
    return m ? { transactionId: m[1]!, headers: [] } : undefined;
  }

  private feedHead(chunk: Buffer, off: number): number {
    this.st = 'head';
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
    if (lf !== -1) this.onLine();
    return end;
  }

  /** A full line (ending in LF) sits at head[lineStart, len). */
  private onLine(): void {
    const lineEnd = this.head.len - 2;
    if (lineEnd < this.lineStart || this.head.byteAt(lineEnd) !== CR) {
      throw new MsrpError(this.tid === '' ? 'MSRP_BAD_START_LINE' : 'MSRP_BAD_HEADER', 'line not terminated by CRLF', this.partial());
    }
    const lineBegin = this.lineStart;
    const line = this.head.slice(lineBegin, lineEnd);
    this.lineStart = this.head.len;
    if (this.startLine === undefined) {
      this.parseStartLine(line);
      return;
    }
    if (line.length === 0) {
      // Blank line: a body section follows (RFC 4975 §9 content-stuff).
      this.emitHead(true);
      return;
    }
    if (line.length === END_DASHES.length + this.tid.length + 1 && line[0] === 0x2d) {
      const flag = line[line.length - 1];
      if (isFlag(flag) && line.toString('latin1', 0, line.length - 1) === END_DASHES + this.tid) {
        this.emitHead(false, lineBegin);
        this.finishFrame(String.fromCharCode(flag) as ContinuationFlag);
        return;
      }
    }
    if (this.headers.length >= this.limits.maxHeaders) {
      throw new MsrpError('MSRP_TOO_MANY_HEADERS', `more than ${this.limits.maxHeaders} headers`, this.partial());
    }
    const text = decodeUtf8(line, 'header line', this.partial());
    const m = HEADER_LINE.exec(text);
    if (!m || CONTROL.test(m[2]!)) {
      throw new MsrpError('MSRP_BAD_HEADER', 'malformed header line', this.partial());
    }
    this.headers.push({ name: m[1]!, value: m[2]! });
  }

  private parseStartLine(line: Buffer): void {
    const text = decodeUtf8(line, 'start-line', this.partial());
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

  /** rawLen: head bytes to keep as `raw` (excludes the end-line of a bodiless frame). */
  private emitHead(hasBody: boolean, rawLen: number = this.head.len): void {
    const sl = this.startLine!;
    const base = { transactionId: this.tid, headers: this.headers, hasBody, raw: this.head.copyOut(rawLen) };
    let head: FrameHead;
    if (sl.kind === 'request') {
      head = { kind: 'request', method: sl.method, ...base };
    } else {
      head = { kind: 'response', status: sl.status, ...base };
      if (sl.comment !== undefined) head.comment = sl.comment;
    }
    this.head.reset();
    this.lineStart = 0;
    if (hasBody) {
      this.st = 'body';
      this.marker = Buffer.from(`\r\n${END_DASHES}${this.tid}`, 'latin1');
      this.tail = Buffer.alloc(0);
    }
    this.handler.frameStart(head);
  }

  private finishFrame(flag: ContinuationFlag): void {
    this.st = 'idle';
    this.tid = '';
    this.method = undefined;
    this.startLine = undefined;
    this.headers = [];
    this.tail = Buffer.alloc(0);
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
