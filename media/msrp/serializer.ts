// MSRP serializer (RFC 4975 §7.1, ABNF §9). Output of serializeFrame(parse(x)) equals x
// for conformant input (headers written as `Name: value`).
import { Buffer } from 'node:buffer';
import { randomBase64url } from '../../lib/random.js';
import { MsrpError } from './errors.js';
import { formatPath } from './headers.js';
import type { ContinuationFlag, Frame, FrameHead, MsrpHeader, MsrpUri } from './types.js';

const TID_RE = /^[A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}$/;
const NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** 16 random alphanumerics: RFC 4975 §7.1 wants transaction ids hard to guess. */
export function newTransactionId(): string {
  return randomBase64url(12).replace(/[-_]/g, 'x').slice(0, 16);
}

export function newMessageId(): string {
  return randomBase64url(15).replace(/[-_]/g, 'y').slice(0, 20);
}

function checkTid(tid: string): void {
  if (!TID_RE.test(tid)) throw new MsrpError('MSRP_BAD_START_LINE', 'invalid transaction id');
}

export function serializeStartLine(head: FrameHead): string {
  checkTid(head.transactionId);
  if (head.kind === 'request') {
    if (!/^[A-Z]+$/.test(head.method)) throw new MsrpError('MSRP_BAD_START_LINE', 'invalid method');
    return `MSRP ${head.transactionId} ${head.method}\r\n`;
  }
  if (!Number.isInteger(head.status) || head.status < 0 || head.status > 999) {
    throw new MsrpError('MSRP_BAD_START_LINE', 'invalid status');
  }
  const code = String(head.status).padStart(3, '0');
  if (head.comment !== undefined && CONTROL.test(head.comment)) throw new MsrpError('MSRP_BAD_START_LINE', 'invalid comment');
  return head.comment === undefined ? `MSRP ${head.transactionId} ${code}\r\n` : `MSRP ${head.transactionId} ${code} ${head.comment}\r\n`;
}

function headerLines(headers: readonly MsrpHeader[]): string {
  let s = '';
  for (const h of headers) {
    if (!NAME_RE.test(h.name) || CONTROL.test(h.value)) throw new MsrpError('MSRP_BAD_HEADER', `invalid header ${h.name}`);
    s += `${h.name}: ${h.value}\r\n`;
  }
  return s;
}

/** Start-line and headers, plus the blank line when the frame has a body section. */
export function serializeHead(head: FrameHead, hasBody: boolean = head.hasBody): Buffer {
  return Buffer.from(serializeStartLine(head) + headerLines(head.headers) + (hasBody ? '\r\n' : ''), 'utf8');
}

/** `[CRLF] "-------" transact-id flag CRLF`; the leading CRLF closes a body section. */
export function serializeEnd(transactionId: string, flag: ContinuationFlag, hasBody: boolean): Buffer {
  checkTid(transactionId);
  return Buffer.from(`${hasBody ? '\r\n' : ''}-------${transactionId}${flag}\r\n`, 'latin1');
}

/** True when the body holds this frame's end-line (`CRLF -------tid flag CRLF`), as the parser sees it. */
export function bodyHasEndLine(body: Buffer, transactionId: string): boolean {
  const marker = Buffer.from(`\r\n-------${transactionId}`, 'latin1');
  for (let i = body.indexOf(marker); i !== -1; i = body.indexOf(marker, i + 1)) {
    const f = body[i + marker.length];
    const j = i + marker.length + 1;
    // At the very end of the body, the CRLF that closes the body section follows.
    if ((f === 0x24 || f === 0x2b || f === 0x23) && (j === body.length || (body[j] === 0x0d && body[j + 1] === 0x0a))) return true;
  }
  return false;
}

export function serializeFrame(frame: Frame): Buffer {
  const hasBody = frame.head.hasBody || frame.body.length > 0;
  // RFC 4975 §7.1: the body must not contain this frame's end-line.
  if (hasBody && bodyHasEndLine(frame.body, frame.head.transactionId)) {
    throw new MsrpError('MSRP_BAD_HEADER', 'body contains the end-line; choose another transaction id');
  }
  const parts = [serializeHead(frame.head, hasBody)];
  if (hasBody) parts.push(frame.body);
  parts.push(serializeEnd(frame.head.transactionId, frame.flag, hasBody));
  return Buffer.concat(parts);
}

export interface RequestSpec {
  method: string;
  transactionId?: string;
  toPath: ReadonlyArray<MsrpUri | string> | string;
  fromPath: ReadonlyArray<MsrpUri | string> | string;
  /** Headers after To-Path/From-Path (Message-ID, Byte-Range, ...), in order. */
  headers?: MsrpHeader[];
  /** Sets a body section; written last among headers as Content-Type. */
  contentType?: string;
  body?: Buffer | string;
  flag?: ContinuationFlag;
}

/** Build a request frame: To-Path, From-Path, extra headers, Content-Type (RFC 4975 §7.1.1 order). */
export function buildRequest(spec: RequestSpec): Frame {
  const headers: MsrpHeader[] = [
    { name: 'To-Path', value: typeof spec.toPath === 'string' ? spec.toPath : formatPath(spec.toPath) },
    { name: 'From-Path', value: typeof spec.fromPath === 'string' ? spec.fromPath : formatPath(spec.fromPath) },
    ...(spec.headers ?? []),
  ];
  if (spec.contentType !== undefined) headers.push({ name: 'Content-Type', value: spec.contentType });
  const body = spec.body === undefined ? Buffer.alloc(0) : typeof spec.body === 'string' ? Buffer.from(spec.body, 'utf8') : spec.body;
  const hasBody = spec.contentType !== undefined || body.length > 0;
  return {
    head: {
      kind: 'request',
      method: spec.method,
      transactionId: spec.transactionId ?? newTransactionId(),
      headers,
      hasBody,
      raw: Buffer.alloc(0),
    },
    body,
    flag: spec.flag ?? '$',
  };
}
