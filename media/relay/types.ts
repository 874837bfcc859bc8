// Public types of the relay's control surface (docs/media-control.md).
// Field names are the wire names of the JSON-RPC control protocol.

/** CR 8.3.2.1.1: A first only, B first active, C all. */
export type MultiDevicePolicy = 'A' | 'B' | 'C';

export interface OfferParams {
  'call-id': string;
  /** The originator's SDP offer. */
  sdp: string;
  /** The served user's public identity (for direct delivery: CPIM From matching). */
  'served-user'?: string;
  policy?: MultiDevicePolicy;
  /** Direct delivery of originated chat messages (CR 8.3.2.1.4 step 3.C / 4.B). */
  'direct-delivery'?: boolean;
  /** Record history (CR 8.5): <allow-offline-storage> or recording on. */
  record?: boolean;
  'conversation-id'?: string;
  'contribution-id'?: string;
}

export interface AnswerParams {
  'call-id': string;
  /** The device leg's tag, chosen by the B2BUA (for example the To-tag of its 200). */
  leg: string;
  /** The device's SDP answer. */
  sdp: string;
}

export interface DropParams {
  'call-id': string;
  leg: string;
}

export interface KeyParams {
  'call-id': string;
}

export interface Ok {
  result: 'ok';
  warnings?: string[];
}

export interface Failure {
  result: 'error';
  'error-reason': string;
  /** Stable error code. */
  'error-code': ControlErrorCode;
  warnings?: string[];
}

export type ControlErrorCode =
  | 'BAD_PARAMS'
  | 'BAD_SDP'
  | 'UNKNOWN_SESSION'
  | 'UNKNOWN_LEG'
  | 'SESSION_EXISTS'
  | 'LEG_EXISTS'
  | 'POLICY_REJECTED'
  | 'UNKNOWN_METHOD';

export type OfferReply =
  | (Ok & {
      sdp: string;
      'device-sdp': string;
      'relay-uri': string;
      'device-relay-uri': string;
      /** With TLS configured: the device offer for each transport (any device may get either). */
      'device-sdp-tcp'?: string;
      'device-sdp-tls'?: string;
      'device-relay-uri-tcp'?: string;
      'device-relay-uri-tls'?: string;
    })
  | Failure;
export type AnswerReply = (Ok & { leg: string }) | Failure;
export type SimpleReply = Ok | Failure;

export interface LegInfo {
  leg: string;
  role: 'originator' | 'device';
  /** tls: msrps on the TLS listener (TCP/TLS/MSRP). */
  transport: 'tcp' | 'tls';
  state: 'waiting' | 'connected' | 'closed';
  path: string[];
  'frames-in': number;
  'frames-out': number;
  'bytes-in': number;
  'bytes-out': number;
  dropped: number;
}

export type QueryReply =
  | (Ok & {
      'call-id': string;
      policy: MultiDevicePolicy;
      'direct-delivery': boolean;
      record: boolean;
      'first-active'?: string;
      legs: LegInfo[];
    })
  | Failure;

export type RelayEvent =
  | { event: 'leg-connected'; 'call-id': string; leg: string }
  | { event: 'leg-closed'; 'call-id': string; leg: string; reason: string }
  | { event: 'first-active'; 'call-id': string; leg: string; kind: 'chat' | 'isComposing' };
