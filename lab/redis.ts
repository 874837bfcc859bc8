/**
 * A private Redis (Debian's redis-server 7.0) for the shared-state tests and the lab
 * (docs/decisions/0003-shared-state-engine.md): a single instance, or a Redis Cluster of
 * three masters without replicas, on free loopback ports. Everything it writes (config,
 * data, logs) is under one run folder. Run as root (CI containers), the servers run as
 * `nobody`, as Dovecot does (lab/dovecot.ts).
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBinary, freePort, Proc } from './proc.js';

const run = promisify(execFile);

export interface RedisNode {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly url: string;
  readonly running: boolean;
  /** SIGTERM; resolves once it is gone. */
  stop(): Promise<void>;
  /** SIGKILL (a crash). */
  kill(): Promise<void>;
  /** `redis-cli` against this node; resolves with its output. */
  cli(...args: string[]): Promise<string>;
}

export interface RedisCluster {
  readonly nodes: readonly RedisNode[];
  /** `redis://127.0.0.1:<port>` of each master, for `sharedState.redis.nodes`. */
  readonly urls: readonly string[];
  stop(): Promise<void>;
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

function runAs(): RunAs | undefined {
  const me = userInfo();
  if (me.uid !== 0) return undefined;
  const nobody = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === 'nobody');
  return { uid: Number(nobody?.[2] ?? 65534), gid: Number(nobody?.[3] ?? 65534) };
}

/** redis.conf of one private node. Not for production: no password, loopback only. */
export function redisConf(o: { dir: string; port: number; clusterPort?: number }): string {
  const lines = [
    '# Private test Redis (lab/redis.ts).',
    'bind 127.0.0.1',
    `port ${o.port}`,
    `dir ${o.dir}`,
    'daemonize no',
    'save ""',
    'appendonly no',
    'protected-mode yes',
    'logfile ""',
  ];
  if (o.clusterPort !== undefined) {
    lines.push(
      'cluster-enabled yes',
      `cluster-config-file ${o.dir}/nodes.conf`,
      `cluster-port ${o.clusterPort}`,
      'cluster-node-timeout 2000',
      // a missing slot range must not stop the other masters (the failover tests)
      'cluster-require-full-coverage no',
    );
  }
  return `${lines.join('\n')}\n`;
}

async function startNode(dir: string, cluster: boolean, atPort?: number): Promise<RedisNode> {
  mkdirSync(dir, { recursive: true });
  const port = atPort ?? (await freePort());
  const clusterPort = cluster ? await freePort() : undefined;
  const conf = join(dir, 'redis.conf');
  writeFileSync(conf, redisConf({ dir, port, ...(clusterPort !== undefined ? { clusterPort } : {}) }));
  const as = runAs();
  if (as) for (const p of [dir, conf]) chownSync(p, as.uid, as.gid);
  const proc = new Proc(`redis:${port}`, findBinary('redis-server'), [conf], {
    cwd: dir,
    logFile: join(dir, 'redis.log'),
    ...(as ? { uid: as.uid, gid: as.gid } : {}),
  });
  await proc.waitFor(/Ready to accept connections/, 10_000);
  const cliPath = findBinary('redis-cli');
  return {
    host: '127.0.0.1',
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return proc.running;
    },
    stop: () => proc.stop(),
    kill: () => proc.kill(),
    cli: async (...args: string[]) => (await run(cliPath, ['-h', '127.0.0.1', '-p', String(port), ...args])).stdout,
  };
}

/** One Redis on a free loopback port under `dir` (or on `port`: a restart). */
export function startRedis(dir: string, port?: number): Promise<RedisNode> {
  return startNode(dir, false, port);
}

/**
 * A Redis Cluster of `masters` (default 3) masters with `replicas` replicas each (default
 * none), slots spread by `redis-cli --cluster create`; resolves once every node reports
 * `cluster_state:ok`. With replicas, `nodes` lists the masters first.
 */
export async function startRedisCluster(dir: string, masters = 3, replicas = 0): Promise<RedisCluster> {
  const nodes: RedisNode[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) nodes.push(await startNode(join(dir, `node${i}`), true));
    await run(findBinary('redis-cli'), [
      '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes',
    ]);
    // the nodes learn each other's slots over the cluster bus: wait for every one
    const deadline = Date.now() + 15_000;
    for (const n of nodes) {
      for (;;) {
        if ((await n.cli('cluster', 'info')).includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${n.port} not ok`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, urls: nodes.slice(0, masters).map((n) => n.url), stop };
}
