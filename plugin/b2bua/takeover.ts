/**
 * A dead node's B2BUA sessions, ended by a survivor (docs/deployment.md §12).
 *
 * Each node beats its lease (plugin/shared-state/owners.ts) every third of
 * `sharedState.leaseMs`; every half of it, the sweeper lists the call records of every
 * node (./store.ts `owners`), asks which of their owners still hold a lease, and claims the
 * records of the owners that do not (`claim`, a compare-and-set: exactly one survivor gets
 * each). A claimed call cannot go on here: its MSRP connections ended at the dead node's
 * relay, and its dialogs' Record-Route names the dead node's Kamailio path. So it is ended
 * as the restart path ends a call whose relay session is gone (B2bua.restore, then
 * relayGone: docs/b2bua.md "Restart"): BYE to the caller and to every device leg that is up,
 * with `Reason: SIP;cause=503;text="Media relay unavailable"`; the record is deleted when
 * the call has ended.
 *
 * What to take is a pure function (`toTake`, table tests); the timers are at the edge
 * (`Takeover`).
 */
import type { Logger } from 'pino';
import type { NodeLeases } from '../shared-state/owners.js';
import type { CallStore, OwnedRecord, StoredCall } from './store.js';

/** The owners whose lease a sweep asks about: every other node that owns a record. Pure. */
export function ownersToCheck(self: string, records: readonly OwnedRecord[]): string[] {
  const out = new Set<string>();
  for (const r of records) if (r.owner !== null && r.owner !== self) out.add(r.owner);
  return [...out].sort();
}

/**
 * The records a survivor claims: those of another node whose lease is known to have run
 * out (`alive` false). Not its own, not one without owner (of before ownership: only its
 * node loads it), not one whose owner's lease could not be read (absent from `alive`).
 * None while this node's own lease is not fresh (`selfFresh` false: it may be the one cut
 * off from the engine, and its view of the others is not to be trusted). Pure.
 */
export function toTake(self: string, records: readonly OwnedRecord[], alive: ReadonlyMap<string, boolean>, selfFresh: boolean): OwnedRecord[] {
  if (!selfFresh) return [];
  return records.filter((r) => r.owner !== null && r.owner !== self && alive.get(r.owner) === false);
}

/** Interval timers (the edge; tests give their own). */
export interface IntervalTimers {
  every(ms: number, f: () => void): () => void;
}

const systemTimers: IntervalTimers = {
  every(ms, f) {
    const h = setInterval(f, ms);
    h.unref();
    return () => clearInterval(h);
  },
};

export interface TakeoverDeps {
  readonly node: string;
  readonly store: CallStore;
  readonly leases: NodeLeases;
  /** The lease's TTL (sharedState.leaseMs). */
  readonly leaseMs: number;
  /** End the calls claimed here (the B2BUA's restart path, ./service.ts). */
  readonly end: (calls: readonly StoredCall[]) => Promise<void>;
  readonly log: Logger;
  readonly timers?: IntervalTimers;
  /** Monotonic ms (freshness of this node's lease). */
  readonly clock?: () => number;
}

export class Takeover {
  #stops: (() => void)[] = [];
  #sweeping = false;
  /** When this node's lease was last renewed (clock ms); -Infinity: never. */
  #renewed = -Infinity;

  constructor(private readonly deps: TakeoverDeps) {}

  /** Take the lease (before the node restores its own calls), then beat and sweep on timers. */
  async start(): Promise<void> {
    await this.beat();
    const t = this.deps.timers ?? systemTimers;
    const ms = this.deps.leaseMs;
    this.#stops.push(t.every(Math.max(1, Math.floor(ms / 3)), () => void this.beat()));
    this.#stops.push(t.every(Math.max(1, Math.floor(ms / 2)), () => void this.sweep()));
  }

  /** Renew this node's lease; a failure is logged (the next beat tries again). */
  async beat(): Promise<void> {
    const at = this.#now();
    try {
      await this.deps.leases.beat(this.deps.node, this.deps.leaseMs);
      this.#renewed = at;
    } catch (err) {
      this.deps.log.warn({ err, node: this.deps.node }, 'b2bua: node lease not renewed');
    }
  }

  /** One sweep: the calls taken and handed to `end`. */
  async sweep(): Promise<StoredCall[]> {
    if (this.#sweeping) return [];
    this.#sweeping = true;
    try {
      const { store, leases, node, log } = this.deps;
      const records = await store.owners();
      const alive = new Map<string, boolean>();
      for (const o of ownersToCheck(node, records)) {
        try {
          alive.set(o, await leases.alive(o));
        } catch (err) {
          log.warn({ err, owner: o }, 'b2bua: lease of a node not read');
        }
      }
      const fresh = this.#now() - this.#renewed < this.deps.leaseMs;
      const taken: StoredCall[] = [];
      for (const r of toTake(node, records, alive, fresh)) {
        const call = r.owner === null ? null : await store.claim(r.callId, r.owner);
        if (call) taken.push(call);
      }
      if (taken.length > 0) {
        log.warn({ calls: taken.map((c) => c.callId), from: [...new Set(records.filter((r) => taken.some((c) => c.callId === r.callId)).map((r) => r.owner))] },
          'b2bua: calls of a node whose lease ran out taken over: they end');
        await this.deps.end(taken);
      }
      return taken;
    } catch (err) {
      this.deps.log.warn({ err }, 'b2bua: takeover sweep failed');
      return [];
    } finally {
      this.#sweeping = false;
    }
  }

  stop(): void {
    for (const s of this.#stops) s();
    this.#stops = [];
  }

  #now(): number {
    return (this.deps.clock ?? performance.now.bind(performance))();
  }
}
