/**
 * A refused LMDB commit must not end the process (docs/reliability.md "A refused commit").
 *
 * When lmdb-js (3.5.x) cannot commit a write transaction (a full disk, an I/O error, or
 * its own free-list check, "reserved freelist had a data entry with zero-size"), it
 * rejects the promises of the writes it handed out, which our stores handle: they log,
 * answer with an error, or write again. But it also rejects promises that no caller
 * holds: the failed commit's `commitError` (the real cause) and the promise of its
 * event-turn batch. Node ends a process on an unhandled rejection, so one refused commit
 * would kill the service or the relay, with every call in it.
 *
 * `guardLmdbCommitFailures` takes those two kinds, and only those (a rejection raised in
 * lmdb-js's write.js), and reports them. Any other unhandled rejection is thrown again,
 * so it still ends the process as Node's default does: a defect of ours stays loud.
 */

/**
 * Whether `reason` is one of lmdb-js's own commit rejections: raised in its writer
 * (write.js), and either its "Commit failed" error (it carries `commitError`) or the
 * commit's cause (an LMDB or system error, with a numeric `code`). Anything else raised
 * there (a write after close, say) is not: that would be a defect of ours.
 */
export function isLmdbCommitFailure(reason: unknown): reason is Error {
  if (!(reason instanceof Error)) return false;
  // the first frame is where it was made: lmdb-js's writer (resolveWrites, or the commit callback)
  const frames = (reason.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at '));
  if (frames.length === 0 || !/[/\\]lmdb[/\\]write\.js:/.test(frames[0] ?? '')) return false;
  return 'commitError' in reason || ('code' in reason && typeof reason.code === 'number');
}

/** Where the guard reports (a pino logger fits). */
export interface GuardLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Install once per process (the entry points do). The commit's real cause is logged at
 * error; lmdb-js's "Commit failed" error of a write that nothing waited for (a promise of
 * its own, or one of ours derived from a write without a handler) at warn.
 * Returns a function that removes the guard (tests).
 */
export function guardLmdbCommitFailures(log: GuardLog): () => void {
  const onUnhandled = (reason: unknown): void => {
    if (!isLmdbCommitFailure(reason)) throw reason;
    if ('commitError' in reason) log.warn({ err: reason.message }, 'lmdb: a write of a refused commit that nothing waited for');
    else log.error({ err: reason }, 'lmdb: a commit was refused');
  };
  process.on('unhandledRejection', onUnhandled);
  return () => void process.off('unhandledRejection', onUnhandled);
}

/**
 * How long to wait for lmdb-js to settle a flush or a close. After a refused commit it
 * never settles them (the failed commit's flush is never resolved, and `close` waits for
 * it). Committed data is in the data file's pages either way: a process that ends without
 * the wait loses nothing; only a machine that loses power before the OS writes the pages
 * back would.
 */
export const LMDB_SETTLE_MS = 2000;

/** Wait for `p` (a close, a flush at shutdown) at most `ms`: true when it settled, false when it did not. */
export async function settlesWithin(p: PromiseLike<unknown>, ms = LMDB_SETTLE_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([Promise.resolve(p).then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a write that is to be answered waits for its flush (fsync) before it fails. */
export const LMDB_FLUSH_MS = 10_000;

/**
 * Wait for the flush (fsync) after a committed write that a 200 will acknowledge. It fails
 * rather than returning early: when the flush does not come within `ms` (a refused commit
 * beside it, after which lmdb-js never settles it, or a disk that slow), the caller answers
 * with an error, never with a success for data that may not be on the disk.
 */
export async function flushedWithin(p: PromiseLike<unknown>, ms = LMDB_FLUSH_MS): Promise<void> {
  if (!(await settlesWithin(p, ms))) throw new Error(`lmdb: the write was committed but not flushed to disk within ${ms} ms`);
}
