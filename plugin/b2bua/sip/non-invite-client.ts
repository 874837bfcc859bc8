/**
 * Non-INVITE client transaction, RFC 3261 §17.1.2, over TCP: no Timer E, Timer K = 0.
 *
 *            start: send request, Timer F
 *                    |
 *    Timer F  +--- Trying ----+ 200-699: to TU
 *   (timeout) |       | 1xx   |
 *             |       v       v
 *             +-- Proceeding -+--> Completed --(Timer K = 0)--> Terminated
 *             +-----------------------------------------------> Terminated
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import type { Built } from './build.js';
import type { NextTable } from '../../../lib/fsm.js';
import { Machine, type ClientEvents, type TxContext } from './transaction.js';

export type NonInviteClientState = 'trying' | 'proceeding' | 'completed' | 'terminated';

export const NON_INVITE_CLIENT_NEXT: NextTable<NonInviteClientState> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

export class NonInviteClientTransaction extends Machine<NonInviteClientState> {
  constructor(
    ctx: TxContext,
    readonly request: Built<SipRequest>,
    private readonly events: ClientEvents,
  ) {
    super('non-INVITE client transaction', NON_INVITE_CLIENT_NEXT, 'trying', ctx, () => events.terminated());
  }

  start(): void {
    this.ctx.send(this.request.text);
    this.arm('F', this.ctx.timers.F, () => {
      this.events.timeout();
      this.end();
    });
  }

  receiveResponse(res: SipResponse): void {
    if (this.state !== 'trying' && this.state !== 'proceeding') return; // Completed absorbs (§17.1.2.2)
    if (res.status < 200) {
      if (this.state === 'trying') this.transition('proceeding');
      this.events.response(res);
      return;
    }
    this.transition('completed');
    this.disarm('F');
    this.events.response(res);
    this.arm('K', this.ctx.timers.K, () => this.end());
  }

  transportError(): void {
    if (this.state === 'terminated') return;
    this.events.timeout();
    this.end();
  }
}
