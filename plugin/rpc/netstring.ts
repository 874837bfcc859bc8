/**
 * Netstring framing (`<len>:<bytes>,`, draft-bernstein-netstrings-02) as Kamailio's
 * janssonrpcc writes it. Incremental: feed chunks, get complete payloads. Lengths are
 * in bytes; a leading zero (other than `0:`), a missing `:` or `,`, or a length above
 * the cap is a framing error and the stream cannot be resynchronised.
 */

export type NetstringErrorCode =
  | 'NETSTRING_BAD_LENGTH'
  | 'NETSTRING_LEADING_ZERO'
  | 'NETSTRING_TOO_LONG'
  | 'NETSTRING_NO_COMMA';

export class NetstringError extends Error {
  override readonly name = 'NetstringError';
  constructor(
    readonly code: NetstringErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function encodeNetstring(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([Buffer.from(`${body.length}:`, 'ascii'), body, Buffer.from(',', 'ascii')]);
}

/** As encodeNetstring, as text: one string for socket.write(), no Buffer copies. */
export function netstringText(payload: string): string {
  return `${Buffer.byteLength(payload, 'utf8')}:${payload},`;
}

const COLON = 0x3a;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;

export class NetstringDecoder {
  private buf: Buffer = Buffer.alloc(0);
  /** Payload length once the header is read, else -1. */
  private want = -1;
  private headerLen = 0;
  private failed: NetstringError | null = null;

  constructor(private readonly maxBytes: number) {}

  /**
   * Append a chunk and return every complete payload before any framing error. After an
   * error, `error` is set and later pushes return nothing.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failed) return [];
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    try {
      for (;;) {
        if (this.want < 0 && !this.readHeader()) break;
        const end = this.headerLen + this.want;
        if (this.buf.length < end + 1) break;
        if (this.buf[end] !== COMMA) {
          throw new NetstringError('NETSTRING_NO_COMMA', 'netstring: missing trailing comma');
        }
        out.push(this.buf.subarray(this.headerLen, end));
        this.buf = this.buf.subarray(end + 1);
        this.want = -1;
      }
    } catch (err) {
      if (!(err instanceof NetstringError)) throw err;
      this.failed = err;
      this.buf = Buffer.alloc(0);
    }
    return out;
  }

  /** The framing error that stopped the stream, if any. */
  get error(): NetstringError | null {
    return this.failed;
  }

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.buf.length;
  }

  private readHeader(): boolean {
    const digitsMax = String(this.maxBytes).length;
    let len = 0;
    let i = 0;
    for (; i < this.buf.length; i++) {
      const c = this.buf[i] as number;
      if (c === COLON) break;
      if (c < ZERO || c > NINE) {
        throw new NetstringError('NETSTRING_BAD_LENGTH', 'netstring: length is not a decimal number');
      }
      if (i === 1 && this.buf[0] === ZERO) {
        throw new NetstringError('NETSTRING_LEADING_ZERO', 'netstring: leading zero in length');
      }
      len = len * 10 + (c - ZERO);
      if (i + 1 > digitsMax || len > this.maxBytes) {
        throw new NetstringError('NETSTRING_TOO_LONG', `netstring: longer than ${this.maxBytes} bytes`);
      }
    }
    if (i === this.buf.length) return false; // header not complete yet
    if (i === 0) throw new NetstringError('NETSTRING_BAD_LENGTH', 'netstring: empty length');
    this.want = len;
    this.headerLen = i + 1;
    return true;
  }
}
