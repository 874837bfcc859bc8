/**
 * What the B2BUA driver (./b2bua.ts) keeps for a deferred call (CR 8.3.2.1 step 8 a ii,
 * 8.3.2.1.1 "deferred delivery"; docs/b2bua.md "Deferred sessions"), as pure helpers:
 * - the deferred record handed to the delivery module (./deferred/record.ts);
 * - the leg source: what a device INVITE needs once the call's setup is gone (the
 *   caller's INVITE, step 7's edit, the relay's device offer, the devices met so far),
 *   printable for the call store so a restart keeps it;
 * - whether a device that registers can take the session (CR step 6 "suitable", and
 *   addressable on its own as step 8 needs);
 * - the index of live deferred calls by served user.
 */
import type { Device } from '../devices/types.js';
import { parseSipMessage, type SipRequest } from '../sip/message.js';
import { sdpOffer } from '../sip/sdp.js';
import { inviteFacts } from '../rules/facts.js';
import { suitableDevices } from '../rules/stages/no-suitable-device.js';
import { deviceAddress } from '../rules/stages/device-invites.js';
import type { ServiceEdit } from '../rules/stages/service-identification.js';
import type { DeferredRecord } from './deferred/record.js';

/** What a device leg's INVITE is built from (plugin/rules/stages/device-invites.ts). */
export interface LegSource {
  readonly invite: SipRequest;
  readonly service: ServiceEdit;
  /** The relay's offer for device legs (`device-sdp` of its `offer` reply). */
  readonly deviceSdp: string;
  /** Devices by key (deviceKey): the plan's targets and those that registered since. */
  readonly devices: Map<string, Device>;
}

/** A header value (From, To) without its `tag` parameter (RFC 3261 §19.3: a header parameter, after the URI). */
export function withoutTag(value: string): string {
  const end = value.lastIndexOf('>');
  const head = end >= 0 ? value.slice(0, end + 1) : '';
  const params = end >= 0 ? value.slice(end + 1) : value;
  return (head + params.replace(/;\s*tag\s*=\s*[^;]*/gi, '')).trim();
}

export interface DeferredCallFacts {
  readonly deferredId: string;
  readonly callId: string;
  readonly servedUser: string;
  readonly invite: SipRequest;
  readonly group: boolean;
  /** The caller's Contact URI (the Controlling Function's, for a group session). */
  readonly focus: string;
  readonly expiresAt: number;
}

/** The record of a deferred call, from its INVITE (CR 8.3.2.1 step 8 c iv: the ids a delivery INVITE copies). */
export function deferredRecordOf(f: DeferredCallFacts): DeferredRecord {
  const h = (name: string): string | null => {
    const v = f.invite.get(name);
    return v === undefined || v === '' ? null : v;
  };
  return {
    deferredId: f.deferredId,
    servedUser: f.servedUser,
    callId: f.callId,
    from: withoutTag(f.invite.get('From') ?? '') || `<${f.servedUser}>`,
    pAssertedIdentity: [...f.invite.getValues('P-Asserted-Identity')],
    to: withoutTag(f.invite.get('To') ?? '') || `<${f.servedUser}>`,
    conversationId: h('Conversation-ID'),
    contributionId: h('Contribution-ID'),
    inReplyToContributionId: h('InReplyTo-Contribution-ID'),
    group: f.group,
    focus: f.group && f.focus !== '' ? f.focus : null,
    expiresAt: f.expiresAt,
  };
}

/** The INVITE as text again (the call store keeps it for a restart). */
export function printInvite(req: SipRequest): string {
  return `${req.method} ${req.ruri} SIP/2.0\r\n${req.headers.map((x) => `${x.name}: ${x.value}\r\n`).join('')}\r\n${req.body}`;
}

/** A stored INVITE back; null when it does not parse as a request (a damaged record). */
export function parseInvite(text: string): SipRequest | null {
  try {
    const m = parseSipMessage(text);
    return m.kind === 'request' ? m : null;
  } catch {
    return null;
  }
}

/**
 * Whether `device` can take the deferred session: suitable for its offered streams and the
 * caller's preferences (CR step 6, ../rules/stages/no-suitable-device.ts), not expired at
 * `now`, and addressable on its own (a GRUU or a usable +sip.instance, as step 8 needs).
 */
export function deviceTakes(invite: SipRequest, servedUser: string, device: Device, now: number): boolean {
  const facts = inviteFacts(invite);
  if (facts.icsi === null) return false;
  const offer = sdpOffer(invite);
  const streams = offer.kind === 'ok' ? offer.streams : [];
  return suitableDevices(facts, facts.icsi, streams, [device], now).length === 1 && deviceAddress(device, servedUser) !== null;
}

/** Live deferred calls (their Call-IDs) by served user. */
export class DeferredIndex {
  readonly #byUser = new Map<string, Set<string>>();

  add(servedUser: string, callId: string): void {
    let s = this.#byUser.get(servedUser);
    if (!s) this.#byUser.set(servedUser, (s = new Set()));
    s.add(callId);
  }

  delete(servedUser: string, callId: string): void {
    const s = this.#byUser.get(servedUser);
    if (!s) return;
    s.delete(callId);
    if (s.size === 0) this.#byUser.delete(servedUser);
  }

  of(servedUser: string): readonly string[] {
    return [...(this.#byUser.get(servedUser) ?? [])];
  }

  get size(): number {
    let n = 0;
    for (const s of this.#byUser.values()) n += s.size;
    return n;
  }
}
