// The multi-device policies of CR 8.3.2.1.1, as pure functions (no I/O, no state).
//
//   A  first only:    the first device that answers is kept; later answers are refused.
//   B  first active:  every device is relayed to until the B2BUA drops it; the first
//                     device that shows activity is reported once (`first-active`).
//   C  all:           every device stays for the whole session.
//
// Under A the first active device is reported too, for the record (docs/media-relay.md).

import type { PayloadKind } from '../cpim/head.js';
import type { MultiDevicePolicy } from './types.js';

export type Admission = { readonly admit: true } | { readonly admit: false; readonly reason: string };

/** CR 8.3.2.1.1 A: keep only the first client that answered. B and C take every device. */
export function admitDevice(policy: MultiDevicePolicy, devices: number): Admission {
  if (policy === 'A' && devices > 0) return { admit: false, reason: 'policy A keeps only the first device' };
  return { admit: true };
}

export type Activity = 'chat' | 'isComposing';

/**
 * What counts as activity for CR 8.3.2.1.1 B (CR 8.3.2.1.4 step 4.A.i): a user chat
 * message or an isComposing, carried in CPIM whose head was read. An IMDN, an empty
 * SEND (keepalive, binding) and any payload that is not readable CPIM do not count.
 */
export function activityOf(kind: PayloadKind, cpimHeadRead: boolean): Activity | undefined {
  if (!cpimHeadRead) return undefined;
  return kind === 'chat' || kind === 'isComposing' ? kind : undefined;
}

/** The policy still waits for its first active device (so a device's CPIM head must be read). */
export function awaitingFirstActive(policy: MultiDevicePolicy, firstActive: string | undefined): boolean {
  return policy !== 'C' && firstActive === undefined;
}

/**
 * CR 8.3.2.1.1 B (and A): the device whose message makes it the first active one, or
 * undefined when this message changes nothing (policy C, already known, not activity).
 */
export function firstActiveAfter(
  policy: MultiDevicePolicy, firstActive: string | undefined, leg: string, kind: PayloadKind, cpimHeadRead: boolean,
): { readonly leg: string; readonly kind: Activity } | undefined {
  if (!awaitingFirstActive(policy, firstActive)) return undefined;
  const activity = activityOf(kind, cpimHeadRead);
  return activity === undefined ? undefined : { leg, kind: activity };
}
