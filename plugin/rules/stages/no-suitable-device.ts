/**
 * CR 8.3.2.1 step 6, a suitable CPM Client is registered; none -> policy: 480, or the
 * ISF (CR 6.5); with deferred delivery on, step 8 a ii defers instead (./deferred-delivery.ts,
 * decided in ../invite.ts). "Suitable" (our reading: docs/policy.md "Step 6"):
 * - registered and not expired;
 * - advertises the session's ICSI in `+g.3gpp.icsi-ref` (percent-decoded, possibly a
 *   list) or `+g.oma.sip-im`;
 * - can take every active offered stream: an MSRP chat stream needs the above; an MSRP
 *   file transfer stream (a=file-selector) needs the CPM file-transfer ICSI or the
 *   file-transfer IARI; an `audio`/`video` stream needs that RFC 3840 tag;
 * - not removed by the caller's Reject-Contact / required Accept-Contact (RFC 3841).
 */
import type { Device, FeatureValue } from '../../devices/types.js';
import type { Decision } from '../decision.js';
import type { Policy } from '../policy.js';
import type { InviteFacts } from '../facts.js';
import type { SdpStream } from '../../sip/sdp.js';
import { featureSetOf, type FeatureAtom, type FeatureSet } from '../../callerprefs/features.js';
import { rankContacts } from '../../callerprefs/match.js';
import { IARI_FILE_TRANSFER, ICSI_FILE_TRANSFER, TAG_IARI, TAG_ICSI, TAG_SIMPLE_IM, type SessionIcsi } from '../cpm.js';
import { reject } from './reject.js';

function hasToken(set: FeatureSet, tag: string, value: string): boolean {
  const atoms: readonly FeatureAtom[] | undefined = set.get(tag);
  return atoms !== undefined && atoms.some((a) => a.kind === 'token' && a.value === value);
}

function hasTrue(set: FeatureSet, tag: string): boolean {
  const atoms = set.get(tag);
  return atoms !== undefined && atoms.some((a) => a.kind === 'bool' && a.value);
}

function offersService(set: FeatureSet, icsi: SessionIcsi): boolean {
  return hasToken(set, TAG_ICSI, icsi) || set.has(TAG_SIMPLE_IM);
}

function takesStream(set: FeatureSet, icsi: SessionIcsi, s: SdpStream): boolean {
  if (s.port === 0) return true;
  if (s.media === 'message') {
    if (s.fileTransfer) return hasToken(set, TAG_ICSI, ICSI_FILE_TRANSFER) || hasToken(set, TAG_IARI, IARI_FILE_TRANSFER);
    return offersService(set, icsi);
  }
  return hasTrue(set, s.media);
}

/** Whether one device is suitable for the offered streams (not counting caller preferences). */
export function deviceCapable(params: Readonly<Record<string, FeatureValue>>, icsi: SessionIcsi, streams: readonly SdpStream[]): boolean {
  const set = featureSetOf(params);
  return offersService(set, icsi) && streams.every((s) => takesStream(set, icsi, s));
}

/**
 * The suitable devices, best first (RFC 3841 Qa, then q). Expired devices are ignored.
 */
export function suitableDevices(facts: InviteFacts, icsi: SessionIcsi, streams: readonly SdpStream[], devices: readonly Device[], now: number): Device[] {
  const capable = devices.filter((d) => d.expiresAt > now && deviceCapable(d.params, icsi, streams));
  return rankContacts(facts.prefs, capable).map((r) => r.item);
}

export function checkSuitableDevice(suitable: readonly Device[], policy: Policy, pfHost: string): Decision | null {
  if (suitable.length > 0) return null;
  if (policy.noSuitableDevice === 'isf') {
    // CR step 6 b: straight to the ISF; step 7 (service identification) is not reached.
    return { action: 'isf', ruri: policy.isfUri, remove: [], hdrs: '', stage: 'no-suitable-device' };
  }
  return reject('no-suitable-device', 480, pfHost, null);
}
