// Transaction responses and REPORTs (RFC 4975 §7.1.2, §7.2, §7.3), chunk reassembly (§5.1).
import { Buffer } from 'node:buffer';
import { getHeader, parseByteRange, pathTokens, reportMode, STATUS_TEXT, formatByteRange } from './headers.js';
import { newTransactionId } from './serializer.js';
import type { ByteRange, ContinuationFlag, Frame, MsrpHeader, RequestHead } from './types.js';

/** Enough of a request to answer it (a RequestHead, or a parser error's partialHead). */
export interface Answerable {
  transactionId: string;
  method?: string;
  headers: MsrpHeader[];
}

/**
 * Hop-by-hop response (RFC 4975 §7.2): To-Path = first From-Path URI, From-Path = first
 * To-Path URI (the hop answering). Returns null when no response may be sent:
 * - REPORT requests are never answered (§7.1.2);
 * - `Failure-Report: no`: the receiver MUST NOT send a response (§7.2);
 * - `Failure-Report: partial`: only error responses are sent, no 200 (§7.2);
 * - the paths are missing, so the response cannot be addressed.
 */
export function responseFor(req: Answerable, status: number, comment?: string): Frame | null {
  if (req.method === 'REPORT') return null;
  const mode = reportMode(req.headers, 'Failure-Report');
  if (mode === 'no' || (mode === 'partial' && status === 200)) return null;
  const to = pathTokens(getHeader(req.headers, 'To-Path') ?? '')[0];
  const from = pathTokens(getHeader(req.headers, 'From-Path') ?? '')[0];
  if (to === undefined || from === undefined) return null;
  return {
    head: {
      kind: 'response',
      transactionId: req.transactionId,
      status,
      comment: comment ?? STATUS_TEXT[status] ?? 'Unknown',
      headers: [
        { name: 'To-Path', value: from },
        { name: 'From-Path', value: to },
      ],
      hasBody: false,
      raw: Buffer.alloc(0),
    },
    body: Buffer.alloc(0),
    flag: '$',
  };
}

function report(req: Answerable, statusLine: string, range: string | undefined, fromUri: string | undefined): Frame | null {
  const fromPath = getHeader(req.headers, 'From-Path');
  const toTokens = pathTokens(getHeader(req.headers, 'To-Path') ?? '');
  const self = fromUri ?? toTokens[toTokens.length - 1];
  if (fromPath === undefined || self === undefined) return null;
  // RFC 4975 §7.1.2: REPORT To-Path = the SEND's From-Path; From-Path = reporting endpoint.
  const headers: MsrpHeader[] = [
    { name: 'To-Path', value: fromPath },
    { name: 'From-Path', value: self },
  ];
  const mid = getHeader(req.headers, 'Message-ID');
  if (mid !== undefined) headers.push({ name: 'Message-ID', value: mid });
  if (range !== undefined) headers.push({ name: 'Byte-Range', value: range });
  headers.push({ name: 'Status', value: statusLine });
  return {
    head: { kind: 'request', method: 'REPORT', transactionId: newTransactionId(), headers, hasBody: false, raw: Buffer.alloc(0) },
    body: Buffer.alloc(0),
    flag: '$',
  };
}

function wholeRange(req: Answerable): string | undefined {
  const br = getHeader(req.headers, 'Byte-Range');
  if (br === undefined) return undefined;
  try {
    const r = parseByteRange(br);
    if (r.total !== '*') return formatByteRange({ start: 1, end: r.total, total: r.total });
  } catch {
    // fall through: no usable range
  }
  return undefined;
}

/**
 * Success REPORT (RFC 4975 §7.1.2): only when the SEND asked `Success-Report: yes`;
 * send it when the whole message (or `range`) was received. Status `000 200 OK`.
 */
export function successReportFor(req: Answerable, range?: ByteRange | string, fromUri?: string): Frame | null {
  if (reportMode(req.headers, 'Success-Report') !== 'yes') return null;
  const r = range === undefined ? wholeRange(req) : typeof range === 'string' ? range : formatByteRange(range);
  return report(req, '000 200 OK', r, fromUri);
}

/** Failure REPORT (§7.1.2): not when `Failure-Report: no`; never for status 200. */
export function failureReportFor(req: Answerable, status: number, range?: ByteRange | string, comment?: string, fromUri?: string): Frame | null {
  if (status === 200 || reportMode(req.headers, 'Failure-Report') === 'no') return null;
  const r = range === undefined ? getHeader(req.headers, 'Byte-Range') : typeof range === 'string' ? range : formatByteRange(range);
  return report(req, `000 ${status} ${comment ?? STATUS_TEXT[status] ?? 'Error'}`, r, fromUri);
}

export interface AssembledMessage {
  messageId: string;
  /** Head of the first chunk. */
  head: RequestHead;
  contentType: string | undefined;
  body: Buffer;
  chunks: number;
}

export type AssembleResult =
  | { status: 'empty' }
  | { status: 'partial'; messageId: string }
  | { status: 'complete'; message: AssembledMessage }
  | { status: 'aborted'; messageId: string }
  | { status: 'too-large'; messageId: string }
  | { status: 'invalid'; reason: string };

interface Open {
  head: RequestHead;
  pieces: Array<{ start: number; buf: Buffer }>;
  size: number;
  chunks: number;
}

/**
 * Reassembles chunked SENDs by Message-ID and Byte-Range (RFC 4975 §5.1, §7.3.1).
 * Interrupted messages (`+`) may interleave with others; `#` aborts; `$` completes.
 */
export class MessageAssembler {
  private readonly open = new Map<string, Open>();
  private readonly maxSize: number;
  private readonly maxOpen: number;

  constructor(opts: { maxMessageSize?: number; maxOpenMessages?: number } = {}) {
    this.maxSize = opts.maxMessageSize ?? 16 * 1024 * 1024;
    this.maxOpen = opts.maxOpenMessages ?? 64;
  }

  get openMessages(): number {
    return this.open.size;
  }

  add(head: RequestHead, body: Buffer, flag: ContinuationFlag): AssembleResult {
    if (head.method !== 'SEND') return { status: 'invalid', reason: 'not a SEND' };
    const messageId = getHeader(head, 'Message-ID') ?? '';
    if (!head.hasBody && body.length === 0 && flag === '$' && !this.open.has(messageId)) return { status: 'empty' };
    let range: ByteRange = { start: 1, end: body.length, total: '*' };
    const br = getHeader(head, 'Byte-Range');
    if (br !== undefined) {
      try {
        range = parseByteRange(br);
      } catch {
        return { status: 'invalid', reason: 'bad Byte-Range' };
      }
    }
    let m = this.open.get(messageId);
    if (!m) {
      if (this.open.size >= this.maxOpen) return { status: 'too-large', messageId };
      m = { head, pieces: [], size: 0, chunks: 0 };
      this.open.set(messageId, m);
    }
    if (flag === '#') {
      this.open.delete(messageId);
      return { status: 'aborted', messageId };
    }
    const end = range.start - 1 + body.length;
    if (end > this.maxSize || (range.total !== '*' && range.total > this.maxSize)) {
      this.open.delete(messageId);
      return { status: 'too-large', messageId };
    }
    m.pieces.push({ start: range.start, buf: Buffer.from(body) });
    m.size = Math.max(m.size, end);
    m.chunks += 1;
    if (flag === '+') return { status: 'partial', messageId };
    this.open.delete(messageId);
    const out = Buffer.alloc(m.size);
    for (const p of m.pieces) p.buf.copy(out, p.start - 1);
    return {
      status: 'complete',
      message: { messageId, head: m.head, contentType: getHeader(m.head, 'Content-Type'), body: out, chunks: m.chunks },
    };
  }
}
