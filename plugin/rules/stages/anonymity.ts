/**
 * CR 8.3.2.1 step 2, anonymity: anonymity requested (Privacy id/user, RFC 3323, or an
 * anonymous asserted identity) while policy forbids it -> 403 "119 Anonymity not allowed".
 */
import type { RejectDecision } from '../decision.js';
import type { InviteFacts } from '../facts.js';
import type { Policy } from '../policy.js';
import { reject } from './reject.js';

export function checkAnonymity(facts: InviteFacts, policy: Policy, pfHost: string): RejectDecision | null {
  if (policy.allowAnonymity || !facts.anonymous) return null;
  return reject('anonymity', 403, pfHost, '119 Anonymity not allowed');
}
