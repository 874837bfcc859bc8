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

/** sdp-transform's line split and line filter (lib/parser.js). */
const TRANSFORM_SPLIT = /\r\n|\r|\n/;
const TRANSFORM_LINE = /^[a-z]=/;
/** sdp-transform's catch-all `a=` rule: the line's value as stored in `invalid`. */
const ANY = /(.*)/;
const ACCEPT_TYPES = 'accept-types:';
const FILE_SELECTOR = 'file-selector:';

interface SdpLines {
  /** The o= and m= lines, for sdp-transform. */
  readonly text: string;
  /** Per m= section: its first a=accept-types value, and whether it has an a=file-selector. */
  readonly acceptTypes: (string | null)[];
  readonly fileSelector: boolean[];
}

/**
 * One pass over the lines as sdp-transform splits and filters them (lib/parser.js).
 * sdp-transform parses each line on its own into the session or the current m= section;
 * only o= and m= lines write `origin` or a section's `type`/`port`/`protocol`, so parsing
 * them alone gives the same values. `a=accept-types:` and `a=file-selector:` match no
 * named a= rule of its grammar (every other rule starts with another literal name), so
 * they always land in the section's `invalid` list, read here as sdp-transform would.
 */
function sdpLines(body: string): SdpLines {
  let text = '';
  const acceptTypes: (string | null)[] = [];
  const fileSelector: boolean[] = [];
  let section = -1;
  for (const l of body.split(TRANSFORM_SPLIT)) {
    if (!TRANSFORM_LINE.test(l)) continue;
    const type = l[0];
    if (type === 'm') {
      section++;
      acceptTypes.push(null);
      fileSelector.push(false);
    }
    if (type === 'o' || type === 'm') {
      text += text === '' ? l : `\r\n${l}`;
    } else if (type === 'a' && section >= 0) {
      const value = ANY.exec(l.slice(2))![1]!;
      const lower = value.toLowerCase();
      if (acceptTypes[section] === null && lower.startsWith(ACCEPT_TYPES)) acceptTypes[section] = value.slice(ACCEPT_TYPES.length);
      else if (lower.startsWith(FILE_SELECTOR)) fileSelector[section] = true;
    }
  }
  return { text, acceptTypes, fileSelector };
}

/** Read the SDP offer. Never throws. */
export function sdpOffer(msg: SipMessage): SdpOffer {
  const body = sdpBody(msg);
  if (body === null) return { kind: 'missing', why: 'no application/sdp body' };
  if (body.length > MAX_SDP_BYTES) return { kind: 'malformed', why: 'SDP too large' };
  const lines = body.split(/\r?\n/).filter((l) => l.length > 0);
  if (lines[0] !== 'v=0') return { kind: 'malformed', why: 'SDP does not start with v=0' };
  if (!lines.every((l) => LINE.test(l))) return { kind: 'malformed', why: 'SDP line not of the form x=...' };
  const read = sdpLines(body);
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(read.text);
  } catch {
    return { kind: 'malformed', why: 'SDP unparsable' };
  }
  if (!parsed.origin) return { kind: 'malformed', why: 'SDP without o=' };
  if (parsed.media.length === 0) return { kind: 'malformed', why: 'SDP without m=' };
  const streams: SdpStream[] = [];
  for (let i = 0; i < parsed.media.length; i++) {
    const m = parsed.media[i]!;
    if (typeof m.type !== 'string' || typeof m.protocol !== 'string' || !Number.isInteger(m.port)) {
      return { kind: 'malformed', why: 'unreadable m= line' };
    }
    const accept = read.acceptTypes[i] ?? null;
    streams.push({
      media: m.type.toLowerCase(),
      port: m.port,
      proto: m.protocol,
      acceptTypes: accept === null ? null : accept.trim().toLowerCase().split(/\s+/).filter(Boolean),
      fileTransfer: read.fileSelector[i] === true,
    });
  }
  return { kind: 'ok', streams };
}
