/** Builders for INVITEs, devices and documents used by the rules tests. */
import type { Device } from '../../../plugin/devices/types.js';
import { parseSipMessage, type SipRequest } from '../../../plugin/sip/message.js';
import { defaultPolicy, type Policy } from '../../../plugin/rules/policy.js';
import type { InviteInput } from '../../../plugin/rules/invite.js';
import { parseXml } from '../../../plugin/xdm/xml.js';
import { parseBlacklist, parseRuleset, type Blacklist, type Ruleset } from '../../../plugin/xdm/documents.js';

export const NOW = Date.UTC(2026, 0, 1);
export const PF_HOST = 'pf.example.net';
export const ICSI = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session';
export const ICSI_GROUP = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session.group';
export const ENC = (s: string): string => s.replace(/:/g, '%3A');

export const CHAT_SDP = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=message 7654 TCP/MSRP *',
  'a=path:msrp://127.0.0.1:7654/s1a2b3;tcp',
  'a=accept-types:message/cpim application/im-iscomposing+xml',
  'a=accept-wrapped-types:text/plain message/imdn+xml',
  'a=setup:active',
  '',
].join('\r\n');

export const FT_SDP = CHAT_SDP.replace('a=setup:active', 'a=file-selector:name:"cat.jpg" type:image/jpeg size:1234\r\na=setup:active');

/** Headers by default: a CPM 1-1 chat INVITE from alice to bob (spec-digest example). */
export const BASE_HEADERS: Readonly<Record<string, string | null>> = {
  Via: 'SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1',
  From: '<sip:alice@example.net>;tag=a1',
  To: '<sip:bob@example.net>',
  'Call-ID': 'c1@127.0.0.1',
  CSeq: '1 INVITE',
  Contact: '<sip:alice@127.0.0.1:5070>',
  'P-Asserted-Identity': '<sip:alice@example.net>',
  'P-Preferred-Service': ICSI,
  'Accept-Contact': `*;+g.3gpp.icsi-ref="${ENC(ICSI)}"`,
  'Conversation-ID': 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
  'Contribution-ID': 'abcdef-1234',
  'User-Agent': 'CPM-client/OMA2.2 RCS-client/UP_2.4',
  'Content-Type': 'application/sdp',
};

/**
 * Build an INVITE. `headers` overrides the base: null removes a header, an array gives
 * several header lines.
 */
export function inviteText(headers: Readonly<Record<string, string | readonly string[] | null>> = {}, body: string = CHAT_SDP): string {
  const merged: Record<string, string | readonly string[] | null> = { ...BASE_HEADERS, ...headers };
  const lines = ['INVITE sip:bob@example.net SIP/2.0'];
  for (const [name, v] of Object.entries(merged)) {
    if (v === null) continue;
    for (const one of typeof v === 'string' ? [v] : v) lines.push(`${name}: ${one}`);
  }
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

export function invite(headers: Readonly<Record<string, string | readonly string[] | null>> = {}, body?: string): SipRequest {
  const m = parseSipMessage(inviteText(headers, body));
  if (m.kind !== 'request') throw new Error('fixture is not a request');
  return m;
}

let n = 0;

/** A registered device of bob. `params` are Contact parameters (lower-case names, unquoted). */
export function device(name: string, params: Record<string, string | true>, extra: Partial<Device> = {}): Device {
  n++;
  return {
    aor: 'sip:bob@example.net',
    instance: `<urn:uuid:${name}>`,
    contact: `sip:bob@127.0.0.1:${6000 + n};transport=tcp`,
    params: { '+sip.instance': `<urn:uuid:${name}>`, ...params },
    q: 1,
    pubGruu: null,
    received: null,
    path: [],
    callId: `reg-${name}`,
    cseq: 1,
    registeredAt: NOW - 1000,
    expiresAt: NOW + 3_600_000,
    ...extra,
  };
}

export const TAGS = {
  cpm: { '+g.3gpp.icsi-ref': ENC(ICSI) },
  cpmGroup: { '+g.3gpp.icsi-ref': `${ENC(ICSI)},${ENC(ICSI_GROUP)}` },
  simpleIm: { '+g.oma.sip-im': true as const },
  mmtel: { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel' },
  cpmFt: { '+g.3gpp.icsi-ref': `${ENC(ICSI)},${ENC('urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer')}` },
};

export function blacklist(entries: readonly string[], listName = 'oma_blockedcontacts'): Blacklist {
  const xml = `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="${listName}">${entries
    .map((e) => `<entry uri="${e}"/>`)
    .join('')}</list></resource-lists>`;
  return parseBlacklist(parseXml(xml, 1 << 20), listName);
}

/** A ruleset from rule bodies (`<cp:conditions>...</cp:conditions><cp:actions>...</cp:actions>`). */
export function ruleset(...rules: readonly string[]): Ruleset {
  const xml = `<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:ocp="urn:oma:xml:xdm:common-policy" xmlns:oxe="urn:oma:xml:xdm:extensions">${rules
    .map((r, i) => `<cp:rule id="r${i}">${r}</cp:rule>`)
    .join('')}</cp:ruleset>`;
  return parseRuleset(parseXml(xml, 1 << 20));
}

export const CPM_SERVICE = '<oxe:service-list><oxe:service enabler="CPM"/></oxe:service-list>';
export const DND = '<cp:actions><oxe:allow-do-not-disturb>true</oxe:allow-do-not-disturb></cp:actions>';

export function input(over: Partial<InviteInput> & { policy?: Partial<Policy> } = {}): InviteInput {
  const { policy, ...rest } = over;
  return {
    msg: invite(),
    servedUser: 'sip:bob@example.net',
    docs: { blacklist: null, ruleset: null },
    devices: [device('cpm1', TAGS.cpm)],
    sessionDevices: () => null,
    pfHost: PF_HOST,
    now: NOW,
    ...rest,
    policy: { ...defaultPolicy, ...policy },
  };
}
