/**
 * Node leases: whether a node that owns B2BUA sessions is alive (docs/deployment.md §12).
 * Each node holds a lease on the engine and renews it while it runs (plugin/b2bua/takeover.ts
 * beats every third of the TTL); a session's record names its owner node
 * (plugin/b2bua/store.ts `owner`), so the lease is per node, not per session: a dead node's
 * lease runs out once, and a survivor then takes all of its records.
 *
 *     (none) --beat--> held(until now+ttl) --beat--> held(later)
 *        ^                   |
 *        +---- TTL runs out -+   (a clean stop keeps the lease: a restart within the
 *                                 TTL takes its own sessions back, docs/b2bua.md "Restart")
 */
import { CAS_ATTEMPTS, SharedStateError, keyPart, type SharedEngine } from './redis.js';

export interface NodeLeases {
  /** Take or extend `node`'s lease for `ttlMs`. */
  beat(node: string, ttlMs: number): Promise<void>;
  /** Whether `node` holds a lease now. */
  alive(node: string): Promise<boolean>;
}

/** One host: leases in memory, against `clock`. */
export class LocalNodeLeases implements NodeLeases {
  private readonly until = new Map<string, number>();
  constructor(private readonly clock: () => number = Date.now) {}

  beat(node: string, ttlMs: number): Promise<void> {
    this.until.set(node, this.clock() + ttlMs);
    return Promise.resolve();
  }

  alive(node: string): Promise<boolean> {
    const u = this.until.get(node);
    if (u !== undefined && u <= this.clock()) this.until.delete(node);
    return Promise.resolve(u !== undefined && u > this.clock());
  }
}

/**
 * On the shared engine: key `<prefix>:node:{<base64url(node)>}`, value the node, TTL the
 * lease, counted by the engine's clock (node clocks do not matter). A beat is a
 * compare-and-set like every write on the engine.
 */
export class RedisNodeLeases implements NodeLeases {
  constructor(
    private readonly engine: SharedEngine,
    private readonly prefix = 'pf',
  ) {}

  private key(node: string): string {
    return `${this.prefix}:node:{${keyPart(node)}}`;
  }

  async beat(node: string, ttlMs: number): Promise<void> {
    const key = this.key(node);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.engine.get(key);
      if (await this.engine.cas(key, cur, node, ttlMs, `${this.prefix}:changed:node`, keyPart(node))) return;
    }
    throw new SharedStateError(`node lease ${node}: ${CAS_ATTEMPTS} concurrent beats, gave up`);
  }

  async alive(node: string): Promise<boolean> {
    return (await this.engine.get(this.key(node))) !== null;
  }
}
