/**
 * The INVITE usage's transaction-user rules that the B2BUA call logic builds on
 * (RFC 3261 §13–14):
 * - UAS: retransmit our 2xx at T1, 2*T1, ... capped at T2 until its ACK, and give up
 *   after 64*T1 (§13.3.1.4; the TU's job, so over TCP too). The call then sends BYE.
 * - UAC: one dialog per To-tag of the 2xx responses to one INVITE (a forked INVITE,
 *   §13.2.2.4), each ACKed, and the same ACK again for each retransmission of a 2xx.
 * - re-INVITE glare: 491 while our own re-INVITE is pending, 500 while theirs is still
 *   unanswered, and the §14.1 back-off before we try again.
 *
 *   Retransmit2xx:  retransmitting --(ACK, BYE, stop)--> done
 *                        +--(64*T1 without ACK: onNoAck)--> done
 *
 * Used by the B2BUA (../b2bua.ts): the call, its legs, and their refreshes (docs/b2bua.md).
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { cseqOf, tagOf, type Built } from './build.js';
import { buildInDialog, confirmAsUac, dialogAsUac, DialogError, type Dialog } from './dialog.js';
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';
import type { Clock, TimerHandle, TimerValues } from './timers.js';

export type Retransmit2xxState = 'retransmitting' | 'done';
export const RETRANSMIT_2XX_NEXT: NextTable<Retransmit2xxState> = { retransmitting: ['done'], done: [] };

/** §13.3.1.4: our 2xx again at T1, 2*T1, 4*T1 ... (at most T2 apart) until the ACK. */
export class Retransmit2xx {
  #state: Retransmit2xxState = 'retransmitting';
  #interval: number;
  #timer: TimerHandle;
  readonly #giveUp: TimerHandle;
  /** How many times the 2xx went out again. */
  sent = 0;
  /** The 2xx has been sent once already (by the INVITE server transaction). */
  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerValues,
    private readonly send: (text: string) => void,
    private readonly text: string,
    private readonly onNoAck: () => void,
  ) {
    this.#interval = timers.T1;
    this.#timer = clock.setTimer(this.#interval, () => this.#fire());
    this.#giveUp = clock.setTimer(64 * timers.T1, () => {
      this.#stop();
      this.onNoAck();
    });
  }
  get state(): Retransmit2xxState {
    return this.#state;
  }
  /** The ACK (or a BYE, §15) arrived: stop. False when already stopped. */
  stop(): boolean {
    if (this.#state === 'done') return false;
    this.#stop();
    return true;
  }
  #fire(): void {
    this.send(this.text);
    this.sent++;
    this.#interval = Math.min(2 * this.#interval, this.timers.T2);
    this.#timer = this.clock.setTimer(this.#interval, () => this.#fire());
  }
  #stop(): void {
    this.#state = guardedTransition('2xx retransmission', RETRANSMIT_2XX_NEXT, this.#state, 'done');
    this.clock.clearTimer(this.#timer);
    this.clock.clearTimer(this.#giveUp);
  }
}

export type UacOutcome =
  /** A 1xx: with a To-tag it makes or keeps an early dialog. */
  | { readonly kind: 'provisional'; readonly dialog: Dialog | null }
  /** A 2xx: send `ack`. `fresh` is false for a retransmission of a 2xx already ACKed. */
  | { readonly kind: 'accepted'; readonly dialog: Dialog; readonly ack: Built<SipRequest>; readonly fresh: boolean }
  /** A non-2xx final: early dialogs end (§12.3); the transaction ACKed it (§17.1.1.3). */
  | { readonly kind: 'rejected'; readonly status: number }
  /** A response that cannot make a dialog (no To-tag, no Contact ...): dropped. */
  | { readonly kind: 'ignored'; readonly why: string };

/**
 * The UAC side of one INVITE: the dialogs its responses create, one per To-tag, and the
 * ACK sent for each 2xx (kept to answer the 2xx's retransmissions, §13.2.2.4).
 */
export class UacInvite {
  readonly #dialogs = new Map<string, Dialog>();
  readonly #acks = new Map<string, Built<SipRequest>>();
  constructor(
    readonly invite: SipRequest,
    /** Our Via sent-by for the ACKs. */
    private readonly sentBy: string,
  ) {}

  get dialogs(): readonly Dialog[] {
    return [...this.#dialogs.values()];
  }

  /** A response the INVITE client transaction passed up. Pure over the stored dialogs. */
  receive(res: SipResponse): UacOutcome {
    if (res.status >= 300) return { kind: 'rejected', status: res.status };
    const tag = tagOf(res.get('To'));
    if (res.status < 200) {
      if (tag === null || res.status === 100) return { kind: 'provisional', dialog: null };
      const known = this.#dialogs.get(tag);
      if (known) return { kind: 'provisional', dialog: known };
      return this.#attempt(() => {
        const d = dialogAsUac(this.invite, res);
        this.#dialogs.set(tag, d);
        return { kind: 'provisional', dialog: d };
      });
    }
    if (tag === null) return { kind: 'ignored', why: '2xx without a To-tag' };
    const ack = this.#acks.get(tag);
    if (ack) return { kind: 'accepted', dialog: this.#dialogs.get(tag)!, ack, fresh: false };
    return this.#attempt(() => {
      const early = this.#dialogs.get(tag);
      const d = early ? confirmAsUac(early, res) : dialogAsUac(this.invite, res);
      const seq = cseqOf(this.invite)?.seq;
      const built = buildInDialog(d, 'ACK', { sentBy: this.sentBy, ...(seq === undefined ? {} : { seq }) });
      this.#dialogs.set(tag, built.dialog);
      this.#acks.set(tag, built.request);
      return { kind: 'accepted', dialog: built.dialog, ack: built.request, fresh: true };
    });
  }

  #attempt(f: () => UacOutcome): UacOutcome {
    try {
      return f();
    } catch (err) {
      if (err instanceof DialogError) return { kind: 'ignored', why: err.message };
      throw err;
    }
  }
}

/** What the dialog has in flight when a re-INVITE arrives (§14.2). */
export interface PendingInvites {
  /** Our re-INVITE has no final response yet. */
  readonly ours: boolean;
  /** Their previous re-INVITE has no final response from us yet. */
  readonly theirs: boolean;
}

/**
 * §14.2: the answer to an incoming re-INVITE before any offer/answer work, or null to
 * go on. Theirs pending: 500 with Retry-After (0-10 s); ours pending: 491 (glare).
 */
export function reInviteVerdict(p: PendingInvites): { readonly status: 491 | 500; readonly retryAfter?: number } | null {
  if (p.theirs) return { status: 500, retryAfter: 5 };
  if (p.ours) return { status: 491 };
  return null;
}

/**
 * §14.1: how long to wait after a 491 before retrying our re-INVITE. The owner of the
 * Call-ID (it made the dialog's first INVITE) waits 2.1-4 s, the other side 0-2 s, in
 * units of 10 ms. `random` in [0, 1).
 */
export function glareBackoffMs(ownsCallId: boolean, random: () => number = Math.random): number {
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return ownsCallId ? 2100 + Math.floor(r * 191) * 10 : Math.floor(r * 201) * 10;
}
