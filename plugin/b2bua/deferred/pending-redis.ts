/**
 * Pending deliveries (./pending-store.ts) on the shared-state engine
 * (plugin/shared-state/redis.ts; docs/decisions/0003-shared-state-engine.md), the same
 * contract as the LMDB store, run through the same interface suite
 * (test/unit/b2bua/deferred/pending-suite.ts).
 *
 * - Entry key `<prefix>:pd:{<base64url(deferred-id)>}`, value the entry's JSON (checked
 *   against PendingEntrySchema on read), no TTL: expiry is the driver's sweep, as with LMDB
 *   (its `now` may lag the record's expiry by the grace the relay's notifications need).
 * - User index `<prefix>:pdu:{<base64url(served user)>}`, value the user's deferred-ids as
 *   a JSON array, removed when empty.
 * - Claim `<prefix>:pdc:{<base64url(deferred-id)>}` (the entry's hash tag, so its slot),
 *   value the node id delivering the entry (./claim.ts), written only by compare-and-set;
 *   removed after the entry is.
 * - Every write is a compare-and-set (CAS_ATTEMPTS). The entry is written before the index
 *   entry is added and removed after it is taken out: a crash in between leaves an index
 *   naming an entry that is gone (skipped on read) or an entry no index names (`all`, and so
 *   the sweep and a restart, still find it).
 */
import { CAS_ATTEMPTS, SharedStateError, keyPart, type SharedEngine } from '../../shared-state/redis.js';
import { byCreation, keptUntil, parseEntry, type BadEntry, type PendingDeliveries, type PendingEntry } from './pending-store.js';

export interface RedisPendingOptions {
  readonly prefix?: string;
  readonly onBad?: BadEntry;
}

export class RedisPendingDeliveries implements PendingDeliveries {
  readonly #prefix: string;

  constructor(
    private readonly engine: SharedEngine,
    private readonly opts: RedisPendingOptions = {},
  ) {
    this.#prefix = opts.prefix ?? 'pf';
  }

  #key(id: string): string {
    return `${this.#prefix}:pd:{${keyPart(id)}}`;
  }
  #claimKey(id: string): string {
    return `${this.#prefix}:pdc:{${keyPart(id)}}`;
  }
  #userKey(user: string): string {
    return `${this.#prefix}:pdu:{${keyPart(user)}}`;
  }
  get #channel(): string {
    return `${this.#prefix}:changed:pd`;
  }

  /** Compare-and-set `key` to what `f` makes of its current text (null: delete); retried on a lost race. */
  async #change(key: string, f: (cur: string | null) => string | null, what: string): Promise<void> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.engine.get(key);
      const next = f(cur);
      if (next === cur) return;
      if (await this.engine.cas(key, cur, next, 0, this.#channel, key)) return;
    }
    throw new SharedStateError(`${what}: ${CAS_ATTEMPTS} concurrent writes, gave up`);
  }

  #ids(text: string | null): string[] {
    if (text === null) return [];
    try {
      const v: unknown = JSON.parse(text);
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  async put(entry: PendingEntry): Promise<void> {
    const id = entry.record.deferredId;
    const text = JSON.stringify(entry);
    await this.#change(this.#key(id), () => text, 'pending delivery write');
    await this.#change(this.#userKey(entry.record.servedUser), (cur) => {
      const ids = this.#ids(cur);
      return ids.includes(id) ? cur : JSON.stringify([...ids, id]);
    }, 'pending delivery index');
  }

  async claimant(deferredId: string): Promise<string | null> {
    return this.engine.get(this.#claimKey(deferredId));
  }

  async casClaim(deferredId: string, expected: string | null, next: string | null): Promise<boolean> {
    const key = this.#claimKey(deferredId);
    return this.engine.cas(key, expected, next, 0, this.#channel, key);
  }

  async get(deferredId: string): Promise<PendingEntry | null> {
    return this.#read(this.#key(deferredId), await this.engine.get(this.#key(deferredId)));
  }

  async remove(deferredId: string): Promise<void> {
    const key = this.#key(deferredId);
    const text = await this.engine.get(key);
    const parsed = text === null ? null : parseEntry(text);
    const user = parsed?.ok ? parsed.entry.record.servedUser : null;
    if (user !== null) {
      await this.#change(this.#userKey(user), (cur) => {
        const ids = this.#ids(cur);
        if (!ids.includes(deferredId)) return cur;
        const left = ids.filter((x) => x !== deferredId);
        return left.length === 0 ? null : JSON.stringify(left);
      }, 'pending delivery index');
    }
    await this.#change(key, () => null, 'pending delivery remove');
    await this.#change(this.#claimKey(deferredId), () => null, 'pending delivery claim remove');
  }

  async forUser(servedUser: string, now: number): Promise<PendingEntry[]> {
    const ids = this.#ids(await this.engine.get(this.#userKey(servedUser)));
    const out: PendingEntry[] = [];
    for (const id of ids) {
      const e = await this.get(id);
      if (e && e.record.servedUser === servedUser && e.record.expiresAt > now) out.push(e);
    }
    return out.sort(byCreation);
  }

  async all(now: number): Promise<PendingEntry[]> {
    const out: PendingEntry[] = [];
    for await (const keys of this.engine.scan(`${this.#prefix}:pd:{*}`)) {
      for (const key of keys) {
        const e = this.#read(key, await this.engine.get(key));
        if (e && e.record.expiresAt > now) out.push(e);
      }
    }
    return out.sort(byCreation);
  }

  async sweep(now: number): Promise<string[]> {
    const gone: string[] = [];
    for (const e of await this.all(Number.NEGATIVE_INFINITY)) {
      if (keptUntil(e) > now) continue;
      await this.remove(e.record.deferredId);
      gone.push(e.record.deferredId);
    }
    return gone;
  }

  /** The engine is the caller's: nothing to close here. */
  async close(): Promise<void> {}

  #read(key: string, text: string | null): PendingEntry | null {
    if (text === null) return null;
    const r = parseEntry(text);
    if (!r.ok) {
      this.opts.onBad?.(key, r.why);
      return null;
    }
    return r.entry;
  }
}
