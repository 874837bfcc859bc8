/**
 * What the lmdb-backed stores share: writes resolve only once they are on disk, and
 * closing lets pending writes reach the disk.
 */
import type { Database, Key } from 'lmdb';
import { flushedWithin, settlesWithin } from '../../lib/lmdb-commit-guard.js';

export abstract class DurableLmdbStore<V, K extends Key> {
  private open = true;

  constructor(protected readonly db: Database<V, K>) {}

  get isOpen(): boolean {
    return this.open;
  }

  /** Run `action` as one write transaction; resolves with its result once flushed. */
  protected async writeDurably<T>(action: () => T): Promise<T> {
    const result = await this.db.transaction(action);
    // committed; the answer waits for the flush, and fails rather than come before it
    await flushedWithin(this.db.flushed);
    return result;
  }

  /**
   * A put or remove made inside `writeDurably`'s action. Its promise settles with the
   * transaction, whose own promise already reports a failed commit (a full disk:
   * `writeDurably` rejects, and the caller answers with an error). So this one is only
   * observed: left unhandled, its rejection would end the process.
   */
  protected inTransaction(write: Promise<unknown>): void {
    write.catch(() => undefined);
  }

  /** Stop; resolves once earlier writes are on disk. The database stays the caller's. */
  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await settlesWithin(this.db.flushed);
  }
}
