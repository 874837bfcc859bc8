/**
 * RFC 4745 rule matching (§7 conditions, §10 combining) with the OMA extensions (CR 8.4.1), as used by CR step 4.
 * Our readings (docs/policy.md "Step 4"):
 * - `<identity>` matches only a non-anonymous request with an originator identity
 *   (`<one id>` by identity key, `<many domain>` by domain minus `<except>`).
 * - `<other-identity>` matches a non-anonymous request whose identity matched no other
 *   rule's `<identity>`.
 * - `<anonymous-request>` matches an anonymous request.
 * - `<validity>` is evaluated against `now`; `<sphere>` and unknown conditions make the
 *   rule never apply.
 * - With an enabler (CR step 4: `CPM`), only rules whose `<service-list>` names that
 *   enabler (or `<all-services>`) count; rules without a service-list do not.
 */
import type { IdentityCondition, Rule, Ruleset } from '../xdm/documents.js';
import type { Originator } from './facts.js';

export interface RuleSubject {
  readonly anonymous: boolean;
  readonly originator: Originator | null;
}

function identityMatches(cond: IdentityCondition, s: RuleSubject): boolean {
  if (s.anonymous || !s.originator) return false;
  const { keys, domain } = s.originator;
  if (cond.one.some((id) => keys.includes(id))) return true;
  for (const m of cond.many) {
    if (m.domain !== null && m.domain !== domain) continue;
    if (m.exceptIds.some((id) => keys.includes(id))) continue;
    if (domain !== null && m.exceptDomains.includes(domain)) continue;
    return true;
  }
  return false;
}

function servesEnabler(rule: Rule, enabler: string): boolean {
  const list = rule.conditions.serviceEnablers;
  if (list === null) return false;
  const want = enabler.toLowerCase();
  return list.some((e) => e === '*' || e.toLowerCase() === want);
}

/** The rules that apply to this request (all conditions true), optionally for one enabler. */
export function applicableRules(ruleset: Ruleset, s: RuleSubject, now: number, enabler: string | null): Rule[] {
  // RFC 4745 / OMA other-identity: "no other rule's identity condition matched".
  const identityHit = ruleset.rules.map((r) => r.conditions.identity !== null && identityMatches(r.conditions.identity, s));
  const out: Rule[] = [];
  ruleset.rules.forEach((rule, i) => {
    const c = rule.conditions;
    if (enabler !== null && !servesEnabler(rule, enabler)) return;
    if (c.unsupported.length > 0) return;
    if (c.identity !== null && !identityHit[i]) return;
    if (c.otherIdentity) {
      if (s.anonymous) return;
      if (identityHit.some((hit, j) => hit && j !== i)) return;
    }
    if (c.anonymousRequest && !s.anonymous) return;
    if (c.validity !== null && !c.validity.some((v) => now >= v.from && now < v.until)) return;
    out.push(rule);
  });
  return out;
}

/** RFC 4745 §10.2: boolean actions of the applicable rules combine by OR. */
export function combinedActions(rules: readonly Rule[]): { allowDoNotDisturb: boolean; allowOfflineStorage: boolean } {
  return {
    allowDoNotDisturb: rules.some((r) => r.actions.allowDoNotDisturb),
    allowOfflineStorage: rules.some((r) => r.actions.allowOfflineStorage),
  };
}
