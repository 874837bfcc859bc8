/**
 * CR 8.3.2.1 step 4, do not disturb: a policy rule whose conditions match this request
 * (RFC 4745 §7), whose `<service-list>` names enabler CPM, and whose actions set
 * `<allow-do-not-disturb>` true -> 480.
 */
import type { RejectDecision } from '../decision.js';
import type { InviteFacts } from '../facts.js';
import type { Ruleset } from '../../xdm/documents.js';
import { applicableRules, combinedActions } from '../common-policy.js';
import { reject } from './reject.js';

function doNotDisturb(facts: InviteFacts, ruleset: Ruleset | null, now: number): boolean {
  if (!ruleset || ruleset.rules.length === 0) return false;
  return combinedActions(applicableRules(ruleset, facts, now, 'CPM')).allowDoNotDisturb;
}

export function checkDoNotDisturb(facts: InviteFacts, ruleset: Ruleset | null, now: number): RejectDecision | null {
  return doNotDisturb(facts, ruleset, now) ? reject('do-not-disturb', 480, null, null) : null;
}
