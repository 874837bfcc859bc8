/**
 * CR 8.3.2.1 step 1, release version: when policy lists supported versions and the
 * User-Agent names none of them -> 403 with Warning "132 Version not supported".
 */
import type { RejectDecision } from '../decision.js';
import type { InviteFacts } from '../facts.js';
import { normaliseVersion } from '../facts.js';
import type { Policy } from '../policy.js';
import { reject } from './reject.js';

const cache = new WeakMap<readonly string[], ReadonlySet<string>>();

function supported(policy: Policy): ReadonlySet<string> {
  let set = cache.get(policy.supportedVersions);
  if (!set) {
    set = new Set(policy.supportedVersions.map(normaliseVersion));
    cache.set(policy.supportedVersions, set);
  }
  return set;
}

export function checkReleaseVersion(facts: InviteFacts, policy: Policy, pfHost: string): RejectDecision | null {
  if (policy.supportedVersions.length === 0) return null;
  const ok = supported(policy);
  if (facts.versions.some((v) => ok.has(v))) return null;
  return reject('release-version', 403, pfHost, '132 Version not supported');
}
