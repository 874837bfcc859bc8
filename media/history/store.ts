// Conversation history (CR 8.5; docs/history.md): the embedded store. Mirrors the
// Message Storage Server's IMAP layout:
//   <Conversation-ID>/                 conversation folder
//     <Contribution-ID>/               session history folder
//       uid 1: Application/X-CPM-Session   session info object
//       uid n: message/cpim                each chat message / disposition notification
// The embedded default keeps it in LMDB on disk, so it survives a restart. Keys:
//   ['folder', conv, contrib]           the folder's last UID
//   ['obj', conv, contrib, uid]         one object (Row): the session info object, an object with a key
//   ['run', conv, contrib, firstUid]    objects with consecutive UIDs from one appendMany (run.ts)
//   ['key', conv, contrib, key]         the UID of the object stored with that idempotency key

import { open, type RootDatabase } from 'lmdb';
import {
  formatSessionInfo, SESSION_INFO_TYPE,
  type AppendItem, type AppendOptions, type FolderRef, type MessageStore, type SessionInfo, type StoredObject,
} from './mss.js';
import { settlesWithin } from '../../lib/lmdb-commit-guard.js';
import { decodeRun, encodeRun, type RunObject } from './run.js';

// The interface and its types live in mss.ts; re-exported for the existing importers.
export { SESSION_INFO_TYPE, type FolderRef, type MessageStore, type SessionInfo, type StoredObject };

/** One folder's state in an appendMany transaction. */
interface Folder {
  readonly ref: FolderRef;
  uid: number;
  /** Objects without a key, UIDs runFirst, runFirst + 1, ...: written as one run record. */
  run: RunObject[];
  runFirst: number;
}

interface Row {
  contentType: string;
  data: Buffer;
  storedAt: string;
  key?: string;
}

/** IMAP folder names may not hold the hierarchy separator; keys are arrays, so any string works. */
export class LmdbMessageStore implements MessageStore {
  private readonly db: RootDatabase<Row | number | Uint8Array, (string | number)[]>;

  constructor(path: string) {
    this.db = open<Row | number | Uint8Array, (string | number)[]>({ path, compression: false });
  }

  async ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<{ created: boolean; infoUid: number }> {
    const key = ['folder', ref.conversationId, ref.contributionId];
    const text = formatSessionInfo(ref, info);
    let created = false;
    await this.db.transaction(() => {
      if (this.db.get(key) !== undefined) return;
      created = true;
      this.db.putSync(key, 1);
      this.db.putSync(['obj', ref.conversationId, ref.contributionId, 1], {
        contentType: SESSION_INFO_TYPE,
        data: Buffer.from(text, 'utf8'),
        storedAt: new Date().toISOString(),
      });
    });
    return { created, infoUid: 1 };
  }

  async append(ref: FolderRef, contentType: string, data: Buffer, opts: AppendOptions = {}): Promise<number> {
    const [uid] = await this.appendMany([{ ref, contentType, data, opts }]);
    return uid!;
  }

  /**
   * One transaction. Objects without a key go into one run record per folder (run.ts), so
   * a turn of the relay's messages costs a few puts, not a few per message; each folder's
   * last UID is read and written once.
   */
  async appendMany(items: readonly AppendItem[]): Promise<number[]> {
    const uids: number[] = [];
    const now = Date.now();
    await this.db.transaction(() => {
      uids.length = 0;
      const folders = new Map<string, Folder>();
      for (const { ref, contentType, data, opts = {} } of items) {
        const f = this.folder(folders, ref);
        if (opts.key === undefined) {
          if (f.run.length === 0) f.runFirst = f.uid + 1;
          f.run.push({ contentType, data, at: now, ...(opts.direction ? { direction: opts.direction } : {}) });
          uids.push(++f.uid);
          continue;
        }
        // An object with a key: a record of its own, and the key's UID (the idempotency check).
        const keyed = ['key', ref.conversationId, ref.contributionId, opts.key];
        const had = opts.retry ? this.db.get(keyed) : undefined;
        if (typeof had === 'number') {
          uids.push(had);
          continue;
        }
        this.writeRun(f); // the run so far keeps the UIDs before this object's
        const uid = ++f.uid;
        this.db.putSync(['obj', ref.conversationId, ref.contributionId, uid], {
          contentType, data, storedAt: new Date(now).toISOString(), key: opts.key,
        });
        this.db.putSync(keyed, uid);
        uids.push(uid);
      }
      for (const f of folders.values()) {
        this.writeRun(f);
        this.db.putSync(['folder', f.ref.conversationId, f.ref.contributionId], f.uid);
      }
    });
    return uids;
  }

  async list(ref: FolderRef): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const range = (kind: string): { start: (string | number)[]; end: (string | number)[] } => ({
      start: [kind, ref.conversationId, ref.contributionId, 0],
      end: [kind, ref.conversationId, ref.contributionId, Number.MAX_SAFE_INTEGER],
    });
    for (const { key, value } of this.db.getRange(range('obj'))) {
      if (typeof value !== 'object' || value instanceof Uint8Array) continue;
      out.push({
        uid: Number(key[3]), contentType: value.contentType, data: Buffer.from(value.data), storedAt: value.storedAt,
        ...(value.key === undefined ? {} : { key: value.key }),
      });
    }
    for (const { key, value } of this.db.getRange(range('run'))) {
      if (!(value instanceof Uint8Array)) continue;
      const first = Number(key[3]);
      const { count, objects } = decodeRun(value);
      objects.forEach((o, i) => out.push({
        uid: first + i, contentType: o.contentType, data: o.data, storedAt: new Date(o.at).toISOString(),
        ...(o.key === undefined ? {} : { key: o.key }),
      }));
      // A damaged record: the objects it no longer holds are reported, not skipped.
      for (let i = objects.length; i < Math.max(count, 1); i++) {
        out.push({ uid: first + i, contentType: '', data: Buffer.alloc(0), storedAt: new Date(0).toISOString(), problem: 'malformed' });
      }
    }
    return out.sort((a, b) => a.uid - b.uid);
  }

  private folder(folders: Map<string, Folder>, ref: FolderRef): Folder {
    const id = `${ref.conversationId}\0${ref.contributionId}`;
    let f = folders.get(id);
    if (!f) {
      const last = this.db.get(['folder', ref.conversationId, ref.contributionId]);
      f = { ref, uid: typeof last === 'number' ? last : 0, run: [], runFirst: 0 };
      folders.set(id, f);
    }
    return f;
  }

  private writeRun(f: Folder): void {
    if (f.run.length === 0) return;
    this.db.putSync(['run', f.ref.conversationId, f.ref.contributionId, f.runFirst], encodeRun(f.run));
    f.run = [];
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
    await settlesWithin(this.db.close());
  }
}
