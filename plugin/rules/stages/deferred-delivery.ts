/**
 * Deferred delivery and recording, for a `b2bua` decision (docs/policy.md "Deferred
 * delivery", "Recording"):
 * - CR 8.3.2.1 step 8 a ii (and step 6, 8.3.6): no suitable device and deferred delivery
 *   on for the served user -> the B2BUA takes the session with no targets and the relay
 *   stores the messages; this precedes the policy's 480 or ISF (CR 8.3.2.1.1 3: "if
 *   deferred delivery ... is enabled ... Otherwise ... the ISF").
 * - CR 8.3.2.1 200 OK procedure step 8, 8.3.2.1.4 step 2: the session is recorded when the
 *   served user's `<allow-offline-storage>` is true (RFC 4745 §10.2: OR over the rules
 *   that apply, enabler CPM, as step 4 reads `<allow-do-not-disturb>`) or the policy
 *   records every session (`recordHistory`).
 */
import type { B2buaDecision } from '../decision.js';
import type { InviteFacts } from '../facts.js';
import type { Ruleset } from '../../xdm/documents.js';
import type { ServiceEdit } from './service-identification.js';
import { applicableRules, combinedActions } from '../common-policy.js';
import { deferralFor, type Policy } from '../policy.js';

/** Whether the session is recorded: `<allow-offline-storage>` of the rules that apply, or policy.recordHistory. */
export function recordSession(facts: InviteFacts, ruleset: Ruleset | null, policy: Policy, now: number): boolean {
  if (policy.recordHistory) return true;
  if (!ruleset || ruleset.rules.length === 0) return false;
  return combinedActions(applicableRules(ruleset, facts, now, 'CPM')).allowOfflineStorage;
}

/** Whether no suitable device defers the session (instead of step 6's 480 or ISF). */
export function defersWhenNoDevice(policy: Policy, servedUser: string): boolean {
  return deferralFor(policy, servedUser);
}

/** CR step 8 a ii: the deferred session's decision: the B2BUA, no targets. */
export function deferDecision(service: ServiceEdit, record: boolean): B2buaDecision {
  return { action: 'b2bua', stage: 'b2bua', targets: [], service, defer: true, deferral: true, record };
}
