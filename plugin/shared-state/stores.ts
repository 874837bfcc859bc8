/**
 * The device registry, the XCAP documents and the Session-Replaces state, on the backend `sharedState.engine` names
 * (docs/decisions/0003-shared-state-engine.md): lmdb under `dataDir`, or Redis.
 */
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
import { connectRedis } from './redis.js';

export interface Stores {
  readonly devices: DeviceStore;
  readonly xcap: DocumentStore;
  /** Who is in which session, when pf.cfg records them with the service (PF_SHARED_SESSIONS). */
  readonly sessions: SessionStore;
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
    close: async () => {
      await devices.close();
      await xcap.close();
      await sessions.close();
      await engine.close();
    },
  };
}
