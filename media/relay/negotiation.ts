// SDP offer/answer for the control verbs (docs/media-control.md, "offer" and "answer"):
// reading the peers' SDP, the transport of each leg (RFC 4975 §6, RFC 4566 O/A), the
// warnings, and the relay's SDP in the offer reply.

import { parseMsrpUri, type MsrpUri } from '../msrp/index.js';
import { cpimAddress } from '../cpim/head.js';
import { ORIGINATOR, newLeg } from './leg.js';
import { readMsrpMedia, relaySdp, type RelayEndpoint } from './sdp.js';
import { newSession, type Session } from './session.js';
import type { ControlErrorCode, Failure, OfferParams, OfferReply } from './types.js';

export function fail(code: ControlErrorCode, reason: string): Failure {
  return { result: 'error', 'error-code': code, 'error-reason': reason };
}

export function isNonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** TCP/TLS/MSRP (RFC 4975 §8.1); protocol names compare case-insensitively. */
function isTlsProtocol(protocol: string): boolean {
  return protocol.toUpperCase() === 'TCP/TLS/MSRP';
}

export interface PeerMedia {
  readonly path: MsrpUri[];
  readonly pathText: string[];
  /** The leg runs over TLS: the peer asked for it and the relay has TLS configured. */
  readonly tls: boolean;
  readonly warnings: string[];
}

function readPeer(sdp: string, tlsConfigured: boolean, side: 'offer' | 'answer'): PeerMedia | Failure {
  const warnings: string[] = [];
  let media: ReturnType<typeof readMsrpMedia>;
  let path: MsrpUri[];
  try {
    media = readMsrpMedia(sdp);
    path = media.path.map(u => parseMsrpUri(u));
  } catch (err) {
    return fail('BAD_SDP', (err as Error).message);
  }
  // RFC 6135: we are always passive; a passive offerer cannot reach us.
  if (side === 'offer' && media.setup === 'passive') warnings.push('offer has a=setup:passive; the relay only accepts connections');
  const asked = isTlsProtocol(media.protocol);
  if (asked && !tlsConfigured) {
    warnings.push(side === 'offer'
      ? 'offer is TCP/TLS/MSRP but the relay has no TLS configured: answered with TCP/MSRP (unencrypted)'
      : 'answer is TCP/TLS/MSRP but the relay has no TLS configured: the leg is TCP/MSRP (unencrypted)');
  }
  return { path, pathText: media.path, tls: asked && tlsConfigured, warnings };
}

/** The originator's offer: its path and transport. */
export function readOffer(sdp: string, tlsConfigured: boolean): PeerMedia | Failure {
  return readPeer(sdp, tlsConfigured, 'offer');
}

/** A device's answer: its protocol (that of the offer it answers) picks its transport. */
export function readAnswer(sdp: string, tlsConfigured: boolean): PeerMedia | Failure {
  return readPeer(sdp, tlsConfigured, 'answer');
}

/** A new session from a valid offer, with the relay URIs picked for it. */
export function sessionFromOffer(
  p: OfferParams, media: PeerMedia,
  u: { origId: string; devId: string; origUri: string; devUri: string; devTlsUri: string | undefined },
): Session {
  return newSession({
    callId: p['call-id'],
    policy: p.policy ?? 'C',
    directDelivery: p['direct-delivery'] === true,
    record: p.record === true,
    ...(isNonEmpty(p['served-user']) ? { servedUser: cpimAddress(p['served-user'])! } : {}),
    ...(isNonEmpty(p['conversation-id']) ? { conversationId: p['conversation-id'] } : {}),
    ...(isNonEmpty(p['contribution-id']) ? { contributionId: p['contribution-id'] } : {}),
    origId: u.origId,
    devId: u.devId,
    origUri: u.origUri,
    devUri: u.devUri,
    ...(u.devTlsUri !== undefined ? { devTlsUri: u.devTlsUri } : {}),
    originator: newLeg(ORIGINATOR, 'originator', media.path, media.pathText, u.origUri, media.tls),
  });
}

/** Warnings about the session's switches (docs/media-control.md, "offer"). */
export function sessionWarnings(s: Session): string[] {
  const w: string[] = [];
  if (s.directDelivery && !s.servedUser) w.push('direct-delivery without served-user: only device copies are marked');
  if (s.record && (!s.conversationId || !s.contributionId)) w.push('record without conversation-id/contribution-id: history off');
  return w;
}

/**
 * The offer reply: the relay's answer to the originator, and its offer for the devices.
 * Devices are offered the originator's transport; with TLS configured both variants are
 * returned, so a B2BUA may offer each device either (each leg independently).
 */
export function offerReply(
  offerSdp: string, s: Session, origTls: boolean, own: (uri: string, tls: boolean) => RelayEndpoint, warnings: string[],
): OfferReply {
  const sdp = relaySdp(offerSdp, own(s.origUri, origTls));
  const deviceTcpSdp = relaySdp(offerSdp, own(s.devUri, false));
  const deviceTlsSdp = s.devTlsUri !== undefined ? relaySdp(offerSdp, own(s.devTlsUri, true)) : undefined;
  return {
    result: 'ok',
    sdp,
    'device-sdp': origTls && deviceTlsSdp !== undefined ? deviceTlsSdp : deviceTcpSdp,
    'relay-uri': s.origUri,
    'device-relay-uri': origTls && s.devTlsUri !== undefined ? s.devTlsUri : s.devUri,
    ...(deviceTlsSdp !== undefined && s.devTlsUri !== undefined
      ? { 'device-sdp-tcp': deviceTcpSdp, 'device-sdp-tls': deviceTlsSdp, 'device-relay-uri-tcp': s.devUri, 'device-relay-uri-tls': s.devTlsUri }
      : {}),
    ...(warnings.length ? { warnings } : {}),
  };
}
