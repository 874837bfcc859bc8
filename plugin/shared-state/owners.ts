/**
 * Which node owns which B2BUA / relay session (by Call-ID), so that in-dialog requests and
 * control reach the node holding the session's dialogs and MSRP connections
 * (docs/deployment.md §11). An owner holds a lease: it renews it while the session lives;
 * when the node dies, the lease runs out and the session has no owner (the survivors end
 * it: docs/deployment.md §11). Not wired into the B2BUA yet.
 *
 * Lease per session:
 *
 *     (none) --claim--> owned(node, until) --renew by node--> owned(node, later)
 *        ^                   |        |
 *        +----release by node+        +--lease runs out--> (none)
 */
import { CAS_ATTEMPTS, SharedStateError, keyPart, type SharedEngine } from './redis.js';

export interface SessionOwners {
  /** Claim `callId` for `node` for `ttlMs`; resolves with the owner after it (another node when already owned). */
  claim(callId: string, node: string, ttlMs: number): Promise<string>;
  owner(callId: string): Promise<string | null>;
  /** Extend `node`'s lease; false when `node` is not (or no longer) the owner. */
  renew(callId: string, node: string, ttlMs: number): Promise<boolean>;
  /** End `node`'s lease; false when `node` was not the owner. */
  release(callId: string, node: string): Promise<boolean>;
}

/** One host: leases in memory, against `clock`. */
export class LocalSessionOwners implements SessionOwners {
  private readonly leases = new Map<string, { readonly node: string; readonly until: number }>();
  constructor(private readonly clock: () => number = Date.now) {}

  private current(callId: string): string | null {
    const l = this.leases.get(callId);
    if (!l) return null;
    if (l.until > this.clock()) return l.node;
    this.leases.delete(callId);
    return null;
  }

  claim(callId: string, node: string, ttlMs: number): Promise<string> {
    const cur = this.current(callId);
    if (cur !== null) return Promise.resolve(cur);
    this.leases.set(callId, { node, until: this.clock() + ttlMs });
    return Promise.resolve(node);
  }

  owner(callId: string): Promise<string | null> {
    return Promise.resolve(this.current(callId));
  }

  renew(callId: string, node: string, ttlMs: number): Promise<boolean> {
    if (this.current(callId) !== node) return Promise.resolve(false);
    this.leases.set(callId, { node, until: this.clock() + ttlMs });
    return Promise.resolve(true);
  }

  release(callId: string, node: string): Promise<boolean> {
    if (this.current(callId) !== node) return Promise.resolve(false);
    this.leases.delete(callId);
    return Promise.resolve(true);
  }
}

/**
 * On the shared engine: key `<prefix>:own:{<base64url(Call-ID)>}`, value the node, TTL the
 * lease (counted by the engine's clock, so node clocks do not matter). Each change is a
 * compare-and-set.
 */
export class RedisSessionOwners implements SessionOwners {
  constructor(
    private readonly engine: SharedEngine,
    private readonly prefix = 'pf',
  ) {}

  private key(callId: string): string {
    return `${this.prefix}:own:{${keyPart(callId)}}`;
  }

  private get channel(): string {
    return `${this.prefix}:changed:own`;
  }

  async claim(callId: string, node: string, ttlMs: number): Promise<string> {
    const key = this.key(callId);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.engine.get(key);
      if (cur !== null) return cur;
      if (await this.engine.cas(key, null, node, ttlMs, this.channel, keyPart(callId))) return node;
    }
    throw new SharedStateError(`session owners: ${CAS_ATTEMPTS} concurrent claims of one session, gave up`);
  }

  owner(callId: string): Promise<string | null> {
    return this.engine.get(this.key(callId));
  }

  async renew(callId: string, node: string, ttlMs: number): Promise<boolean> {
    const key = this.key(callId);
    if ((await this.engine.get(key)) !== node) return false;
    return this.engine.cas(key, node, node, ttlMs, this.channel, keyPart(callId));
  }

  async release(callId: string, node: string): Promise<boolean> {
    const key = this.key(callId);
    if ((await this.engine.get(key)) !== node) return false;
    return this.engine.cas(key, node, null, 0, this.channel, keyPart(callId));
  }
}
