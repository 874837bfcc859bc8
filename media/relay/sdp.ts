// SDP for the relay's legs (RFC 4975 §8, RFC 4145, RFC 6135, RFC 6714, docs/media-relay.md).
// The relay terminates MSRP on both sides: each leg sees the relay's own c=, port and
// a=path, its a=setup role for that leg (negotiation.ts picks it) and a=msrp-cema.

import { isIP } from 'node:net';
import sdpTransform from 'sdp-transform';

export class SdpError extends Error {
  constructor(
    readonly code: 'SDP_NO_MSRP' | 'SDP_NO_PATH' | 'SDP_BAD',
    message: string,
  ) {
    super(message);
  }
}

export interface MsrpMedia {
  /** a=path URIs in order (RFC 4975 §8.2); the last one is the peer itself. */
  readonly path: string[];
  readonly acceptTypes?: string;
  readonly acceptWrappedTypes?: string;
  readonly maxSize?: string;
  readonly setup?: string;
  readonly protocol: string;
  /** m= port (not 0: rejected streams are skipped). */
  readonly port: number;
  /** The peer supports CEMA: a=msrp-cema on its m= line (RFC 6714). */
  readonly cema: boolean;
  /** The c= value in force for the m= line (its own, else the session's), as written. */
  readonly connection?: string;
  /** a=fingerprint of the m= line, else the session's (RFC 8122 §5), as `hash value`. */
  readonly fingerprint?: string;
}

type SdpMedia = sdpTransform.SessionDescription['media'][number];

function attr(m: SdpMedia, name: string): string | undefined {
  const prefix = `${name}:`;
  const hit = (m.invalid ?? []).find(a => a.value.toLowerCase().startsWith(prefix));
  return hit?.value.slice(prefix.length).trim();
}

function hasFlag(m: SdpMedia, name: string): boolean {
  return (m.invalid ?? []).some(a => a.value.trim().toLowerCase() === name);
}

/**
 * The c= value in force for the index-th m= section: its own c= line, else the
 * session-level one (RFC 4566 §5.7). Read from the text, since the parser drops
 * c= lines it cannot read, and those are the ones to report.
 */
function connectionFor(sdp: string, index: number): string | undefined {
  let session: string | undefined;
  let media: string | undefined;
  let section = -1;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      if (section === index) break;
      section += 1;
      continue;
    }
    if (!line.startsWith('c=')) continue;
    if (section === -1) session ??= line.slice(2).trim();
    else if (section === index) media ??= line.slice(2).trim();
  }
  return media ?? session;
}

function msrpMedia(sdp: string): { parsed: sdpTransform.SessionDescription; index: number; media: MsrpMedia } {
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(sdp);
  } catch (err) {
    throw new SdpError('SDP_BAD', `unparsable SDP: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed.media)) throw new SdpError('SDP_BAD', 'no m= line');
  const index = parsed.media.findIndex(
    m => m.type === 'message' && /^TCP(\/TLS)?\/MSRP$/i.test(m.protocol) && m.port !== 0,
  );
  const m = parsed.media[index];
  if (!m) throw new SdpError('SDP_NO_MSRP', 'no active m=message TCP/MSRP line');
  const path = attr(m, 'path');
  if (!path) throw new SdpError('SDP_NO_PATH', 'm=message without a=path');
  return {
    parsed,
    index,
    media: {
      path: path.split(/\s+/).filter(Boolean),
      acceptTypes: attr(m, 'accept-types'),
      acceptWrappedTypes: attr(m, 'accept-wrapped-types'),
      maxSize: attr(m, 'max-size'),
      setup: m.setup,
      protocol: m.protocol,
      port: m.port,
      cema: hasFlag(m, 'msrp-cema'),
      connection: connectionFor(sdp, index),
      ...fingerprintOf(m.fingerprint ?? parsed.fingerprint),
    },
  };
}

function fingerprintOf(f: { type: string; hash: string } | undefined): { fingerprint?: string } {
  return f ? { fingerprint: `${f.type} ${f.hash}` } : {};
}

/** The MSRP parameters a peer put in its offer or answer. */
export function readMsrpMedia(sdp: string): MsrpMedia {
  return msrpMedia(sdp).media;
}

export interface RelayEndpoint {
  readonly host: string;
  readonly port: number;
  /** The relay's own URI for this leg: msrp(s)://host:port/<session-id>;tcp */
  readonly uri: string;
  /** The leg runs over TLS: TCP/TLS/MSRP and an msrps URI (RFC 4975 §6, §8.1). */
  readonly tls?: boolean;
  /** a=fingerprint value of our certificate, "sha-256 AB:CD:..." (RFC 4572 §5), TLS only. */
  readonly fingerprint?: string;
}

/** The relay's role in the TCP set-up of a leg (RFC 4145 §4): passive listens, active connects. */
export type SetupRole = 'active' | 'passive';

let version = 0;

/**
 * The relay's SDP for a leg, built from the peer SDP it answers or mirrors:
 * own origin, c= and port, a=path with the relay URI, a=setup with the relay's role,
 * a=msrp-cema (RFC 6714: we support it on every leg), on TLS legs TCP/TLS/MSRP and
 * a=fingerprint of our certificate (RFC 4572), accept-types, accept-wrapped-types and
 * max-size kept (RFC 4975 §8.6; docs/media-relay.md).
 */
export function relaySdp(peerSdp: string, own: RelayEndpoint, setup: SetupRole = 'passive', answer = false): string {
  const { parsed, index, media } = msrpMedia(peerSdp);
  version += 1;
  const ip = isIP(own.host) === 6 ? 'IP6' : 'IP4';
  const lines = [
    'v=0',
    `o=- ${Date.now()} ${version} IN ${ip} ${own.host}`,
    's=-',
    `c=IN ${ip} ${own.host}`,
    't=0 0',
    `m=message ${own.port} ${own.tls ? 'TCP/TLS/MSRP' : /TLS/i.test(media.protocol) ? 'TCP/MSRP' : media.protocol} *`,
    `a=path:${own.uri}`,
  ];
  if (own.tls && own.fingerprint) lines.push(`a=fingerprint:${own.fingerprint}`);
  if (media.acceptTypes) lines.push(`a=accept-types:${media.acceptTypes}`);
  if (media.acceptWrappedTypes) lines.push(`a=accept-wrapped-types:${media.acceptWrappedTypes}`);
  if (media.maxSize) lines.push(`a=max-size:${media.maxSize}`);
  lines.push('a=msrp-cema');
  lines.push(`a=setup:${setup}`);
  if (!answer) return `${lines.join('\r\n')}\r\n`;
  // RFC 3264 §6: an answer has as many m= lines as the offer, in its order; the relay
  // carries one MSRP stream, so every other offered stream is declined with port 0
  const head = lines.slice(0, 5);
  const ours = lines.slice(5);
  const blocks = parsed.media.map((m, i) => (i === index ? ours : [`m=${m.type} 0 ${m.protocol} ${String(m.payloads ?? '*') || '*'}`]));
  return `${[...head, ...blocks.flat()].join('\r\n')}\r\n`;
}
