/**
 * What the four transactions (RFC 3261 §17) share: the context they run in (clock, timer
 * values, the transport's send), their events towards the layer, and timer bookkeeping.
 * A timer of 0 ms (D, I, J, K over TCP) fires at once, in the same call.
 */
import type { SipResponse } from '../../sip/message.js';
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';
import type { Clock, TimerHandle, TimerValues } from './timers.js';

export interface TxContext {
  readonly clock: Clock;
  readonly timers: TimerValues;
  /** The TCP connection towards Kamailio; a framed message per call. */
  send(text: string): void;
}

export interface ClientEvents {
  /** A response the TU must see (§17.1.1.2, §17.1.2.2; 2xx in Accepted, RFC 6026 §7.2). */
  response(res: SipResponse): void;
  /** Timer B or F fired: the TU treats it as a 408 (§8.1.3.1). */
  timeout(): void;
  terminated(): void;
}

export interface ServerEvents {
  /** Timer H fired: no ACK for our non-2xx final (§17.2.1). */
  timeout(): void;
  terminated(): void;
}

/** A state machine with named timers that all stop when it ends. */
export abstract class Machine<S extends string> {
  #state: S;
  readonly #handles = new Map<string, TimerHandle>();
  protected constructor(
    private readonly machine: string,
    private readonly next: NextTable<S>,
    initial: S,
    protected readonly ctx: TxContext,
    private readonly ended: () => void,
  ) {
    this.#state = initial;
  }
  /** Every transaction ends in 'terminated' (RFC 3261 §17): timers stop, the TU is told once. */
  protected end(): void {
    const terminated = 'terminated' as S;
    if (this.#state === terminated) return;
    this.disarmAll();
    this.transition(terminated);
    this.ended();
  }
  get state(): S {
    return this.#state;
  }
  /** The one guarded move (lib/fsm.ts): throws IllegalTransition when NEXT forbids it. */
  protected transition(to: S): void {
    this.#state = guardedTransition(this.machine, this.next, this.#state, to);
  }
  /** Arm timer `name` for `ms`; 0 runs `fn` now. Re-arming replaces the old one. */
  protected arm(name: string, ms: number, fn: () => void): void {
    this.disarm(name);
    if (ms <= 0) {
      fn();
      return;
    }
    this.#handles.set(
      name,
      this.ctx.clock.setTimer(ms, () => {
        this.#handles.delete(name);
        fn();
      }),
    );
  }
  protected disarm(name: string): void {
    const h = this.#handles.get(name);
    if (h !== undefined) this.ctx.clock.clearTimer(h);
    this.#handles.delete(name);
  }
  protected disarmAll(): void {
    for (const h of this.#handles.values()) this.ctx.clock.clearTimer(h);
    this.#handles.clear();
  }
}
