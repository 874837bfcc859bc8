// Header access and typed header values (RFC 4975 §8, ABNF §9).
import { MsrpError } from './errors.js';
import { formatMsrpUri, parseMsrpUri } from './uri.js';
import type { ByteRange, FrameHead, MsrpHeader, MsrpUri, ReportMode, StatusValue } from './types.js';

type HasHeaders = FrameHead | readonly MsrpHeader[];

function list(h: HasHeaders): readonly MsrpHeader[] {
  return Array.isArray(h) ? h : (h as FrameHead).headers;
}

/** First header of that name (case-insensitive). */
export function getHeader(h: HasHeaders, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const x of list(h)) {
    // Lower-case only the names of the right length.
    if (x.name.length === n.length && x.name.toLowerCase() === n) return x.value;
  }
  return undefined;
}

/** Split a path header value into its URI strings (no parsing). */
export function pathTokens(value: string): string[] {
  return value.trim().split(/[ \t]+/).filter((s) => s.length > 0);
}

/** To-Path / From-Path / Use-Path: msrp-URI *(SP msrp-URI). */
export function parsePath(value: string): MsrpUri[] {
  const t = pathTokens(value);
  if (t.length === 0) throw new MsrpError('MSRP_BAD_URI', 'empty path');
  return t.map(parseMsrpUri);
}

export function formatPath(uris: ReadonlyArray<MsrpUri | string>): string {
  return uris.map((u) => (typeof u === 'string' ? u : formatMsrpUri(u))).join(' ');
}

const BR = /^([0-9]{1,15})-([0-9]{1,15}|\*)\/([0-9]{1,15}|\*)$/;

/** Byte-Range = range-start "-" range-end "/" total; 1-based, inclusive; `*` = unknown. */
export function parseByteRange(value: string): ByteRange {
  const m = BR.exec(value.trim());
  if (!m) throw new MsrpError('MSRP_BAD_BYTE_RANGE', 'malformed Byte-Range');
  const start = Number(m[1]);
  const end = m[2] === '*' ? '*' : Number(m[2]);
  const total = m[3] === '*' ? '*' : Number(m[3]);
  if (start < 1) throw new MsrpError('MSRP_BAD_BYTE_RANGE', 'Byte-Range start must be >= 1');
  if (end !== '*' && end < start - 1) throw new MsrpError('MSRP_BAD_BYTE_RANGE', 'Byte-Range end before start');
  if (total !== '*' && end !== '*' && end > total) throw new MsrpError('MSRP_BAD_BYTE_RANGE', 'Byte-Range end past total');
  return { start, end, total };
}

export function formatByteRange(r: ByteRange): string {
  return `${r.start}-${r.end}/${r.total}`;
}

const STATUS = /^([0-9]{3}) ([0-9]{3})(?: (.*))?$/s;

/** Status = namespace SP status-code [SP comment] (RFC 4975 §9). */
export function parseStatus(value: string): StatusValue {
  const m = STATUS.exec(value.trim());
  if (!m) throw new MsrpError('MSRP_BAD_STATUS', 'malformed Status');
  const s: StatusValue = { namespace: Number(m[1]), code: Number(m[2]) };
  if (m[3] !== undefined) s.comment = m[3];
  return s;
}

/**
 * Failure-Report defaults to `yes`, Success-Report to `no` (RFC 4975 §7.1.1). Unknown
 * values fall back to the default.
 */
export function reportMode(h: HasHeaders, which: 'Failure-Report' | 'Success-Report'): ReportMode {
  const v = getHeader(h, which)?.trim().toLowerCase();
  if (which === 'Success-Report') return v === 'yes' ? 'yes' : 'no';
  return v === 'no' || v === 'partial' ? v : 'yes';
}

/** Reason phrases for the RFC 4975 §10 / RFC 4976 status codes. */
export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  408: 'Request Timeout',
  413: 'Message Too Large',
  415: 'Unsupported Media Type',
  423: 'Parameter Out Of Bounds',
  481: 'Session Does Not Exist',
  501: 'Not Implemented',
  506: 'Session Already Bound',
});
