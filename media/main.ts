// MSRP relay process: the MSRP listener and the JSON-RPC control listener, both on
// loopback by default. Configuration: media/config/load.ts (one JSON file, environment,
// flags; docs/media-relay.md "Running"); a bad setting is named and the exit code is 2.
// Logs one `relay ready` line with the bound ports once both listen.

import { readFileSync } from 'node:fs';
import pino from 'pino';
import { DEFAULT_DEFERRED, readConfig, type RelayConfig } from './config/load.js';
import { LmdbDeferredStore } from './deferred/lmdb.js';
import { RedisDeferredStore } from './deferred/redis.js';
import type { DeferredStore } from './deferred/store.js';
import { connectEngine, type RedisEngine } from '../lib/redis-engine.js';
import { openHistory } from './history/open.js';
import { ControlServer } from './relay/control.js';
import { MsrpRelay } from './relay/relay.js';
import { HepFrameTrace } from './relay/hep-trace.js';
import { guardLmdbCommitFailures } from '../lib/lmdb-commit-guard.js';

export { readConfig, type RelayConfig };

async function main(): Promise<void> {
  // never a password in a log line (docs/deployment.md "What is never logged")
  const log = pino({ name: 'msrp-relay', redact: { paths: ['password', '*.password', '*.*.password'], censor: '[redacted]' } });
  // a refused LMDB commit is each store's error to report (a 500 to the sender, a history
  // entry counted as dropped), never the process's end
  guardLmdbCommitFailures(log);
  let cfg: RelayConfig;
  try {
    cfg = readConfig(process.argv.slice(2), process.env);
  } catch (err) {
    // ConfigError names the field; an unknown flag comes from parseArgs. Either way: exit 2.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  let tls: { key: Buffer; cert: Buffer } | undefined;
  try {
    if (cfg.tls) tls = { key: readFileSync(cfg.tls.key), cert: readFileSync(cfg.tls.cert) };
  } catch (err) {
    log.fatal({ err }, 'cannot read the TLS certificate or key');
    process.exit(2);
  }
  // LMDB by default; with history-store imap, the MSS behind the write queue (docs/history.md).
  const store = openHistory(cfg, log);
  // the lab's live view (docs/lab.md "Live view"): frames as HEP3 to its collector
  const traceAt = cfg.traceHep === undefined ? -1 : cfg.traceHep.lastIndexOf(':');
  const trace = cfg.traceHep === undefined ? undefined : new HepFrameTrace(cfg.traceHep.slice(0, traceAt), Number(cfg.traceHep.slice(traceAt + 1)));
  // the deferred store (docs/deferred.md "In the relay"): on by default, "off" disables it
  // (docs/deferred.md "On Redis": on the shared-state engine with deferred-store redis; an
  // engine not reachable at start is fatal, as a data dir that cannot be opened is)
  const deferredPath = cfg.deferred === undefined ? DEFAULT_DEFERRED : cfg.deferred;
  const bounds = cfg.deferredBounds ? { bounds: cfg.deferredBounds } : {};
  let engine: RedisEngine | undefined;
  let deferred: DeferredStore | undefined;
  if (cfg.deferredRedis) {
    const r = cfg.deferredRedis;
    try {
      engine = await connectEngine({
        urls: r.urls, cluster: r.cluster, timeoutMs: r.timeoutMs, onError: (err) => log.warn({ err }, 'deferred store engine connection'),
      });
    } catch (err) {
      log.fatal({ err }, 'deferred store engine unreachable');
      process.exit(1);
    }
    deferred = new RedisDeferredStore({ engine, prefix: r.prefix, replicas: r.replicas, waitMs: r.waitMs, ...bounds });
  } else if (deferredPath !== null) {
    deferred = new LmdbDeferredStore({ path: deferredPath, ...bounds });
  }
  const deferredAt = cfg.deferredRedis ? `redis:${cfg.deferredRedis.prefix}` : deferredPath;
  let relay: MsrpRelay;
  try {
    relay = new MsrpRelay({
      host: cfg.host, port: cfg.msrpPort, log, ...(store ? { store } : {}), ...(trace ? { trace } : {}),
      ...(deferred ? { deferred: { store: deferred } } : {}),
      ...(cfg.historyBatchMs === undefined ? {} : { historyBatchMs: cfg.historyBatchMs }),
      ...(tls && cfg.tls ? { tls, tlsPort: cfg.tls.port } : {}),
    });
  } catch (err) {
    log.fatal({ err }, 'bad TLS certificate or key');
    process.exit(2);
  }
  const msrpPort = await relay.listen();
  const control = new ControlServer(relay, {
    host: cfg.host, port: cfg.controlPort, log,
    ...(cfg.controlAllowedPeers === undefined ? {} : { allowedPeers: cfg.controlAllowedPeers }),
    ...(cfg.controlMaxFrameBytes === undefined ? {} : { maxMessage: cfg.controlMaxFrameBytes }),
  });
  const controlPort = await control.listen();
  const msrpTlsPort = relay.tlsListenPort || undefined;
  const history = cfg.mss ? `imap://${cfg.mss.host}:${cfg.mss.port}` : cfg.history;
  log.info({ host: cfg.host, msrpPort, msrpTlsPort, controlPort, history, deferred: deferredAt }, 'relay ready');
  const stop = (): void => {
    void (async () => {
      await control.close();
      await relay.close();
      await store?.close();
      await deferred?.close();
      await engine?.close();
      process.exit(0);
    })();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
