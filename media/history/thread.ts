// History written from a worker thread (docs/history.md "Off the relay's thread"): the
// store (the embedded LMDB file, or the write queue in front of the MSS) runs in a thread
// of its own, so that its work (LMDB commits, building IMAP objects, the IMAP client) is
// not done on the thread that relays MSRP. The relay's thread only hands each turn's
// writes over in one message; each write's promise resolves when the store's does (for
// the queue: once the entry is on the queue's disk), as without the thread.
//
//   relay thread                         history thread (./thread-worker.ts)
//   append / ensureSessionFolder ──ops──▶ openHistory(cfg).append / ...
//        promise settles ◀────results──── on disk (or refused)
//
// A thread that dies (an uncaught error) fails the writes it had and is started again
// after a second; what the queue had on disk is written by the new one.

import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { MssConfig } from '../config/load.js';
import type { AppendOptions, FolderRef, HistoryWriter, SessionInfo } from './mss.js';

/** What the thread opens: openHistory's settings. */
export interface HistoryThreadConfig {
  readonly history: string;
  readonly mss?: MssConfig;
  /** pino level of the thread's own log lines. */
  readonly logLevel?: string;
}

/** One write, as it crosses to the thread. */
export type ThreadOp =
  | { readonly id: number; readonly k: 'folder'; readonly ref: FolderRef; readonly info: SessionInfo }
  | {
    readonly id: number; readonly k: 'append'; readonly ref: FolderRef; readonly contentType: string; readonly data: Uint8Array;
    readonly opts: { readonly direction?: AppendOptions['direction']; readonly key?: string; readonly retry?: boolean; readonly date?: number };
  };

/** relay thread -> history thread */
export type ToThread = { readonly t: 'ops'; readonly ops: readonly ThreadOp[] } | { readonly t: 'close' };
/** history thread -> relay thread: [id, ok, error message when not ok] */
export type FromThread = { readonly t: 'done'; readonly results: readonly (readonly [number, boolean, string?])[] } | { readonly t: 'closed' };

const RESTART_MS = 1000;

export class HistoryThread implements HistoryWriter {
  private worker: Worker | undefined;
  private batch: ThreadOp[] = [];
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly cfg: HistoryThreadConfig,
    private readonly log?: Logger,
  ) {
    this.start();
  }

  ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<void> {
    return this.queue((id) => ({ id, k: 'folder', ref: { conversationId: ref.conversationId, contributionId: ref.contributionId }, info }));
  }

  append(ref: FolderRef, contentType: string, data: Buffer, opts: AppendOptions = {}): Promise<void> {
    return this.queue((id) => ({
      id, k: 'append', ref: { conversationId: ref.conversationId, contributionId: ref.contributionId }, contentType, data,
      opts: {
        ...(opts.direction ? { direction: opts.direction } : {}), ...(opts.key === undefined ? {} : { key: opts.key }),
        ...(opts.retry ? { retry: true } : {}), ...(opts.date ? { date: opts.date.getTime() } : {}),
      },
    }));
  }

  /** Hand the last writes over, let the thread close its store, then end it. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.send();
      const w = this.worker;
      if (!w) return;
      await new Promise<void>((resolve) => {
        const done = (): void => resolve();
        w.once('exit', done);
        w.on('message', (m: FromThread) => {
          if (m.t === 'closed') void w.terminate().then(done, done);
        });
        w.postMessage({ t: 'close' } satisfies ToThread);
      });
      this.fail(new Error('history thread closed'));
    })();
    return this.closing;
  }

  private queue(make: (id: number) => ThreadOp): Promise<void> {
    if (this.closing) return Promise.reject(new Error('history thread closed'));
    const id = ++this.nextId;
    this.batch.push(make(id));
    if (this.batch.length === 1) setImmediate(() => this.send());
    return new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  /** This turn's writes, in one message. */
  private send(): void {
    if (this.batch.length === 0) return;
    const ops = this.batch;
    this.batch = [];
    if (!this.worker) {
      this.failOps(ops, new Error('history thread not running'));
      return;
    }
    this.worker.postMessage({ t: 'ops', ops } satisfies ToThread);
  }

  private start(): void {
    // the worker's own file: thread-worker.js once built; from source (tsx), thread-worker.ts,
    // loaded after tsx's loader is registered in the thread (a worker's entry cannot be .ts)
    const ext = extname(fileURLToPath(import.meta.url));
    const entry = new URL(`./thread-worker${ext}`, import.meta.url);
    const w = ext === '.ts'
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`, { eval: true, workerData: this.cfg })
      : new Worker(entry, { workerData: this.cfg });
    this.worker = w;
    w.on('message', (m: FromThread) => {
      if (m.t !== 'done') return;
      for (const [id, ok, why] of m.results) {
        const p = this.waiting.get(id);
        if (!p) continue;
        this.waiting.delete(id);
        if (ok) p.resolve();
        else p.reject(new Error(why ?? 'history write failed'));
      }
    });
    w.on('error', (err) => this.log?.error({ err }, 'history thread failed'));
    w.on('exit', (code) => {
      if (this.worker === w) this.worker = undefined;
      if (this.closing) return;
      // its writes in flight are lost to it: fail them (the recorder logs each); the queue's disk is kept
      this.log?.error({ code, failed: this.waiting.size }, 'history thread ended; starting it again');
      this.fail(new Error('history thread ended'));
      setTimeout(() => {
        if (!this.closing) this.start();
      }, RESTART_MS).unref();
    });
  }

  private fail(err: Error): void {
    for (const p of this.waiting.values()) p.reject(err);
    this.waiting.clear();
  }

  private failOps(ops: readonly ThreadOp[], err: Error): void {
    for (const op of ops) {
      this.waiting.get(op.id)?.reject(err);
      this.waiting.delete(op.id);
    }
  }
}
