// The relay process's configuration (docs/media-relay.md "Running"): one JSON file
// (`--config FILE` or RELAY_CONFIG), then environment variables, then command-line flags,
// each overriding the one before; defaults and checks from the schema below; the first
// bad field throws ConfigError naming it (wire/config.ts, as the decision service does).
// A setting has one name as JSON key and as flag (`msrp-port`, `--msrp-port`).

import { parseArgs } from 'node:util';
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, loadLayers, type EnvTable, type TextKind, type TextSetting } from '../../wire/config.js';
import { LOOPBACK_PEERS, peerList } from '../../wire/server.js';
import { DEFAULT_BOUNDS, type DeferredBounds } from '../deferred/store.js';
import { DEFAULT_HISTORY_BATCH_MS } from '../relay/context.js';

/** The deferred store's file when the setting is left alone. */
export const DEFAULT_DEFERRED = 'run/deferred.mdb';


const Port = (opts: { default?: number } = {}) =>
  Type.Integer({ minimum: 0, maximum: 65535, errorMessage: 'must be a port number (0-65535)', ...opts });

const RelayConfigSchema = Type.Object(
  {
    /** Listen address of the MSRP, msrps and control listeners. */
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    /** MSRP (TCP) port; 0 picks a free one. */
    'msrp-port': Port({ default: 2855 }),
    /** Control (JSON-RPC over netstrings) port; 0 picks a free one. */
    'control-port': Port({ default: 2856 }),
    /** LMDB file for history (CR 8.5); "off" disables recording. */
    history: Type.String({ minLength: 1, default: 'run/history.mdb' }),
    /** PEM certificate and key: serve msrps (TCP/TLS/MSRP, RFC 4975 §6). Both or neither. */
    'msrp-tls-cert': Type.Optional(Type.String({ minLength: 1 })),
    'msrp-tls-key': Type.Optional(Type.String({ minLength: 1 })),
    /** msrps port (default 2857); only with the certificate and key. */
    'msrp-tls-port': Type.Optional(Port()),
    /** Peers (addresses or CIDR blocks) that may connect to the control port: the service's host (docs/deployment.md). */
    'control-allowed-peers': Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 256, default: ['127.0.0.1', '::1'] }),
    /** Largest control request accepted (netstring payload bytes). */
    'control-max-frame-bytes': Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }),
    /** `host:port` of a HEP3 collector for the frames (the lab's live view, docs/lab.md); absent: off. */
    'trace-hep': Type.Optional(Type.String({ pattern: '^\\S+:[0-9]+$', errorMessage: 'must be host:port' })),
    /** Where history goes (docs/history.md "Configuration"): the embedded LMDB file, or an MSS over IMAP. */
    'history-store': Type.Union([Type.Literal('lmdb'), Type.Literal('imap')], { default: 'lmdb', errorMessage: 'must be lmdb or imap' }),
    /** The MSS (history-store imap); the password comes from the MSS_PASSWORD environment variable only. */
    'mss-host': Type.Optional(Type.String({ minLength: 1 })),
    'mss-port': Type.Optional(Port()),
    'mss-user': Type.Optional(Type.String({ minLength: 1 })),
    'mss-tls': Type.Union([Type.Literal('none'), Type.Literal('starttls'), Type.Literal('tls')],
      { default: 'starttls', errorMessage: 'must be none, starttls or tls' }),
    /** Connections to the MSS, one per queue lane (sessions are spread over them). */
    'mss-connections': Type.Integer({ minimum: 1, maximum: 32, default: 4 }),
    /** LMDB file of the write queue in front of the MSS. */
    'history-queue': Type.String({ minLength: 1, default: 'run/history-queue.mdb' }),
    'history-queue-max-entries': Type.Integer({ minimum: 1, default: 100_000 }),
    'history-queue-max-bytes': Type.Integer({ minimum: 64 * 1024, default: 256 * 1024 * 1024 }),
    /** How long the relay gathers history before one write to the store (docs/history.md "Where the cost of history goes"); 0: each event-loop turn. */
    'history-batch-ms': Type.Integer({ minimum: 0, maximum: 1000, default: DEFAULT_HISTORY_BATCH_MS }),
    /** LMDB file of the deferred store (CR 8.3.2.9, docs/deferred.md "In the relay"); "off": the deferred verbs answer STORE_UNAVAILABLE. */
    deferred: Type.String({ minLength: 1, default: DEFAULT_DEFERRED }),
    /** Bounds of the deferred store: items and payload bytes in all, bytes of one message, items of one deferred-id. */
    'deferred-max-items': Type.Integer({ minimum: 1, default: DEFAULT_BOUNDS.maxItems }),
    'deferred-max-bytes': Type.Integer({ minimum: 64 * 1024, default: DEFAULT_BOUNDS.maxBytes }),
    'deferred-max-message-bytes': Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: DEFAULT_BOUNDS.maxItemBytes }),
    'deferred-max-per-id': Type.Integer({ minimum: 1, default: DEFAULT_BOUNDS.maxItemsPerId }),
    /** Where the deferred store is (docs/deferred.md "On Redis"): the LMDB file `deferred`, or the shared-state engine. */
    'deferred-store': Type.Union([Type.Literal('lmdb'), Type.Literal('redis')], { default: 'lmdb', errorMessage: 'must be lmdb or redis' }),
    /** deferred-store redis: `redis://host:port` of the Redis, or the root nodes of a cluster. */
    'deferred-redis-urls': Type.Array(Type.String({ pattern: '^rediss?://\\S+$', errorMessage: 'must be a redis:// or rediss:// URL' }), { maxItems: 64, default: [] }),
    'deferred-redis-cluster': Type.Boolean({ default: false }),
    /** Key prefix on the engine (the service's sharedState.redis.prefix, say); no braces (hash tags). */
    'deferred-redis-prefix': Type.String({ minLength: 1, maxLength: 64, pattern: '^[^{}\\s]+$', default: 'pf', errorMessage: 'must be 1-64 characters, no braces or spaces' }),
    /** Bound of each engine command, ms: a SEND waits at most about this (then MSRP 500). */
    'deferred-redis-timeout-ms': Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
    /** Replicas that must acknowledge each write (WAIT); 0: the master's reply is enough. */
    'deferred-redis-replicas': Type.Integer({ minimum: 0, maximum: 8, default: 0 }),
    /** Bound of that WAIT, ms. */
    'deferred-redis-wait-ms': Type.Integer({ minimum: 1, maximum: 60_000, default: 500 }),
  },
  { additionalProperties: false },
);
export type RelayConfigFile = Static<typeof RelayConfigSchema>;

/** `msrp-tls-port` -> `msrpTlsPort`. */
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
/** The schema's settings under camelCase names, optional where the schema says so. */
type CamelSettings = { [K in keyof RelayConfigFile as K extends string ? Camel<K> : never]: RelayConfigFile[K] };
type TlsSetting = 'msrpTlsCert' | 'msrpTlsKey' | 'msrpTlsPort';
type DeferredSetting = 'deferred' | 'deferredMaxItems' | 'deferredMaxBytes' | 'deferredMaxMessageBytes' | 'deferredMaxPerId'
  | 'deferredStore' | 'deferredRedisUrls' | 'deferredRedisCluster' | 'deferredRedisPrefix' | 'deferredRedisTimeoutMs'
  | 'deferredRedisReplicas' | 'deferredRedisWaitMs';

/** deferred-store redis (docs/deferred.md "On Redis"). */
export interface DeferredRedisConfig {
  urls: string[];
  cluster: boolean;
  prefix: string;
  timeoutMs: number;
  replicas: number;
  waitMs: number;
}
type MssSetting = 'historyStore' | 'mssHost' | 'mssPort' | 'mssUser' | 'mssTls' | 'mssConnections' | 'historyQueue' | 'historyQueueMaxEntries' | 'historyQueueMaxBytes';

/** The MSS client and its write queue (docs/history.md "Configuration"). */
export interface MssConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  tls: CamelSettings['mssTls'];
  connections: number;
  queue: { path: string; maxEntries: number; maxBytes: number };
}

/**
 * The settings as the process uses them: the schema's, camelCase (a new schema field
 * appears here, and readConfig must then fill it), with three reshaped.
 */
export type RelayConfig = Omit<CamelSettings, 'history' | TlsSetting | MssSetting | DeferredSetting | 'controlMaxFrameBytes' | 'controlAllowedPeers' | 'historyBatchMs'> & {
  /** null: history off. */
  history: CamelSettings['history'] | null;
  /** msrps listener; absent when not configured. */
  tls?: { port: Exclude<CamelSettings['msrpTlsPort'], undefined>; cert: string; key: string };
  /** Present when not the default (loopback). */
  controlAllowedPeers?: CamelSettings['controlAllowedPeers'];
  /** Present when not the default (1 MiB). */
  controlMaxFrameBytes?: CamelSettings['controlMaxFrameBytes'];
  /** Present when not the default (DEFAULT_HISTORY_BATCH_MS). */
  historyBatchMs?: CamelSettings['historyBatchMs'];
  /** Present with history-store imap (and history not off): history goes to this MSS, through the queue. */
  mss?: MssConfig;
  /** Present when not the default (DEFAULT_DEFERRED); null: no deferred store. */
  deferred?: string | null;
  /** Present when a bound is not the default (DEFAULT_BOUNDS). */
  deferredBounds?: DeferredBounds;
  /** Present with deferred-store redis (and deferred not off): the store is on that engine, `deferred` unused. */
  deferredRedis?: DeferredRedisConfig;
};

/** Setting -> environment variable (today's names) and how to read flag and variable. */
const SETTINGS: ReadonlyArray<readonly [key: keyof RelayConfigFile, env: string, kind: TextKind]> = [
  ['host', 'RELAY_HOST', 'string'],
  ['msrp-port', 'RELAY_MSRP_PORT', 'int'],
  ['control-port', 'RELAY_CONTROL_PORT', 'int'],
  ['history', 'RELAY_HISTORY', 'string'],
  ['msrp-tls-cert', 'MSRP_TLS_CERT', 'string'],
  ['msrp-tls-key', 'MSRP_TLS_KEY', 'string'],
  ['msrp-tls-port', 'MSRP_TLS_PORT', 'int'],
  ['control-max-frame-bytes', 'RELAY_CONTROL_MAX_FRAME_BYTES', 'int'],
  ['control-allowed-peers', 'RELAY_CONTROL_ALLOWED_PEERS', 'list'],
  ['trace-hep', 'RELAY_TRACE_HEP', 'string'],
  ['history-store', 'RELAY_HISTORY_STORE', 'string'],
  ['mss-host', 'MSS_HOST', 'string'],
  ['mss-port', 'MSS_PORT', 'int'],
  ['mss-user', 'MSS_USER', 'string'],
  ['mss-tls', 'MSS_TLS', 'string'],
  ['mss-connections', 'MSS_CONNECTIONS', 'int'],
  ['history-queue', 'RELAY_HISTORY_QUEUE', 'string'],
  ['history-queue-max-entries', 'RELAY_HISTORY_QUEUE_MAX_ENTRIES', 'int'],
  ['history-queue-max-bytes', 'RELAY_HISTORY_QUEUE_MAX_BYTES', 'int'],
  ['history-batch-ms', 'RELAY_HISTORY_BATCH_MS', 'int'],
  ['deferred', 'RELAY_DEFERRED', 'string'],
  ['deferred-max-items', 'RELAY_DEFERRED_MAX_ITEMS', 'int'],
  ['deferred-max-bytes', 'RELAY_DEFERRED_MAX_BYTES', 'int'],
  ['deferred-max-message-bytes', 'RELAY_DEFERRED_MAX_MESSAGE_BYTES', 'int'],
  ['deferred-max-per-id', 'RELAY_DEFERRED_MAX_PER_ID', 'int'],
  ['deferred-store', 'RELAY_DEFERRED_STORE', 'string'],
  ['deferred-redis-urls', 'RELAY_DEFERRED_REDIS_URLS', 'list'],
  ['deferred-redis-cluster', 'RELAY_DEFERRED_REDIS_CLUSTER', 'bool'],
  ['deferred-redis-prefix', 'RELAY_DEFERRED_REDIS_PREFIX', 'string'],
  ['deferred-redis-timeout-ms', 'RELAY_DEFERRED_REDIS_TIMEOUT_MS', 'int'],
  ['deferred-redis-replicas', 'RELAY_DEFERRED_REDIS_REPLICAS', 'int'],
  ['deferred-redis-wait-ms', 'RELAY_DEFERRED_REDIS_WAIT_MS', 'int'],
];

const DEFAULT_MSS_PORT = { none: 143, starttls: 143, tls: 993 } as const;

/** history-store imap: the MSS settings, all present, and the password from MSS_PASSWORD. */
function mssConfig(c: RelayConfigFile, env: NodeJS.ProcessEnv): MssConfig | undefined {
  if (c['history-store'] !== 'imap' || c.history === 'off') return undefined;
  const host = c['mss-host'];
  const user = c['mss-user'];
  if (host === undefined || user === undefined) throw new ConfigError('config: /history-store imap needs mss-host and mss-user');
  const password = env.MSS_PASSWORD;
  if (password === undefined || password === '') throw new ConfigError('config: /history-store imap needs the MSS_PASSWORD environment variable');
  return {
    host, user, password, tls: c['mss-tls'], connections: c['mss-connections'],
    port: c['mss-port'] ?? DEFAULT_MSS_PORT[c['mss-tls']],
    queue: { path: c['history-queue'], maxEntries: c['history-queue-max-entries'], maxBytes: c['history-queue-max-bytes'] },
  };
}

/** deferred-store redis (and deferred not off): the engine settings, with at least one URL. */
function deferredRedis(c: RelayConfigFile): DeferredRedisConfig | undefined {
  if (c['deferred-store'] !== 'redis' || c.deferred === 'off') return undefined;
  if (c['deferred-redis-urls'].length === 0) throw new ConfigError('config: /deferred-store redis needs deferred-redis-urls');
  return {
    urls: c['deferred-redis-urls'], cluster: c['deferred-redis-cluster'], prefix: c['deferred-redis-prefix'],
    timeoutMs: c['deferred-redis-timeout-ms'], replicas: c['deferred-redis-replicas'], waitMs: c['deferred-redis-wait-ms'],
  };
}

const ENV: EnvTable = SETTINGS.map(([key, env, kind]) => [env, [key], kind] as const);

/**
 * The control port's peers, checked here so a bad entry is a config error (exit 2);
 * null when they are the default (loopback), which the config then leaves out.
 */
function controlPeers(entries: string[]): string[] | null {
  try {
    peerList(entries);
  } catch (err) {
    throw new ConfigError(`config: /control-allowed-peers: ${(err as Error).message}`);
  }
  return entries.join(',') === LOOPBACK_PEERS.join(',') ? null : entries;
}

const DEFAULT_TLS_PORT = 2857;
const DEFAULT_MAX_FRAME = 1024 * 1024;

/** Flags (`--<setting>`, `--config FILE`) over environment over file. */
export function readConfig(argv: readonly string[], env: NodeJS.ProcessEnv): RelayConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      config: { type: 'string' },
      ...Object.fromEntries(SETTINGS.map(([key]) => [key, { type: 'string' as const }])),
    },
    strict: true,
  });
  const flags = values as Record<string, string | undefined>;
  const overrides: TextSetting[] = [];
  for (const [key, , kind] of SETTINGS) {
    const text = flags[key];
    if (text !== undefined && text !== '') overrides.push({ source: `--${key}`, path: [key], kind, text });
  }
  const c = loadLayers(RelayConfigSchema, { file: flags.config ?? env.RELAY_CONFIG, env, envTable: ENV, overrides });
  // Cross-field rules the schema cannot say.
  const cert = c['msrp-tls-cert'];
  const key = c['msrp-tls-key'];
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError('config: /msrp-tls-cert and /msrp-tls-key go together');
  }
  if (cert === undefined && c['msrp-tls-port'] !== undefined) {
    throw new ConfigError('config: /msrp-tls-port needs msrp-tls-cert and msrp-tls-key');
  }
  const mss = mssConfig(c, env);
  const bounds: DeferredBounds = {
    maxItems: c['deferred-max-items'], maxBytes: c['deferred-max-bytes'], maxItemBytes: c['deferred-max-message-bytes'], maxItemsPerId: c['deferred-max-per-id'],
  };
  const onRedis = deferredRedis(c);
  const defaultBounds = (Object.keys(bounds) as (keyof DeferredBounds)[]).every(k => bounds[k] === DEFAULT_BOUNDS[k]);
  return {
    host: c.host,
    msrpPort: c['msrp-port'],
    controlPort: c['control-port'],
    history: c.history === 'off' ? null : c.history,
    ...(cert !== undefined && key !== undefined
      ? { tls: { cert, key, port: c['msrp-tls-port'] ?? DEFAULT_TLS_PORT } }
      : {}),
    ...(controlPeers(c['control-allowed-peers']) === null ? {} : { controlAllowedPeers: c['control-allowed-peers'] }),
    ...(c['control-max-frame-bytes'] === DEFAULT_MAX_FRAME ? {} : { controlMaxFrameBytes: c['control-max-frame-bytes'] }),
    ...(c['trace-hep'] === undefined ? {} : { traceHep: c['trace-hep'] }),
    ...(c['history-batch-ms'] === DEFAULT_HISTORY_BATCH_MS ? {} : { historyBatchMs: c['history-batch-ms'] }),
    ...(mss ? { mss } : {}),
    ...(c.deferred === DEFAULT_DEFERRED ? {} : { deferred: c.deferred === 'off' ? null : c.deferred }),
    ...(defaultBounds ? {} : { deferredBounds: bounds }),
    ...(onRedis ? { deferredRedis: onRedis } : {}),
  };
}
