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
// Bounded: at most `maxEntries` entries and `maxBytes` bytes wait. Past either bound a new
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
]);
type Entry = Static<typeof EntrySchema>;
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
  /** Entries waiting at most. Default 100 000. */
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
  /** Entries waiting (on disk). */
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
  return OVERHEAD + (e.op === 'append' ? e.data.length : 0);
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

/** The queue entry of one object: its idempotency key (a fresh one unless given) and when the relay saw it. */
function appendEntry({ ref, contentType, data, opts = {} }: AppendItem): Entry {
  return {
    op: 'append',
    ref: { conversationId: ref.conversationId, contributionId: ref.contributionId },
    contentType,
    data,
    key: opts.key ?? `${randomUUID()}@cpm-pf`,
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
      this.queued++;
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

  /** Queue several objects in one commit. Resolves, for each, true once on disk, false when dropped. */
  appendMany(items: readonly AppendItem[]): Promise<boolean[]> {
    return this.enqueue(items.map(appendEntry));
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

  private enqueue(entries: readonly Entry[]): Promise<boolean[]> {
    if (this.closed) return Promise.resolve(entries.map(() => false));
    const taken: { seq: number; size: number; entry: Entry }[] = [];
    const queued = entries.map(entry => {
      const size = sizeOf(entry);
      if (this.queued + 1 > this.maxEntries || this.bytes + size > this.maxBytes) {
        this.dropped++;
        // One line per power of two, not one per message.
        if ((this.dropped & (this.dropped - 1)) === 0) {
          this.o.log?.warn({ dropped: this.dropped, queued: this.queued, bytes: this.bytes }, 'history queue full: entry dropped');
        }
        return false;
      }
      taken.push({ seq: ++this.lastSeq, size, entry });
      this.queued++;
      this.bytes += size;
      return true;
    });
    if (taken.length === 0) return Promise.resolve(queued);
    // One transaction for them all, committed by LMDB in the background in call order:
    // nothing here waits on disk.
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
        return queued;
      },
      (err: unknown) => {
        // the disk refused the commit (full, I/O error): not queued, counted as dropped
        this.puts.delete(put);
        for (const x of taken) {
          this.queued--;
          this.bytes -= x.size;
        }
        this.dropped += taken.length;
        this.o.log?.error({ err, entries: taken.length, dropped: this.dropped }, 'history queue: the disk refused entries; dropped');
        this.wakeIfDrained();
        return entries.map(() => false);
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
        this.written++;
        lane.fifo.shift();
        this.finish(seq, sizeOf(entry));
        this.step(lane);
      },
      (err: unknown) => this.failed(lane, seq, entry, err),
    );
    lane.inFlight = p.finally(() => {
      if (lane.inFlight === p) lane.inFlight = undefined;
    });
  }

  private write(lane: Lane, seq: number, e: Entry): Promise<unknown> {
    const a = this.attempts.get(seq) ?? { total: 0, permanent: 0 };
    const retry = a.total > 0 || seq <= this.reopenedUpTo;
    a.total++;
    this.attempts.set(seq, a);
    if (e.op === 'folder') return lane.target.ensureSessionFolder(e.ref, e.info);
    return lane.target.append(e.ref, e.contentType, Buffer.from(e.data), {
      key: e.key, retry, date: new Date(e.at), ...(e.direction ? { direction: e.direction } : {}),
    });
  }

  /** Entry `seq` is done with (written or set aside): off the disk and the counters (`size`: undefined for an unreadable entry, never counted). */
  private finish(seq: number, size: number | undefined): void {
    this.attempts.delete(seq);
    if (size !== undefined) {
      this.queued = Math.max(0, this.queued - 1);
      this.bytes = Math.max(0, this.bytes - size);
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
      this.background(this.db.put(['aside', seq], { error, entry: e }), seq);
      this.setAside++;
      lane.failures = 0;
      lane.fifo.shift();
      this.finish(seq, sizeOf(e));
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
