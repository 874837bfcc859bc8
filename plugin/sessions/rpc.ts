/**
 * pf.dialog.start / pf.dialog.end (docs/jsonrpc.md): pf.cfg with PF_SHARED_SESSIONS tells
 * the service of each confirmed dialog and each BYE (CR 8.3.2.1 step 9, Session-Replaces),
 * as JSON-RPC notifications (no answer; Kamailio does not wait). The store is
 * plugin/sessions/store.ts.
 */
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { method, type RpcMethod } from '../rpc/server.js';
import { RpcCode } from '../errors.js';
import { RpcError } from '../../wire/errors.js';
import type { SessionStore } from './store.js';

const Field = Type.String({ minLength: 1, maxLength: 4096 });

export const DialogStartParams = Type.Object({
  v: Type.Literal(1),
  /** Contribution-ID of the INVITE */
  cid: Field,
  /** `<Call-ID>;<device tag>` */
  dialog: Field,
  /** the INVITE's Request-URI */
  ruri: Field,
  /** the 2xx's Contact */
  contact: Field,
});

export const DialogEndParams = Type.Object({
  v: Type.Literal(1),
  callId: Field,
  /** the BYE's tags: the caller's BYE has the device's tag in To, the device's in From */
  toTag: Type.String({ maxLength: 256 }),
  fromTag: Type.String({ maxLength: 256 }),
});

export function sessionMethods(store: SessionStore, log: Logger, now: () => number): Record<string, RpcMethod> {
  const unavailable = (err: unknown, what: string): RpcError => {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, `${what}: session store unavailable`);
    return new RpcError(RpcCode.DependencyFailed, 'Session store unavailable');
  };
  return {
    'pf.dialog.start': method(DialogStartParams, async (p) => {
      try {
        return { recorded: await store.start(p, now()) };
      } catch (err) {
        throw unavailable(err, 'pf.dialog.start');
      }
    }),
    'pf.dialog.end': method(DialogEndParams, async (p) => {
      try {
        return { ended: await store.end(p.callId, [p.toTag, p.fromTag].filter((t) => t !== ''), now()) };
      } catch (err) {
        throw unavailable(err, 'pf.dialog.end');
      }
    }),
  };
}
