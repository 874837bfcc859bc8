// One stored object as an IMAP message (RFC 3501 APPEND; RFC 5322 header, MIME body), and
// back. The exact format and our readings are in docs/history.md "Stored objects".
//
// The header carries what a CPM client needs to sort and thread without opening the body:
// Conversation-ID, Contribution-ID, Message-Direction, Date, IMDN-Message-ID, From, To, and
// Message-ID = the idempotency key (the write queue's check before APPEND). The body is
// the object's bytes as the sender sent them; base64 only when IMAP could not carry them
// verbatim (a NUL, a bare CR or LF, a line over 998 octets: RFC 5322 §2.1.1, RFC 3501 §4.3).

import { headerValue, parseCpimHead } from '../cpim/head.js';
import { CPIM_OBJECT_TYPE, type AppendOptions, type FolderRef } from './mss.js';

const IMDN_NS = 'urn:ietf:params:imdn';

export interface ObjectHead {
  readonly from?: string;
  readonly to?: string;
  readonly date: Date;
  readonly imdnMessageId?: string;
}

/** What the CPIM head says (RFC 3862 §3.3; RFC 5438 §6.3 imdn.Message-ID), for the IMAP header. */
export function cpimFacts(data: Buffer): Omit<ObjectHead, 'date'> & { date?: Date } {
  const r = parseCpimHead(data.subarray(0, 64 * 1024));
  if (r.state !== 'complete') return {};
  const h = r.head.headers;
  // The imdn prefix is whatever NS binds to the IMDN namespace (RFC 3862 §3.3.5).
  let prefix = 'imdn';
  for (const x of h) {
    if (x.name.toLowerCase() !== 'ns') continue;
    const m = /^\s*([^\s<]*)\s*<([^>]*)>/.exec(x.value);
    if (m && m[2] === IMDN_NS && m[1]) prefix = m[1];
  }
  const dt = headerValue(h, 'DateTime');
  const date = dt !== undefined ? new Date(dt) : undefined;
  const from = headerValue(h, 'From');
  const to = headerValue(h, 'To');
  const imdn = headerValue(h, `${prefix}.Message-ID`);
  return {
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    ...(date && !Number.isNaN(date.getTime()) ? { date } : {}),
    ...(imdn ? { imdnMessageId: imdn } : {}),
  };
}

function validDate(d: Date | undefined): Date | undefined {
  return d !== undefined && !Number.isNaN(d.getTime()) ? d : undefined;
}

/** RFC 5322 §3.3 date-time, UTC. */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/ GMT$/, ' +0000');
}

/** A header value on one line, without controls (no header injection from a CPIM or SIP value). */
function clean(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
}

/** Bytes that can be an IMAP message body as they are. */
export function verbatimSafe(data: Buffer): boolean {
  let line = 0;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0) return false;
    if (b === 0x0d) {
      if (data[i + 1] !== 0x0a) return false;
      continue;
    }
    if (b === 0x0a) {
      if (data[i - 1] !== 0x0d) return false;
      line = 0;
      continue;
    }
    if (++line > 998) return false;
  }
  return true;
}

function base64Lines(data: Buffer): string {
  const b = data.toString('base64');
  const out: string[] = [];
  for (let i = 0; i < b.length; i += 76) out.push(b.slice(i, i + 76));
  return `${out.join('\r\n')}\r\n`;
}

/** The IMAP message for one object. */
export function buildObject(ref: FolderRef, contentType: string, data: Buffer, opts: AppendOptions & { from?: string; to?: string } = {}): Buffer {
  const facts = contentType.toLowerCase() === CPIM_OBJECT_TYPE ? cpimFacts(data) : {};
  const from = facts.from ?? opts.from;
  const to = facts.to ?? opts.to;
  const verbatim = verbatimSafe(data);
  const eightBit = verbatim && data.some(b => b >= 0x80);
  const lines = [
    ...(from ? [`From: ${clean(from)}`] : []),
    ...(to ? [`To: ${clean(to)}`] : []),
    `Date: ${rfc5322Date(validDate(facts.date) ?? validDate(opts.date) ?? new Date())}`,
    `Conversation-ID: ${clean(ref.conversationId)}`,
    `Contribution-ID: ${clean(ref.contributionId)}`,
    ...(facts.imdnMessageId ? [`IMDN-Message-ID: ${clean(facts.imdnMessageId)}`] : []),
    ...(opts.direction ? [`Message-Direction: ${opts.direction}`] : []),
    ...(opts.key !== undefined ? [`Message-ID: <${clean(opts.key)}>`] : []),
    'MIME-Version: 1.0',
    `Content-Type: ${clean(contentType)}`,
    `Content-Transfer-Encoding: ${verbatim ? (eightBit ? '8bit' : '7bit') : 'base64'}`,
  ];
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
  return Buffer.concat([head, verbatim ? data : Buffer.from(base64Lines(data), 'latin1')]);
}

export interface ParsedObject {
  readonly contentType: string;
  readonly data: Buffer;
  readonly key?: string;
  readonly headers: ReadonlyMap<string, string>;
}

/** Read a stored object back; undefined when it is not one (no header end, bad base64). */
export function parseObject(source: Buffer): ParsedObject | undefined {
  const end = source.indexOf('\r\n\r\n', 0, 'latin1');
  if (end < 0) return undefined;
  const headers = new Map<string, string>();
  let last: string | undefined;
  for (const line of source.toString('utf8', 0, end).split('\r\n')) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      headers.set(last, `${headers.get(last) ?? ''} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    last = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(last)) headers.set(last, line.slice(colon + 1).trim());
  }
  const contentType = headers.get('content-type');
  if (contentType === undefined) return undefined;
  let data = source.subarray(end + 4);
  if ((headers.get('content-transfer-encoding') ?? '').toLowerCase() === 'base64') {
    const text = data.toString('latin1').replace(/\r\n/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
    data = Buffer.from(text, 'base64');
  }
  const mid = headers.get('message-id');
  const key = mid !== undefined && mid.startsWith('<') && mid.endsWith('>') ? mid.slice(1, -1) : undefined;
  return { contentType, data: Buffer.from(data), headers, ...(key !== undefined ? { key } : {}) };
}
