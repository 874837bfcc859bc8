/**
 * Netstring framing (`<len>:<bytes>,`, draft-bernstein-netstrings-02) as Kamailio's
 * janssonrpcc writes it. Incremental: feed chunks, get complete payloads. Lengths are
 * in bytes; a non-digit or empty length, a leading zero (other than `0:`), a missing `,`,
 * or a length above the cap is a framing error (WireError, `NETSTRING_*`) and the stream
 * cannot be resynchronised: the decoder stops.
 */
import { WireError, WireErrorCode } from './errors.js';

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
  private failed: WireError | null = null;
  private readonly digitsMax: number;

  /** @param maxBytes the largest payload accepted (bytes). */
  constructor(private readonly maxBytes: number) {
    this.digitsMax = String(maxBytes).length;
  }

  /**
   * Append a chunk and return every complete payload before any framing error. After an
   * error, `error` is set and later pushes return nothing. The payloads are views of the
   * received bytes: copy one to keep it past the next push.
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
          throw new WireError(WireErrorCode.NetstringNoComma, 'netstring: missing trailing comma');
        }
        out.push(this.buf.subarray(this.headerLen, end));
        this.buf = this.buf.subarray(end + 1);
        this.want = -1;
      }
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.failed = err;
      this.buf = Buffer.alloc(0);
    }
    return out;
  }

  /** The framing error that stopped the stream, if any. */
  get error(): WireError | null {
    return this.failed;
  }

  private readHeader(): boolean {
    let len = 0;
    let i = 0;
    for (; i < this.buf.length; i++) {
      const c = this.buf[i] as number;
      if (c === COLON) break;
      if (c < ZERO || c > NINE) {
        throw new WireError(WireErrorCode.NetstringBadLength, 'netstring: length is not a decimal number');
      }
      if (i === 1 && this.buf[0] === ZERO) {
        throw new WireError(WireErrorCode.NetstringLeadingZero, 'netstring: leading zero in length');
      }
      len = len * 10 + (c - ZERO);
      if (i + 1 > this.digitsMax || len > this.maxBytes) {
        throw new WireError(WireErrorCode.NetstringTooLong, `netstring: longer than ${this.maxBytes} bytes`);
      }
    }
    if (i === this.buf.length) return false; // header not complete yet
    if (i === 0) throw new WireError(WireErrorCode.NetstringBadLength, 'netstring: empty length');
    this.want = len;
    this.headerLen = i + 1;
    return true;
  }
}
