/**
 * Reading the SDP offer of an INVITE (RFC 4566, parsed with sdp-transform), including
 * the MSRP attributes (RFC 4975 accept-types, RFC 5547 file-selector). sdp-transform is
 * lenient (any text parses), so the structure is checked here first.
 */
import sdpTransform from 'sdp-transform';
import type { SipMessage } from './message.js';
import { parseParams } from './uri.js';

export interface SdpStream {
  /** m= media type, lower-cased, e.g. `message`. */
  readonly media: string;
  readonly port: number;
  /** m= proto as offered, e.g. `TCP/MSRP`. */
  readonly proto: string;
  /** RFC 4975 a=accept-types, lower-cased; null when absent. */
  readonly acceptTypes: readonly string[] | null;
  /** RFC 5547 a=file-selector present: an MSRP file transfer stream. */
  readonly fileTransfer: boolean;
}

export type SdpOffer =
  | { readonly kind: 'ok'; readonly streams: readonly SdpStream[] }
  | { readonly kind: 'missing'; readonly why: string }
  | { readonly kind: 'malformed'; readonly why: string };

export const MAX_SDP_BYTES = 64 * 1024;

const LINE = /^[a-z]=/;

/** The application/sdp part of a body: the body itself, or a part of multipart/mixed (RFC 5621). */
function sdpBody(msg: SipMessage): string | null {
  const ct = msg.get('Content-Type');
  if (ct === undefined || msg.body.trim() === '') return null;
  const semi = ct.indexOf(';');
  const type = (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
  if (type === 'application/sdp') return msg.body;
  if (!type.startsWith('multipart/')) return null;
  const params = parseParams(semi === -1 ? '' : ct.slice(semi));
  const boundary = params?.['boundary'];
  if (typeof boundary !== 'string' || !boundary) return null;
  const parts = msg.body.split(`--${boundary}`);
  for (const part of parts.slice(1)) {
    if (part.startsWith('--')) break;
    const m = /\r?\n\r?\n/.exec(part);
    if (!m) continue;
    const head = part.slice(0, m.index);
    if (/^content-type:\s*application\/sdp\b/im.test(head)) {
      return part.slice(m.index + m[0].length).replace(/\r?\n$/, '');
    }
  }
  return null;
}

function attr(invalid: readonly { value: string }[] | undefined, name: string): string | null {
  if (!invalid) return null;
  const prefix = `${name}:`;
  for (const a of invalid) if (a.value.toLowerCase().startsWith(prefix)) return a.value.slice(prefix.length);
  return null;
}

/** sdp-transform's line split and line filter (lib/parser.js). */
const TRANSFORM_SPLIT = /\r\n|\r|\n/;
const TRANSFORM_LINE = /^[a-z]=/;
const READ_ATTR = /^a=(?:accept-types|file-selector):/i;

/**
 * The lines of `body` whose parse sdpOffer reads: o=, m= and the a= attributes below.
 * sdp-transform parses each line on its own into the session or the current m= section,
 * and only these lines write `origin`, a section's `type`/`port`/`protocol`, or an
 * `invalid` entry that attr() looks for: parsing them alone gives the same values.
 */
function linesRead(body: string): string {
  let out = '';
  for (const l of body.split(TRANSFORM_SPLIT)) {
    const type = l[0];
    if ((type === 'o' || type === 'm' || (type === 'a' && READ_ATTR.test(l))) && TRANSFORM_LINE.test(l)) {
      out += out === '' ? l : `\r\n${l}`;
    }
  }
  return out;
}

/** Read the SDP offer. Never throws. */
export function sdpOffer(msg: SipMessage): SdpOffer {
  const body = sdpBody(msg);
  if (body === null) return { kind: 'missing', why: 'no application/sdp body' };
  if (body.length > MAX_SDP_BYTES) return { kind: 'malformed', why: 'SDP too large' };
  const lines = body.split(/\r?\n/).filter((l) => l.length > 0);
  if (lines[0] !== 'v=0') return { kind: 'malformed', why: 'SDP does not start with v=0' };
  if (!lines.every((l) => LINE.test(l))) return { kind: 'malformed', why: 'SDP line not of the form x=...' };
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(linesRead(body));
  } catch {
    return { kind: 'malformed', why: 'SDP unparsable' };
  }
  if (!parsed.origin) return { kind: 'malformed', why: 'SDP without o=' };
  if (parsed.media.length === 0) return { kind: 'malformed', why: 'SDP without m=' };
  const streams: SdpStream[] = [];
  for (const m of parsed.media) {
    if (typeof m.type !== 'string' || typeof m.protocol !== 'string' || !Number.isInteger(m.port)) {
      return { kind: 'malformed', why: 'unreadable m= line' };
    }
    const accept = attr(m.invalid, 'accept-types');
    streams.push({
      media: m.type.toLowerCase(),
      port: m.port,
      proto: m.protocol,
      acceptTypes: accept === null ? null : accept.trim().toLowerCase().split(/\s+/).filter(Boolean),
      fileTransfer: attr(m.invalid, 'file-selector') !== null,
    });
  }
  return { kind: 'ok', streams };
}
