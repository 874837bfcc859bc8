// MSRP relay process: the MSRP listener and the JSON-RPC control listener, both on
// loopback by default. Configuration (flags override environment):
//   --host / RELAY_HOST                  listen address            (127.0.0.1)
//   --msrp-port / RELAY_MSRP_PORT        MSRP port, 0 = any free   (2855)
//   --control-port / RELAY_CONTROL_PORT  control port, 0 = any free (2856)
//   --history / RELAY_HISTORY            LMDB file for history; "off" disables (run/history.mdb)
// Logs one `relay ready` line with the bound ports once both listen.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { LmdbMessageStore } from './history/store.js';
import { ControlServer } from './relay/control.js';
import { MsrpRelay } from './relay/relay.js';

export interface RelayConfig {
  host: string;
  msrpPort: number;
  controlPort: number;
  history: string | null;
}

function port(name: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new Error(`${name} must be a port number, got "${v}"`);
  return n;
}

export function readConfig(argv: string[], env: NodeJS.ProcessEnv): RelayConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      'msrp-port': { type: 'string' },
      'control-port': { type: 'string' },
      history: { type: 'string' },
    },
    strict: true,
  });
  const history = values.history ?? env.RELAY_HISTORY ?? 'run/history.mdb';
  return {
    host: values.host ?? env.RELAY_HOST ?? '127.0.0.1',
    msrpPort: port('msrp-port', values['msrp-port'] ?? env.RELAY_MSRP_PORT ?? '2855'),
    controlPort: port('control-port', values['control-port'] ?? env.RELAY_CONTROL_PORT ?? '2856'),
    history: history === 'off' ? null : history,
  };
}

async function main(): Promise<void> {
  const log = pino({ name: 'msrp-relay' });
  let cfg: RelayConfig;
  try {
    cfg = readConfig(process.argv.slice(2), process.env);
  } catch (err) {
    log.fatal({ err }, 'bad configuration');
    process.exit(2);
  }
  let store: LmdbMessageStore | undefined;
  if (cfg.history) {
    mkdirSync(dirname(cfg.history), { recursive: true });
    store = new LmdbMessageStore(cfg.history);
  }
  const relay = new MsrpRelay({ host: cfg.host, port: cfg.msrpPort, log, ...(store ? { store } : {}) });
  const msrpPort = await relay.listen();
  const control = new ControlServer(relay, { host: cfg.host, port: cfg.controlPort, log });
  const controlPort = await control.listen();
  log.info({ host: cfg.host, msrpPort, controlPort, history: cfg.history }, 'relay ready');
  const stop = (): void => {
    void (async () => {
      await control.close();
      await relay.close();
      await store?.close();
      process.exit(0);
    })();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
