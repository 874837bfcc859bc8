/**
 * Non-INVITE server transaction, RFC 3261 §17.2.2, over TCP: Timer J = 0.
 *
 *          request received
 *                |
 *             Trying --(1xx from TU: send)--> Proceeding
 *  (request again: absorbed) |                   | (request again: resend last 1xx)
 *                            | 200-699 from TU   | 200-699 from TU: send
 *                            v                   v
 *                         Completed --(Timer J = 0)--> Terminated
 *                  (request again: resend final)
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import type { Built } from './build.js';
import type { NextTable } from '../../../lib/fsm.js';
import { Machine, type ServerEvents, type TxContext } from './transaction.js';

export type NonInviteServerState = 'trying' | 'proceeding' | 'completed' | 'terminated';

export const NON_INVITE_SERVER_NEXT: NextTable<NonInviteServerState> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

export class NonInviteServerTransaction extends Machine<NonInviteServerState> {
  #last: string | null = null;
  final: SipResponse | null = null;
  constructor(
    ctx: TxContext,
    readonly request: SipRequest,
    private readonly events: ServerEvents,
  ) {
    super('non-INVITE server transaction', NON_INVITE_SERVER_NEXT, 'trying', ctx, () => events.terminated());
  }

  /** Send a response from the TU; false once a final went out. */
  respond(res: Built<SipResponse>): boolean {
    if (this.state !== 'trying' && this.state !== 'proceeding') return false;
    this.#last = res.text;
    this.ctx.send(res.text);
    if (res.msg.status < 200) {
      if (this.state === 'trying') this.transition('proceeding');
      return true;
    }
    this.final = res.msg;
    this.transition('completed');
    this.arm('J', this.ctx.timers.J, () => this.end());
    return true;
  }

  receiveRequest(_req: SipRequest): void {
    if (this.state !== 'trying' && this.#last !== null && this.state !== 'terminated') this.ctx.send(this.#last);
  }

  transportError(): void {
    this.end();
  }
}
