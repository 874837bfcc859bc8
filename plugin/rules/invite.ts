/**
 * CR 8.3.2.1 "Handle a CPM Session Invitation", terminating PF, as one pure function.
 * Each CR step is a stage in ./stages/ (named after the step); this file only runs them
 * in the CR's order. The first stage that returns a decision ends processing.
 */
import type { Decision } from './decision.js';
import type { Device } from '../devices/types.js';
import type { Blacklist, Ruleset } from '../xdm/documents.js';
import type { Policy } from './policy.js';
import type { SipRequest } from '../sip/message.js';

export interface InviteDocs {
  /** The served user's chat blacklist; null when absent (or the document was rejected). */
  readonly blacklist: Blacklist | null;
  readonly ruleset: Ruleset | null;
}

export interface InviteInput {
  /** The INVITE as Kamailio has it, parsed once by the caller (parseSipMessage). */
  readonly msg: SipRequest;
  /** Served-user key (canonical AoR, as in Device.aor). */
  readonly servedUser: string;
  readonly docs: InviteDocs;
  /** Every device registered for the served user (expired ones are ignored here). */
  readonly devices: readonly Device[];
  /**
   * CR step 9 Session-Replaces: device keys (deviceKey()) of the served user's devices
   * connected in the session with this Contribution-ID; null when the session is unknown.
   */
  readonly sessionDevices: (contributionId: string) => readonly string[] | null;
  readonly policy: Policy;
  /** Host put in Warning headers (config). */
  readonly pfHost: string;
  /** Epoch ms. */
  readonly now: number;
}

export function decideInvite(_input: InviteInput): Decision {
  throw new Error('not implemented');
}
