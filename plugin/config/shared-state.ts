/**
 * Where the state several service instances share lives (docs/decisions/0003-shared-state-engine.md,
 * docs/deployment.md "Several nodes"): the embedded lmdb under `dataDir` (one host, the
 * default), or Redis (one instance or a Redis Cluster) for several hosts.
 */
import { Type } from '@sinclair/typebox';

export const SharedStateConfigSchema = Type.Object(
  {
    /** `lmdb`: devices and XCAP documents in `dataDir`. `redis`: on the engine below. */
    engine: Type.Union([Type.Literal('lmdb'), Type.Literal('redis')], { default: 'lmdb' }),
    redis: Type.Object(
      {
        /** One URL for a single Redis; some or all masters of a cluster (`cluster: true`). */
        urls: Type.Array(Type.String({ pattern: '^rediss?://' }), { minItems: 1, maxItems: 64, default: ['redis://127.0.0.1:6379'] }),
        cluster: Type.Boolean({ default: false }),
        /** Key and channel prefix (several deployments on one engine). */
        prefix: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,32}$', default: 'pf' }),
        /** Bound of each engine operation; a REGISTER waits at most a few of them. */
        timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 500 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * This instance's node id, the owner of its B2BUA sessions on the engine
     * (docs/deployment.md §12); empty: `<hostname>:<rpcPort>`. Keep it across restarts.
     */
    nodeId: Type.String({ maxLength: 128, default: '' }),
    /**
     * The node's lease TTL on the engine (docs/deployment.md §12): a dead node's B2BUA
     * sessions end between 2/3 and 3/2 of it after it died. At least twice the engine's
     * failover time (about 6 s for a Redis master, §11), or a failover may end live sessions.
     */
    leaseMs: Type.Integer({ minimum: 300, maximum: 600_000, default: 15_000 }),
  },
  { additionalProperties: false, default: {} },
);
