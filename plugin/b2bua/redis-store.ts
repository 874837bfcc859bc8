/**
 * The B2BUA's call records (./store.ts) on the shared-state engine
 * (plugin/shared-state/redis.ts; docs/decisions/0003-shared-state-engine.md), the same
 * contract as the LMDB store, run through the same interface suite
 * (test/unit/b2bua/store-suite.ts).
 *
 * - Key `<prefix>:b2b:{<base64url(Call-ID)>}` (RFC 4648 §5: any Call-ID is safe in a key
 *   and its hash tag), value the record's JSON with its `owner` node.
 * - TTL: the call's maximum age (b2bua.maxSessionAgeS, counted from its start) plus
 *   RECORD_GRACE_MS, so a record no node deletes (every node gone) ends by itself.
 * - Every write is a compare-and-set (CAS_ATTEMPTS) that checks the owner: a node writes
 *   and deletes only its own records, so once a survivor claimed a record (./takeover.ts)
 *   the old owner, should it still be alive, cannot write it back or delete it.
 * - Writes of one Call-ID run in order (a chain per key); `flushed` waits for all of them.
 */
import { CAS_ATTEMPTS, SharedStateError, fromKeyPart, keyPart, type SharedEngine } from '../shared-state/redis.js';
import { loadFrom, ownedBy, ownersOf, parseStoredCall, type CallStore, type LoadedCalls, type OwnedRecord, type StoredCall } from './store.js';

/** Kept past the call's maximum age (its BYEs may still be under way). */
export const RECORD_GRACE_MS = 60_000;

export interface RedisCallStoreOptions {
  /** This node's id: the owner of what it writes. */
  readonly node: string;
  readonly prefix?: string;
  /** b2bua.maxSessionAgeS in ms; 0: records without TTL. */
  readonly maxAgeMs?: number;
  /** A write that failed (put and delete are not awaited by the call). */
  readonly onError?: (err: unknown) => void;
  /** Wall clock, epoch ms. */
  readonly now?: () => number;
}

export class RedisCallStore implements CallStore {
  readonly node: string;
  readonly #prefix: string;
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly engine: SharedEngine,
    private readonly opts: RedisCallStoreOptions,
  ) {
    this.node = opts.node;
    this.#prefix = opts.prefix ?? 'pf';
  }

  #key(callId: string): string {
    return `${this.#prefix}:b2b:{${keyPart(callId)}}`;
  }
  get #channel(): string {
    return `${this.#prefix}:changed:b2b`;
  }
  #ttl(call: StoredCall): number {
    const maxAge = this.opts.maxAgeMs ?? 0;
    if (maxAge <= 0) return 0;
    return Math.max(1000, call.startedAt + maxAge + RECORD_GRACE_MS - (this.opts.now ?? Date.now)());
  }
  /** The owner of a stored text; undefined when it has none or is damaged (then it is ours to overwrite). */
  #ownerOf(text: string): string | undefined {
    const r = parseStoredCall(text);
    return r.ok ? r.call.owner : undefined;
  }

  put(call: StoredCall): void {
    const record: StoredCall = { ...call, owner: this.node };
    this.#chain(call.callId, async () => {
      const key = this.#key(call.callId);
      const next = JSON.stringify(record);
      for (let i = 0; i < CAS_ATTEMPTS; i++) {
        const cur = await this.engine.get(key);
        const owner = cur === null ? undefined : this.#ownerOf(cur);
        if (owner !== undefined && owner !== this.node) throw new SharedStateError(`b2bua call ${call.callId}: taken over by ${owner}, not written`);
        if (await this.engine.cas(key, cur, next, this.#ttl(record), this.#channel, keyPart(call.callId))) return;
      }
      throw new SharedStateError(`b2bua call ${call.callId}: ${CAS_ATTEMPTS} concurrent writes, gave up`);
    });
  }

  delete(callId: string): void {
    this.#chain(callId, async () => {
      const key = this.#key(callId);
      for (let i = 0; i < CAS_ATTEMPTS; i++) {
        const cur = await this.engine.get(key);
        if (cur === null) return;
        const owner = this.#ownerOf(cur);
        // another node's now (taken over): its to delete
        if (owner !== undefined && owner !== this.node) return;
        if (await this.engine.cas(key, cur, null, 0, this.#channel, keyPart(callId))) return;
      }
      throw new SharedStateError(`b2bua call ${callId}: ${CAS_ATTEMPTS} concurrent writes, gave up`);
    });
  }

  async load(): Promise<LoadedCalls> {
    const all = await this.#all();
    return { calls: all.calls.filter((c) => ownedBy(c, this.node)), bad: all.bad };
  }

  async owners(): Promise<OwnedRecord[]> {
    return ownersOf(await this.#all());
  }

  async claim(callId: string, from: string): Promise<StoredCall | null> {
    const key = this.#key(callId);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.engine.get(key);
      if (cur === null) return null;
      const r = parseStoredCall(cur);
      if (!r.ok || r.call.owner !== from) return null;
      const taken: StoredCall = { ...r.call, owner: this.node };
      if (await this.engine.cas(key, cur, JSON.stringify(taken), this.#ttl(taken), this.#channel, keyPart(callId))) return taken;
    }
    throw new SharedStateError(`b2bua call ${callId}: ${CAS_ATTEMPTS} concurrent claims, gave up`);
  }

  async flushed(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all(this.#chains.values());
  }

  async close(): Promise<void> {
    await this.flushed();
  }

  /** Every record, as text checked by the same code as the LMDB store's. */
  async #all(): Promise<LoadedCalls> {
    const head = `${this.#prefix}:b2b:{`;
    const entries: { key: string; value: string }[] = [];
    for await (const keys of this.engine.scan(`${this.#prefix}:b2b:*`)) {
      for (const k of keys) {
        if (!k.startsWith(head) || !k.endsWith('}')) continue;
        const value = await this.engine.get(k);
        // deleted between the scan and the read
        if (value === null) continue;
        entries.push({ key: fromKeyPart(k.slice(head.length, -1)), value });
      }
    }
    return loadFrom(entries);
  }

  /** Run `op` after the writes of `callId` before it; its failure goes to onError. */
  #chain(callId: string, op: () => Promise<void>): void {
    const prev = this.#chains.get(callId) ?? Promise.resolve();
    const next: Promise<void> = prev.then(op).catch((err: unknown) => this.opts.onError?.(err));
    this.#chains.set(callId, next);
    void next.then(() => {
      if (this.#chains.get(callId) === next) this.#chains.delete(callId);
    });
  }
}
