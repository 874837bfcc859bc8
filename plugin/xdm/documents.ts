/**
 * XDM documents the PF reads (CR 8.4.1): the chat blacklist (RFC 4826 resource-lists)
 * and the policy ruleset (RFC 4745 common-policy with OMA extensions, matched by local name).
 */
import type { XmlElement } from './xml.js';

export type XdmDocumentErrorCode = 'XDM_WRONG_SCHEMA';

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

/** @throws XdmDocumentError */
export function parseBlacklist(_root: XmlElement, _listName: string): Blacklist {
  throw new Error('not implemented');
}

/** @throws XdmDocumentError */
export function parseRuleset(_root: XmlElement): Ruleset {
  throw new Error('not implemented');
}
