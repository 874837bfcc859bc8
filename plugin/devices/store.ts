/**
 * The device registry: each served user's registered CPM Clients with their Contact
 * feature tags and GRUUs (Kamailio's usrloc keeps neither). Reads are synchronous from
 * memory (the INVITE hot path); writes go through to lmdb and are flushed to disk
 * before `apply()` resolves, so a restart loses nothing.
 */
import type { Database } from 'lmdb';
import type { Device } from './types.js';
import { deviceKey } from './identity.js';
import { DurableLmdbStore } from '../lmdb/durable.js';
import type { DeviceLimitErrorCode } from '../errors.js';

/** One REGISTER's effect on a user's bindings (RFC 3261 §10.3). */
export type DeviceChange =
  | { readonly kind: 'fetch'; readonly aor: string }
  | { readonly kind: 'remove-all'; readonly aor: string }
  | {
      readonly kind: 'update';
      readonly aor: string;
      readonly upsert: readonly Device[];
      /** Device keys to remove (per-contact `expires=0`). */
      readonly remove: readonly string[];
    };

export interface ApplyResult {
  /** Devices still registered after the change. */
  readonly devices: number;
  readonly added: number;
  readonly refreshed: number;
  readonly removed: number;
}

/** What the rest of the service needs from a registry; an external store can implement it. */
export interface DeviceStore {
  /** Unexpired devices of a user, synchronously (hot path). */
  list(aor: string, now: number): readonly Device[];
  /** Apply one REGISTER; resolves once durable. @throws DeviceLimitError (nothing stored) */
  apply(change: DeviceChange, now: number): Promise<ApplyResult>;
  /** Users with at least one stored binding (expired or not). */
  users(): readonly string[];
  /** Drop expired devices; resolves with how many were removed. */
  purge(now: number): Promise<number>;
  readonly isOpen: boolean;
  close(): Promise<void>;
}

/** A REGISTER would leave the user with more devices than allowed; nothing was stored. */
export class DeviceLimitError extends Error {
  override readonly name = 'DeviceLimitError';
  readonly code: DeviceLimitErrorCode = 'REGISTER_TOO_MANY_CONTACTS';
}

/** Users whose decoded bindings list() keeps (the oldest entry makes room). */
const DECODED_MAX = 4096;

/** Stored value: the user's bindings. */
type Stored = readonly Device[];

export function live(all: Stored | undefined, now: number): readonly Device[] {
  if (!all) return [];
  // Expired bindings are invisible at once; the purge deletes them later.
  return all.every((d) => d.expiresAt > now) ? all : all.filter((d) => d.expiresAt > now);
}

/**
 * One REGISTER's effect on a user's unexpired bindings `before` (RFC 3261 §10.3), for
 * every backend: the bindings after it and the counts. Pure.
 * @throws DeviceLimitError when more than `maxDevices` would remain
 */
export function applyChange(
  before: readonly Device[],
  change: Exclude<DeviceChange, { kind: 'fetch' }>,
  now: number,
  maxDevices: number,
): { readonly devices: readonly Device[]; readonly result: ApplyResult } {
  if (change.kind === 'remove-all') {
    // RFC 3261 §10.3 step 6: `Contact: *` with Expires: 0 removes every binding.
    return { devices: [], result: { devices: 0, added: 0, refreshed: 0, removed: before.length } };
  }
  const next = new Map<string, Device>(before.map((d) => [deviceKey(d), d]));
  let added = 0;
  let refreshed = 0;
  let removed = 0;
  for (const key of change.remove) if (next.delete(key)) removed++;
  for (const d of change.upsert) {
    const key = deviceKey(d);
    const old = next.get(key);
    // RFC 3261 §10.3 step 7: same Call-ID and a CSeq not higher: stale, the binding stays.
    if (old && old.callId === d.callId && d.cseq <= old.cseq) continue;
    if (d.expiresAt <= now) {
      if (next.delete(key)) removed++;
      continue;
    }
    if (old) refreshed++;
    else added++;
    next.set(key, d);
  }
  const devices = [...next.values()];
  if (devices.length > maxDevices) {
    throw new DeviceLimitError(`${devices.length} devices for ${change.aor}, at most ${maxDevices}`);
  }
  return { devices, result: { devices: devices.length, added, refreshed, removed } };
}

/**
 * Devices in lmdb, key: aor, value: Device[]. Reads go to lmdb directly (memory-mapped,
 * a few µs, no disk I/O once warm), so service instances on one host that share
 * `dataDir` see each other's registrations; each REGISTER is one write transaction
 * (read-modify-write is atomic across processes).
 */
export class LmdbDeviceStore extends DurableLmdbStore<Stored, string> implements DeviceStore {
  /** `maxDevices`: bindings per user, as Kamailio's registrar `max_contacts`. */
  constructor(
    db: Database<Stored, string>,
    private readonly maxDevices = 64,
  ) {
    super(db);
  }

  /**
   * Decoded values by key, with the stored bytes they were decoded from: a read that
   * finds the same bytes (another process may have written) skips the decode.
   */
  private readonly decoded = new Map<string, { readonly raw: Buffer; readonly value: Stored }>();

  list(aor: string, now: number): readonly Device[] {
    if (!this.isOpen) return [];
    // Both reads below see the same read transaction (same tick).
    const raw = this.db.getBinary(aor);
    if (raw === undefined) {
      this.decoded.delete(aor);
      return [];
    }
    const hit = this.decoded.get(aor);
    if (hit && hit.raw.equals(raw)) return live(hit.value, now);
    const value = this.db.get(aor);
    if (value === undefined) return [];
    if (!hit && this.decoded.size >= DECODED_MAX) {
      const oldest = this.decoded.keys().next();
      if (oldest.done !== true) this.decoded.delete(oldest.value);
    }
    this.decoded.set(aor, { raw, value });
    return live(value, now);
  }

  users(): readonly string[] {
    return [...this.db.getKeys()].filter((k): k is string => typeof k === 'string');
  }

  async apply(change: DeviceChange, now: number): Promise<ApplyResult> {
    this.assertOpen();
    if (change.kind === 'fetch') {
      return { devices: this.list(change.aor, now).length, added: 0, refreshed: 0, removed: 0 };
    }
    // Durable before the caller answers (pf.register precedes the 200 OK).
    return this.writeDurably((): ApplyResult => {
      const { devices, result } = applyChange(live(this.db.get(change.aor), now), change, now, this.maxDevices);
      this.inTransaction(devices.length === 0 ? this.db.remove(change.aor) : this.db.put(change.aor, devices));
      return result;
    });
  }

  async purge(now: number): Promise<number> {
    if (!this.isOpen) return 0;
    return this.writeDurably((): number => {
      let n = 0;
      for (const { key, value } of this.db.getRange({})) {
        const kept = live(value, now);
        if (kept.length === value.length) continue;
        n += value.length - kept.length;
        this.inTransaction(kept.length === 0 ? this.db.remove(key) : this.db.put(key, kept));
      }
      return n;
    });
  }

  private assertOpen(): void {
    if (!this.isOpen) throw new Error('device store is closed');
  }
}
