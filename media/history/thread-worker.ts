// The history thread (./thread.ts): opens the store the relay would have opened, takes
// each turn's writes in order, and answers once per turn with how each ended.

import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { guardLmdbCommitFailures } from '../../lib/lmdb-commit-guard.js';
import { openHistory } from './open.js';
import type { FromThread, HistoryThreadConfig, ThreadOp, ToThread } from './thread.js';

const cfg = workerData as HistoryThreadConfig;
const port = parentPort;
if (!port) throw new Error('history thread: not started as a worker');
const log = pino({ name: 'msrp-relay', level: cfg.logLevel ?? 'info', base: { thread: 'history' } });
guardLmdbCommitFailures((err, isCause) => {
  if (isCause) log.error({ err }, 'lmdb: a commit was refused');
});
const store = openHistory(cfg, log);
if (!store) throw new Error('history thread: history is off');

function run(op: ThreadOp): Promise<unknown> {
  if (op.k === 'folder') return store!.ensureSessionFolder(op.ref, op.info);
  const { date, ...opts } = op.opts;
  return store!.append(op.ref, op.contentType, Buffer.from(op.data.buffer, op.data.byteOffset, op.data.byteLength), {
    ...opts, ...(date === undefined ? {} : { date: new Date(date) }),
  });
}

port.on('message', (m: ToThread) => {
  if (m.t === 'close') {
    void store.close().finally(() => port.postMessage({ t: 'closed' } satisfies FromThread));
    return;
  }
  // called in order, in this turn: the store keeps their order (one transaction, or the queue's)
  const settled = m.ops.map((op) => run(op).then(
    () => [op.id, true] as const,
    (err: unknown) => [op.id, false, err instanceof Error ? err.message : String(err)] as const,
  ));
  void Promise.all(settled).then((results) => port.postMessage({ t: 'done', results } satisfies FromThread));
});
