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

const EMPTY = Buffer.alloc(0);

// The interface and its types live in mss.ts; re-exported for the existing importers.
export { SESSION_INFO_TYPE, type FolderRef, type MessageStore, type SessionInfo, type StoredObject };

/**
 * What one appendMany writes, in order: runs of objects without a key (one record per
 * folder until an object with a key comes between), and objects with a key. `items`
 * and `item` are the positions in the call, for the UIDs it returns.
 */
type Segment =
  | { kind: 'run'; ref: FolderRef; items: number[]; objects: RunObject[]; record: Buffer }
  | { kind: 'keyed'; ref: FolderRef; item: number; key: string; retry: boolean; row: Row };

function segmentsOf(items: readonly AppendItem[], now: number): Segment[] {
  type Run = Extract<Segment, { kind: 'run' }>;
  const segments: Segment[] = [];
  const open = new Map<string, Run>();
  const idOf = (r: FolderRef): string => `${r.conversationId}\0${r.contributionId}`;
  let last: Run | undefined; // most calls hold one folder: its run, without a map lookup
  items.forEach(({ ref, contentType, data, opts }, i) => {
    const same = last !== undefined && last.ref.conversationId === ref.conversationId && last.ref.contributionId === ref.contributionId;
    if (opts?.key !== undefined) {
      open.delete(idOf(ref)); // objects after this one start a new run
      if (same) last = undefined;
      segments.push({ kind: 'keyed', ref, item: i, key: opts.key, retry: opts.retry === true, row: { contentType, data, storedAt: new Date(now).toISOString(), key: opts.key } });
      return;
    }
    let run = same ? last : open.get(idOf(ref));
    if (!run) {
      run = { kind: 'run', ref, items: [], objects: [], record: EMPTY };
      open.set(idOf(ref), run);
      segments.push(run);
    }
    last = run;
    run.items.push(i);
    run.objects.push({ contentType, data, at: now, direction: opts?.direction });
  });
  for (const seg of segments) if (seg.kind === 'run') seg.record = encodeRun(seg.objects);
  return segments;
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
   * last UID is read and written once. The records are built before the transaction, so
   * the items are not kept alive until LMDB's writer gets to it.
   */
  async appendMany(items: readonly AppendItem[]): Promise<number[]> {
    const segments = segmentsOf(items, Date.now());
    const uids = new Array<number>(items.length);
    await this.db.transaction(() => {
      const folders = new Map<string, { ref: FolderRef; uid: number }>();
      for (const seg of segments) {
        const { conversationId: conv, contributionId: contrib } = seg.ref;
        const id = `${conv}\0${contrib}`;
        let f = folders.get(id);
        if (!f) {
          const last = this.db.get(['folder', conv, contrib]);
          folders.set(id, f = { ref: seg.ref, uid: typeof last === 'number' ? last : 0 });
        }
        if (seg.kind === 'run') {
          this.db.putSync(['run', conv, contrib, f.uid + 1], seg.record);
          for (const i of seg.items) uids[i] = ++f.uid;
          continue;
        }
        // An object with a key: a record of its own, and the key's UID (the idempotency check).
        const keyed = ['key', conv, contrib, seg.key];
        const had = seg.retry ? this.db.get(keyed) : undefined;
        if (typeof had === 'number') {
          uids[seg.item] = had;
          continue;
        }
        const uid = ++f.uid;
        this.db.putSync(['obj', conv, contrib, uid], seg.row);
        this.db.putSync(keyed, uid);
        uids[seg.item] = uid;
      }
      for (const f of folders.values()) this.db.putSync(['folder', f.ref.conversationId, f.ref.contributionId], f.uid);
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
    // A damaged run: the UIDs it no longer holds are reported, not skipped. Its count is
    // not trusted beyond the folder's last UID, nor over UIDs another record holds.
    const stored = this.db.get(['folder', ref.conversationId, ref.contributionId]);
    const lastUid = typeof stored === 'number' ? stored : 0;
    const lost: number[] = [];
    for (const { key, value } of this.db.getRange(range('run'))) {
      if (!(value instanceof Uint8Array)) continue;
      const first = Number(key[3]);
      const { count, objects } = decodeRun(value);
      objects.forEach((o, i) => out.push({
        uid: first + i, contentType: o.contentType, data: o.data, storedAt: new Date(o.at).toISOString(),
        ...(o.key === undefined ? {} : { key: o.key }),
      }));
      const end = Math.min(first + Math.max(count, 1) - 1, lastUid);
      for (let uid = first + objects.length; uid <= end; uid++) lost.push(uid);
    }
    const held = new Set(out.map(o => o.uid));
    for (const uid of lost) {
      if (!held.has(uid)) out.push({ uid, contentType: '', data: Buffer.alloc(0), storedAt: new Date(0).toISOString(), problem: 'malformed' });
    }
    return out.sort((a, b) => a.uid - b.uid);
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
