// SDP offer/answer for the control verbs (docs/media-control.md, "offer" and "answer"):
// reading the peers' SDP, the transport of each leg (RFC 4975 §6, RFC 4566 O/A), the
// relay's a=setup role on each leg (RFC 4145 §4.1, RFC 6135), where to connect when the
// relay is the active end (RFC 4975 §5.4, RFC 6714 for CEMA peers), the warnings, and
// the relay's SDP in the offer reply.

import { isIP } from 'node:net';
import { parseMsrpUri, type MsrpUri } from '../msrp/index.js';
import { cpimAddress } from '../cpim/head.js';
import type { DialTarget } from './dial.js';
import { ORIGINATOR, newLeg } from './leg.js';
import { parseFingerprint, type Fingerprint } from './fingerprint.js';
import { readMsrpMedia, relaySdp, type MsrpMedia, type RelayEndpoint, type SetupRole } from './sdp.js';
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
  /** The peer supports CEMA (a=msrp-cema, RFC 6714). */
  readonly cema: boolean;
  /** TLS legs: the peer's a=fingerprint (RFC 4975 §14.1), which its certificate must match. */
  readonly fingerprint?: Fingerprint;
  /** The relay's a=setup on this leg. */
  readonly role: SetupRole;
  /** Where the relay connects, when it is the active end. */
  readonly dial?: DialTarget;
  readonly warnings: string[];
}

/** The relay's role in answer to an offer's a=setup, with a warning if the value is odd. */
export interface SetupAnswer {
  readonly role: SetupRole;
  readonly warning?: string;
}

/**
 * The relay's a=setup in its answer to the originator (RFC 4145 §4.1):
 * - passive offer: the answer must be active, and the relay connects (RFC 6135 lets
 *   either end of an MSRP session be the active one);
 * - active offer, or no a=setup (absent in an offer means active, RFC 4145 §4.1; the
 *   offerer connects, RFC 4975 §5.4): passive;
 * - actpass: RFC 4145 §4.1 lets the answerer pick either. We pick passive, so the
 *   offerer connects as it would under RFC 4975 §5.4, and an offerer behind a NAT (the
 *   case RFC 6135 was written for) can still reach us;
 * - holdconn (no connection yet) and unknown values: passive, with a warning.
 */
export function answerSetup(offered: string | undefined): SetupAnswer {
  const v = offered?.trim().toLowerCase();
  switch (v) {
    case undefined:
    case 'active':
    case 'actpass':
      return { role: 'passive' };
    case 'passive':
      return { role: 'active' };
    case 'holdconn':
      return { role: 'passive', warning: 'offer has a=setup:holdconn, which the relay does not support: answered passive' };
    default:
      return { role: 'passive', warning: `offer has an unknown a=setup value "${offered ?? ''}": answered passive` };
  }
}

/**
 * A device's a=setup, in answer to the relay's passive offer (RFC 4145 §4.1): only
 * active fits. A passive answer means nobody connects, so it is an error; actpass and
 * holdconn are not answer values, so they are taken as active, with a warning. No
 * a=setup is accepted as before (docs/media-relay.md, "Known gaps").
 */
export function checkDeviceSetup(answered: string | undefined): { readonly error: string } | { readonly warning?: string } {
  const v = answered?.trim().toLowerCase();
  if (v === undefined || v === 'active') return {};
  if (v === 'passive') {
    return { error: 'answer has a=setup:passive, but the relay offered passive: the answer to a passive offer must be active (RFC 4145 §4.1), so nobody would connect' };
  }
  return { warning: `answer has a=setup:${v}, which is no answer to a passive offer: the device is expected to connect (active)` };
}

/** An address a c= line can give: IN IP4 or IN IP6 (RFC 4566 §5.7). */
export interface CAddress {
  readonly host: string;
  readonly family: 4 | 6;
}

/**
 * The c= value of a CEMA peer, checked (RFC 6714: the active end connects to the c=/m=
 * address, so it must be one). `mustConnect`: the relay will connect to it, so the
 * unspecified address (0.0.0.0, ::) is refused too. Returns the reason on failure.
 */
export function cemaAddress(value: string | undefined, mustConnect: boolean): CAddress | { readonly error: string } | undefined {
  if (value === undefined) return mustConnect ? { error: 'a=msrp-cema without a c= line: no address to connect to' } : undefined;
  const parts = value.split(/\s+/);
  const [net, addrType, raw] = parts;
  if (parts.length !== 3 || net !== 'IN' || (addrType !== 'IP4' && addrType !== 'IP6') || !raw) {
    return { error: `c=${value}: expected "IN IP4 <address>" or "IN IP6 <address>"` };
  }
  const host = raw.split('/')[0]!; // a multicast TTL / count suffix is no use for TCP anyway
  const family = addrType === 'IP4' ? 4 : 6;
  const literal = isIP(host);
  if (literal !== 0 && literal !== family) return { error: `c=${value}: the address is not ${addrType}` };
  if (literal === 0 && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
    return { error: `c=${value}: not an address or host name` };
  }
  if (mustConnect && (host === '0.0.0.0' || (literal === 6 && /^[0:]+$/.test(host)))) {
    return { error: `c=${value}: the unspecified address cannot be connected to` };
  }
  return { host, family };
}

/**
 * Where the relay connects when it is the active end: with CEMA the c=/m= address
 * (RFC 6714), else the first a=path URI's host and port (RFC 4975 §5.4, §6.2: no port
 * means 2855). The To-Path stays the a=path either way.
 */
export function dialTarget(media: MsrpMedia, path: readonly MsrpUri[], tls: boolean): DialTarget | { readonly error: string } {
  if (media.cema) {
    const c = cemaAddress(media.connection, true);
    if (c === undefined || 'error' in c) return { error: c?.error ?? 'no c= line' };
    return { host: c.host, port: media.port, tls };
  }
  const first = path[0]!;
  return { host: first.host, port: first.port ?? 2855, tls };
}

function readPeer(sdp: string, tlsConfigured: boolean, side: 'offer' | 'answer'): PeerMedia | Failure {
  const warnings: string[] = [];
  let media: MsrpMedia;
  let path: MsrpUri[];
  try {
    media = readMsrpMedia(sdp);
    path = media.path.map(u => parseMsrpUri(u));
  } catch (err) {
    return fail('BAD_SDP', (err as Error).message);
  }
  const asked = isTlsProtocol(media.protocol);
  const tls = asked && tlsConfigured;
  let role: SetupRole = 'passive';
  let dial: DialTarget | undefined;
  if (side === 'offer') {
    const setup = answerSetup(media.setup);
    role = setup.role;
    if (setup.warning) warnings.push(setup.warning);
    if (role === 'active') {
      const target = dialTarget(media, path, tls);
      if ('error' in target) return fail('BAD_SDP', target.error);
      dial = target;
    }
  } else {
    const setup = checkDeviceSetup(media.setup);
    if ('error' in setup) return fail('BAD_SDP', setup.error);
    if (setup.warning) warnings.push(setup.warning);
  }
  if (media.cema && dial === undefined) {
    // The relay does not connect to this peer; a c= line it has must still be one.
    const c = cemaAddress(media.connection, false);
    if (c !== undefined && 'error' in c) return fail('BAD_SDP', c.error);
  }
  let fingerprint: Fingerprint | undefined;
  if (tls && media.fingerprint !== undefined) {
    fingerprint = parseFingerprint(media.fingerprint);
    if (fingerprint === undefined) return fail('BAD_SDP', `a=fingerprint:${media.fingerprint} is not a fingerprint (RFC 8122 §5)`);
  }
  if (asked && !tlsConfigured) {
    warnings.push(side === 'offer'
      ? 'offer is TCP/TLS/MSRP but the relay has no TLS configured: answered with TCP/MSRP (unencrypted)'
      : 'answer is TCP/TLS/MSRP but the relay has no TLS configured: the leg is TCP/MSRP (unencrypted)');
  }
  return { path, pathText: media.path, tls, cema: media.cema, role, ...(dial ? { dial } : {}), ...(fingerprint ? { fingerprint } : {}), warnings };
}

/** The originator's offer: its path, transport and the relay's setup role. */
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
    originator: newLeg(ORIGINATOR, 'originator', media.path, media.pathText, u.origUri, media.tls, media.cema, media.fingerprint),
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
  offerSdp: string, s: Session, media: PeerMedia, own: (uri: string, tls: boolean) => RelayEndpoint, warnings: string[],
): OfferReply {
  const origTls = media.tls;
  // The answer to the originator carries the relay's role; the devices are always offered passive.
  const sdp = relaySdp(offerSdp, own(s.origUri, origTls), media.role, true);
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
