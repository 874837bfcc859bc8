/**
 * INVITE server transaction, RFC 3261 §17.2.1 with RFC 6026 §7.1 (Accepted), over TCP:
 * no Timer G (no retransmission of the final), Timer I = 0.
 *
 *           INVITE received: send 100 Trying
 *                    |
 *               Proceeding --(1xx from TU: send)--+
 *                 |     |  (INVITE again: resend last provisional)
 *   2xx from TU   |     | 300-699 from TU: send, Timer H
 *   send, Timer L v     v
 *         Accepted     Completed --(ACK)--> Confirmed --(Timer I = 0)--> Terminated
 *   (2xx from TU: send;  |  (INVITE again: resend final)
 *    INVITE absorbed)    +--(Timer H: no ACK, to TU)------------------> Terminated
 *         +--(Timer L)--------------------------------------------------> Terminated
 *
 * Retransmitting the 2xx until the ACK is the TU's job (§13.3.1.4, invite-usage.ts).
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { newTag, responseTo, type Built } from './build.js';
import type { NextTable } from '../../../lib/fsm.js';
import { Machine, type ServerEvents, type TxContext } from './transaction.js';

export type InviteServerState = 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

export const INVITE_SERVER_NEXT: NextTable<InviteServerState> = {
  proceeding: ['accepted', 'completed', 'terminated'],
  accepted: ['terminated'],
  completed: ['confirmed', 'terminated'],
  confirmed: ['terminated'],
  terminated: [],
};

export class InviteServerTransaction extends Machine<InviteServerState> {
  #last: string | null = null;
  #request: SipRequest | null;
  /** The final response sent, if any. */
  final: SipResponse | null = null;
  /** Our To-tag for this INVITE's responses, and the 200 to its CANCEL (§9.2). */
  readonly toTag = newTag();
  constructor(
    ctx: TxContext,
    request: SipRequest,
    private readonly events: ServerEvents,
  ) {
    super('INVITE server transaction', INVITE_SERVER_NEXT, 'proceeding', ctx, () => events.terminated());
    this.#request = request;
  }

  /**
   * The INVITE, until a 2xx is sent. In Accepted (RFC 6026 §7.1) the transaction only
   * absorbs the INVITE's retransmissions until Timer L (64*T1): it lets go of the INVITE
   * and of its last response, so an answered call is not held in memory twice for that
   * time. Reading it then is a bug, and throws.
   */
  get request(): SipRequest {
    if (this.#request === null) throw new Error('INVITE server transaction: the INVITE is released once a 2xx is sent');
    return this.#request;
  }

  /** §17.2.1: a 100 Trying at once (the B2BUA forks, its 180 may take longer than 200 ms). */
  start(): void {
    this.#sendLast(responseTo(this.request, 100).text);
  }

  /**
   * Send a response from the TU. False when the state no longer allows it (a 487 after
   * a 2xx went out: CANCEL crossing the 2xx, §9.2), so the TU can tell.
   */
  respond(res: Built<SipResponse>): boolean {
    const s = res.msg.status;
    if (this.state === 'accepted' && s >= 200 && s < 300) {
      this.ctx.send(res.text); // the TU's own 2xx retransmission (RFC 6026 §7.1)
      return true;
    }
    if (this.state !== 'proceeding') return false;
    this.#sendLast(res.text);
    if (s < 200) return true;
    this.final = res.msg;
    if (s < 300) {
      this.transition('accepted');
      this.#request = null;
      this.#last = null;
      this.arm('L', this.ctx.timers.L, () => this.end());
    } else {
      this.transition('completed');
      this.arm('H', this.ctx.timers.H, () => {
        this.events.timeout();
        this.end();
      });
    }
    return true;
  }

  /** A request that matched this transaction (§17.2.3): the INVITE again, or the ACK of a non-2xx. */
  receiveRequest(req: SipRequest): void {
    if (req.method === 'ACK') {
      if (this.state !== 'completed') return; // Confirmed absorbs ACKs
      this.disarm('H');
      this.transition('confirmed');
      this.arm('I', this.ctx.timers.I, () => this.end());
      return;
    }
    if ((this.state === 'proceeding' || this.state === 'completed') && this.#last !== null) this.ctx.send(this.#last);
  }

  transportError(): void {
    this.end();
  }

  #sendLast(text: string): void {
    this.#last = text;
    this.ctx.send(text);
  }
}
