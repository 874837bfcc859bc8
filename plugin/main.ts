/**
 * Entry point of the decision service: `npx tsx plugin/main.ts [--config <file.json>]`
 * (docs/service.md).
 * Prints `{"msg":"service ready","rpcPort":..,"httpPort":..}` once both servers listen.
 */
import { pino } from 'pino';
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from './config/load.js';
import { createApp } from './app.js';
import type { Config } from './config/schema.js';
import { REDACT_PATHS } from './http/server.js';
import { guardLmdbCommitFailures } from '../lib/lmdb-commit-guard.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, strict: true });
  let config: Config;
  try {
    config = loadConfig({ file: values.config });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { svc: 'pf' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
  // a refused LMDB commit is each store's error to report, never the process's end
  guardLmdbCommitFailures(log);
  const app = await createApp(config, log);
  await app.start();
  // The ready line is printed whatever the log level: the lab and tests wait for it.
  const ready = { rpcPort: app.rpcPort, httpPort: app.httpPort, host: config.host, ...(app.b2buaSipPort === null ? {} : { b2buaSipPort: app.b2buaSipPort }) };
  if (log.isLevelEnabled('info')) log.info(ready, 'service ready');
  else pino({ base: { svc: 'pf' } }).info(ready, 'service ready');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'service stopping');
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
