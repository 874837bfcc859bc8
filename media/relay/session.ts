// One relay session per originating call (docs/media-control.md, "Key").
//
// Session state:
//
//   offered ──originator connects──▶ active ──delete, relay stopped──▶ deleted
//      │                                                                  ▲
//      └──────────────────── delete, relay stopped ───────────────────────┘
//
// A delivery session (`deliver`, deferral.ts) has no originator: it stays offered until
// deleted. A deferred session's own machine (storing, flushing, ...) is in deferral.ts.
//
// A deleted session answers every frame 481 (RFC 4975 §5.4). moveSession() is the only
// place a session's state changes; it throws IllegalTransition (lib/fsm.ts) on an illegal move.

import type { ContinuationFlag, FrameHead, MsrpConnectionLike } from '../msrp/index.js';
import type { ByteRange } from '../cpim/direction.js';
import type { HeadDecision, HeadTracker } from '../cpim/tracker.js';
import type { HistoryBuffer } from './history-recorder.js';
import type { Dial } from './dial.js';
import type { Deferral } from './deferral.js';
import type { Body, Chunk } from './frames.js';
import type { Leg, Route } from './leg.js';
import { guardedTransition, type NextTable } from '../../lib/fsm.js';
import type { MultiDevicePolicy } from './types.js';

export type SessionState = 'offered' | 'active' | 'deleted';

export const SESSION_NEXT: NextTable<SessionState> = {
  offered: ['active', 'deleted'],
  active: ['deleted'],
  deleted: [],
};

/** One incoming message (per source leg and Message-ID) while its chunks flow. */
export interface InMessage {
  readonly tracker?: HeadTracker<Chunk>;
  decision?: HeadDecision;
  routes?: Route[];
  history?: HistoryBuffer;
}

export interface Session {
  readonly callId: string;
  readonly policy: MultiDevicePolicy;
  readonly directDelivery: boolean;
  readonly record: boolean;
  readonly servedUser?: string;
  readonly conversationId?: string;
  readonly contributionId?: string;
  readonly origId: string;
  readonly devId: string;
  /** The originator's relay URI (msrp or msrps, as its offer asked and we can serve). */
  readonly origUri: string;
  /** The device session-id's URI on the TCP listener, and on the TLS listener if any. */
  readonly devUri: string;
  readonly devTlsUri?: string;
  /** Read-only outside moveSession(). */
  readonly state: SessionState;
  readonly originator: Leg;
  readonly devices: Map<string, Leg>;
  firstActive?: string;
  /** Chunked messages in progress, keyed by `<leg tag>\0<Message-ID>`. */
  readonly inbound: Map<string, InMessage>;
  /** Routes from the originator without injection, while the device set is unchanged. */
  origRoutes: Route[] | undefined;
  /** Route from a device to the originator alone. */
  readonly toOriginator: Route[];
  /** From-Path value -> device leg, for frames on the device URI. */
  readonly fromCache: Map<string, Leg>;
  /** From-Path value -> connection that bound before its device was answered. */
  readonly early: Map<string, EarlyConnection>;
  /** The relay dialing the originator (it offered a=setup:passive; dial.ts), while under way or done. */
  dial?: Dial;
  /** Deferred delivery (deferral.ts): set by `defer` (store) or made by `deliver` (delivery). */
  deferred?: Deferral;
}

/** A chunk a parked connection sent before its device was answered, relayed once it is. */
export interface HeldFrame {
  readonly head: FrameHead;
  readonly body: Body;
  readonly flag: ContinuationFlag;
  readonly range: ByteRange | undefined;
  readonly rangeText: string | undefined;
}

/** A device's connection bound before its answer (early bind), and what it sent meanwhile. */
export interface EarlyConnection {
  readonly conn: MsrpConnectionLike;
  readonly tls: boolean;
  readonly held: HeldFrame[];
  heldBytes: number;
  /** The leg `answer` bound it to, for a chunk that was still arriving then. */
  adoptedBy: Leg | undefined;
}

export type SessionInit = Omit<Session, 'state' | 'devices' | 'inbound' | 'origRoutes' | 'toOriginator' | 'fromCache' | 'early' | 'dial' | 'deferred'>;

export function newSession(init: SessionInit): Session {
  return {
    ...init,
    state: 'offered',
    devices: new Map(),
    inbound: new Map(),
    origRoutes: undefined,
    toOriginator: [{ leg: init.originator, injection: null }],
    fromCache: new Map(),
    early: new Map(),
  };
}

/** The one guarded transition of a session's state. */
export function moveSession(s: Session, to: SessionState): void {
  (s as { state: SessionState }).state = guardedTransition(`session ${s.callId}`, SESSION_NEXT, s.state, to);
}

/** The originator first, then the devices in answer order. */
export function legsOf(s: Session): Leg[] {
  return [s.originator, ...s.devices.values()];
}

/** The device set changed: forget what was derived from it. */
export function devicesChanged(s: Session): void {
  s.fromCache.clear();
  s.origRoutes = undefined;
}

/** Messages half-received from this leg will not complete. */
export function forgetInbound(s: Session, leg: Leg): void {
  const prefix = `${leg.tag}\0`;
  for (const k of [...s.inbound.keys()]) if (k.startsWith(prefix)) s.inbound.delete(k);
}
