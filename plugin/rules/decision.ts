/**
 * The decision value the PF rules return and Kamailio applies (docs/jsonrpc.md, `pf.invite`).
 * A SIP rejection is a value, not an exception.
 */
import type { Device } from '../devices/types.js';
import type { ServiceEdit } from './stages/service-identification.js';

/** The CR step that decided, for logs and metrics. */
export type Stage =
  | 'not-cpm'
  | 'release-version' // CR 8.3.2.1 step 1
  | 'anonymity' // step 2
  | 'blacklist' // step 3
  | 'do-not-disturb' // step 4
  | 'media-policy' // step 5
  | 'no-suitable-device' // step 6
  | 'service-identification' // step 7
  | 'session-replaces' // step 8 or 9, Session-Replaces
  | 'b2bua' // step 8
  | 'proxy'; // step 9

export interface RejectDecision {
  readonly action: 'reject';
  readonly code: number;
  readonly reason: string;
  /** Header lines for the reply, each ending in CRLF ('' for none). */
  readonly hdrs: string;
  readonly stage: Stage;
}

export interface Failover {
  /** Regex over the winning final status, for `t_check_status`. */
  readonly codes: string;
  /** The same statuses as a list (the decision's text form). */
  readonly statuses: readonly number[];
  readonly ruri: string;
}

export interface ProxyDecision {
  readonly action: 'proxy';
  readonly remove: readonly string[];
  /** Header lines for the request, each ending in CRLF. */
  readonly hdrs: string;
  readonly failover: Failover | null;
  readonly stage: Stage;
}

export interface IsfDecision {
  readonly action: 'isf';
  readonly ruri: string;
  readonly remove: readonly string[];
  readonly hdrs: string;
  readonly stage: Stage;
}

export interface PassDecision {
  readonly action: 'pass';
  readonly stage: 'not-cpm';
}

/**
 * CR step 8, B2BUA mode: the B2BUA invites each target itself (./stages/device-invites.ts)
 * and answers the caller (./stages/b2bua-answer.ts).
 */
export interface B2buaDecision {
  readonly action: 'b2bua';
  /** `session-replaces`: the devices connected in the replaced session; `b2bua`: the suitable ones. */
  readonly stage: 'b2bua' | 'session-replaces';
  /** Best first; each addressable on its own (a public GRUU or a usable +sip.instance). */
  readonly targets: readonly Device[];
  /** Step 7's edit, applied to each device INVITE. */
  readonly service: ServiceEdit;
  /**
   * CR step 8 a ii: no suitable device and deferred delivery on for the served user: no
   * targets, the B2BUA answers the caller and the relay stores the messages (docs/deferred.md).
   * Then `targets` is empty; in any mode (deferral needs the media path, docs/policy.md).
   */
  readonly defer: boolean;
  /** Deferred delivery is on for the served user (CR 8.3.2.1.1: every leg failed with 480/408/487/500/503/504 -> defer). */
  readonly deferral: boolean;
  /** CR 8.3.2.1 200 OK procedure step 8, 8.3.2.1.4 step 2: record the session's history (<allow-offline-storage>, or policy.recordHistory). */
  readonly record: boolean;
}

export type Decision = RejectDecision | ProxyDecision | IsfDecision | PassDecision | B2buaDecision;
