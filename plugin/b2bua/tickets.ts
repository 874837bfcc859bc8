/**
 * Tickets: how a `b2bua` decision of pf.invite reaches the B2BUA without steps 1-7 running
 * twice (docs/b2bua.md "How an INVITE reaches the B2BUA"). pf.invite stores what it
 * decided (the targets of step 8, the service edit of step 7) under a random ticket and
 * Kamailio relays the INVITE to the B2BUA with `X-PF-Ticket: <ticket>`. The B2BUA takes
 * the plan back, once, and only for the Call-ID it was issued for: an INVITE that did
 * not come through the PF (no ticket, a guessed one, a replayed one) is refused.
 */
import { randomHex } from '../../lib/random.js';
import type { Device } from '../devices/types.js';
import type { ServiceEdit } from '../rules/stages/service-identification.js';

export interface B2buaPlan {
  /** The INVITE's Call-ID: the ticket is good for this call only. */
  readonly callId: string;
  /** Served-user key (canonical AoR). */
  readonly servedUser: string;
  /** CR 8.3.2.1 step 8: the devices to invite (Session-Replaces: those in the replaced session). */
  readonly targets: readonly Device[];
  /** CR step 7's edit, applied to every device INVITE. */
  readonly service: ServiceEdit;
  readonly stage: string;
  /** CR step 8 a ii: no targets, the session is deferred at once (docs/deferred.md); absent: false. */
  readonly defer?: boolean;
  /**
   * Deferred delivery on for the served user (CR 8.3.2.1.1: also when every leg fails with
   * 480/408/487/500/503/504), and how long stored messages are kept (policy.deferredTtlS);
   * absent or null: off.
   */
  readonly deferral?: { readonly ttlS: number } | null;
  /** Record the session's history (the relay `offer`'s `record`, CR 8.5); absent: false. */
  readonly record?: boolean;
}

export interface TicketOptions {
  /** How long a ticket waits for its INVITE (ms); default 32 s (64*T1). */
  readonly ttlMs?: number;
  /** Most tickets held at once; the oldest goes first. */
  readonly max?: number;
}

const TICKET = /^[0-9a-f]{32}$/;

export class TicketStore {
  readonly #plans = new Map<string, { plan: B2buaPlan; expires: number }>();
  readonly #ttl: number;
  readonly #max: number;
  /** Tickets dropped unused (expired or pushed out). */
  expired = 0;

  constructor(
    private readonly now: () => number,
    o: TicketOptions = {},
  ) {
    this.#ttl = o.ttlMs ?? 32_000;
    this.#max = o.max ?? 100_000;
  }

  get size(): number {
    return this.#plans.size;
  }

  issue(plan: B2buaPlan): string {
    this.#sweep();
    if (this.#plans.size >= this.#max) {
      this.#plans.delete(this.#plans.keys().next().value!);
      this.expired++;
    }
    const ticket = randomHex(16);
    this.#plans.set(ticket, { plan, expires: this.now() + this.#ttl });
    return ticket;
  }

  /** The plan of a ticket, once; null when unknown, expired, or issued for another Call-ID. */
  take(ticket: string | undefined, callId: string | undefined): B2buaPlan | null {
    const key = ticket?.trim();
    if (key === undefined || !TICKET.test(key)) return null;
    const e = this.#plans.get(key);
    if (!e) return null;
    if (e.plan.callId !== callId) return null; // kept: the real INVITE may still come
    this.#plans.delete(key);
    return e.expires >= this.now() ? e.plan : null;
  }

  /** Insertion order is expiry order (one TTL): drop from the front while expired. */
  #sweep(): void {
    const now = this.now();
    for (const [k, e] of this.#plans) {
      if (e.expires >= now) break;
      this.#plans.delete(k);
      this.expired++;
    }
  }
}
