/**
 * CR 8.3.2.1 "Handle a CPM Session Invitation", terminating PF, as one pure function.
 * Each CR step is a stage in ./stages/ (named after the step); this file only runs them
 * in the CR's order. The first stage that returns a decision ends processing.
 */
import type { Decision } from './decision.js';
import type { Device } from '../devices/types.js';
import type { Blacklist, Ruleset } from '../xdm/documents.js';
import { deferralFor, modeFor, type Policy } from './policy.js';
import type { SipRequest } from '../sip/message.js';
import { sdpOffer } from '../sip/sdp.js';
import { inviteFacts } from './facts.js';
import { checkReleaseVersion } from './stages/release-version.js';
import { checkAnonymity } from './stages/anonymity.js';
import { checkBlacklist } from './stages/blacklist.js';
import { checkDoNotDisturb } from './stages/do-not-disturb.js';
import { checkMediaPolicy } from './stages/media-policy.js';
import { checkSuitableDevice, suitableDevices } from './stages/no-suitable-device.js';
import { identifyService } from './stages/service-identification.js';
import { proxyDecision, sessionReplacesTargets } from './stages/proxy.js';
import { deviceAddress } from './stages/device-invites.js';
import { withDiagnosticWarning } from './stages/reject.js';
import { deferDecision, defersWhenNoDevice, recordSession } from './stages/deferred-delivery.js';

export interface InviteDocs {
  /** The served user's chat blacklist; null when absent (or the document was rejected). */
  readonly blacklist: Blacklist | null;
  readonly ruleset: Ruleset | null;
}

export interface InviteInput {
  /** The INVITE as Kamailio has it, parsed once by the caller (parseSipMessage). */
  readonly msg: SipRequest;
  /** Served-user key (canonical AoR, as in Device.aor); also picks the mode (modeFor). */
  readonly servedUser: string;
  readonly docs: InviteDocs;
  /** Every device registered for the served user (expired ones are ignored here). */
  readonly devices: readonly Device[];
  /**
   * CR step 8/9 Session-Replaces: device keys (deviceKey()) of the served user's devices
   * connected in the session with this Contribution-ID; null when the session is unknown.
   */
  readonly sessionDevices: (contributionId: string) => readonly string[] | null;
  readonly policy: Policy;
  /** Host put in Warning headers (config). */
  readonly pfHost: string;
  /** Epoch ms. */
  readonly now: number;
}

/**
 * Decide what to do with an incoming CPM session invitation (CR 8.3.2.1 steps 1-9).
 * Pure: no I/O, no clock (`now` is an input), no logger. Never throws for any message
 * content; bad input ends in a reject decision.
 *
 * The mode is the served user's (modeFor): proxy gives a `proxy` decision (step 9);
 * B2BUA gives a `b2bua` decision naming the devices the B2BUA invites itself (step 8,
 * ./stages/device-invites.ts builds those INVITEs). No suitable device with deferred
 * delivery on gives a `b2bua` decision with no targets and `defer`, in either mode
 * (step 8 a ii, ./stages/deferred-delivery.ts).
 */
export function decideInvite(input: InviteInput): Decision {
  const decision = decideSteps(input);
  // the one place the policy's diagnostic Warning is applied (docs/policy.md)
  return input.policy.diagnosticWarning ? withDiagnosticWarning(decision, input.pfHost) : decision;
}

/** The CR's steps in order; the first stage that returns a decision ends processing. */
function decideSteps(input: InviteInput): Decision {
  const { msg, policy, pfHost, now } = input;
  const facts = inviteFacts(msg);
  if (facts.icsi === null) return { action: 'pass', stage: 'not-cpm' };
  const icsi = facts.icsi;

  const early =
    checkReleaseVersion(facts, policy, pfHost) ?? // step 1
    checkAnonymity(facts, policy, pfHost) ?? // step 2
    checkBlacklist(facts, input.docs.blacklist, pfHost) ?? // step 3
    checkDoNotDisturb(facts, input.docs.ruleset, now); // step 4
  if (early) return early;

  const offer = sdpOffer(msg);
  const media = checkMediaPolicy(offer, policy, pfHost); // step 5
  if (media) return media;
  const streams = offer.kind === 'ok' ? offer.streams : [];

  const b2bua = modeFor(policy, input.servedUser) === 'b2bua';
  const found = suitableDevices(facts, icsi, streams, input.devices, now);
  // B2BUA mode invites each device on its own: one it cannot address alone (no GRUU,
  // no usable instance) is no suitable target there (docs/policy.md "Step 8").
  const suitable = b2bua ? addressable(found, input.servedUser) : found;
  // Step 8 a ii: with deferred delivery on, no suitable device defers the session (after
  // step 7, in any mode), before step 6's 480 or ISF (docs/policy.md "Deferred delivery").
  const defer = suitable.length === 0 && defersWhenNoDevice(policy, input.servedUser);
  if (!defer) {
    const none = checkSuitableDevice(suitable, policy, pfHost); // step 6
    if (none) return none;
  }

  const service = identifyService(facts, policy, pfHost); // step 7
  if ('action' in service) return service;

  if (defer) return deferDecision(service, recordSession(facts, input.docs.ruleset, policy, now));
  if (b2bua) {
    const more = { defer: false, deferral: deferralFor(policy, input.servedUser), record: recordSession(facts, input.docs.ruleset, policy, now) };
    // Step 8: Session-Replaces first (the connected devices), else the suitable devices.
    if (facts.sessionReplaces !== null) {
      const connected = sessionReplacesTargets(facts.sessionReplaces, input.sessionDevices, input.devices, now);
      const targets = connected && addressable(connected, input.servedUser);
      if (targets?.length) return { action: 'b2bua', stage: 'session-replaces', targets, service, ...more };
    }
    return { action: 'b2bua', stage: 'b2bua', targets: suitable, service, ...more };
  }

  // Step 9: Session-Replaces first, else the suitable devices.
  if (facts.sessionReplaces !== null) {
    const connected = sessionReplacesTargets(facts.sessionReplaces, input.sessionDevices, input.devices, now);
    if (connected) return proxyDecision(connected, input.devices, service, facts.hasRequestDisposition, policy, icsi, 'session-replaces');
  }
  return proxyDecision(suitable, input.devices, service, facts.hasRequestDisposition, policy, icsi, 'proxy');
}

/** The devices the B2BUA can invite on their own (a GRUU or a usable instance). */
function addressable(devices: readonly Device[], servedUser: string): Device[] {
  return devices.filter((d) => deviceAddress(d, servedUser) !== null);
}
