/**
 * XDM documents the PF reads (CR 8.4.1): the chat blacklist (RFC 4826 resource-lists)
 * and the policy ruleset (RFC 4745 common-policy with OMA extensions, matched by local name).
 */
import type { XmlElement } from './xml.js';
import { identityKey } from '../sip/uri.js';
import type { XdmDocumentErrorCode } from '../errors.js';


export class XdmDocumentError extends Error {
  override readonly name = 'XdmDocumentError';
  readonly code: XdmDocumentErrorCode = 'XDM_WRONG_SCHEMA';
}

export interface Blacklist {
  readonly listName: string;
  /** Identity keys (see `identityKey` in plugin/sip/uri.ts) of the blocked entries. */
  readonly keys: ReadonlySet<string>;
}

export interface IdentityCondition {
  /** `<one id>`: identity keys. */
  readonly one: readonly string[];
  /** `<many domain?>` with its `<except>` children. */
  readonly many: readonly { readonly domain: string | null; readonly exceptIds: readonly string[]; readonly exceptDomains: readonly string[] }[];
}

export interface RuleConditions {
  readonly identity: IdentityCondition | null;
  readonly otherIdentity: boolean;
  readonly anonymousRequest: boolean;
  /** `enabler` values of `<service-list><service enabler>`; null when the rule has no service-list. */
  readonly serviceEnablers: readonly string[] | null;
  /** RFC 4745 §7.3 validity intervals, epoch ms; null when absent. */
  readonly validity: readonly { readonly from: number; readonly until: number }[] | null;
  /** The rule has a condition the PF cannot evaluate (e.g. `<sphere>`): it never matches. */
  readonly unsupported: readonly string[];
}

export interface RuleActions {
  readonly allowDoNotDisturb: boolean;
  readonly allowOfflineStorage: boolean;
}

export interface Rule {
  readonly id: string;
  readonly conditions: RuleConditions;
  readonly actions: RuleActions;
}

export interface Ruleset {
  readonly rules: readonly Rule[];
}

const RESOURCE_LISTS_NS = 'urn:ietf:params:xml:ns:resource-lists';
const COMMON_POLICY_NS = 'urn:ietf:params:xml:ns:common-policy';

function wrongSchema(msg: string): XdmDocumentError {
  return new XdmDocumentError(msg);
}

/**
 * The blacklist (CR step 3): entries of `<list name=listName>` in a RFC 4826
 * resource-lists document, including entries of lists nested inside it. `entry-ref`
 * and `external` are not followed (no further fetches from the rules). Entries whose
 * URI is not a sip/sips/tel URI are skipped. No such list: an empty blacklist.
 * @throws XdmDocumentError when the root is not `resource-lists` in its namespace.
 */
export function parseBlacklist(root: XmlElement, listName: string): Blacklist {
  if (root.local !== 'resource-lists' || root.ns !== RESOURCE_LISTS_NS) {
    throw wrongSchema(`expected resource-lists, got {${root.ns}}${root.local}`);
  }
  const keys = new Set<string>();
  const collect = (list: XmlElement): void => {
    for (const c of list.children) {
      if (c.ns !== RESOURCE_LISTS_NS) continue;
      if (c.local === 'entry') {
        const k = c.attrs['uri'] === undefined ? null : identityKey(c.attrs['uri']);
        if (k) keys.add(k);
      } else if (c.local === 'list') collect(c);
    }
  };
  for (const l of root.children) {
    if (l.ns === RESOURCE_LISTS_NS && l.local === 'list' && l.attrs['name'] === listName) collect(l);
  }
  return { listName, keys };
}

function xsBoolean(el: XmlElement): boolean {
  const t = el.text.trim();
  return t === 'true' || t === '1';
}

/** RFC 4745 §7.3: xs:dateTime to epoch ms; null when unreadable. */
function dateTime(el: XmlElement | undefined): number | null {
  if (!el) return null;
  const ms = Date.parse(el.text.trim());
  return Number.isFinite(ms) ? ms : null;
}

function parseIdentity(el: XmlElement, unsupported: string[]): IdentityCondition {
  const one: string[] = [];
  const many: { domain: string | null; exceptIds: string[]; exceptDomains: string[] }[] = [];
  for (const c of el.children) {
    if (c.local === 'one') {
      const k = c.attrs['id'] === undefined ? null : identityKey(c.attrs['id']);
      if (k) one.push(k);
    } else if (c.local === 'many') {
      const m = { domain: c.attrs['domain']?.toLowerCase() ?? null, exceptIds: [] as string[], exceptDomains: [] as string[] };
      for (const e of c.children) {
        if (e.local !== 'except') continue;
        const id = e.attrs['id'] === undefined ? null : identityKey(e.attrs['id']);
        if (id) m.exceptIds.push(id);
        if (e.attrs['domain'] !== undefined) m.exceptDomains.push(e.attrs['domain'].toLowerCase());
      }
      many.push(m);
    } else unsupported.push(`identity/${c.local}`);
  }
  return { one, many };
}

function parseConditions(el: XmlElement | undefined): RuleConditions {
  let identity: IdentityCondition | null = null;
  let otherIdentity = false;
  let anonymousRequest = false;
  let serviceEnablers: string[] | null = null;
  let validity: { from: number; until: number }[] | null = null;
  const unsupported: string[] = [];
  for (const c of el?.children ?? []) {
    switch (c.local) {
      case 'identity': {
        const id = parseIdentity(c, unsupported);
        // Several <identity> elements: RFC 4745 §7.1 allows one; merge them leniently.
        identity = identity ? { one: [...identity.one, ...id.one], many: [...identity.many, ...id.many] } : id;
        break;
      }
      case 'other-identity':
        otherIdentity = true;
        break;
      case 'anonymous-request':
        anonymousRequest = true;
        break;
      case 'service-list': {
        serviceEnablers ??= [];
        for (const s of c.children) {
          if (s.local === 'service' && s.attrs['enabler'] !== undefined) serviceEnablers.push(s.attrs['enabler']);
          else if (s.local === 'all-services') serviceEnablers.push('*');
        }
        break;
      }
      case 'validity': {
        validity ??= [];
        const froms = c.children.filter((x) => x.local === 'from');
        const untils = c.children.filter((x) => x.local === 'until');
        for (let i = 0; i < froms.length; i++) {
          const from = dateTime(froms[i]);
          const until = dateTime(untils[i]);
          if (from === null || until === null) unsupported.push('validity');
          else validity.push({ from, until });
        }
        break;
      }
      default:
        // <sphere> and anything unknown: the PF cannot evaluate it, so the rule never applies.
        unsupported.push(c.local);
    }
  }
  return { identity, otherIdentity, anonymousRequest, serviceEnablers, validity, unsupported };
}

function parseActions(el: XmlElement | undefined): RuleActions {
  let allowDoNotDisturb = false;
  let allowOfflineStorage = false;
  for (const c of el?.children ?? []) {
    if (c.local === 'allow-do-not-disturb') allowDoNotDisturb ||= xsBoolean(c);
    else if (c.local === 'allow-offline-storage') allowOfflineStorage ||= xsBoolean(c);
  }
  return { allowDoNotDisturb, allowOfflineStorage };
}

/**
 * The policy ruleset (CR 8.4.1, RFC 4745 + OMA extensions, OMA elements matched by
 * local name since servers use different namespaces).
 * @throws XdmDocumentError when the root is not a common-policy `ruleset`.
 */
export function parseRuleset(root: XmlElement): Ruleset {
  if (root.local !== 'ruleset' || root.ns !== COMMON_POLICY_NS) {
    throw wrongSchema(`expected common-policy ruleset, got {${root.ns}}${root.local}`);
  }
  const rules: Rule[] = [];
  for (const r of root.children) {
    if (r.local !== 'rule' || r.ns !== COMMON_POLICY_NS) continue;
    rules.push({
      id: r.attrs['id'] ?? '',
      conditions: parseConditions(r.children.find((c) => c.local === 'conditions')),
      actions: parseActions(r.children.find((c) => c.local === 'actions')),
    });
  }
  return { rules };
}
