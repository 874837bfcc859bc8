// Who gets a message, as a pure decision (CR 8.3.2.1.4 steps 3 and 4; our reading of
// steps 3.C and 4.B is in docs/media-relay.md, "Direct delivery and Message-Direction").
//
//   from the originator  -> every device leg (step 3); marked `Message-Direction: sent`
//                           when direct delivery is on and it is the served user's own
//                           chat message mirrored by the originating network (step 3.C)
//   from a device        -> the originator (step 4.C); with direct delivery, a chat
//                           message is also copied, marked sent, to the other devices (step 4.B)
//
// Only CPIM can carry the mark, so nothing is marked or copied without a readable CPIM head.

import type { PayloadKind } from '../cpim/head.js';
import { awaitingFirstActive } from './multi-device.js';
import type { MultiDevicePolicy } from './types.js';

export type Source = 'originator' | 'device';

export interface MessageFacts {
  readonly source: Source;
  readonly kind: PayloadKind;
  readonly directDelivery: boolean;
  /** The message's CPIM head was read. */
  readonly cpimHead: boolean;
  /** The CPIM From is the served user (compared by scheme, user and host). */
  readonly fromServedUser: boolean;
}

export interface Routing {
  readonly toOriginator: boolean;
  /** all: every device leg; others: every device leg but the sender; none. */
  readonly toDevices: 'all' | 'others' | 'none';
  /** The device copies get `Message-Direction: sent` (CR Appendix C). */
  readonly markSent: boolean;
}

const TO_DEVICES: Routing = { toOriginator: false, toDevices: 'all', markSent: false };
const TO_DEVICES_MARKED: Routing = { toOriginator: false, toDevices: 'all', markSent: true };
const TO_ORIGINATOR: Routing = { toOriginator: true, toDevices: 'none', markSent: false };
const TO_ORIGINATOR_AND_COPIES: Routing = { toOriginator: true, toDevices: 'others', markSent: true };

/** CR 8.3.2.1.4 steps 3 and 4: where a message goes and whether its copies are marked sent. */
export function routeMessage(f: MessageFacts): Routing {
  const ownChat = f.directDelivery && f.kind === 'chat' && f.cpimHead;
  if (f.source === 'originator') return ownChat && f.fromServedUser ? TO_DEVICES_MARKED : TO_DEVICES;
  return ownChat ? TO_ORIGINATOR_AND_COPIES : TO_ORIGINATOR;
}

/**
 * The CPIM head is read before relaying only when routing depends on it: direct delivery,
 * or a device's message while policy A or B waits for its first active device. History
 * does not: the recorder holds a message whole anyway and classifies it at its last chunk
 * (history-recorder.ts).
 */
export function needsCpimHead(f: {
  readonly source: Source;
  readonly directDelivery: boolean;
  readonly policy: MultiDevicePolicy;
  readonly firstActive: string | undefined;
}): boolean {
  return f.directDelivery || (f.source === 'device' && awaitingFirstActive(f.policy, f.firstActive));
}
