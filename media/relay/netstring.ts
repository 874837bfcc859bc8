// Netstring framing (`<len>:<payload>,`), as Kamailio's janssonrpcc uses over TCP.

export class NetstringError extends Error {
  constructor(
    readonly code: 'NETSTRING_BAD_LENGTH' | 'NETSTRING_TOO_LARGE' | 'NETSTRING_BAD_TERMINATOR',
    message: string,
  ) {
    super(message);
  }
}

export function encodeNetstring(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([Buffer.from(`${body.length}:`, 'latin1'), body, Buffer.from(',', 'latin1')]);
}

/** Incremental decoder; throws NetstringError on malformed input (close the connection). */
export class NetstringDecoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxLength = 1 << 20) {}

  push(data: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
    const out: Buffer[] = [];
    for (;;) {
      const colon = this.buf.indexOf(0x3a);
      if (colon < 0) {
        if (this.buf.length > 10) throw new NetstringError('NETSTRING_BAD_LENGTH', 'length prefix too long');
        if (this.buf.length > 0 && !/^\d+$/.test(this.buf.toString('latin1'))) {
          throw new NetstringError('NETSTRING_BAD_LENGTH', 'length prefix not numeric');
        }
        return out;
      }
      const lenText = this.buf.toString('latin1', 0, colon);
      if (!/^\d{1,10}$/.test(lenText)) throw new NetstringError('NETSTRING_BAD_LENGTH', 'length prefix not numeric');
      const len = Number(lenText);
      if (len > this.maxLength) throw new NetstringError('NETSTRING_TOO_LARGE', `netstring of ${len} bytes`);
      const end = colon + 1 + len;
      if (this.buf.length < end + 1) return out;
      if (this.buf[end] !== 0x2c) throw new NetstringError('NETSTRING_BAD_TERMINATOR', 'missing comma');
      out.push(Buffer.from(this.buf.subarray(colon + 1, end)));
      this.buf = this.buf.subarray(end + 1);
    }
  }
}
