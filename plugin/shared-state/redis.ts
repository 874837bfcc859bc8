/**
 * The shared-state engine as the stores see it (docs/decisions/0003-shared-state-engine.md):
 * a few operations over node-redis, the same for one Redis and for a Redis Cluster.
 *
 * - `cas`: compare-and-set of one key with a TTL, and a PUBLISH of the change in the same
 *   script, so no instance sees a change it is not told about.
 * - `scan`: every key of a pattern, on every master.
 * - `subscribe`: change notices; `onResync` fires when a connection came back (notices
 *   may have been lost meanwhile: the stores load everything again).
 * - `offsetMs`: the engine's clock minus ours, measured with TIME.
 *
 * Every operation is bounded by `timeoutMs` and fails with SharedStateError; while the
 * engine is unreachable, commands fail at once (no offline queue).
 */
import { createClient, createCluster } from 'redis';

/** Default bound of the first connection. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Compare-and-set attempts of one write before it gives up, for every store on the engine
 * (devices, XCAP documents, node leases, B2BUA call records, session members). An attempt loses only when
 * another writer changed the key in between, i.e. each lost attempt is another writer's
 * success: N writers on one key at once need at most N attempts. 64 is the most bindings
 * one user may hold (registrar.maxContacts' default), so a burst of REGISTERs from all of
 * a user's devices always lands; 16 let 20 concurrent REGISTERs of one user fail under CI
 * load. The stores share the bound so that contention behaves the same whatever the key.
 */
export const CAS_ATTEMPTS = 64;

export class SharedStateError extends Error {
  override readonly name = 'SharedStateError';
}

/** base64url (RFC 4648 §5) of the UTF-8 bytes: any URI is safe in a key and in a hash tag. */
export function keyPart(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

export function fromKeyPart(s: string): string {
  return Buffer.from(s, 'base64url').toString('utf8');
}

export interface SharedEngine {
  get(key: string): Promise<string | null>;
  /**
   * Set `key` to `next` (null: delete) if it still holds `expected` (null: absent);
   * `ttlMs` > 0 sets its expiry. Publishes `notice` on `channel` when it wrote.
   * Resolves false when the key held something else (the caller reads again).
   */
  cas(key: string, expected: string | null, next: string | null, ttlMs: number, channel: string, notice: string): Promise<boolean>;
  scan(match: string): AsyncIterable<readonly string[]>;
  subscribe(channel: string, listener: (notice: string) => void): Promise<void>;
  onResync(listener: () => void): void;
  /** Engine clock minus local clock, ms (measured at connect). */
  readonly offsetMs: number;
  close(): Promise<void>;
}

export interface RedisEngineOptions {
  /** `redis://host:port` URLs: one for a single Redis, the root nodes for a cluster. */
  readonly urls: readonly string[];
  readonly cluster: boolean;
  /** Bound of each operation. */
  readonly timeoutMs: number;
  /** Bound of the first connection (a cluster's topology discovery too); default 5000 ms. */
  readonly connectTimeoutMs?: number;
  readonly clock?: () => number;
  /** Connection errors (node-redis reconnects by itself). */
  readonly onError?: (err: Error) => void;
}

// KEYS[1]; ARGV: expected present (0/1), expected, next present (0/1), next, ttl ms, channel, notice
const CAS = `
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then return 0 end
if ARGV[3] == '1' then
  if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
  else redis.call('SET', KEYS[1], ARGV[4]) end
else redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
`;

function casArgs(expected: string | null, next: string | null, ttlMs: number, channel: string, notice: string): string[] {
  return [
    expected === null ? '0' : '1', expected ?? '',
    next === null ? '0' : '1', next ?? '',
    String(Math.max(0, Math.ceil(ttlMs))), channel, notice,
  ];
}

function timeOf(reply: unknown): number {
  if (!Array.isArray(reply) || reply.length < 2) throw new SharedStateError('unexpected TIME reply');
  return Number(reply[0]) * 1000 + Math.floor(Number(reply[1]) / 1000);
}

/** The commands both clients offer, with the cluster's and the client's differences hidden. */
interface Commands {
  get(key: string): Promise<string | null>;
  eval(key: string, args: string[]): Promise<unknown>;
  time(): Promise<unknown>;
  scan(match: string): AsyncIterable<readonly string[]>;
  subscribe(channel: string, listener: (notice: string) => void): Promise<void>;
  close(): Promise<void>;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

async function singleCommands(o: RedisEngineOptions, resync: () => void, onAbort: (f: () => void) => void): Promise<Commands> {
  const url = o.urls[0];
  if (url === undefined) throw new SharedStateError('sharedState.redis.urls is empty');
  const client = createClient({ url, disableOfflineQueue: true, socket: { connectTimeout: o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS } });
  const sub = client.duplicate();
  onAbort(() => {
    client.destroy();
    sub.destroy();
  });
  // a reconnection of either connection: notices may be lost, the stores reload (the
  // commands one may come back after the subscriber: then that reload fails, the next works)
  for (const c of [client, sub]) {
    let ready = 0;
    c.on('error', (err: unknown) => o.onError?.(asError(err)));
    c.on('ready', () => {
      if (++ready > 1) resync();
    });
  }
  await client.connect();
  await sub.connect();
  return {
    get: (key) => client.get(key),
    eval: (key, args) => client.eval(CAS, { keys: [key], arguments: args }),
    time: () => client.sendCommand(['TIME']),
    scan: (match) => client.scanIterator({ MATCH: match, COUNT: 500 }),
    subscribe: (channel, listener) => sub.subscribe(channel, listener),
    close: async () => {
      await Promise.allSettled([sub.close(), client.close()]);
    },
  };
}

async function clusterCommands(o: RedisEngineOptions, resync: () => void, onAbort: (f: () => void) => void): Promise<Commands> {
  if (o.urls.length === 0) throw new SharedStateError('sharedState.redis.urls is empty');
  const cluster = createCluster({
    rootNodes: o.urls.map((url) => ({ url })),
    defaults: { disableOfflineQueue: true, socket: { connectTimeout: o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS } },
  });
  onAbort(() => cluster.destroy());
  cluster.on('error', (err: unknown) => o.onError?.(asError(err)));
  // a node that reconnects may have missed notices: the stores reload
  let lost = false;
  cluster.on('node-reconnecting', () => {
    lost = true;
  });
  cluster.on('node-ready', () => {
    if (!lost) return;
    lost = false;
    resync();
  });
  await cluster.connect();
  return {
    get: (key) => cluster.get(key),
    eval: (key, args) => cluster.eval(CAS, { keys: [key], arguments: args }),
    time: () => cluster.sendCommand(undefined, true, ['TIME']),
    scan: (match) => cluster.scanIterator({ MATCH: match, COUNT: 500 }),
    subscribe: (channel, listener) => cluster.subscribe(channel, listener),
    close: () => cluster.close(),
  };
}

/** Bound `p` by `ms`; engine failures become SharedStateError with what was being done. */
async function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SharedStateError(`shared state engine: ${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } catch (err) {
    if (err instanceof SharedStateError) throw err;
    throw new SharedStateError(`shared state engine: ${what} failed: ${asError(err).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Offsets to the engine's clock below this are taken as 0. */
export const SKEW_IGNORED_MS = 250;

export async function connectRedis(o: RedisEngineOptions): Promise<SharedEngine> {
  const clock = o.clock ?? Date.now;
  const resyncListeners: (() => void)[] = [];
  const resync = (): void => {
    for (const l of resyncListeners) l();
  };
  // a connection that fails or times out is torn down, so that it stops reconnecting
  const aborts: (() => void)[] = [];
  const onAbort = (f: () => void): void => {
    aborts.push(f);
  };
  let c: Commands;
  let measured: number;
  try {
    c = await bounded('connect', o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS, o.cluster ? clusterCommands(o, resync, onAbort) : singleCommands(o, resync, onAbort));
    // the engine's clock minus ours, at the middle of the round trip
    const sent = clock();
    const engineNow = timeOf(await bounded('TIME', o.timeoutMs, c.time()));
    measured = engineNow - Math.round((sent + clock()) / 2);
  } catch (err) {
    for (const f of aborts) {
      try {
        f();
      } catch {
        // already closed
      }
    }
    throw err;
  }
  // NTP-synchronised hosts differ by a few ms, less than the measurement's own error:
  // taken as none, so that every such instance stores the same instants
  const offsetMs = Math.abs(measured) < SKEW_IGNORED_MS ? 0 : measured;
  const t = o.timeoutMs;
  return {
    offsetMs,
    get: (key) => bounded(`GET ${key}`, t, c.get(key)),
    cas: async (key, expected, next, ttlMs, channel, notice) =>
      (await bounded(`write ${key}`, t, c.eval(key, casArgs(expected, next, ttlMs, channel, notice)))) === 1,
    scan: (match) => c.scan(match),
    subscribe: (channel, listener) => bounded(`SUBSCRIBE ${channel}`, t, c.subscribe(channel, listener)),
    onResync: (l) => {
      resyncListeners.push(l);
    },
    close: () => c.close(),
  };
}
