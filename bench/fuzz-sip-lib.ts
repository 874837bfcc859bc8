/**
 * Mutation fuzzing of the SIP parser and the PF rules: seed INVITEs are mutated (bytes,
 * headers, separators) and driven through parseSipMessage -> decideInvite and
 * selectForkTargets. The only acceptable failure is a coded SipParseError; anything
 * else thrown, or a decision that breaks docs/jsonrpc.md, is a finding.
 * Deterministic for a given seed (xorshift32).
 */
import { parseSipMessage, SipParseError, type SipRequest } from '../plugin/sip/message.js';
import { decideInvite } from '../plugin/rules/invite.js';
import type { Decision, ProxyDecision } from '../plugin/rules/decision.js';
import { selectForkTargets, type ForkResult } from '../plugin/callerprefs/fork.js';
import { proxyDecisionText } from '../plugin/rpc/decision-text.js';
import { defaultPolicy, type Policy } from '../plugin/rules/policy.js';
import type { Device } from '../plugin/devices/types.js';
import { parseXml } from '../plugin/xdm/xml.js';
import { parseBlacklist, parseRuleset } from '../plugin/xdm/documents.js';
import { chatSdpLines, encodeTag, ICSI_GROUP as ICSI_SESSION_GROUP, ICSI_SESSION, sdpBody, sipMessage } from '../lab/sip-fixtures.js';

export const NOW = Date.UTC(2026, 0, 1);

const ICSI = encodeTag(ICSI_SESSION);
const ICSI_GROUP = encodeTag(ICSI_SESSION_GROUP);

const SDP = sdpBody(chatSdpLines({ wrappedTypes: false }));

function inviteOf(extra: string[], body = SDP, ct = 'application/sdp'): string {
  return sipMessage(
    'INVITE sip:bob@example.net SIP/2.0',
    [
      'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1',
      'From: "Alice" <sip:alice@example.net>;tag=a1',
      'To: <sip:bob@example.net>',
      'Call-ID: c1@127.0.0.1',
      'CSeq: 1 INVITE',
      'Contact: <sip:alice@127.0.0.1:5070>',
      'P-Asserted-Identity: <sip:alice@example.net>, <tel:+1-555-000-0001>',
      'User-Agent: CPM-client/OMA2.2 RCS-client/UP_2.4',
      'Conversation-ID: f81d4fae',
      'Contribution-ID: abcdef-1234',
      ...extra,
      `Content-Type: ${ct}`,
    ],
    body,
  );
}

export const SEEDS: readonly string[] = [
  inviteOf(['P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session', `Accept-Contact: *;+g.3gpp.icsi-ref="${ICSI}"`]),
  inviteOf([
    'P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session.group',
    `a: *;+g.3gpp.icsi-ref="${ICSI_GROUP}";require;explicit`,
    'Referred-By: <sip:carol@example.net>',
    'Session-Replaces: contrib-1',
    'j: *;+sip.instance="<urn:uuid:d1>", *;audio',
    'Request-Disposition: no-fork, sequential',
    'Privacy: header;id',
  ]),
  inviteOf(
    ['P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session', 'Accept-Contact: *;+g.oma.sip-im'],
    `--b1\r\nContent-Type: application/sdp\r\n\r\n${SDP}\r\n--b1\r\nContent-Type: application/resource-lists+xml\r\n\r\n<x/>\r\n--b1--\r\n`,
    'multipart/mixed;boundary=b1',
  ),
  inviteOf(['P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session']).replace(
    'P-Asserted-Identity: <sip:alice@example.net>, <tel:+1-555-000-0001>',
    'P-Asserted-Identity: <sip:+15550000002@example.net;user=phone>',
  ),
  inviteOf([`Accept-Contact: *;+g.3gpp.icsi-ref="${ICSI}"`]).replace('P-Asserted-Identity: <sip:alice@example.net>', 'P-Asserted-Identity: <sip:dnd@example.net>'),
];

function dev(i: number, params: Record<string, string | true>): Device {
  return {
    aor: 'sip:bob@example.net',
    instance: `<urn:uuid:d${i}>`,
    contact: `sip:bob@127.0.0.1:${6000 + i}`,
    params: { '+sip.instance': `<urn:uuid:d${i}>`, ...params },
    q: (i % 10) / 10,
    pubGruu: null,
    received: `udp:127.0.0.1:${6000 + i}`,
    path: [],
    callId: `r${i}`,
    cseq: 1,
    registeredAt: NOW - 1000,
    expiresAt: i % 7 === 6 ? NOW - 1 : NOW + 3_600_000,
  };
}

export const DEVICES: readonly Device[] = Array.from({ length: 12 }, (_, i) =>
  dev(i, [
    { '+g.3gpp.icsi-ref': ICSI },
    { '+g.oma.sip-im': true as const },
    { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel', audio: true as const },
    { '+g.3gpp.icsi-ref': `${ICSI},${ICSI_GROUP}`, methods: 'INVITE,MESSAGE' },
  ][i % 4]!),
);

export const POLICY: Policy = { ...defaultPolicy, supportedVersions: ['OMA2.2'], allowAnonymity: false, interworkingOnFailure: true };

export const DOCS = {
  blacklist: parseBlacklist(
    parseXml('<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts"><entry uri="tel:+15550000002"/></list></resource-lists>', 4096),
    'oma_blockedcontacts',
  ),
  ruleset: parseRuleset(
    parseXml(
      '<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"><rule id="a"><conditions><identity><one id="sip:dnd@example.net"/></identity><service-list><service enabler="CPM"/></service-list></conditions><actions><allow-do-not-disturb>true</allow-do-not-disturb></actions></rule></ruleset>',
      4096,
    ),
  ),
};

/** xorshift32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const SPECIAL = ['<', '>', '"', ';', ',', '=', '*', '!', '#', '%', '\\', ':', '@', ' ', '\t', '\r\n', '\n', '\r\n ', '\u0000', '\u00e9', '\ud83d\ude00', '%2C', '%3A', 'TRUE', '#>=', 'sip:', 'tel:+1', ';require', ';explicit', '<urn:uuid:d1>', 'id', 'user', 'anonymous@anonymous.invalid'];
const HEADERS = ['P-Asserted-Identity', 'Privacy', 'Accept-Contact', 'Reject-Contact', 'Request-Disposition', 'Referred-By', 'P-Preferred-Service', 'Session-Replaces', 'User-Agent', 'Content-Type', 'Contact', 'a', 'j', 'd', 'b', 'm'];

/** One mutated message. */
export function mutate(base: string, r: () => number): string {
  let s = base;
  const rounds = 1 + Math.floor(r() * 4);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  for (let k = 0; k < rounds; k++) {
    const pos = Math.floor(r() * (s.length + 1));
    switch (Math.floor(r() * 9)) {
      case 0: // delete a range
        s = s.slice(0, pos) + s.slice(pos + Math.floor(r() * 40));
        break;
      case 1: // insert special tokens
        s = s.slice(0, pos) + pick(SPECIAL) + s.slice(pos);
        break;
      case 2: // replace one char
        s = s.slice(0, pos) + String.fromCharCode(Math.floor(r() * 256)) + s.slice(pos + 1);
        break;
      case 3: // duplicate a range
        {
          const len = Math.floor(r() * 80);
          s = s.slice(0, pos + len) + s.slice(pos, pos + len) + s.slice(pos + len);
        }
        break;
      case 4: // truncate
        s = s.slice(0, pos);
        break;
      case 5: // add a header with a garbage value
        {
          const at = s.indexOf('\r\n') + 2;
          const value = Array.from({ length: 1 + Math.floor(r() * 6) }, () => pick(SPECIAL)).join('');
          s = `${s.slice(0, at)}${pick(HEADERS)}: ${value}\r\n${s.slice(at)}`;
        }
        break;
      case 6: // repeat a header value many times (long lists)
        {
          const at = s.indexOf('\r\n') + 2;
          const one = pick(['*;+sip.instance="<urn:uuid:d1>"', '*;audio', '<sip:x@y>', 'id', '*;+g.oma.sip-im;require']);
          s = `${s.slice(0, at)}${pick(HEADERS)}: ${Array.from({ length: 1 + Math.floor(r() * 300) }, () => one).join(', ')}\r\n${s.slice(at)}`;
        }
        break;
      case 7: // swap two lines
        {
          const lines = s.split('\r\n');
          const i = Math.floor(r() * lines.length);
          const j = Math.floor(r() * lines.length);
          [lines[i], lines[j]] = [lines[j]!, lines[i]!];
          s = lines.join('\r\n');
        }
        break;
      default: // upper/lower-case a range
        {
          const len = Math.floor(r() * 30);
          const mid = s.slice(pos, pos + len);
          s = s.slice(0, pos) + (r() < 0.5 ? mid.toUpperCase() : mid.toLowerCase()) + s.slice(pos + len);
        }
    }
  }
  return s;
}

/** A decision that Kamailio can apply (docs/jsonrpc.md); returns the problem or null. */
export function decisionProblem(d: Decision): string | null {
  const lines = (h: string): boolean => h === '' || (h.endsWith('\r\n') && h.slice(0, -2).split('\r\n').every((l) => /^[A-Za-z-]+: [^\r\n]*$/.test(l)));
  switch (d.action) {
    case 'reject':
      if (!Number.isInteger(d.code) || d.code < 400 || d.code > 699) return 'bad code';
      return lines(d.hdrs) ? null : 'bad reply header lines';
    case 'proxy':
      if (!lines(d.hdrs)) return 'bad request header lines';
      return d.remove.every((r) => /^[A-Za-z-]+$/.test(r)) ? null : 'bad remove';
    case 'isf':
      return lines(d.hdrs) ? null : 'bad isf header lines';
    case 'pass':
      return null;
    case 'b2bua':
      return d.targets.length > 0 ? null : 'b2bua without targets';
  }
}

/**
 * The text form of a proxy decision read back as pf.cfg's PF_TEXT_DECISION reads it (the
 * JSON string's two replacements, no backslash left, seven `|` fields), against the
 * decision itself; null when it agrees (or the service sent the JSON object instead).
 */
export function textFormProblem(d: ProxyDecision, fork: ForkResult, stats?: FuzzStats): string | null {
  const text = proxyDecisionText(d, fork);
  if (text === null) return null;
  if (stats) stats.textForms++;
  const read = JSON.stringify(text).slice(1, -1).replaceAll('\\"', '"').replaceAll('\\r\\n', '\r\n');
  if (read.includes('\\')) return 'a backslash is left after the replacements';
  const f = read.split('|');
  if (f.length !== 7) return `${f.length} fields`;
  if (f[0] !== 'proxy' || f[1] !== d.stage) return 'action or stage';
  if (f[2] !== d.remove.join(',')) return 'remove';
  if (f[3] !== (d.failover?.statuses.join(',') ?? '') || f[4] !== (d.failover?.ruri ?? '')) return 'failover';
  if (JSON.stringify(JSON.parse(f[5]!)) !== JSON.stringify(fork)) return 'fork';
  return f[6] === d.hdrs ? null : 'hdrs';
}

export interface FuzzStats {
  cases: number;
  parseErrors: number;
  notInvite: number;
  /** Proxy decisions the service would send in the text form (each read back and checked). */
  textForms: number;
  stages: Record<string, number>;
  findings: { input: string; error: string }[];
}

/** Run `cases` mutated messages. Stops collecting findings after 10. */
export function fuzz(cases: number, seed: number): FuzzStats {
  const r = rng(seed);
  const stats: FuzzStats = { cases, parseErrors: 0, notInvite: 0, textForms: 0, stages: {}, findings: [] };
  for (let i = 0; i < cases; i++) {
    const input = mutate(SEEDS[i % SEEDS.length]!, r);
    try {
      let msg;
      try {
        msg = parseSipMessage(input);
      } catch (err) {
        if (err instanceof SipParseError) {
          stats.parseErrors++;
          continue;
        }
        throw err;
      }
      if (msg.kind !== 'request' || msg.method !== 'INVITE') {
        stats.notInvite++;
        continue;
      }
      const d = decideInvite({
        msg: msg as SipRequest,
        servedUser: 'sip:bob@example.net',
        docs: DOCS,
        devices: DEVICES,
        sessionDevices: (cid) => (cid === 'contrib-1' ? ['<urn:uuid:d3>'] : null),
        policy: POLICY,
        pfHost: 'pf.example.net',
        now: NOW,
      });
      const problem = decisionProblem(d);
      if (problem) throw new Error(`decision breaks the contract: ${problem}: ${JSON.stringify(d)}`);
      stats.stages[d.stage] = (stats.stages[d.stage] ?? 0) + 1;
      const f = selectForkTargets(msg, DEVICES, NOW);
      if (f.code !== 200 && f.code !== 480) throw new Error('core.fork returned another code');
      if (d.action === 'proxy') {
        const problem = textFormProblem(d, f, stats);
        if (problem) throw new Error(`text form: ${problem}: ${JSON.stringify(d)}`);
      }
    } catch (err) {
      if (stats.findings.length < 10) stats.findings.push({ input, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  }
  return stats;
}
