/**
 * INVITE client transaction, RFC 3261 §17.1.1 with RFC 6026 §7.2 (Accepted), over TCP:
 * no Timer A (no retransmission), Timer D = 0.
 *
 *                 start: send INVITE, Timer B
 *                        |
 *   Timer B  +------- Calling -------+ 2xx: to TU, Timer M
 *   (timeout)|           | 1xx       |
 *            |           v           v
 *            +------ Proceeding --> Accepted --(2xx: to TU; Timer M)--> Terminated
 *            |           | 300-699: send ACK (§17.1.1.3), to TU
 *            |           v
 *            |       Completed --(300-699: ACK again; Timer D = 0)--> Terminated
 *            +---------------------------------------------------------> Terminated
 *   (also from Calling or Proceeding: no final 64*T1 after our CANCEL, §9.1)
 *
 * The ACK of a 2xx is the TU's (§13.2.2.4): a 2xx in Accepted (retransmission or another
 * fork) goes to the TU, which ACKs it again or builds a new dialog.
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { ackForNon2xx, type Built } from './build.js';
import type { NextTable } from '../../../lib/fsm.js';
import { Machine, type ClientEvents, type TxContext } from './transaction.js';

export type InviteClientState = 'calling' | 'proceeding' | 'accepted' | 'completed' | 'terminated';

export const INVITE_CLIENT_NEXT: NextTable<InviteClientState> = {
  calling: ['proceeding', 'accepted', 'completed', 'terminated'],
  proceeding: ['accepted', 'completed', 'terminated'],
  accepted: ['terminated'],
  completed: ['terminated'],
  terminated: [],
};

export class InviteClientTransaction extends Machine<InviteClientState> {
  #ack: string | null = null;
  #request: Built<SipRequest> | null;
  constructor(
    ctx: TxContext,
    request: Built<SipRequest>,
    private readonly events: ClientEvents,
  ) {
    super('INVITE client transaction', INVITE_CLIENT_NEXT, 'calling', ctx, () => events.terminated());
    this.#request = request;
  }

  /**
   * Our INVITE, until a 2xx arrives. In Accepted (RFC 6026 §7.2) the transaction only
   * passes further 2xx to the TU until Timer M (64*T1), and a CANCEL is too late: it lets
   * go of the INVITE. Reading it then is a bug, and throws.
   */
  get request(): Built<SipRequest> {
    if (this.#request === null) throw new Error('INVITE client transaction: the INVITE is released once a 2xx arrived');
    return this.#request;
  }

  /** Send the INVITE and arm Timer B (§17.1.1.2). */
  start(): void {
    this.ctx.send(this.request.text);
    this.arm('B', this.ctx.timers.B, () => {
      if (this.state !== 'calling') return;
      this.events.timeout();
      this.end();
    });
  }

  receiveResponse(res: SipResponse): void {
    const s = res.status;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        if (s < 200) {
          if (this.state === 'calling') {
            this.transition('proceeding');
            this.disarm('B'); // Timer B guards the Calling state only (§17.1.1.2)
          }
          this.events.response(res);
        } else if (s < 300) {
          this.transition('accepted');
          this.#request = null;
          this.disarm('B');
          this.disarm('cancel');
          this.arm('M', this.ctx.timers.M, () => this.end());
          this.events.response(res);
        } else {
          this.transition('completed');
          this.disarm('B');
          this.disarm('cancel');
          this.#ack = ackForNon2xx(this.request.msg, res).text;
          this.ctx.send(this.#ack);
          this.events.response(res);
          this.arm('D', this.ctx.timers.D, () => this.end());
        }
        return;
      case 'accepted':
        if (s >= 200 && s < 300) this.events.response(res); // RFC 6026 §7.2
        return;
      case 'completed':
        if (s >= 300 && this.#ack !== null) this.ctx.send(this.#ack); // §17.1.1.2
        return;
      case 'terminated':
        return;
    }
  }

  /** Our CANCEL went out (§9.1): with no final response 64*T1 later, give up (the TU sees a timeout). */
  cancelSent(): void {
    if (this.state !== 'calling' && this.state !== 'proceeding') return;
    this.arm('cancel', this.ctx.timers.B, () => {
      this.events.timeout();
      this.end();
    });
  }

  /** The connection failed (§17.1.4): the TU sees a timeout (503 per §8.1.3.1). */
  transportError(): void {
    if (this.state === 'terminated') return;
    this.events.timeout();
    this.end();
  }
}
