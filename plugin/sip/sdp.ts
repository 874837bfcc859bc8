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

/** sdp-transform's line filter (lib/parser.js); it splits lines at CRLF, CR or LF. */
const TRANSFORM_LINE = /^[a-z]=/;
/** sdp-transform's catch-all `a=` rule: the line's value as stored in `invalid`. */
const ANY = /(.*)/;
const ACCEPT_TYPES = 'accept-types:';
const FILE_SELECTOR = 'file-selector:';

interface SdpLines {
  /** The o= and m= lines, for sdp-transform. */
  text: string;
  /** Per m= section: its first a=accept-types value, and whether it has an a=file-selector. */
  readonly acceptTypes: (string | null)[];
  readonly fileSelector: boolean[];
  section: number;
}

/**
 * One line as sdp-transform splits and filters them (lib/parser.js). sdp-transform
 * parses each line on its own into the session or the current m= section; only o= and
 * m= lines write `origin` or a section's `type`/`port`/`protocol`, so parsing them alone
 * gives the same values. `a=accept-types:` and `a=file-selector:` match no named a= rule
 * of its grammar (every other rule starts with another literal name), so they always
 * land in the section's `invalid` list, read here as sdp-transform would.
 */
function readLine(l: string, read: SdpLines): void {
  if (!TRANSFORM_LINE.test(l)) return;
  const type = l[0];
  if (type === 'm') {
    read.section++;
    read.acceptTypes.push(null);
    read.fileSelector.push(false);
  }
  if (type === 'o' || type === 'm') {
    read.text += read.text === '' ? l : `\r\n${l}`;
  } else if (type === 'a' && read.section >= 0) {
    const value = ANY.exec(l.slice(2))![1]!;
    const lower = value.toLowerCase();
    if (read.acceptTypes[read.section] === null && lower.startsWith(ACCEPT_TYPES)) read.acceptTypes[read.section] = value.slice(ACCEPT_TYPES.length);
    else if (lower.startsWith(FILE_SELECTOR)) read.fileSelector[read.section] = true;
  }
}

/**
 * One pass over the body: our checks on its lines as split at CRLF or LF (the first one
 * non-empty must be `v=0`, every non-empty one `x=...`), and readLine on each line as
 * sdp-transform splits them (at CRLF, CR or LF: a lone CR inside one of our lines starts
 * another of its lines). Returns the lines read, or why the SDP is malformed.
 */
function scanSdp(body: string): SdpLines | string {
  const read: SdpLines = { text: '', acceptTypes: [], fileSelector: [], section: -1 };
  let first = true;
  let pos = 0;
  while (pos < body.length) {
    let nl = body.indexOf('\n', pos);
    if (nl === -1) nl = body.length;
    // /\r?\n/: a CR right before the LF belongs to the line end
    const end = nl < body.length && nl > pos && body.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl;
    if (end > pos) {
      const line = body.slice(pos, end);
      if (first) {
        if (line !== 'v=0') return 'SDP does not start with v=0';
        first = false;
      } else if (!LINE.test(line)) return 'SDP line not of the form x=...';
      if (line.includes('\r')) for (const part of line.split('\r')) readLine(part, read);
      else readLine(line, read);
    }
    pos = nl + 1;
  }
  return first ? 'SDP does not start with v=0' : read;
}

/** Read the SDP offer. Never throws. */
export function sdpOffer(msg: SipMessage): SdpOffer {
  const body = sdpBody(msg);
  if (body === null) return { kind: 'missing', why: 'no application/sdp body' };
  if (body.length > MAX_SDP_BYTES) return { kind: 'malformed', why: 'SDP too large' };
  const read = scanSdp(body);
  if (typeof read === 'string') return { kind: 'malformed', why: read };
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
