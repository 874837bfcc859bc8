// Conversation history (CR 8.5; docs/history.md): the embedded store. Mirrors the
// Message Storage Server's IMAP layout:
//   <Conversation-ID>/                 conversation folder
//     <Contribution-ID>/               session history folder
//       uid 1: Application/X-CPM-Session   session info object
//       uid n: message/cpim                each chat message / disposition notification
// The embedded default keeps it in LMDB on disk, so it survives a restart.

import { open, type RootDatabase } from 'lmdb';
import {
  formatSessionInfo, SESSION_INFO_TYPE,
  type AppendOptions, type FolderRef, type MessageStore, type SessionInfo, type StoredObject,
} from './mss.js';
import { settlesWithin } from '../../lib/lmdb-commit-guard.js';

// The interface and its types live in mss.ts; re-exported for the existing importers.
export { SESSION_INFO_TYPE, type FolderRef, type MessageStore, type SessionInfo, type StoredObject };

interface Row {
  contentType: string;
  data: Buffer;
  storedAt: string;
  key?: string;
}

/** One write waiting for its turn's transaction. */
type Op =
  | { readonly kind: 'folder'; readonly ref: FolderRef; readonly text: string; readonly done: (created: boolean) => void; readonly fail: (e: unknown) => void }
  | {
    readonly kind: 'object'; readonly ref: FolderRef; readonly contentType: string; readonly data: Buffer; readonly opts: AppendOptions;
    readonly done: (uid: number) => void; readonly fail: (e: unknown) => void;
  };

/**
 * IMAP folder names may not hold the hierarchy separator; keys are arrays, so any string works.
 *
 * The writes of one event-loop turn go to disk in one transaction, in call order
 * (docs/history.md "The embedded store"): each message would otherwise cost a
 * transaction of its own, a read of its folder's last UID and a write of it, about half
 * of history's cost on the relay. Each promise still resolves only once its write is
 * committed, and a refused commit rejects every write of that turn.
 */
export class LmdbMessageStore implements MessageStore {
  private readonly db: RootDatabase<Row | number, (string | number)[]>;
  private batch: Op[] = [];

  constructor(path: string) {
    this.db = open<Row | number, (string | number)[]>({ path, compression: false });
  }

  async ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<{ created: boolean; infoUid: number }> {
    const text = formatSessionInfo(ref, info);
    const created = await new Promise<boolean>((done, fail) => this.queue({ kind: 'folder', ref, text, done, fail }));
    return { created, infoUid: 1 };
  }

  append(ref: FolderRef, contentType: string, data: Buffer, opts: AppendOptions = {}): Promise<number> {
    return new Promise<number>((done, fail) => this.queue({ kind: 'object', ref, contentType, data, opts, done, fail }));
  }

  private queue(op: Op): void {
    this.batch.push(op);
    if (this.batch.length === 1) setImmediate(() => this.commit());
  }

  /** This turn's writes, in one transaction. */
  private commit(): void {
    const ops = this.batch;
    this.batch = [];
    const results: (boolean | number)[] = [];
    this.db.transaction(() => {
      // each folder's last UID, read once per transaction and written back once
      const last = new Map<string, { key: (string | number)[]; uid: number }>();
      const lastOf = (ref: FolderRef): { key: (string | number)[]; uid: number } => {
        const id = `${ref.conversationId}\u0000${ref.contributionId}`;
        let l = last.get(id);
        if (!l) {
          const key = ['folder', ref.conversationId, ref.contributionId];
          const v = this.db.get(key);
          l = { key, uid: typeof v === 'number' ? v : 0 };
          last.set(id, l);
        }
        return l;
      };
      const storedAt = new Date().toISOString();
      for (const op of ops) {
        const l = lastOf(op.ref);
        if (op.kind === 'folder') {
          // CR 8.5 step 8a: look the folder up first; the session info object only when it is missing
          if (l.uid > 0) {
            results.push(false);
            continue;
          }
          l.uid = 1;
          this.db.putSync(['obj', op.ref.conversationId, op.ref.contributionId, 1], {
            contentType: SESSION_INFO_TYPE, data: Buffer.from(op.text, 'utf8'), storedAt,
          });
          results.push(true);
          continue;
        }
        const { key } = op.opts;
        // An object's key, when it has one: ['key', conv, contrib, key] -> UID (the idempotency check).
        const keyed = key === undefined ? undefined : ['key', op.ref.conversationId, op.ref.contributionId, key];
        const had = keyed && op.opts.retry ? this.db.get(keyed) : undefined;
        if (typeof had === 'number') {
          results.push(had);
          continue;
        }
        const uid = ++l.uid;
        this.db.putSync(['obj', op.ref.conversationId, op.ref.contributionId, uid], {
          contentType: op.contentType, data: op.data, storedAt, ...(key === undefined ? {} : { key }),
        });
        if (keyed) this.db.putSync(keyed, uid);
        results.push(uid);
      }
      for (const l of last.values()) this.db.putSync(l.key, l.uid);
    }).then(
      () => ops.forEach((op, i) => {
        const r = results[i];
        if (op.kind === 'folder') op.done(r === true);
        else op.done(Number(r));
      }),
      (err: unknown) => ops.forEach((op) => op.fail(err)),
    );
  }

  async list(ref: FolderRef): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const start = ['obj', ref.conversationId, ref.contributionId, 0];
    const end = ['obj', ref.conversationId, ref.contributionId, Number.MAX_SAFE_INTEGER];
    for (const { key, value } of this.db.getRange({ start, end })) {
      if (typeof value === 'number') continue;
      out.push({
        uid: Number(key[3]), contentType: value.contentType, data: Buffer.from(value.data), storedAt: value.storedAt,
        ...(value.key === undefined ? {} : { key: value.key }),
      });
    }
    return out;
  }

  async sessions(conversationId: string): Promise<string[]> {
    const out: string[] = [];
    const start = ['folder', conversationId, ''];
    for (const { key } of this.db.getRange({ start })) {
      if (key[0] !== 'folder' || key[1] !== conversationId) break;
      out.push(String(key[2]));
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.batch.length > 0) this.commit();
    await settlesWithin(this.db.close());
  }
}
