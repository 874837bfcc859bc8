// SDP for the relay's legs (RFC 4975 §8, RFC 6135, docs/media-relay.md).
// The relay terminates MSRP on both sides: each leg sees the relay's own c=, port
// and a=path, always with a=setup:passive so that every peer connects to us.

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
}

type SdpMedia = sdpTransform.SessionDescription['media'][number];

function attr(m: SdpMedia, name: string): string | undefined {
  const prefix = `${name}:`;
  const hit = (m.invalid ?? []).find(a => a.value.toLowerCase().startsWith(prefix));
  return hit?.value.slice(prefix.length).trim();
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
    },
  };
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

let version = 0;

/**
 * The relay's SDP for a leg, built from the peer SDP it answers or mirrors:
 * own origin, c= and port, a=path with the relay URI, a=setup:passive (RFC 6135),
 * on TLS legs TCP/TLS/MSRP and a=fingerprint of our certificate (RFC 4572),
 * accept-types, accept-wrapped-types and max-size kept (RFC 4975 §8.6; docs/media-relay.md).
 */
export function relaySdp(peerSdp: string, own: RelayEndpoint): string {
  const { media } = msrpMedia(peerSdp);
  version += 1;
  const lines = [
    'v=0',
    `o=- ${Date.now()} ${version} IN IP4 ${own.host}`,
    's=-',
    `c=IN IP4 ${own.host}`,
    't=0 0',
    `m=message ${own.port} ${own.tls ? 'TCP/TLS/MSRP' : /TLS/i.test(media.protocol) ? 'TCP/MSRP' : media.protocol} *`,
    `a=path:${own.uri}`,
  ];
  if (own.tls && own.fingerprint) lines.push(`a=fingerprint:${own.fingerprint}`);
  if (media.acceptTypes) lines.push(`a=accept-types:${media.acceptTypes}`);
  if (media.acceptWrappedTypes) lines.push(`a=accept-wrapped-types:${media.acceptWrappedTypes}`);
  if (media.maxSize) lines.push(`a=max-size:${media.maxSize}`);
  lines.push('a=setup:passive');
  return `${lines.join('\r\n')}\r\n`;
}
