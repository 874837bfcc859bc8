/**
 * CR 8.3.2.1 step 3, blacklisted originator: the authenticated originator (P-Asserted-
 * Identity, or Referred-By for a group invitation) is in the served user's chat
 * blacklist -> 403 "122 Function not allowed". Every identity of the originator is
 * checked (a sip and a tel P-Asserted-Identity), numbers in their tel form.
 */
import type { RejectDecision } from '../decision.js';
import type { InviteFacts } from '../facts.js';
import type { Blacklist } from '../../xdm/documents.js';
import { reject } from './reject.js';

function isBlacklisted(facts: InviteFacts, blacklist: Blacklist | null): boolean {
  if (!blacklist || !facts.originator || blacklist.keys.size === 0) return false;
  return facts.originator.keys.some((k) => blacklist.keys.has(k));
}

export function checkBlacklist(facts: InviteFacts, blacklist: Blacklist | null, pfHost: string): RejectDecision | null {
  return isBlacklisted(facts, blacklist) ? reject('blacklist', 403, pfHost, '122 Function not allowed') : null;
}
