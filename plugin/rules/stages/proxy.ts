/**
 * CR 8.3.2.1 step 9, proxy mode: fork to the suitable clients only.
 * - One `Reject-Contact: *;+sip.instance="<...>"` per known device (expired ones too) that
 *   is not a target (RFC 3841 §9.1; docs/policy.md "Step 9").
 * - A non-target device without a usable `+sip.instance` cannot be named; then (only then)
 *   `Accept-Contact: *;+g.3gpp.icsi-ref="<ICSI>";require` is added, which makes an RFC 3841
 *   core drop devices whose icsi-ref lacks the session's ICSI (e.g. MMTEL-only), while
 *   devices without icsi-ref (SIMPLE IM) stay (docs/policy.md).
 * - `Request-Disposition: fork, parallel` (RFC 3841 §9.1); a caller's own
 *   Request-Disposition is removed first.
 * - `failover` to the ISF on 480/408/487/500/503/504 when interworking is on
 *   (CR 8.3.2.1.1, final responses other than 200).
 * Record-Route is added by Kamailio.
 */
import type { Device } from '../../devices/types.js';
import type { ProxyDecision, Stage } from '../decision.js';
import type { Policy } from '../policy.js';
import type { ServiceEdit } from './service-identification.js';
import { deviceKey } from '../../devices/identity.js';
import { TAG_ICSI, type SessionIcsi } from '../cpm.js';

/** CR 8.3.2.1.1: the final statuses after which the INVITE goes to the ISF. */
const FAILOVER_STATUSES: readonly number[] = [480, 408, 487, 500, 503, 504];
const FAILOVER_CODES = `^(${FAILOVER_STATUSES.join('|')})$`;

/** `+sip.instance` values only ever hold `<urn:...>`; refuse anything that could break the header. */
export const SAFE_INSTANCE = /^<[^<>"\r\n\\]+>$/;

export function proxyDecision(
  targets: readonly Device[],
  devices: readonly Device[],
  service: ServiceEdit,
  callerDisposition: boolean,
  policy: Policy,
  icsi: SessionIcsi,
  stage: Stage,
): ProxyDecision {
  const keep = new Set(targets.map(deviceKey));
  const excluded = new Set<string>();
  let unnamed = false;
  let hdrs = service.hdrs;
  for (const d of devices) {
    // Expired devices are excluded too: usrloc may still hold them for a moment.
    if (keep.has(deviceKey(d))) continue;
    if (d.instance === null || !SAFE_INSTANCE.test(d.instance)) {
      unnamed = true;
      continue;
    }
    if (excluded.has(d.instance)) continue;
    excluded.add(d.instance);
    hdrs += `Reject-Contact: *;+sip.instance="${d.instance}"\r\n`;
  }
  if (unnamed) hdrs += `Accept-Contact: *;${TAG_ICSI}="${icsi.replaceAll(':', '%3A')}";require\r\n`;
  hdrs += 'Request-Disposition: fork, parallel\r\n';
  const remove = [...service.remove];
  if (callerDisposition) remove.push('Request-Disposition');
  return {
    action: 'proxy',
    remove,
    hdrs,
    failover: policy.interworkingOnFailure ? { codes: FAILOVER_CODES, statuses: FAILOVER_STATUSES, ruri: policy.isfUri } : null,
    stage,
  };
}

/**
 * CR step 9 Session-Replaces: the unexpired devices connected in the replaced session,
 * or null when the session is unknown (or none of its devices is still registered).
 */
export function sessionReplacesTargets(
  contributionId: string,
  lookup: (contributionId: string) => readonly string[] | null,
  devices: readonly Device[],
  now: number,
): Device[] | null {
  const keys = lookup(contributionId);
  if (!keys || keys.length === 0) return null;
  const set = new Set(keys);
  const targets = devices.filter((d) => d.expiresAt > now && set.has(deviceKey(d)));
  return targets.length ? targets : null;
}
