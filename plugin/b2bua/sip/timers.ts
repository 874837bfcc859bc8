/**
 * RFC 3261 §17 timer values on a reliable transport, and the injectable clock every
 * transaction and the INVITE usage run on.
 *
 * Part of the B2BUA's own SIP layer (docs/b2bua-sip.md, docs/decisions/0001-b2bua-sip-stack.md).
 * Not wired into the service yet: the B2BUA call logic comes next.
 *
 * TCP only (towards Kamailio), so the retransmission timers A, E and G never start, and
 * the wait-for-retransmission timers D, I, J and K are 0 (§17.1.1.2, §17.1.2.2, §17.2.1,
 * §17.2.2). B, F and H are 64*T1; RFC 6026 (§7.1, §7.2) adds L and M at 64*T1. T2 caps the 2xx
 * retransmission interval of a UAS (§13.3.1.4), which is the TU's job on every transport.
 */

export interface TimerValues {
  /** RTT estimate, 500 ms by default (§17.1.1.1). */
  readonly T1: number;
  /** Maximum retransmission interval for non-INVITE requests and INVITE 2xx, 4 s (§17.1.2.2, §13.3.1.4). */
  readonly T2: number;
  /** INVITE client transaction timeout (§17.1.1.2). */
  readonly B: number;
  /** Wait for response retransmissions, INVITE client: 0 over TCP (§17.1.1.2). */
  readonly D: number;
  /** Non-INVITE client transaction timeout (§17.1.2.2). */
  readonly F: number;
  /** Wait for the ACK of a non-2xx final, INVITE server (§17.2.1). */
  readonly H: number;
  /** Wait for ACK retransmissions, INVITE server: 0 over TCP (§17.2.1). */
  readonly I: number;
  /** Wait for request retransmissions, non-INVITE server: 0 over TCP (§17.2.2). */
  readonly J: number;
  /** Wait for response retransmissions, non-INVITE client: 0 over TCP (§17.1.2.2). */
  readonly K: number;
  /** INVITE server Accepted state: absorb INVITE retransmissions (RFC 6026 §7.1). */
  readonly L: number;
  /** INVITE client Accepted state: pass 2xx retransmissions and forks to the TU (RFC 6026 §7.2). */
  readonly M: number;
}

/** The timer values over TCP for a given T1 (default 500 ms) and T2 (default 4 s, §17.1.2.2). */
export function reliableTimers(T1 = 500, T2 = Math.max(4000, T1)): TimerValues {
  if (!(Number.isFinite(T1) && T1 > 0 && Number.isFinite(T2) && T2 >= T1)) {
    throw new RangeError(`bad SIP timer base: T1=${T1} T2=${T2}`);
  }
  const x64 = 64 * T1;
  return { T1, T2, B: x64, D: 0, F: x64, H: x64, I: 0, J: 0, K: 0, L: x64, M: x64 };
}

export type TimerHandle = number;

/** What the SIP layer asks of time: tests inject FakeClock, the service the system clock. */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** The real clock: performance.now() and setTimeout, handles numbered by us. */
export class SystemClock implements Clock {
  #next = 1;
  readonly #timers = new Map<TimerHandle, NodeJS.Timeout>();
  now(): number {
    return performance.now();
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const h = this.#next++;
    const t = setTimeout(() => {
      this.#timers.delete(h);
      fn();
    }, ms);
    t.unref();
    this.#timers.set(h, t);
    return h;
  }
  clearTimer(handle: TimerHandle): void {
    const t = this.#timers.get(handle);
    if (t !== undefined) clearTimeout(t);
    this.#timers.delete(handle);
  }
}

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told (`advance`). Timers due at the same instant fire in
 * the order they were set; a timer set while advancing fires in the same advance when due.
 */
export class FakeClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<TimerHandle, Pending>();
  now(): number {
    return this.#now;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const h = ++this.#seq;
    this.#timers.set(h, { at: this.#now + Math.max(0, ms), seq: h, fn });
    return h;
  }
  clearTimer(handle: TimerHandle): void {
    this.#timers.delete(handle);
  }
  /** Timers still armed. */
  get pending(): number {
    return this.#timers.size;
  }
  /** Move time forward by `ms`, firing every timer that falls due, in time order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    while (true) {
      let next: [TimerHandle, Pending] | undefined;
      for (const e of this.#timers) {
        if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].seq < next[1].seq))) next = e;
      }
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
    }
    this.#now = end;
  }
}
