/**
 * The decision value the PF rules return and Kamailio applies (docs/jsonrpc.md, `pf.invite`).
 * A SIP rejection is a value, not an exception.
 */

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
  | 'session-replaces' // step 9, Session-Replaces
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

export type Decision = RejectDecision | ProxyDecision | IsfDecision | PassDecision;
