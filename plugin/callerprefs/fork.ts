/** `core.fork` (docs/jsonrpc.md): RFC 3841 target selection for the lab's SIP/IP core, as rtjson. */
import type { Device } from '../devices/types.js';
import type { SipMessage } from '../sip/message.js';

export interface RtjsonRoute {
  readonly uri: string;
  readonly dst_uri?: string;
  readonly path?: string;
}

export interface Rtjson {
  readonly version: '1.0';
  readonly routing: 'serial' | 'parallel';
  readonly routes: readonly RtjsonRoute[];
}

export type ForkResult = { readonly code: 200; readonly rtjson: Rtjson } | { readonly code: 480; readonly reason: string };

export function selectForkTargets(_msg: SipMessage, _devices: readonly Device[], _now: number): ForkResult {
  throw new Error('not implemented');
}
