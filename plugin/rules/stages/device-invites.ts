/**
 * CR 8.3.2.1 step 8, B2BUA mode: the INVITE the B2BUA sends to each target device
 * (docs/policy.md "Step 8 (B2BUA mode)"). Pure: the B2BUA supplies its Contact, the
 * relay's SDP offer, the session interval and its User-Agent; its SIP layer adds Via,
 * From, To, Call-ID, CSeq, Max-Forwards, Route and Content-Length, and Content-Type
 * from `contentType`.
 *
 * - Request-URI: the device's public GRUU (RFC 5627); without one, the served user's
 *   address with `Accept-Contact: *;+sip.instance="<urn>";explicit;require` (RFC 3841
 *   §9.2: only that instance matches). decideInvite never targets a device with neither
 *   (deviceAddress); given one anyway, deviceInvite sends to its registered Contact URI
 *   and says so in `warnings`.
 * - Carried from the caller's INVITE: every header field except NOT_CARRIED
 *   (../b2bua-headers.ts), Require without REQUIRE_DROPPED tokens, and step 7's edit
 *   (P-Preferred-Service removed, P-Asserted-Service added). That keeps the caller's
 *   Accept-Contact and the three session identifiers.
 * - Added: Contact, `Supported: timer, recipient-list-invite`, `Session-Expires:
 *   <s>;refresher=uas` (RFC 4028 §7.1), User-Agent.
 * - Body: the relay's offer; when the caller's INVITE carries a recipient list
 *   (RFC 5366), multipart/mixed of that offer and the recipient-list-history (RFC 5364
 *   §7, bcc left out). A malformed list never fails the call: the INVITE goes without the
 *   history and `warnings` says why.
 *
 * `targetInvite` is the same INVITE to a Request-URI the B2BUA chose (a 3xx Contact, the
 * ISF: CR 8.3.2.1.1).
 */
import type { Device } from '../../devices/types.js';
import type { Header } from '../../b2bua/sip/build.js';
import { canonicalHeaderName, splitCommaList, type SipRequest } from '../../sip/message.js';
import { printMultipart } from '../../sip/multipart.js';
import { HISTORY_DISPOSITION, RESOURCE_LISTS_TYPE, recipientListHistory, recipientListOf } from '../../sip/recipient-list.js';
import { DEVICE_SUPPORTED, MIN_SE, NOT_CARRIED, REQUIRE_DROPPED } from '../b2bua-headers.js';
import type { ServiceEdit } from './service-identification.js';
import { SAFE_INSTANCE } from './proxy.js';

export const SDP_TYPE = 'application/sdp';

/** What every leg INVITE of one call is built from. */
export interface LegInviteInput {
  /** The caller's INVITE as the B2BUA received it. */
  readonly original: SipRequest;
  /** The served user's address (canonical AoR, as Device.aor), e.g. `sip:bob@example.net`. */
  readonly servedUser: string;
  /** Step 7's header edit (the `b2bua` decision carries it). */
  readonly service: ServiceEdit;
  /** The MSRP relay's SDP offer towards the device. */
  readonly offerSdp: string;
  /** The B2BUA's own URI for Contact, bare or in `<...>`. */
  readonly contact: string;
  /** Session interval in seconds (at least MIN_SE; a smaller value is raised). */
  readonly sessionExpires: number;
  /** The PF's User-Agent value (pfUserAgent()). */
  readonly userAgent: string;
}

export interface DeviceInviteInput extends LegInviteInput {
  readonly device: Device;
}

export interface TargetInviteInput extends LegInviteInput {
  readonly ruri: string;
}

export interface LegInvite {
  readonly ruri: string;
  /** Header fields in order, Contact included, Content-Type not (it is `contentType`). */
  readonly headers: readonly Header[];
  readonly body: string;
  /** The Content-Type value to send with `body`. */
  readonly contentType: string;
  /** What was left out or fallen back on, and why, for the log. */
  readonly warnings: readonly string[];
}

/** How one device is addressed on its own. */
export interface DeviceAddress {
  readonly ruri: string;
  /** The Accept-Contact value naming the instance, or null (a GRUU needs none). */
  readonly acceptContact: string | null;
}

/** A URI that can stand as a Request-URI or inside `<...>` as it is. */
const SAFE_URI = /^sips?:[^\s<>"]+$/i;

/**
 * The device's own address (CR step 8): its public GRUU, else the served user's address
 * plus an Accept-Contact for its instance; null when it has neither (docs/policy.md).
 */
export function deviceAddress(device: Device, servedUser: string): DeviceAddress | null {
  if (device.pubGruu !== null && SAFE_URI.test(device.pubGruu)) return { ruri: device.pubGruu, acceptContact: null };
  if (device.instance !== null && SAFE_INSTANCE.test(device.instance) && SAFE_URI.test(servedUser)) {
    return { ruri: servedUser, acceptContact: `*;+sip.instance="${device.instance}";explicit;require` };
  }
  return null;
}

/** Step 7's `hdrs` (whole `Name: value` CRLF lines) as header fields. */
function serviceHeaders(hdrs: string): Header[] {
  const out: Header[] = [];
  for (const line of hdrs.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return out;
}

/** The caller's header fields a leg INVITE carries, in order, step 7's edit applied. */
function carriedHeaders(original: SipRequest, service: ServiceEdit): Header[] {
  const removed = new Set(service.remove.map((r) => canonicalHeaderName(r).toLowerCase()));
  const out: Header[] = [];
  for (const h of original.headers) {
    const key = h.name.toLowerCase();
    if (NOT_CARRIED.has(key) || removed.has(key)) continue;
    if (key === 'require') {
      const kept = splitCommaList(h.value).filter((t) => !REQUIRE_DROPPED.has(t.toLowerCase()));
      if (kept.length) out.push([h.name, kept.join(', ')]);
      continue;
    }
    out.push([h.name, h.value]);
  }
  out.push(...serviceHeaders(service.hdrs));
  return out;
}

interface Body {
  readonly body: string;
  readonly contentType: string;
  readonly warnings: readonly string[];
}

/** The relay's offer, with the recipient-list-history when the caller sent a list. */
function legBody(original: SipRequest, offerSdp: string): Body {
  const list = recipientListOf(original);
  if (list.kind === 'malformed') return { body: offerSdp, contentType: SDP_TYPE, warnings: [`recipient list left out: ${list.why}`] };
  const history = list.kind === 'ok' ? recipientListHistory(list.recipients) : null;
  if (history === null) return { body: offerSdp, contentType: SDP_TYPE, warnings: [] };
  const mp = printMultipart([
    { headers: [['Content-Type', SDP_TYPE]], body: offerSdp },
    { headers: [['Content-Type', RESOURCE_LISTS_TYPE], ['Content-Disposition', HISTORY_DISPOSITION]], body: history },
  ]);
  return { body: mp.body, contentType: mp.contentType, warnings: [] };
}

function bracketed(uri: string): string {
  const t = uri.trim();
  return t.startsWith('<') ? t : `<${t}>`;
}

function legInvite(input: LegInviteInput, ruri: string, acceptContact: string | null, warnings: readonly string[]): LegInvite {
  const body = legBody(input.original, input.offerSdp);
  const interval = Number.isFinite(input.sessionExpires) ? Math.max(MIN_SE, Math.floor(input.sessionExpires)) : MIN_SE;
  const headers = carriedHeaders(input.original, input.service);
  if (acceptContact !== null) headers.push(['Accept-Contact', acceptContact]);
  headers.push(
    ['Contact', bracketed(input.contact)],
    ['Supported', DEVICE_SUPPORTED],
    ['Session-Expires', `${interval};refresher=uas`],
    ['User-Agent', input.userAgent],
  );
  return { ruri, headers, body: body.body, contentType: body.contentType, warnings: [...warnings, ...body.warnings] };
}

/** The INVITE to one target device (CR 8.3.2.1 step 8). */
export function deviceInvite(input: DeviceInviteInput): LegInvite {
  const address = deviceAddress(input.device, input.servedUser);
  if (address) return legInvite(input, address.ruri, address.acceptContact, []);
  // never from decideInvite: reach that one device where its registration points
  return legInvite(input, input.device.contact, null, ['device has no public GRUU and no usable +sip.instance: sent to its Contact URI']);
}

/** The same INVITE to a Request-URI the B2BUA chose (a 3xx Contact, the ISF). */
export function targetInvite(input: TargetInviteInput): LegInvite {
  return legInvite(input, input.ruri, null, []);
}
