/**
 * CR 8.3.2.1 step 7, service identification (RFC 6050):
 * i/ii. P-Preferred-Service with a CPM ICSI -> remove it, add P-Asserted-Service with it;
 * iii. P-Asserted-Service with a CPM ICSI is kept;
 * any other value -> if policy says reject: 403 "122 Function not allowed".
 */
import type { RejectDecision } from '../decision.js';
import type { InviteFacts } from '../facts.js';
import type { Policy } from '../policy.js';
import { cpmIcsiOf } from '../cpm.js';
import { reject } from './reject.js';

export interface ServiceEdit {
  readonly remove: readonly string[];
  readonly hdrs: string;
}

export function identifyService(facts: InviteFacts, policy: Policy, pfHost: string): RejectDecision | ServiceEdit {
  const foreign = [...facts.preferredServices, ...facts.assertedServices].some((s) => cpmIcsiOf(s) === null);
  if (foreign && policy.foreignService === 'reject') return reject('service-identification', 403, pfHost, '122 Function not allowed');
  if (facts.preferredServices.length === 0) return { remove: [], hdrs: '' };
  const preferred = facts.preferredServices.map(cpmIcsiOf).find((x) => x !== null) ?? null;
  const asserted = new Set(facts.assertedServices.map(cpmIcsiOf));
  if (preferred === null) return { remove: [], hdrs: '' }; // foreign only, allowed by policy: untouched
  return {
    remove: ['P-Preferred-Service'],
    hdrs: asserted.has(preferred) ? '' : `P-Asserted-Service: ${preferred}\r\n`,
  };
}
