/**
 * The device registry, the XCAP documents and the Session-Replaces state, on the backend `sharedState.engine` names
 * (docs/decisions/0003-shared-state-engine.md): lmdb under `dataDir`, or Redis. The B2BUA's call
 * records (`openCallStore`), its pending deliveries (`openPendingStore`) and the node leases
 * (`openLeases`) on the same backend (docs/deployment.md §12).
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LmdbDeviceStore, type DeviceStore } from '../devices/store.js';
import { RedisDeviceStore } from '../devices/redis-store.js';
import type { Device } from '../devices/types.js';
import { XcapStore, type DocumentStore, type StoredDocument } from '../xdm/store.js';
import { RedisDocumentStore } from '../xdm/redis-store.js';
import { LocalSessionStore, type SessionStore } from '../sessions/store.js';
import { RedisSessionStore } from '../sessions/redis-store.js';
import { connectRedis, type SharedEngine } from './redis.js';
import { openLmdbCallStore, type CallStore } from '../b2bua/store.js';
import { RedisCallStore } from '../b2bua/redis-store.js';
import { RedisNodeLeases, type NodeLeases } from './owners.js';
import { openLmdbPendingDeliveries, type BadEntry, type PendingDeliveries } from '../b2bua/deferred/pending-store.js';
import { RedisPendingDeliveries } from '../b2bua/deferred/pending-redis.js';

export interface Stores {
  readonly devices: DeviceStore;
  readonly xcap: DocumentStore;
  /** Who is in which session, when pf.cfg records them with the service (PF_SHARED_SESSIONS). */
  readonly sessions: SessionStore;
  /** The engine connection (sharedState.engine redis), for the B2BUA's call store; null: lmdb. */
  readonly engine: SharedEngine | null;
  /** Close the stores, then the engine connection if any (the lmdb root stays the caller's). */
  close(): Promise<void>;
}

export async function openStores(config: Config, db: RootDatabase, log: Logger): Promise<Stores> {
  if (config.sharedState.engine === 'lmdb') {
    const devices = new LmdbDeviceStore(db.openDB<readonly Device[], string>({ name: 'devices' }), config.registrar.maxContacts);
    const xcap = new XcapStore(db.openDB<StoredDocument | string, string>({ name: 'xcap' }), config.xdm.maxDocumentBytes);
    const sessions = new LocalSessionStore();
    return {
      devices,
      xcap,
      sessions,
      engine: null,
      close: async () => {
        await sessions.close();
        await devices.close();
        await xcap.close();
      },
    };
  }
  const r = config.sharedState.redis;
  const engine = await connectRedis({
    urls: r.urls,
    cluster: r.cluster,
    timeoutMs: r.timeoutMs,
    // node-redis reconnects by itself; each failed attempt is one line, not a crash
    onError: (err) => log.warn({ err: err.message }, 'shared state engine connection error'),
  });
  log.info({ urls: r.urls, cluster: r.cluster, offsetMs: engine.offsetMs }, 'shared state engine connected');
  const onBadRecord = (key: string, why: string): void => log.error({ key, why }, 'shared state record skipped');
  let devices: RedisDeviceStore;
  let xcap: RedisDocumentStore;
  let sessions: RedisSessionStore;
  try {
    devices = await RedisDeviceStore.open(engine, { maxDevices: config.registrar.maxContacts, prefix: r.prefix, onBadRecord });
    xcap = await RedisDocumentStore.open(engine, { maxBytes: config.xdm.maxDocumentBytes, prefix: r.prefix, onBadRecord });
    sessions = await RedisSessionStore.open(engine, { prefix: r.prefix, onBadRecord });
  } catch (err) {
    await engine.close().catch(() => undefined);
    throw err;
  }
  return {
    devices,
    xcap,
    sessions,
    engine,
    close: async () => {
      await devices.close();
      await xcap.close();
      await sessions.close();
      await engine.close();
    },
  };
}

/** This instance's node id (docs/deployment.md §12): sharedState.nodeId, else `<hostname>:<rpcPort>`. */
export function nodeIdOf(config: Config): string {
  return config.sharedState.nodeId !== '' ? config.sharedState.nodeId : `${hostname()}:${config.rpcPort}`;
}

/**
 * The B2BUA's call records (plugin/b2bua/store.ts): in their own LMDB environment under
 * `<dataDir>/b2bua` (lmdb), or on the engine with this node as their owner (redis). The
 * LMDB store is one instance's by construction: its owner is `local` unless a nodeId is
 * configured, so a host name that changes (a container made anew) keeps its calls.
 */
export function openCallStore(config: Config, engine: SharedEngine | null, onError: (err: unknown) => void): CallStore {
  if (engine === null) return openLmdbCallStore(join(config.dataDir, 'b2bua'), onError, config.sharedState.nodeId || 'local');
  return new RedisCallStore(engine, { node: nodeIdOf(config), prefix: config.sharedState.redis.prefix, maxAgeMs: config.b2bua.maxSessionAgeS * 1000, onError });
}

/** The node leases on the engine; null without one (one host: no node to take over from). */
export function openLeases(config: Config, engine: SharedEngine | null): NodeLeases | null {
  return engine === null ? null : new RedisNodeLeases(engine, config.sharedState.redis.prefix);
}

/**
 * The B2BUA's pending deliveries (docs/deferred.md "Delivery"): their own LMDB environment
 * under `<dataDir>/b2bua-pending` (lmdb), or on the engine, shared by the nodes, each entry
 * delivered by the one node holding its claim (redis; plugin/b2bua/deferred/claim.ts).
 */
export function openPendingStore(config: Config, engine: SharedEngine | null, onBad: BadEntry): PendingDeliveries {
  if (engine === null) return openLmdbPendingDeliveries(join(config.dataDir, 'b2bua-pending'), onBad);
  return new RedisPendingDeliveries(engine, { prefix: config.sharedState.redis.prefix, onBad });
}
