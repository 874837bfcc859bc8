// The history writer the relay process records through (docs/history.md "Configuration"):
// the embedded LMDB store by default, or the MSS over IMAP behind the write queue.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { MssConfig } from '../config/load.js';
import { ImapMessageStore } from './imap-store.js';
import type { HistoryWriter } from './mss.js';
import { WriteQueue } from './queue.js';
import { LmdbMessageStore } from './store.js';

export function openHistory(cfg: { history: string | null; mss?: MssConfig }, log?: Logger): HistoryWriter | undefined {
  if (cfg.history === null) return undefined;
  if (!cfg.mss) {
    mkdirSync(dirname(cfg.history), { recursive: true });
    return new LmdbMessageStore(cfg.history);
  }
  const m = cfg.mss;
  mkdirSync(dirname(m.queue.path), { recursive: true });
  // One connection per queue lane (queue.ts): sessions are written side by side.
  const target = Array.from({ length: m.connections }, (_, lane) => new ImapMessageStore({
    host: m.host, port: m.port, user: m.user, password: m.password, tls: m.tls,
    ...(log ? { log: log.child({ mss: `${m.host}:${m.port}`, lane }) } : {}),
  }));
  return new WriteQueue({
    path: m.queue.path, target, maxEntries: m.queue.maxEntries, maxBytes: m.queue.maxBytes,
    ...(log ? { log } : {}),
  });
}
