// The history write queue (docs/history.md "Write queue"): the relay hands history writes
// here and goes on; workers apply them to the Message Storage Server in order, and retry
// while the MSS is slow or down. Entries are kept in an LMDB file until written, so a
// restart of the PF or of the MSS loses none; each append carries an idempotency key, and
// a retried or reopened entry is checked by key before it is stored again
// (MessageStore.append with `retry`), so none is stored twice.
//
// Lanes: one worker per target (each its own MSS connection). A session folder always goes
// to the same lane (a hash of Conversation-ID and Contribution-ID), and a lane writes its
// entries one at a time in arrival order, so each session's objects keep their order
// while different sessions are written side by side.
//
// A run entry (appendMany: one per session folder per event-loop turn of the relay) holds
// several objects in one record (run.ts), each with its own key; the lane writes them one
// APPEND at a time, and the entry leaves the disk when the last is written. Counters and
// bounds count objects, not records.
//
// Bounded: at most `maxEntries` objects and `maxBytes` bytes wait. Past either bound a new
// entry is dropped (counted, logged); what is queued stays, in order. An entry the MSS
// refuses for good (MssError.permanent) `maxAttempts` times is set aside under
// ['aside', seq] in the same file, with the error, and its lane goes on.
//
// Lane states (moveLane() is the only place a lane's state changes):
//
//            enqueue                      written, more queued
//   idle ───────────────▶ writing ◀───────────────────────────┐
//    ▲                     │  │  └────────────────────────────┘
//    │     nothing queued  │  │ failed (MSS slow, down, refusing)
//    └─────────────────────┘  ▼
//                          waiting ── backoff over ──▶ writing
//
//   idle | writing | waiting ── close() ──▶ closed

import { randomUUID } from 'node:crypto';
import { open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { guardedTransition, type NextTable } from '../../lib/fsm.js';
import { MssError, type AppendItem, type AppendOptions, type FolderRef, type HistoryWriter, type MessageStore, type SessionInfo } from './mss.js';
import { settlesWithin } from '../../lib/lmdb-commit-guard.js';
import { decodeRun, encodeRun, fitsRun, type RunObject } from './run.js';

const RefSchema = Type.Object({ conversationId: Type.String(), contributionId: Type.String() });
const EntrySchema = Type.Union([
  Type.Object({
    op: Type.Literal('folder'),
    ref: RefSchema,
    info: Type.Object({
      from: Type.Optional(Type.String()), to: Type.Optional(Type.String()),
      callId: Type.Optional(Type.String()), startedAt: Type.Optional(Type.String()),
    }),
  }),
  Type.Object({
    op: Type.Literal('append'),
    ref: RefSchema,
    contentType: Type.String(),
    data: Type.Uint8Array(),
    key: Type.String(),
    direction: Type.Optional(Type.Union([Type.Literal('received'), Type.Literal('sent')])),
    /** ms since the epoch: when the relay saw the message. */
    at: Type.Number(),
  }),
  Type.Object({
    op: Type.Literal('run'),
    ref: RefSchema,
    /** Objects in `run` (run.ts), each with its key and time. */
    count: Type.Integer({ minimum: 1 }),
    run: Type.Uint8Array(),
  }),
]);
type Entry = Static<typeof EntrySchema>;
type AppendEntry = Extract<Entry, { op: 'append' }>;
/** Compiled once: every entry is checked as the lane reads it from disk (an interpreted Value.Check cost a few µs each). */
const EntryCheck = TypeCompiler.Compile(EntrySchema);

export type WorkerState = 'idle' | 'writing' | 'waiting' | 'closed';
export const WORKER_NEXT: NextTable<WorkerState> = {
  idle: ['writing', 'closed'],
  writing: ['idle', 'writing', 'waiting', 'closed'],
  waiting: ['writing', 'closed'],
  closed: [],
};

type Target = Pick<MessageStore, 'ensureSessionFolder' | 'append' | 'close'>;

export interface WriteQueueOptions {
  /** LMDB file of the queue. */
  path: string;
  /**
   * Where entries are written: one target per lane (each with its own MSS connection).
   * The queue closes them on close().
   */
  target: Target | readonly Target[];
  /** Objects waiting at most (a run entry counts its objects). Default 100 000. */
  maxEntries?: number;
  /** Bytes of objects waiting at most. Default 256 MiB. */
  maxBytes?: number;
  /** Attempts at an entry the MSS refuses for good before it is set aside. Default 3. */
  maxAttempts?: number;
  /** First and longest wait between attempts (doubling). Default 200 ms and 30 s. */
  backoffMs?: { first: number; max: number };
  /** close() waits this long for writes in flight, then leaves them (they are retried on reopen). Default 5 s. */
  closeWaitMs?: number;
  log?: Logger;
}

export interface QueueStats {
  /** `writing` when a lane writes, else `waiting` when one backs off, else `idle` (or `closed`). */
  readonly state: WorkerState;
  readonly lanes: readonly WorkerState[];
  /** Objects waiting (on disk; a run's objects until its last is written). */
  readonly queued: number;
  readonly bytes: number;
  /** Since open: entries written, dropped (queue full), set aside (refused for good). */
  readonly written: number;
  readonly dropped: number;
  readonly setAside: number;
  /** Consecutive failed attempts at a lane's head entry, the most of any lane. */
  readonly failures: number;
}

const OVERHEAD = 256;
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

function sizeOf(e: Entry): number {
  return OVERHEAD + (e.op === 'append' ? e.data.length : e.op === 'run' ? e.run.length : 0);
}

/** Objects an entry counts for: a run's objects, else 1. */
function weightOf(e: Entry): number {
  return e.op === 'run' ? e.count : 1;
}

/** FNV-1a over the folder: which lane a session's entries go to. */
export function laneOf(ref: FolderRef, lanes: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${ref.conversationId}\0${ref.contributionId}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % lanes;
}

/** A fresh idempotency key, unique per object (docs/history.md "Nothing twice"). */
function newKey(): string {
  return `${randomUUID()}@cpm-pf`;
}

/** The queue entry of one object: its idempotency key (a fresh one unless given) and when the relay saw it. */
function appendEntry({ ref, contentType, data, opts = {} }: AppendItem): AppendEntry {
  return {
    op: 'append',
    ref: { conversationId: ref.conversationId, contributionId: ref.contributionId },
    contentType,
    data,
    key: opts.key ?? newKey(),
    ...(opts.direction ? { direction: opts.direction } : {}),
    at: (opts.date ?? new Date()).getTime(),
  };
}

function isTargetList(t: Target | readonly Target[]): t is readonly Target[] {
  return Array.isArray(t);
}

interface Lane {
  readonly n: number;
  readonly target: Target;
  state: WorkerState;
  /** Entry seqs on disk for this lane, oldest first. */
  readonly fifo: number[];
  failures: number;
  timer: NodeJS.Timeout | undefined;
  inFlight: Promise<void> | undefined;
}

export class WriteQueue implements HistoryWriter {
  private readonly db: RootDatabase<unknown, (string | number)[]>;
  private readonly lanes: Lane[];
  private closed = false;
  private lastSeq = 0;
  /** Entries at or below this were there when the queue opened: they may have been written already. */
  private readonly reopenedUpTo: number;
  private queued = 0;
  private bytes = 0;
  private written = 0;
  private dropped = 0;
  private setAside = 0;
  /** Attempts per entry seq in this process (a retry checks the key first). */
  private readonly attempts = new Map<number, { total: number; permanent: number }>();
  /** Objects of a run entry written (or set aside) in this process; after a reopen each is checked by key. */
  private readonly progress = new Map<number, number>();
  private readonly drainWaiters: (() => void)[] = [];
  private readonly puts = new Set<Promise<unknown>>();
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxAttempts: number;
  private readonly backoff: { first: number; max: number };

  constructor(private readonly o: WriteQueueOptions) {
    this.maxEntries = o.maxEntries ?? 100_000;
    this.maxBytes = o.maxBytes ?? 256 * 1024 * 1024;
    this.maxAttempts = o.maxAttempts ?? 3;
    this.backoff = o.backoffMs ?? { first: 200, max: 30_000 };
    const targets = isTargetList(o.target) ? o.target : [o.target];
    if (targets.length === 0) throw new Error('history queue: no target');
    this.lanes = targets.map((target, n) => ({ n, target, state: 'idle', fifo: [], failures: 0, timer: undefined, inFlight: undefined }));
    this.db = open<unknown, (string | number)[]>({ path: o.path, compression: false });
    for (const { key, value } of this.db.getRange({ start: ['q', 0], end: ['q', MAX_SEQ] })) {
      const seq = Number(key[1]);
      this.lastSeq = Math.max(this.lastSeq, seq);
      const e = this.decode(seq, value);
      if (!e) {
        this.background(this.db.remove(['q', seq]), seq);
        continue;
      }
      this.queued += weightOf(e);
      this.bytes += sizeOf(e);
      this.laneFor(e.ref).fifo.push(seq);
    }
    for (const { key } of this.db.getRange({ start: ['aside', 0], end: ['aside', MAX_SEQ] })) {
      this.lastSeq = Math.max(this.lastSeq, Number(key[1]));
    }
    this.reopenedUpTo = this.lastSeq;
    if (this.queued > 0) {
      o.log?.info({ queued: this.queued, bytes: this.bytes }, 'history queue reopened with entries to write');
      queueMicrotask(() => {
        for (const lane of this.lanes) this.kick(lane);
      });
    }
  }

  /** CR 8.5: queue the folder check and session info object. Resolves true once on disk, false when dropped. */
  async ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<boolean> {
    const [queued] = await this.enqueue([{
      op: 'folder',
      ref: { conversationId: ref.conversationId, contributionId: ref.contributionId },
      // Only the fields that are set: an undefined one would not survive the disk round trip as undefined.
      info: Object.fromEntries(Object.entries(info).filter(([, v]) => typeof v === 'string')),
    }]);
    return queued!;
  }

  /** Queue one object. Resolves true once on disk, false when dropped (queue full). */
  async append(ref: FolderRef, contentType: string, data: Buffer, opts: AppendOptions = {}): Promise<boolean> {
    const [queued] = await this.enqueue([appendEntry({ ref, contentType, data, opts })]);
    return queued!;
  }

  /**
   * Queue several objects in one commit, one run entry per session folder. Resolves, for
   * each, true once on disk, false when dropped (past the bounds, object by object).
   */
  async appendMany(items: readonly AppendItem[]): Promise<boolean[]> {
    if (this.closed) return items.map(() => false);
    type Run = { ref: FolderRef; objects: RunObject[]; admitted: number };
    const folders = new Map<string, Run>();
    let last: Run | undefined; // most calls hold one folder: its run, without a map lookup
    const now = Date.now();
    const queued = items.map(({ ref, contentType, data, opts }) => {
      const size = OVERHEAD + data.length;
      if (!fitsRun(contentType, opts?.key)) {
        this.dropped++;
        this.o.log?.error({ ref }, 'history queue: a Content-Type or key over 65535 bytes; dropped');
        return false;
      }
      if (!this.admit(size)) return false;
      let run = last && last.ref.conversationId === ref.conversationId && last.ref.contributionId === ref.contributionId ? last : undefined;
      if (!run) {
        const id = `${ref.conversationId}\0${ref.contributionId}`;
        run = folders.get(id);
        if (!run) folders.set(id, run = { ref: { conversationId: ref.conversationId, contributionId: ref.contributionId }, objects: [], admitted: 0 });
      }
      last = run;
      run.objects.push({ contentType, data, key: opts?.key ?? newKey(), at: opts?.date?.getTime() ?? now, direction: opts?.direction });
      run.admitted += size;
      return true;
    });
    const runs = [...folders.values()].map(f => {
      const run: Entry = { op: 'run', ref: f.ref, count: f.objects.length, run: encodeRun(f.objects) };
      this.bytes += sizeOf(run) - f.admitted; // the record's own size, which finish() takes off again
      return run;
    });
    return (await this.commit(runs)) ? queued : items.map(() => false);
  }

  stats(): QueueStats {
    const lanes = this.lanes.map(l => l.state);
    const state: WorkerState = this.closed ? 'closed'
      : lanes.includes('writing') ? 'writing' : lanes.includes('waiting') ? 'waiting' : 'idle';
    return {
      state, lanes, queued: this.queued, bytes: this.bytes, written: this.written,
      dropped: this.dropped, setAside: this.setAside, failures: Math.max(...this.lanes.map(l => l.failures)),
    };
  }

  /** Resolves once nothing is queued (everything written or set aside). */
  drained(): Promise<void> {
    if (this.isDrained()) return Promise.resolve();
    return new Promise(resolve => this.drainWaiters.push(resolve));
  }

  /** Entries set aside (refused for good), oldest first. */
  asideEntries(): { seq: number; error: string; entry: Entry }[] {
    const out: { seq: number; error: string; entry: Entry }[] = [];
    for (const { key, value } of this.db.getRange({ start: ['aside', 0], end: ['aside', MAX_SEQ] })) {
      const v = value as { error?: unknown; entry?: unknown };
      if (typeof v.error === 'string' && EntryCheck.Check(v.entry)) out.push({ seq: Number(key[1]), error: v.error, entry: v.entry });
    }
    return out;
  }

  /** Stop the workers; queued entries stay on disk for the next open. Closes the targets. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const inFlight: Promise<void>[] = [];
    for (const lane of this.lanes) {
      this.moveLane(lane, 'closed');
      clearTimeout(lane.timer);
      if (lane.inFlight) inFlight.push(lane.inFlight);
    }
    if (inFlight.length > 0) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(inFlight), new Promise<void>(r => { t = setTimeout(r, this.o.closeWaitMs ?? 5000); })]);
      clearTimeout(t);
    }
    await Promise.all([...this.puts]);
    await settlesWithin(this.db.close());
    await Promise.all(this.lanes.map(l => l.target.close().catch(() => undefined)));
  }

  // ---- internals

  private moveLane(lane: Lane, to: WorkerState): void {
    lane.state = guardedTransition('history queue', WORKER_NEXT, lane.state, to);
  }

  private laneFor(ref: FolderRef): Lane {
    return this.lanes[laneOf(ref, this.lanes.length)]!;
  }

  private decode(seq: number, value: unknown): Entry | undefined {
    if (EntryCheck.Check(value)) return value;
    this.o.log?.error({ seq }, 'history queue entry does not match the schema; dropped');
    return undefined;
  }

  /** Queue single entries (a folder, one object): each admitted or dropped, then one commit. */
  private async enqueue(entries: readonly Entry[]): Promise<boolean[]> {
    if (this.closed) return entries.map(() => false);
    const queued = entries.map(e => this.admit(sizeOf(e)));
    return (await this.commit(entries.filter((_, i) => queued[i]))) ? queued : entries.map(() => false);
  }

  /** Count one object of `size` bytes in, or drop it when the bounds are reached. */
  private admit(size: number): boolean {
    if (this.queued + 1 > this.maxEntries || this.bytes + size > this.maxBytes) {
      this.dropped++;
      // One line per power of two, not one per message.
      if ((this.dropped & (this.dropped - 1)) === 0) {
        this.o.log?.warn({ dropped: this.dropped, queued: this.queued, bytes: this.bytes }, 'history queue full: entry dropped');
      }
      return false;
    }
    this.queued++;
    this.bytes += size;
    return true;
  }

  /**
   * Put admitted entries on disk in one transaction, committed by LMDB in the background in
   * call order (nothing here waits on disk), then hand them to their lanes. False when the
   * disk refused the commit: the entries are then dropped and uncounted.
   */
  private commit(entries: readonly Entry[]): Promise<boolean> {
    if (entries.length === 0) return Promise.resolve(true);
    const taken = entries.map(entry => ({ seq: ++this.lastSeq, entry }));
    const put = this.db.transaction(() => {
      for (const x of taken) this.db.putSync(['q', x.seq], x.entry);
    }).then(
      () => {
        this.puts.delete(put);
        const lanes = new Set<Lane>();
        for (const x of taken) {
          const lane = this.laneFor(x.entry.ref);
          lane.fifo.push(x.seq);
          lanes.add(lane);
        }
        for (const lane of lanes) this.kick(lane);
        return true;
      },
      (err: unknown) => {
        // the disk refused the commit (full, I/O error): not queued, counted as dropped
        this.puts.delete(put);
        let objects = 0;
        for (const x of taken) {
          objects += weightOf(x.entry);
          this.bytes -= sizeOf(x.entry);
        }
        this.queued -= objects;
        this.dropped += objects;
        this.o.log?.error({ err, entries: objects, dropped: this.dropped }, 'history queue: the disk refused entries; dropped');
        this.wakeIfDrained();
        return false;
      },
    );
    this.puts.add(put);
    return put;
  }

  private isDrained(): boolean {
    return this.queued === 0 && this.puts.size === 0;
  }

  private wakeIfDrained(): void {
    if (this.isDrained()) for (const w of this.drainWaiters.splice(0)) w();
  }

  /** A new entry is on disk. Writing: the lane takes it after the current one; waiting: the backoff timer steps. */
  private kick(lane: Lane): void {
    if (lane.state === 'idle') this.step(lane);
  }

  private step(lane: Lane): void {
    const seq = lane.fifo[0];
    if (seq === undefined) {
      if (lane.state !== 'idle') this.moveLane(lane, 'idle');
      this.wakeIfDrained();
      return;
    }
    this.moveLane(lane, 'writing');
    const entry = this.decode(seq, this.db.get(['q', seq]));
    if (!entry) {
      lane.fifo.shift();
      this.finish(seq, undefined);
      this.step(lane);
      return;
    }
    // A target that throws instead of rejecting is handled the same.
    const p = Promise.resolve().then(() => this.write(lane, seq, entry)).then(
      () => {
        // Closed meanwhile: the database is gone; the entry is written again, checked by key, on reopen.
        if (this.closed) return;
        lane.failures = 0;
        if (entry.op !== 'run') this.written++; // a run counts each object as it is written
        lane.fifo.shift();
        this.finish(seq, entry);
        this.step(lane);
      },
      (err: unknown) => this.failed(lane, seq, entry, err),
    );
    lane.inFlight = p.finally(() => {
      if (lane.inFlight === p) lane.inFlight = undefined;
    });
  }

  /** One attempt at entry `seq` (a run: at its next object). Retried when an earlier attempt may have stored it. */
  private attempt(seq: number): { retry: boolean } {
    const a = this.attempts.get(seq) ?? { total: 0, permanent: 0 };
    const retry = a.total > 0 || seq <= this.reopenedUpTo;
    a.total++;
    this.attempts.set(seq, a);
    return { retry };
  }

  private async write(lane: Lane, seq: number, e: Entry): Promise<unknown> {
    if (e.op === 'run') return this.writeRun(lane, seq, e);
    const { retry } = this.attempt(seq);
    if (e.op === 'folder') return lane.target.ensureSessionFolder(e.ref, e.info);
    return lane.target.append(e.ref, e.contentType, Buffer.from(e.data), {
      key: e.key, retry, date: new Date(e.at), ...(e.direction ? { direction: e.direction } : {}),
    });
  }

  /** A run's objects, one APPEND each, from the first not yet written in this process. */
  private async writeRun(lane: Lane, seq: number, e: Extract<Entry, { op: 'run' }>): Promise<void> {
    const { objects } = this.runObjects(seq, e);
    for (let i = this.progress.get(seq) ?? 0; i < objects.length; i++) {
      const o = objects[i]!;
      const { retry } = this.attempt(seq);
      await lane.target.append(e.ref, o.contentType, o.data, {
        retry, date: new Date(o.at), ...(o.key === undefined ? {} : { key: o.key }), ...(o.direction ? { direction: o.direction } : {}),
      });
      if (this.closed) return;
      this.progress.set(seq, i + 1);
      this.attempts.delete(seq);
      this.written++;
      lane.failures = 0; // the next outage backs off from the first wait again
    }
  }

  /** A run entry's objects; the ones a damaged record no longer holds are logged once and counted as dropped. */
  private runObjects(seq: number, e: Extract<Entry, { op: 'run' }>): { objects: RunObject[] } {
    const { objects } = decodeRun(e.run);
    if (objects.length < e.count && !this.progress.has(seq)) {
      this.dropped += e.count - objects.length;
      this.o.log?.error({ seq, ref: e.ref, lost: e.count - objects.length }, 'history queue: a damaged run entry; its unreadable objects are lost');
      this.progress.set(seq, 0);
    }
    return { objects };
  }

  /** Entry `seq` is done with (written or set aside): off the disk and the counters (`entry`: undefined when unreadable, never counted). */
  private finish(seq: number, entry: Entry | undefined): void {
    this.attempts.delete(seq);
    this.progress.delete(seq);
    if (entry !== undefined) {
      this.queued = Math.max(0, this.queued - weightOf(entry));
      this.bytes = Math.max(0, this.bytes - sizeOf(entry));
    }
    this.background(this.db.remove(['q', seq]), seq);
  }

  /**
   * A removal or set-aside written without waiting. If the disk refuses it (full), the
   * entry stays queued and comes again after a restart, where its idempotency key keeps it
   * from being stored twice: logged, never an unhandled rejection (that would end the relay).
   */
  private background(write: Promise<unknown>, seq: number): void {
    write.catch((err: unknown) => this.o.log?.warn({ err, seq }, 'history queue: a bookkeeping write failed'));
  }

  private failed(lane: Lane, seq: number, e: Entry, err: unknown): void {
    if (this.closed) return;
    const permanent = err instanceof MssError && err.permanent;
    const a = this.attempts.get(seq) ?? { total: 1, permanent: 0 };
    if (permanent) a.permanent++;
    this.attempts.set(seq, a);
    lane.failures++;
    if (permanent && a.permanent >= this.maxAttempts) {
      const error = err instanceof Error ? err.message : String(err);
      this.o.log?.error({ seq, op: e.op, ref: e.ref, error }, 'history entry refused by the MSS: set aside');
      this.setAside++;
      lane.failures = 0;
      if (e.op === 'run') {
        // Only the refused object is set aside, as a single entry; the run goes on after it.
        const i = this.progress.get(seq) ?? 0;
        const o = this.runObjects(seq, e).objects[i]!;
        const single: AppendEntry = {
          op: 'append', ref: e.ref, contentType: o.contentType, data: o.data, key: o.key ?? '', at: o.at,
          ...(o.direction ? { direction: o.direction } : {}),
        };
        // Keyed by the run and the object's place in it: set aside again after a reopen, it
        // replaces its own record instead of adding a second one.
        this.background(this.db.put(['aside', seq, i], { error, entry: single }), seq);
        this.progress.set(seq, i + 1);
        this.attempts.delete(seq);
      } else {
        this.background(this.db.put(['aside', seq], { error, entry: e }), seq);
        lane.fifo.shift();
        this.finish(seq, e);
      }
      this.step(lane);
      return;
    }
    const wait = Math.min(this.backoff.max, this.backoff.first * 2 ** Math.min(20, lane.failures - 1));
    if (lane.failures === 1 || (lane.failures & (lane.failures - 1)) === 0) {
      this.o.log?.warn({ err, seq, lane: lane.n, failures: lane.failures, retryInMs: wait, queued: this.queued }, 'history write failed; will retry');
    }
    this.moveLane(lane, 'waiting');
    lane.timer = setTimeout(() => {
      if (lane.state === 'waiting') this.step(lane);
    }, wait);
  }
}
