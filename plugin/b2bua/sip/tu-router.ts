/**
 * One transaction layer, several transaction users: the B2BUA's calls (../b2bua.ts) and
 * the dialogs of deferred delivery (../deferred/delivery-driver.ts: delivery calls and
 * conference subscriptions, docs/deferred.md "Delivery"). An in-dialog request (it has a
 * To-tag) or an ACK goes to the first claimer that says the Call-ID and To-tag name one
 * of its dialogs; everything else goes to the primary TU, as before.
 */
import type { SipRequest } from '../../sip/message.js';
import type { InviteServerTransaction } from './invite-server.js';
import type { ServerTransaction, TransactionUser } from './layer.js';

/** A TU that takes only the requests of its own dialogs. */
export interface DialogClaimer {
  /** Whether this Call-ID and our tag (the request's To-tag) are one of its dialogs. */
  claims(callId: string, localTag: string): boolean;
  request(req: SipRequest, tx: ServerTransaction): void;
  ack(req: SipRequest): void;
}

function localTagOf(req: SipRequest): string | null {
  const m = /;\s*tag=([^;\s]+)/i.exec(req.get('To') ?? '');
  return m ? m[1]! : null;
}

export class TuRouter implements TransactionUser {
  constructor(
    private readonly primary: TransactionUser,
    private readonly claimers: readonly DialogClaimer[],
  ) {}

  #owner(req: SipRequest): DialogClaimer | undefined {
    const tag = localTagOf(req);
    const callId = req.get('Call-ID');
    if (tag === null || callId === undefined) return undefined;
    return this.claimers.find((c) => c.claims(callId, tag));
  }

  request(req: SipRequest, tx: ServerTransaction): void {
    const c = this.#owner(req);
    if (c) c.request(req, tx);
    else this.primary.request(req, tx);
  }

  ack(req: SipRequest): void {
    const c = this.#owner(req);
    if (c) c.ack(req);
    else this.primary.ack(req);
  }

  cancel(invite: InviteServerTransaction, req: SipRequest): void {
    this.primary.cancel(invite, req);
  }

  noAck(invite: InviteServerTransaction): void {
    this.primary.noAck?.(invite);
  }
}
