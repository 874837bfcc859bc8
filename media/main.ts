// MSRP relay process: the MSRP listener and the JSON-RPC control listener, both on
// loopback by default. Configuration (flags override environment):
//   --host / RELAY_HOST                  listen address            (127.0.0.1)
//   --msrp-port / RELAY_MSRP_PORT        MSRP port, 0 = any free   (2855)
//   --control-port / RELAY_CONTROL_PORT  control port, 0 = any free (2856)
//   --history / RELAY_HISTORY            LMDB file for history; "off" disables (run/history.mdb)
//   --msrp-tls-cert / MSRP_TLS_CERT      PEM certificate: serve msrps (TCP/TLS/MSRP, RFC 4975 §6)
//   --msrp-tls-key / MSRP_TLS_KEY        PEM private key (both or neither)
//   --msrp-tls-port / MSRP_TLS_PORT      TLS port, 0 = any free    (2857; only with cert and key)
// Logs one `relay ready` line with the bound ports once both listen.

import { mkdirSync, readFileSync } from 'node:fs';
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
  /** msrps listener; absent when not configured. */
  tls?: { port: number; cert: string; key: string };
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
      'msrp-tls-cert': { type: 'string' },
      'msrp-tls-key': { type: 'string' },
      'msrp-tls-port': { type: 'string' },
    },
    strict: true,
  });
  const history = values.history ?? env.RELAY_HISTORY ?? 'run/history.mdb';
  const cert = values['msrp-tls-cert'] ?? env.MSRP_TLS_CERT ?? '';
  const key = values['msrp-tls-key'] ?? env.MSRP_TLS_KEY ?? '';
  const tlsPort = values['msrp-tls-port'] ?? env.MSRP_TLS_PORT;
  if ((cert === '') !== (key === '')) throw new Error('msrp-tls-cert and msrp-tls-key go together');
  if (cert === '' && tlsPort !== undefined && tlsPort !== '') throw new Error('msrp-tls-port needs msrp-tls-cert and msrp-tls-key');
  return {
    host: values.host ?? env.RELAY_HOST ?? '127.0.0.1',
    msrpPort: port('msrp-port', values['msrp-port'] ?? env.RELAY_MSRP_PORT ?? '2855'),
    controlPort: port('control-port', values['control-port'] ?? env.RELAY_CONTROL_PORT ?? '2856'),
    history: history === 'off' ? null : history,
    ...(cert === '' ? {} : { tls: { cert, key, port: port('msrp-tls-port', tlsPort || '2857') } }),
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
  let tls: { key: Buffer; cert: Buffer } | undefined;
  try {
    if (cfg.tls) tls = { key: readFileSync(cfg.tls.key), cert: readFileSync(cfg.tls.cert) };
  } catch (err) {
    log.fatal({ err }, 'cannot read the TLS certificate or key');
    process.exit(2);
  }
  let store: LmdbMessageStore | undefined;
  if (cfg.history) {
    mkdirSync(dirname(cfg.history), { recursive: true });
    store = new LmdbMessageStore(cfg.history);
  }
  let relay: MsrpRelay;
  try {
    relay = new MsrpRelay({
      host: cfg.host, port: cfg.msrpPort, log, ...(store ? { store } : {}),
      ...(tls && cfg.tls ? { tls, tlsPort: cfg.tls.port } : {}),
    });
  } catch (err) {
    log.fatal({ err }, 'bad TLS certificate or key');
    process.exit(2);
  }
  const msrpPort = await relay.listen();
  const control = new ControlServer(relay, { host: cfg.host, port: cfg.controlPort, log });
  const controlPort = await control.listen();
  const msrpTlsPort = relay.tlsListenPort || undefined;
  log.info({ host: cfg.host, msrpPort, msrpTlsPort, controlPort, history: cfg.history }, 'relay ready');
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
