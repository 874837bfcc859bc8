// One leg of a relay session: the originator, or one of the served user's devices.
//
// Leg state (RFC 4975 §5.4: a connection is bound to its leg by its first frame; MSRP
// has no reconnect without new SDP, so a closed leg stays closed):
//
//   waiting ──bind──▶ connected ──connection closed, drop, delete──▶ closed
//      │               │    ▲
//      │               └────┘ bind (a new connection from the same peer)
//      └──────────── drop, delete ──────────────────────────────────▶ closed
//
// moveLeg() is the only place a leg's state changes; it throws IllegalTransition
// (lib/fsm.ts) on an illegal move.

import { msrpUriEquals, type MsrpConnectionLike, type MsrpUri } from '../msrp/index.js';
import type { Injection } from '../cpim/direction.js';
import type { LegInfo } from './types.js';
import { guardedTransition, type NextTable } from '../../lib/fsm.js';
import type { Fingerprint } from './fingerprint.js';

/** The originating leg's tag (docs/media-control.md, "Key"). */
export const ORIGINATOR = 'originator';

export type LegState = 'waiting' | 'connected' | 'closed';

export const LEG_NEXT: NextTable<LegState> = {
  waiting: ['connected', 'closed'],
  connected: ['connected', 'closed'],
  closed: [],
};

export interface Leg {
  readonly tag: string;
  readonly role: 'originator' | 'device';
  /** Peer a=path: the To-Path we use toward it. */
  readonly path: MsrpUri[];
  readonly pathText: string[];
  /** pathText as one To-Path value. */
  readonly toPathText: string;
  /** Our URI toward this peer (its To-Path ends with it; our From-Path). */
  readonly ownUri: string;
  /** The leg runs over TLS (msrps): its frames are taken on the TLS listener only. */
  readonly tls: boolean;
  /** The peer's SDP had a=msrp-cema (RFC 6714): matched by session-id only (peerMatches). */
  readonly cema: boolean;
  /** TLS legs: the peer's a=fingerprint; its connection's certificate must match (binding.ts). */
  readonly fingerprint: Fingerprint | undefined;
  /** Read-only outside moveLeg(). */
  readonly state: LegState;
  conn: MsrpConnectionLike | undefined;
  /** Transaction-id of the relay's binding empty SEND on a dialed leg, until its response. */
  bindTid: string | undefined;
  /** Frames queued before the peer connected, bounded by maxPending. */
  pending: Buffer[][];
  pendingBytes: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
}

/** A destination of a message, with the Message-Direction injection for it (or none). */
export interface Route {
  readonly leg: Leg;
  readonly injection: Injection | null;
}

/** The one guarded transition of a leg's state. */
export function moveLeg(leg: Leg, to: LegState): void {
  (leg as { state: LegState }).state = guardedTransition(`leg ${leg.tag}`, LEG_NEXT, leg.state, to);
}

export function newLeg(
  tag: string, role: 'originator' | 'device', path: MsrpUri[], pathText: string[], ownUri: string, tls: boolean, cema = false,
  fingerprint?: Fingerprint,
): Leg {
  return {
    tag, role, path, pathText, toPathText: pathText.join(' '), ownUri, tls, cema, fingerprint, state: 'waiting', conn: undefined, bindTid: undefined,
    pending: [], pendingBytes: 0,
    framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0,
  };
}

/** The peer's own URI: the last one of its a=path (RFC 4975 §5.4). */
export function peerUri(leg: Leg): MsrpUri {
  return leg.path[leg.path.length - 1]!;
}

/**
 * The last From-Path URI of a frame is this leg's peer. RFC 4975 §6.1 compares whole
 * URIs; for a CEMA peer only the session-id counts (RFC 6714 session matching), since a
 * middlebox may stand between the transport address and the a=path.
 */
export function peerMatches(leg: Leg, from: MsrpUri): boolean {
  const own = peerUri(leg);
  if (leg.cema) return own.sessionId !== undefined && own.sessionId === from.sessionId;
  return msrpUriEquals(own, from);
}

export function legInfo(l: Leg): LegInfo {
  return {
    leg: l.tag,
    role: l.role,
    transport: l.tls ? 'tls' : 'tcp',
    state: l.state,
    path: l.pathText,
    'frames-in': l.framesIn,
    'frames-out': l.framesOut,
    'bytes-in': l.bytesIn,
    'bytes-out': l.bytesOut,
    dropped: l.dropped,
  };
}
