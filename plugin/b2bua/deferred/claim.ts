/**
 * The cross-node claim of a pending delivery (docs/deferred.md "Delivery", "Several nodes";
 * docs/deployment.md §12). With several B2BUAs on one shared store, a node takes an entry
 * before it starts a delivery or notification call for it: a compare-and-set of the entry's
 * claim from what it read to its own node id, which is also the name of its node lease
 * (plugin/shared-state/owners.ts). Exactly one node holds an entry at a time; a claim whose
 * node's lease has run out is taken over (that node's call in flight is ended, and the
 * delivery starts again from what the relay has not marked done).
 *
 *     (free) --take(self)--> held(self) --release(self)--> (free)
 *                               |
 *                               +-- self's lease runs out; take(other) --> held(other)
 *
 * One host (LMDB) takes no claims: the driver's per-entry lock is enough, behaviour
 * unchanged (./delivery-driver.ts, no leases given). `decideClaim` is pure (table tests);
 * `takeClaim` and `releaseClaim` are its edge on a store.
 */
import type { NodeLeases } from '../../shared-state/owners.js';

/** Why a node may or may not take an entry. */
export type ClaimDecision =
  | { readonly take: true; readonly why: 'free' | 'own' | 'takeover' }
  | { readonly take: false; readonly why: 'held' };

/**
 * Whether `self` may take an entry whose claim names `holder` (null: none).
 * `holderAlive`: whether the holder's lease is held; undefined when it could not be read
 * (or was not asked): then the claim stands. Pure.
 */
export function decideClaim(self: string, holder: string | null, holderAlive: boolean | undefined): ClaimDecision {
  if (holder === null) return { take: true, why: 'free' };
  if (holder === self) return { take: true, why: 'own' };
  if (holderAlive === false) return { take: true, why: 'takeover' };
  return { take: false, why: 'held' };
}

/** The claim operations of a pending-deliveries store (./pending-store.ts). */
export interface ClaimStore {
  /** The node holding `deferredId`'s claim, or null. */
  claimant(deferredId: string): Promise<string | null>;
  /** Set the claim from `expected` to `next` (null: none) if it still holds `expected`; false when not. */
  casClaim(deferredId: string, expected: string | null, next: string | null): Promise<boolean>;
}

/** Whether a node holds its lease (plugin/shared-state/owners.ts). */
export type AliveCheck = Pick<NodeLeases, 'alive'>;

/** Attempts of one take before it gives up (each lost attempt is another node's success). */
const TAKE_ATTEMPTS = 8;

export type TakeResult =
  | { readonly ok: true; readonly why: 'free' | 'own' | 'takeover'; readonly from: string | null }
  | { readonly ok: false; readonly holder: string };

/** Take `deferredId` for `self`: compare-and-set from what was read, per `decideClaim`. */
export async function takeClaim(store: ClaimStore, leases: AliveCheck, deferredId: string, self: string): Promise<TakeResult> {
  let holder: string | null = null;
  for (let i = 0; i < TAKE_ATTEMPTS; i++) {
    holder = await store.claimant(deferredId);
    const alive = holder === null || holder === self ? undefined : await leases.alive(holder).catch(() => undefined);
    const d = decideClaim(self, holder, alive);
    if (!d.take) return { ok: false, holder: holder ?? '' };
    if (d.why === 'own') return { ok: true, why: 'own', from: self };
    if (await store.casClaim(deferredId, holder, self)) return { ok: true, why: d.why, from: holder };
  }
  return { ok: false, holder: holder ?? '' };
}

/** Give `deferredId` back if `self` holds it (another node's claim is left alone). */
export async function releaseClaim(store: ClaimStore, deferredId: string, self: string): Promise<void> {
  if ((await store.claimant(deferredId)) === self) await store.casClaim(deferredId, self, null);
}
