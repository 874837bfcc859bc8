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
  type AppendItem, type AppendOptions, type FolderRef, type MessageStore, type SessionInfo, type StoredObject,
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

/** IMAP folder names may not hold the hierarchy separator; keys are arrays, so any string works. */
export class LmdbMessageStore implements MessageStore {
  private readonly db: RootDatabase<Row | number, (string | number)[]>;

  constructor(path: string) {
    this.db = open<Row | number, (string | number)[]>({ path, compression: false });
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

  /** One transaction: each folder's last UID is read and written once, whatever the number of objects. */
  async appendMany(items: readonly AppendItem[]): Promise<number[]> {
    const uids: number[] = [];
    const now = new Date().toISOString();
    await this.db.transaction(() => {
      uids.length = 0;
      const last = new Map<string, { key: (string | number)[]; uid: number }>();
      for (const { ref, contentType, data, opts = {} } of items) {
        // An object's key, when it has one: ['key', conv, contrib, key] -> UID (the idempotency check).
        const keyed = opts.key === undefined ? undefined : ['key', ref.conversationId, ref.contributionId, opts.key];
        const had = keyed && opts.retry ? this.db.get(keyed) : undefined;
        if (typeof had === 'number') {
          uids.push(had);
          continue;
        }
        const id = `${ref.conversationId}\0${ref.contributionId}`;
        let folder = last.get(id);
        if (!folder) {
          const key = ['folder', ref.conversationId, ref.contributionId];
          const stored = this.db.get(key);
          folder = { key, uid: typeof stored === 'number' ? stored : 0 };
          last.set(id, folder);
        }
        const uid = ++folder.uid;
        this.db.putSync(['obj', ref.conversationId, ref.contributionId, uid], {
          contentType,
          data,
          storedAt: now,
          ...(opts.key === undefined ? {} : { key: opts.key }),
        });
        if (keyed) this.db.putSync(keyed, uid);
        uids.push(uid);
      }
      for (const f of last.values()) this.db.putSync(f.key, f.uid);
    });
    return uids;
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
    await settlesWithin(this.db.close());
  }
}
