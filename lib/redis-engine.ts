/**
 * A Redis (one server or a Redis Cluster) as a process outside the decision service sees
 * it: scripts and single commands routed by key, each bounded by a timeout, no offline
 * queue (docs/decisions/0003-shared-state-engine.md). The relay's deferred store uses it
 * (media/deferred/redis.ts).
 *
 * Why not plugin/shared-state/redis.ts: media/ does not import plugin/ (the relay is its
 * own process and package boundary), and that adapter offers one-key compare-and-set,
 * while the relay needs multi-key scripts on one slot and WAIT routed to the key's master.
 * The connection rules are the same: node-redis, `disableOfflineQueue`, a bounded connect
 * torn down on failure, every failure an EngineError saying what was being done.
 */
import { createClient, createCluster } from 'redis';

const CONNECT_TIMEOUT_MS = 5000;

export class EngineError extends Error {
  override readonly name = 'EngineError';
  /** No answer within the bound: the command may still have been applied. */
  readonly timedOut: boolean;

  constructor(message: string, opts: { cause?: unknown; timedOut?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.timedOut = opts.timedOut ?? false;
  }
}

/** base64url (RFC 4648 §5) of the UTF-8 bytes: any id is safe in a key and in a hash tag. */
export function keyPart(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

export interface RedisEngineOptions {
  /** `redis://host:port`: one for a single Redis, the root nodes of a cluster. */
  readonly urls: readonly string[];
  readonly cluster: boolean;
  /** Bound of each command. */
  readonly timeoutMs: number;
  readonly connectTimeoutMs?: number;
  /** Connection errors (node-redis reconnects by itself). */
  readonly onError?: (err: Error) => void;
}

export interface RedisEngine {
  /** EVAL `script` over `keys` (one slot on a cluster: hash tags) and `args`. */
  eval(what: string, script: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  /** One command sent to the master of `key` (WAIT after a write there, say). */
  command(what: string, key: string, args: readonly string[], timeoutMs?: number): Promise<unknown>;
  close(): Promise<void>;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Bound `p` by `ms`; failures become EngineError with what was being done. */
export async function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EngineError(`redis: ${what} timed out after ${ms} ms`, { timedOut: true })), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw new EngineError(`redis: ${what} failed: ${asError(err).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

type Send = (key: string, args: string[]) => Promise<unknown>;

export async function connectEngine(o: RedisEngineOptions): Promise<RedisEngine> {
  if (o.urls.length === 0) throw new EngineError('redis: no URLs');
  const connectMs = o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  let send: Send;
  let close: () => Promise<void>;
  let abort: () => void;
  let connecting: Promise<unknown>;
  if (o.cluster) {
    const cluster = createCluster({
      rootNodes: o.urls.map((url) => ({ url })),
      defaults: { disableOfflineQueue: true, socket: { connectTimeout: connectMs } },
    });
    cluster.on('error', (err: unknown) => o.onError?.(asError(err)));
    send = (key, args) => cluster.sendCommand(key, false, args);
    close = () => cluster.close();
    abort = () => cluster.destroy();
    connecting = cluster.connect();
  } else {
    const client = createClient({ url: o.urls[0]!, disableOfflineQueue: true, socket: { connectTimeout: connectMs } });
    client.on('error', (err: unknown) => o.onError?.(asError(err)));
    send = (_key, args) => client.sendCommand(args);
    close = () => client.close();
    abort = () => client.destroy();
    connecting = client.connect();
  }
  try {
    await bounded('connect', connectMs, connecting);
  } catch (err) {
    try {
      abort();
    } catch {
      // already closed
    }
    throw err;
  }
  const t = o.timeoutMs;
  return {
    eval: (what, script, keys, args) => {
      const first = keys[0];
      if (first === undefined) return Promise.reject(new EngineError(`redis: ${what}: a script needs a key`));
      return bounded(what, t, send(first, ['EVAL', script, String(keys.length), ...keys, ...args]));
    },
    command: (what, key, args, timeoutMs) => bounded(what, timeoutMs ?? t, send(key, [...args])),
    close: async () => {
      try {
        await close();
      } catch {
        abort();
      }
    },
  };
}
