/**
 * Message building for the B2BUA SIP layer: responses (RFC 3261 §8.2.6), the ACK of a
 * non-2xx final (§17.1.1.3) and CANCEL (§9.1); the ACK of a 2xx is an in-dialog request
 * (dialog.ts, §13.2.2.4). Every message is printed with its Content-Length in bytes, and
 * its parsed form is what plugin/sip/message.ts would parse from that text, so nothing
 * unparseable leaves this module.
 * Also reads the fields the layer matches on: top Via, CSeq, tags.
 */
import { randomHex } from '../../../lib/random.js';
import { MAX_SIP_MESSAGE_BYTES, messageFromParts, SipParseError, type SipMessage, type SipRequest, type SipResponse } from '../../sip/message.js';
import { parseNameAddr, parseParams, type ParamValue } from '../../sip/uri.js';

/** RFC 3261 §8.1.1.7: every branch we create starts with this. */
export const MAGIC_COOKIE = 'z9hG4bK';
export const MAX_FORWARDS = 70;

export type Header = readonly [name: string, value: string];

/** A built message: the text handed to the transport and its parsed form. */
export interface Built<M extends SipMessage> {
  readonly text: string;
  readonly msg: M;
}

export class BuildError extends Error {
  override readonly name = 'BuildError';
}

const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying', 180: 'Ringing', 183: 'Session Progress', 200: 'OK', 400: 'Bad Request',
  408: 'Request Timeout', 481: 'Call/Transaction Does Not Exist', 486: 'Busy Here',
  487: 'Request Terminated', 491: 'Request Pending', 500: 'Server Internal Error',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status < 200 ? 'Progress' : status < 300 ? 'OK' : 'Failure');
}

function token(bytes: number): string {
  return randomHex(bytes);
}
export const newBranch = (): string => `${MAGIC_COOKIE}${token(8)}`;
export const newTag = (): string => token(6);
export const newCallId = (host: string): string => `${token(10)}@${host}`;

/**
 * Print a start line, headers and body (Content-Length in bytes, §20.14), with the parsed
 * form built from the same parts (plugin/sip/message.ts messageFromParts: what parsing
 * the text would give, checked by its tests), so nothing unparseable leaves this module.
 */
function print<M extends SipMessage>(start: M extends SipRequest ? { method: string; ruri: string } : { status: number; reason: string }, headers: readonly Header[], body: string): Built<M> {
  const kept: Header[] = [];
  for (const h of headers) {
    const lower = h[0].toLowerCase();
    if (lower !== 'content-length' && lower !== 'l') kept.push(h);
  }
  kept.push(['Content-Length', String(Buffer.byteLength(body, 'utf8'))]);
  let msg: SipMessage;
  try {
    msg = messageFromParts(start, kept, body);
  } catch (err) {
    if (err instanceof SipParseError) throw new BuildError(`built message does not parse: ${err.message}`);
    throw err;
  }
  let text = 'method' in start ? `${start.method} ${start.ruri} SIP/2.0` : `SIP/2.0 ${start.status} ${start.reason}`;
  for (const [name, value] of kept) text += `\r\n${name}: ${value}`;
  text += `\r\n\r\n${body}`;
  if (text.length * 3 > MAX_SIP_MESSAGE_BYTES && Buffer.byteLength(text, 'utf8') > MAX_SIP_MESSAGE_BYTES) {
    throw new BuildError(`built message longer than ${MAX_SIP_MESSAGE_BYTES} bytes`);
  }
  return { text, msg: msg as M };
}

export function printRequest(method: string, ruri: string, headers: readonly Header[], body = ''): Built<SipRequest> {
  if (/\s/.test(ruri) || ruri === '') throw new BuildError(`bad Request-URI ${JSON.stringify(ruri)}`);
  return print<SipRequest>({ method, ruri }, headers, body);
}

export function printResponse(status: number, reason: string, headers: readonly Header[], body = ''): Built<SipResponse> {
  if (!Number.isInteger(status) || status < 100 || status > 699) throw new BuildError(`bad status ${status}`);
  return print<SipResponse>({ status, reason }, headers, body);
}

export interface Via {
  readonly transport: string;
  /** host[:port], lower-cased host. */
  readonly sentBy: string;
  readonly branch: string | null;
  readonly params: Readonly<Record<string, ParamValue>>;
}

/** One Via value (§20.42): `SIP/2.0/TCP host:port;branch=...`, or null. */
export function parseVia(value: string): Via | null {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+([^;\s]+)\s*(;.*)?$/i.exec(value.trim());
  if (!m) return null;
  const params = parseParams(m[3] ?? '');
  if (!params) return null;
  const branch = typeof params['branch'] === 'string' && params['branch'] !== '' ? params['branch'] : null;
  return { transport: m[1]!.toUpperCase(), sentBy: m[2]!.toLowerCase(), branch, params };
}

export function topVia(msg: SipMessage): Via | null {
  const v = msg.getValues('Via')[0];
  return v === undefined ? null : parseVia(v);
}

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

/** §20.16: a 32-bit sequence number and a method. */
export function cseqOf(msg: SipMessage): CSeq | null {
  const m = /^(\d{1,10})\s+([A-Za-z!%*_+`'~.-]+)$/.exec(msg.get('CSeq') ?? '');
  if (!m) return null;
  const seq = Number(m[1]);
  return seq < 2 ** 32 ? { seq, method: m[2]!.toUpperCase() } : null;
}

/** The tag parameter of a From or To value, or null. */
export function tagOf(value: string | undefined): string | null {
  const na = value === undefined ? null : parseNameAddr(value);
  const tag = na?.params['tag'];
  return typeof tag === 'string' && tag !== '' ? tag : null;
}

export interface ResponseOptions {
  /** Added to To when it has none, except on 100 (§8.2.6.2). */
  readonly toTag?: string;
  readonly reason?: string;
  readonly headers?: readonly Header[];
  readonly body?: string;
}

/** A response to `req` (§8.2.6.2): Via lines, From, To, Call-ID and CSeq copied. */
export function responseTo(req: SipRequest, status: number, o: ResponseOptions = {}): Built<SipResponse> {
  const h: Header[] = req.getAll('Via').map((v) => ['Via', v] as const);
  let to = req.get('To') ?? '';
  if (status > 100 && o.toTag !== undefined && tagOf(to) === null) to = `${to};tag=${o.toTag}`;
  h.push(['From', req.get('From') ?? ''], ['To', to], ['Call-ID', req.get('Call-ID') ?? ''], ['CSeq', req.get('CSeq') ?? '']);
  if (o.headers) h.push(...o.headers);
  return printResponse(status, o.reason ?? reasonPhrase(status), h, o.body ?? '');
}

/** The Route lines of a request, as they are. */
function routes(req: SipRequest): Header[] {
  return req.getAll('Route').map((r) => ['Route', r] as const);
}

function requireCseq(req: SipRequest): CSeq {
  const c = cseqOf(req);
  if (!c) throw new BuildError('request without a valid CSeq');
  return c;
}

/**
 * The ACK of a non-2xx final to our INVITE (§17.1.1.3): same Request-URI, Call-ID, From
 * and top Via (same branch) as the INVITE, To from the response, CSeq number with ACK,
 * the INVITE's Route lines.
 */
export function ackForNon2xx(invite: SipRequest, res: SipResponse): Built<SipRequest> {
  const via = invite.getValues('Via')[0];
  if (via === undefined) throw new BuildError('INVITE without a Via');
  const h: Header[] = [
    ['Via', via], ['Max-Forwards', String(MAX_FORWARDS)], ['From', invite.get('From') ?? ''], ['To', res.get('To') ?? ''],
    ['Call-ID', invite.get('Call-ID') ?? ''], ['CSeq', `${requireCseq(invite).seq} ACK`], ...routes(invite),
  ];
  return printRequest('ACK', invite.ruri, h);
}

/**
 * CANCEL of a request we sent (§9.1): same Request-URI, Call-ID, From, To, CSeq number
 * (method CANCEL), only the top Via (same branch), the request's Route lines; then
 * `extra` (a Reason, RFC 3326 §2).
 */
export function cancelFor(req: SipRequest, extra: readonly Header[] = []): Built<SipRequest> {
  const via = req.getValues('Via')[0];
  if (via === undefined) throw new BuildError('request without a Via');
  const h: Header[] = [
    ['Via', via], ['Max-Forwards', String(MAX_FORWARDS)], ['From', req.get('From') ?? ''], ['To', req.get('To') ?? ''],
    ['Call-ID', req.get('Call-ID') ?? ''], ['CSeq', `${requireCseq(req).seq} CANCEL`], ...routes(req), ...extra,
  ];
  return printRequest('CANCEL', req.ruri, h);
}

