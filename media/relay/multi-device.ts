// The multi-device policies of CR 8.3.2.1.1, as pure functions (no I/O, no state).
//
//   A  first only:    the first device that answers is kept; later answers are refused.
//   B  first active:  every device is relayed to until the B2BUA drops it; the first
//                     device that shows activity is reported once (`first-active`).
//   C  all:           every device stays for the whole session.
//
// Under A the first active device is reported too, for the record (docs/media-relay.md).

import { CPIM_TYPE, IMDN_TYPE, ISCOMPOSING_TYPE, headerValue, mediaType, type CpimHead } from '../cpim/head.js';
import type { MultiDevicePolicy } from './types.js';

export type Admission = { readonly admit: true } | { readonly admit: false; readonly reason: string };

/** CR 8.3.2.1.1 A: keep only the first client that answered. B and C take every device. */
export function admitDevice(policy: MultiDevicePolicy, devices: number): Admission {
  if (policy === 'A' && devices > 0) return { admit: false, reason: 'policy A keeps only the first device' };
  return { admit: true };
}

export type Activity = 'chat' | 'isComposing';

/** A device's message as the activity rule sees it. */
export interface Payload {
  /** The MSRP Content-Type. */
  readonly msrpType: string | undefined;
  /** The CPIM head, when the MSRP type is message/cpim and the head was read. */
  readonly head: CpimHead | undefined;
  /** Body bytes of the message (its first chunk's, when the total is not known). */
  readonly bytes: number;
}

/**
 * What counts as activity for CR 8.3.2.1.1 B (CR 8.3.2.1.4 step 4.A.i), in this order:
 *
 *   empty body (binding SEND, keepalive)                 -> none
 *   application/im-iscomposing+xml (RFC 3994), bare      -> isComposing
 *   anything else that is not message/cpim               -> none
 *   message/cpim whose head was not read                 -> none
 *   CPIM wrapping no Content-Type (RFC 3862 §3.3)        -> none (an envelope, no content)
 *   CPIM wrapping application/im-iscomposing+xml         -> isComposing
 *   CPIM wrapping message/imdn+xml (RFC 5438)            -> none
 *   CPIM wrapping anything else                          -> chat (a user message)
 */
export function activityOf(p: Payload): Activity | undefined {
  if (p.bytes === 0) return undefined;
  const outer = mediaType(p.msrpType);
  if (outer === ISCOMPOSING_TYPE) return 'isComposing';
  if (outer !== CPIM_TYPE || p.head === undefined) return undefined;
  const inner = mediaType(headerValue(p.head.inner, 'Content-Type'));
  if (inner === '' || inner === IMDN_TYPE) return undefined;
  return inner === ISCOMPOSING_TYPE ? 'isComposing' : 'chat';
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
  policy: MultiDevicePolicy, firstActive: string | undefined, leg: string, p: Payload,
): { readonly leg: string; readonly kind: Activity } | undefined {
  if (!awaitingFirstActive(policy, firstActive)) return undefined;
  const activity = activityOf(p);
  return activity === undefined ? undefined : { leg, kind: activity };
}
