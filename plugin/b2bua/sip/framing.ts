/**
 * SIP over a stream transport: where one message ends and the next begins (RFC 3261 §18.3).
 * Pure: bytes in, whole messages (UTF-8 text, head and body) and keepalive pings out.
 * Each byte is looked at a bounded number of times, whatever the chunking.
 *
 *   idle --first byte that is not CR/LF--> head --empty line, Content-Length n--> body
 *    ^  (CRLFs skipped, §7.5; CRLFCRLF is a     |                                  |
 *    |   ping, RFC 5626 §4.4.1)                 | n = 0                            | n bytes
 *    +------------------------------------------+----------------------------------+
 *   idle | head | body --FramingError--> failed (every later push throws the same error)
 *
 * The head ends at the first "\r\n\r\n" or "\n\n", as plugin/sip/message.ts reads it. The
 * start line must end in " SIP/2.0" or begin with "SIP/2.0 " (looser than that parser), so
 * a stream out of step fails at its first line rather than after maxHeaderBytes. The
 * body is exactly Content-Length BYTES. Bytes that are not UTF-8 become U+FFFD in the
 * text; the framing, done on bytes, is not affected.
 */
import { Buffer } from 'node:buffer';
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';
import type { SipFramingErrorCode } from '../../errors.js';
import { MAX_SIP_MESSAGE_BYTES } from '../../sip/message.js';

/** Kamailio's BUF_SIZE (`kamailio -I`): it builds no SIP message larger than this. */
export const DEFAULT_MAX_HEADER_BYTES = 65_535;

export class FramingError extends Error {
  override readonly name = 'FramingError';
  constructor(
    readonly code: SipFramingErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface FramerOutput {
  /** Complete messages, start line to the end of the body, in stream order. */
  readonly messages: string[];
  /** RFC 5626 §4.4.1 pings (CRLFCRLF between messages): each wants a CRLF pong. */
  readonly pings: number;
}

export interface FramerOptions {
  /** Head plus body, default MAX_SIP_MESSAGE_BYTES. */
  readonly maxMessageBytes?: number;
  /** Start line and header fields with the empty line, default 65,535 (capped at maxMessageBytes). */
  readonly maxHeaderBytes?: number;
}

export type FramerState = 'idle' | 'head' | 'body' | 'failed';

export const FRAMER_NEXT: NextTable<FramerState> = {
  idle: ['head', 'failed'],
  head: ['body', 'idle', 'failed'],
  body: ['idle', 'failed'],
  failed: [],
};

const CR = 0x0d;
const LF = 0x0a;
/** The ping, byte by byte (RFC 5626 §4.4.1). */
const PING = [CR, LF, CR, LF] as const;
/** The three bytes before the LF that ends "\r\n\r\n", oldest in the high byte. */
const CRLFCR = (CR << 16) | (LF << 8) | CR;
/** 1*DIGIT with SP/HTAB around (§20.14, §25.1); JS trim() would also drop CR, VT, NBSP... */
const LENGTH_VALUE = /^[ \t]*([0-9]+)[ \t]*$/;
const TRAILING_WSP = /[ \t]+$/;

export class SipStreamFramer {
  readonly maxMessageBytes: number;
  readonly maxHeaderBytes: number;
  #state: FramerState = 'idle';
  #error: FramingError | null = null;
  /** Bytes of the ping matched so far in idle (0..3). */
  #ping = 0;
  /** The current message's bytes so far (slices of the chunks, copied once when whole). */
  #parts: Buffer[] = [];
  /** Head bytes consumed so far (head state). */
  #headBytes = 0;
  /** The last three head bytes before the current chunk, newest in the low byte. */
  #tail = 0;
  #startLineChecked = false;
  /** Head length once known, and the body bytes still wanted (body state). */
  #headLength = 0;
  #bodyLength = 0;
  #bodyLeft = 0;
  #messages: string[] = [];
  #pings = 0;

  constructor(opts: FramerOptions = {}) {
    this.maxMessageBytes = opts.maxMessageBytes ?? MAX_SIP_MESSAGE_BYTES;
    this.maxHeaderBytes = Math.min(opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES, this.maxMessageBytes);
    if (!(Number.isSafeInteger(this.maxMessageBytes) && this.maxMessageBytes > 0 && Number.isSafeInteger(this.maxHeaderBytes) && this.maxHeaderBytes > 0)) {
      throw new RangeError(`bad framer limits: maxMessageBytes=${this.maxMessageBytes} maxHeaderBytes=${this.maxHeaderBytes}`);
    }
  }

  get state(): FramerState {
    return this.#state;
  }

  /** Bytes held for a message not yet complete. */
  get buffered(): number {
    return this.#state === 'head' ? this.#headBytes : this.#state === 'body' ? this.#headLength + this.#bodyLength - this.#bodyLeft : 0;
  }

  /**
   * Feed the next bytes of the stream.
   * @throws FramingError: the stream cannot be framed any further; `takeCompleted()` then
   * gives what was complete before the fault in this chunk.
   */
  push(chunk: Buffer): FramerOutput {
    if (this.#error) throw this.#error;
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'idle') i = this.#idle(chunk, i);
      else if (this.#state === 'head') i = this.#head(chunk, i);
      else i = this.#body(chunk, i);
    }
    return this.takeCompleted();
  }

  /** What push has completed and not returned (after a FramingError). */
  takeCompleted(): FramerOutput {
    const out: FramerOutput = { messages: this.#messages, pings: this.#pings };
    this.#messages = [];
    this.#pings = 0;
    return out;
  }

  #move(to: FramerState): void {
    this.#state = guardedTransition('SIP stream framer', FRAMER_NEXT, this.#state, to);
  }

  #fail(code: SipFramingErrorCode, message: string): never {
    this.#error = new FramingError(code, message);
    this.#parts = [];
    this.#move('failed');
    throw this.#error;
  }

  /** Skip CR and LF before a start line (§7.5); count CRLFCRLF as a ping. */
  #idle(chunk: Buffer, i: number): number {
    for (; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b !== CR && b !== LF) {
        this.#ping = 0;
        this.#headBytes = 0;
        this.#tail = 0;
        this.#startLineChecked = false;
        this.#move('head');
        return i;
      }
      if (b === PING[this.#ping]) {
        if (++this.#ping === PING.length) {
          this.#pings++;
          this.#ping = 0;
        }
      } else {
        this.#ping = b === CR ? 1 : 0;
      }
    }
    return i;
  }

  /** The head byte `k` (1..3) places before index `j`: from the chunk, else from #tail (0 before the head). */
  #before(chunk: Buffer, from: number, j: number, k: number): number {
    return j - k >= from ? chunk[j - k]! : (this.#tail >>> (8 * (k - (j - from) - 1))) & 0xff;
  }

  /** Look for the end of the head, LF to LF, never beyond maxHeaderBytes. */
  #head(chunk: Buffer, from: number): number {
    const room = this.maxHeaderBytes - this.#headBytes;
    const end = Math.min(chunk.length, from + room);
    let j = chunk.indexOf(LF, from);
    while (j !== -1 && j < end) {
      if (!this.#startLineChecked) this.#checkStartLine(chunk, from, j);
      const p1 = this.#before(chunk, from, j, 1);
      if (p1 === LF || (p1 === CR && ((this.#before(chunk, from, j, 3) << 16) | (this.#before(chunk, from, j, 2) << 8) | p1) === CRLFCR)) {
        this.#parts.push(chunk.subarray(from, j + 1));
        this.#headBytes += j + 1 - from;
        this.#headDone();
        return j + 1;
      }
      j = chunk.indexOf(LF, j + 1);
    }
    if (end - from >= room) this.#fail('SIP_FRAMING_HEADER_TOO_LARGE', `no end of the header fields within ${this.maxHeaderBytes} bytes`);
    this.#parts.push(chunk.subarray(from, end));
    this.#headBytes += end - from;
    for (let k = Math.max(from, end - 3); k < end; k++) this.#tail = ((this.#tail << 8) | chunk[k]!) & 0xffffff;
    return end;
  }

  /** The first line, once whole: a request line or a status line (RFC 3261 §7.1, §7.2). */
  #checkStartLine(chunk: Buffer, from: number, lf: number): void {
    this.#startLineChecked = true;
    const bytes = this.#parts.length === 0 ? chunk.subarray(from, lf) : Buffer.concat([...this.#parts, chunk.subarray(from, lf)]);
    let line = bytes.toString('latin1');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (!(line.startsWith('SIP/2.0 ') || line.endsWith(' SIP/2.0'))) {
      this.#fail('SIP_FRAMING_BAD_START_LINE', `not a request or status line: ${JSON.stringify(line.slice(0, 80))}`);
    }
  }

  /** The head is whole: read its Content-Length (§18.3, §20.14), then the body. */
  #headDone(): void {
    const head = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#headBytes);
    this.#parts = [head];
    this.#headLength = this.#headBytes;
    const length = contentLength(head.toString('latin1'));
    if (typeof length === 'string') {
      const [code, why] = CONTENT_LENGTH_FAULTS[length];
      this.#fail(code, why);
    }
    if (length > this.maxMessageBytes - this.#headLength) {
      this.#fail('SIP_FRAMING_TOO_LARGE', `${this.#headLength} header bytes and a body of ${length} exceed ${this.maxMessageBytes} bytes`);
    }
    this.#bodyLength = length;
    this.#bodyLeft = length;
    if (length === 0) {
      this.#move('idle');
      this.#emit();
    } else {
      this.#move('body');
    }
  }

  #body(chunk: Buffer, from: number): number {
    const take = Math.min(this.#bodyLeft, chunk.length - from);
    this.#parts.push(chunk.subarray(from, from + take));
    this.#bodyLeft -= take;
    if (this.#bodyLeft === 0) {
      this.#move('idle');
      this.#emit();
    }
    return from + take;
  }

  #emit(): void {
    const parts = this.#parts;
    this.#parts = [];
    this.#messages.push(parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8'));
  }
}

type LengthFault = 'missing' | 'bad' | 'conflict';

const CONTENT_LENGTH_FAULTS: Readonly<Record<LengthFault, readonly [SipFramingErrorCode, string]>> = {
  missing: ['SIP_FRAMING_NO_CONTENT_LENGTH', 'no Content-Length: required on a stream (RFC 3261 §18.3)'],
  bad: ['SIP_FRAMING_BAD_CONTENT_LENGTH', 'Content-Length is not a decimal number of bytes (RFC 3261 §20.14)'],
  conflict: ['SIP_FRAMING_CONFLICTING_CONTENT_LENGTH', 'Content-Length given twice with different values'],
};

/**
 * The Content-Length (or compact `l`, §7.3.3) of a head, folded lines joined (§7.3.1);
 * the same value twice is accepted. Leading zeros are allowed (1*DIGIT, §20.14); more
 * than 15 digits is reported as a length beyond any limit.
 */
export function contentLength(head: string): number | LengthFault {
  const lines = head.split(/\r?\n/);
  let found: number | undefined;
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!;
    const colon = line.indexOf(':');
    if (colon === -1 || line[0] === ' ' || line[0] === '\t') continue;
    const name = line.slice(0, colon).replace(TRAILING_WSP, '').toLowerCase();
    if (name !== 'content-length' && name !== 'l') continue;
    let value = line.slice(colon + 1);
    while (k + 1 < lines.length && (lines[k + 1]![0] === ' ' || lines[k + 1]![0] === '\t')) value += ` ${lines[++k]!}`;
    const digits = LENGTH_VALUE.exec(value)?.[1];
    if (digits === undefined) return 'bad';
    const n = digits.length > 15 ? Number.MAX_SAFE_INTEGER : Number(digits);
    if (found !== undefined && found !== n) return 'conflict';
    found = n;
  }
  return found ?? 'missing';
}
