/**
 * Facts the CR 8.3.2.1 stages need, read once from the INVITE. Garbled headers never
 * throw here: they read as absent (and the stage that needs them decides).
 */
import type { SipRequest } from '../sip/message.js';
import { identityDomain, identityKey, isAnonymousIdentity, parseNameAddr, type NameAddr } from '../sip/uri.js';
import { callerPrefsOf, type CallerPrefs } from '../callerprefs/match.js';
import { ICSI_GROUP, ICSI_SESSION, TAG_ICSI, TAG_SIMPLE_IM, cpmIcsiOf, type SessionIcsi } from './cpm.js';

export interface Originator {
  /** Identity keys (identityKey) of every usable identity of the originator, e.g. its sip and tel PAI. */
  readonly keys: readonly string[];
  /** Domain of its first SIP identity (RFC 4745 `<many domain>`), or null. */
  readonly domain: string | null;
  /** Where it came from. `from` means unasserted (no usable P-Asserted-Identity). */
  readonly source: 'p-asserted-identity' | 'referred-by' | 'from';
}

export interface InviteFacts {
  /** The CPM session ICSI the invitation asks for; null: not a CPM session invitation. */
  readonly icsi: SessionIcsi | null;
  /** Group invitation from a Controlling Function (group ICSI, or `isfocus` in Contact). */
  readonly group: boolean;
  /** `OMA<major>.<minor>` release versions found in User-Agent (CR Appendix D). */
  readonly versions: readonly string[];
  /** Anonymity requested (RFC 3323 Privacy id/user, or an anonymous identity). */
  readonly anonymous: boolean;
  readonly originator: Originator | null;
  /** P-Preferred-Service / P-Asserted-Service values (RFC 6050), in order. */
  readonly preferredServices: readonly string[];
  readonly assertedServices: readonly string[];
  /** Session-Replaces value (a Contribution-ID), or null. */
  readonly sessionReplaces: string | null;
  readonly hasRequestDisposition: boolean;
  readonly prefs: CallerPrefs;
}

/** Lenient `CPM-(client|serv)/OMA<major>.<minor>` (CR Appendix D). Leading zeros dropped. */
const VERSION_TOKEN = /CPM-(?:client|serv)\/OMA([0-9]{1,4})\.([0-9]{1,4})/gi;

export function releaseVersions(userAgent: string | undefined): string[] {
  if (!userAgent) return [];
  const out: string[] = [];
  for (const m of userAgent.matchAll(VERSION_TOKEN)) out.push(`OMA${Number(m[1])}.${Number(m[2])}`);
  return out;
}

/** Normalise a policy version entry the same way (`OMA02.2` -> `OMA2.2`). */
export function normaliseVersion(v: string): string {
  const m = /^OMA([0-9]+)\.([0-9]+)$/i.exec(v.trim());
  return m ? `OMA${Number(m[1])}.${Number(m[2])}` : v.trim();
}

function privacyTokens(msg: SipRequest): Set<string> {
  // RFC 3323 §4.2: priv-value *(";" priv-value); be lenient about commas too.
  const out = new Set<string>();
  for (const line of msg.getAll('Privacy')) {
    for (const t of line.split(/[;,]/)) {
      const v = t.trim().toLowerCase();
      if (v) out.add(v);
    }
  }
  return out;
}

function addrs(values: readonly string[]): NameAddr[] {
  const out: NameAddr[] = [];
  for (const v of values) {
    const na = parseNameAddr(v);
    if (na) out.push(na);
  }
  return out;
}

function originatorOf(list: readonly NameAddr[], source: Originator['source']): Originator | null {
  // Prefer sip/sips first (RFC 3325 allows one sip and one tel value).
  const sorted = [...list].sort((a, b) => Number(a.uri.toLowerCase().startsWith('tel:')) - Number(b.uri.toLowerCase().startsWith('tel:')));
  const keys: string[] = [];
  let domain: string | null = null;
  for (const na of sorted) {
    const k = identityKey(na.uri);
    if (!k) continue;
    if (!keys.includes(k)) keys.push(k);
    domain ??= identityDomain(na.uri);
  }
  return keys.length ? { keys, domain, source } : null;
}

function splitServices(values: readonly string[]): string[] {
  return values.map((v) => v.trim()).filter((v) => v.length > 0);
}

/** Read the facts once. Never throws. */
export function inviteFacts(msg: SipRequest): InviteFacts {
  const prefs = callerPrefsOf(msg);
  const preferredServices = splitServices(msg.getValues('P-Preferred-Service'));
  const assertedServices = splitServices(msg.getValues('P-Asserted-Service'));

  // Which CPM session, if any (our reading, docs/policy.md "Is it a CPM invitation?").
  let sawSession = false;
  let sawGroup = false;
  for (const s of [...preferredServices, ...assertedServices]) {
    const icsi = cpmIcsiOf(s);
    if (icsi === ICSI_GROUP) sawGroup = true;
    else if (icsi === ICSI_SESSION) sawSession = true;
  }
  for (const p of prefs.accept) {
    for (const term of p.terms) {
      if (term.tag === TAG_SIMPLE_IM) sawSession = true;
      if (term.tag !== TAG_ICSI) continue;
      for (const v of term.values) {
        if (v.negated || v.atom.kind !== 'token') continue;
        const icsi = cpmIcsiOf(v.atom.value);
        if (icsi === ICSI_GROUP) sawGroup = true;
        else if (icsi === ICSI_SESSION) sawSession = true;
      }
    }
  }
  const icsi: SessionIcsi | null = sawGroup ? ICSI_GROUP : sawSession ? ICSI_SESSION : null;

  const contacts = addrs(msg.getValues('Contact'));
  const fromFocus = contacts.some((c) => c.params['isfocus'] !== undefined);
  const group = sawGroup || fromFocus;

  const pai = addrs(msg.getValues('P-Asserted-Identity'));
  const fromHeader = msg.get('From');
  const from = fromHeader === undefined ? null : parseNameAddr(fromHeader);

  const privacy = privacyTokens(msg);
  const anonymous =
    privacy.has('id') ||
    privacy.has('user') ||
    pai.some(isAnonymousIdentity) ||
    (pai.length === 0 && from !== null && isAnonymousIdentity(from));

  // CR step 3: the Controlling Function puts the inviting user in Referred-By.
  let originator: Originator | null = null;
  if (group) {
    const rb = msg.get('Referred-By');
    const na = rb === undefined ? null : parseNameAddr(rb);
    if (na) originator = originatorOf([na], 'referred-by');
  }
  originator ??= originatorOf(pai, 'p-asserted-identity');
  if (!originator && pai.length === 0 && from) originator = originatorOf([from], 'from');

  const sr = msg.get('Session-Replaces');
  return {
    icsi,
    group,
    versions: releaseVersions(msg.get('User-Agent')),
    anonymous,
    originator,
    preferredServices,
    assertedServices,
    sessionReplaces: sr === undefined || sr.trim() === '' ? null : sr.trim(),
    hasRequestDisposition: msg.getAll('Request-Disposition').length > 0,
    prefs,
  };
}
