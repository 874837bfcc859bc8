// The wire form of relayed frames (RFC 4975 §7.1) and the body pieces they carry.

import type { ContinuationFlag, MsrpHeader, RequestHead } from '../msrp/index.js';
import type { ByteRange } from '../cpim/direction.js';
import { fastTransactionId } from './ids.js';

export const EMPTY = Buffer.alloc(0);

/** Body pieces as read from the socket; joined only when something needs one buffer. */
export class Body {
  private joined: Buffer | undefined;
  constructor(readonly parts: Buffer[], readonly length: number) {
    if (parts.length === 1) this.joined = parts[0];
    else if (parts.length === 0) this.joined = EMPTY;
  }
  get buffer(): Buffer {
    this.joined ??= Buffer.concat(this.parts, this.length);
    return this.joined;
  }
}

/** One SEND chunk as received, taken whole. */
export interface Chunk {
  readonly head: RequestHead;
  readonly body: Body;
  /** The frame had a Byte-Range header (else it is not added unless the range changes). */
  readonly hasRange: boolean;
  readonly range: ByteRange;
  readonly flag: ContinuationFlag;
}

/**
 * A relayed frame as buffers to write (RFC 4975 §7.1): the start-line with a fresh
 * transaction-id, the headers in wire order with To-Path, From-Path and Byte-Range
 * rewritten, the body, and the end-line. Written with writev, never concatenated.
 * Header values come from the parser (no CR/LF) or from our own SDP-derived URIs.
 */
export function frameParts(
  method: string, headers: readonly MsrpHeader[], toPath: string, fromPath: string,
  range: string | undefined, body: Buffer | Body, hasBody: boolean, flag: ContinuationFlag,
): Buffer[] {
  const tid = fastTransactionId();
  let head = `MSRP ${tid} ${method}\r\n`;
  let rangeDone = range === undefined;
  for (const h of headers) {
    const n = h.name.length === 7 || h.name.length === 9 || h.name.length === 10 ? h.name.toLowerCase() : '';
    if (n === 'to-path') head += `To-Path: ${toPath}\r\n`;
    else if (n === 'from-path') head += `From-Path: ${fromPath}\r\n`;
    else if (n === 'byte-range' && range !== undefined) {
      if (!rangeDone) head += `Byte-Range: ${range}\r\n`;
      rangeDone = true;
    } else head += `${h.name}: ${h.value}\r\n`;
  }
  if (!rangeDone) head += `Byte-Range: ${range}\r\n`;
  const withBody = hasBody || body.length > 0;
  if (withBody) head += '\r\n';
  const end = `${withBody ? '\r\n' : ''}-------${tid}${flag}\r\n`;
  // Small frames go out as one buffer (one socket write); large bodies are not copied.
  const parts = body instanceof Body ? body.parts : [body];
  if (body.length <= 4096) {
    const hl = Buffer.byteLength(head, 'utf8');
    const out = Buffer.allocUnsafe(hl + body.length + end.length);
    out.write(head, 0, 'utf8');
    let at = hl;
    for (const p of parts) at += p.copy(out, at);
    out.write(end, at, 'latin1');
    return [out];
  }
  return [Buffer.from(head, 'utf8'), ...parts, Buffer.from(end, 'latin1')];
}
