/**
 * The device registry on the shared-state engine (docs/decisions/0003-shared-state-engine.md),
 * for several service instances on several hosts. Same DeviceStore contract as the lmdb
 * store (plugin/devices/store.ts).
 *
 * - Key: `<prefix>:dev:{<base64url(aor)>}`, value: the user's bindings as JSON (the hash
 *   tag keeps a user in one cluster slot). TTL: the latest binding's expiry, so the engine
 *   drops a user whose bindings all ran out; no instance purges.
 * - Expiry instants are stored in the engine's clock (`offsetMs`): instances whose
 *   clocks differ agree on when a binding ends.
 * - Reads are synchronous from an in-memory copy of every user, loaded at start and kept
 *   current by the change notices each write publishes (`<prefix>:changed:dev`).
 * - A write is a compare-and-set, read again and retried when another instance wrote the
 *   same user in between; DeviceLimitError leaves the stored bindings as they were.
 * - Engine down: reads answer from the copy, writes fail with SharedStateError.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Device } from './types.js';
import { applyChange, live, type ApplyResult, type DeviceChange, type DeviceStore } from './store.js';
import { CAS_ATTEMPTS, SharedStateError, fromKeyPart, keyPart, type SharedEngine } from '../shared-state/redis.js';

/** One stored binding; Device as the engine holds it (expiry in the engine's clock). */
const StoredDevice = Type.Object({
  aor: Type.String(),
  instance: Type.Union([Type.String(), Type.Null()]),
  contact: Type.String(),
  params: Type.Record(Type.String(), Type.Union([Type.String(), Type.Literal(true)])),
  q: Type.Number(),
  pubGruu: Type.Union([Type.String(), Type.Null()]),
  received: Type.Union([Type.String(), Type.Null()]),
  path: Type.Array(Type.String()),
  callId: Type.String(),
  cseq: Type.Number(),
  registeredAt: Type.Number(),
  expiresAt: Type.Number(),
});
const StoredDevices = Type.Array(StoredDevice);
type StoredDevices = Static<typeof StoredDevices>;

// the schema and the Device type must stay the same shape
const sameShape: (d: Static<typeof StoredDevice>) => Device = (d) => d;
void sameShape;

export interface RedisDeviceStoreOptions {
  /** Bindings per user, as Kamailio's registrar `max_contacts`. */
  readonly maxDevices?: number;
  /** Key prefix (several deployments or tests on one engine). */
  readonly prefix?: string;
  /** A stored value that does not pass the schema (skipped, the user reads as none). */
  readonly onBadRecord?: (aor: string, why: string) => void;
}

export class RedisDeviceStore implements DeviceStore {
  private open = true;
  /** Every user's bindings, expiry in the local clock. */
  private readonly copy = new Map<string, readonly Device[]>();
  private readonly changeListeners = new Set<(aor: string) => void>();
  private readonly prefix: string;
  private readonly maxDevices: number;

  private constructor(
    private readonly engine: SharedEngine,
    private readonly opts: RedisDeviceStoreOptions,
  ) {
    this.prefix = opts.prefix ?? 'pf';
    this.maxDevices = opts.maxDevices ?? 64;
  }

  /** Subscribe to change notices, then load every user (a notice during the load is applied after it). */
  static async open(engine: SharedEngine, opts: RedisDeviceStoreOptions = {}): Promise<RedisDeviceStore> {
    const s = new RedisDeviceStore(engine, opts);
    await engine.subscribe(s.channel, (notice) => void s.refresh(fromKeyPart(notice)).catch(() => undefined));
    engine.onResync(() => void s.reload().catch(() => undefined));
    await s.reload();
    return s;
  }

  get isOpen(): boolean {
    return this.open;
  }

  private get channel(): string {
    return `${this.prefix}:changed:dev`;
  }

  private key(aor: string): string {
    return `${this.prefix}:dev:{${keyPart(aor)}}`;
  }

  /** Called with the user whose bindings changed here or on another instance (tests, metrics). */
  onChange(listener: (aor: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private decode(aor: string, raw: string | null): readonly Device[] {
    if (raw === null) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this.opts.onBadRecord?.(aor, 'not JSON');
      return [];
    }
    if (!Value.Check(StoredDevices, parsed)) {
      this.opts.onBadRecord?.(aor, 'does not match the device schema');
      return [];
    }
    const off = this.engine.offsetMs;
    return off === 0 ? parsed : parsed.map((d) => ({ ...d, expiresAt: d.expiresAt - off, registeredAt: d.registeredAt - off }));
  }

  private encode(devices: readonly Device[]): string {
    const off = this.engine.offsetMs;
    const stored: StoredDevices = devices.map((d) =>
      off === 0 ? { ...d, path: [...d.path] } : { ...d, path: [...d.path], expiresAt: d.expiresAt + off, registeredAt: d.registeredAt + off },
    );
    return JSON.stringify(stored);
  }

  private set(aor: string, devices: readonly Device[]): void {
    if (devices.length === 0) this.copy.delete(aor);
    else this.copy.set(aor, devices);
    for (const l of this.changeListeners) l(aor);
  }

  private async refresh(aor: string): Promise<void> {
    if (!this.open) return;
    this.set(aor, this.decode(aor, await this.engine.get(this.key(aor))));
  }

  /** Load every user again (at start, and when a connection came back: notices may be lost). */
  private async reload(): Promise<void> {
    const prefix = `${this.prefix}:dev:{`;
    const seen = new Set<string>();
    for await (const keys of this.engine.scan(`${prefix}*`)) {
      for (const key of keys) {
        if (!key.startsWith(prefix) || !key.endsWith('}')) continue;
        const aor = fromKeyPart(key.slice(prefix.length, -1));
        seen.add(aor);
        await this.refresh(aor);
      }
    }
    for (const aor of [...this.copy.keys()]) if (!seen.has(aor)) this.set(aor, []);
  }

  list(aor: string, now: number): readonly Device[] {
    if (!this.open) return [];
    return live(this.copy.get(aor), now);
  }

  users(): readonly string[] {
    return [...this.copy.keys()];
  }

  async apply(change: DeviceChange, now: number): Promise<ApplyResult> {
    if (!this.open) throw new Error('device store is closed');
    if (change.kind === 'fetch') {
      return { devices: this.list(change.aor, now).length, added: 0, refreshed: 0, removed: 0 };
    }
    const key = this.key(change.aor);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = await this.engine.get(key);
      const { devices, result } = applyChange(live(this.decode(change.aor, raw), now), change, now, this.maxDevices);
      const next = devices.length === 0 ? null : this.encode(devices);
      // the user's key lives as long as its latest binding (relative: the engine's clock counts)
      const ttl = Math.max(0, ...devices.map((d) => d.expiresAt)) - now;
      const wrote = raw === null && next === null
        ? true
        : await this.engine.cas(key, raw, next, ttl, this.channel, keyPart(change.aor));
      if (wrote) {
        this.set(change.aor, devices);
        return result;
      }
    }
    throw new SharedStateError(`device store: ${CAS_ATTEMPTS} concurrent writers on ${change.aor}, gave up`);
  }

  /** The engine expires bindings itself (key TTL); locally, users whose bindings all ran out are dropped. */
  purge(now: number): Promise<number> {
    let n = 0;
    for (const [aor, devices] of this.copy) {
      if (devices.every((d) => d.expiresAt <= now)) {
        this.copy.delete(aor);
        n += devices.length;
      }
    }
    return Promise.resolve(n);
  }

  close(): Promise<void> {
    this.open = false;
    this.changeListeners.clear();
    return Promise.resolve();
  }
}
