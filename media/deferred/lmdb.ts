// The deferred store in an LMDB file of the relay's data dir (media/deferred/store.ts;
// docs/deferred.md "In the relay"). Layout, one root database with array keys:
//
//   ['r', id]                          the record (`defer`): callId, servedUser, expiresAt
//   ['s', id]                          the last seq given out for id
//   ['i', id, 'm' | 'n', seq]          an item: messages ('m') and notifications ('n')
//   ['x', expiresAt, id, 'm' | 'n', seq]  expiry index, read by the sweep in time order
//   ['t']                              totals: items and payload bytes (the bounds)
//
// Every change is one transaction; a write resolves only once LMDB reports it flushed
// to disk (`flushed`), so an item acknowledged with MSRP 200 survives a crash, and a
// removal (done, discarded, expired) is never undone by one.

import { open, type RootDatabase } from 'lmdb';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  DEFAULT_BOUNDS,
  type AppendResult, type DeferredBounds, type DeferredCounts, type DeferredRecord, type DeferredStore, type ExpiredBatch,
  type ExpiryNotice, type ItemKind, type NewItem, type StoredItem,
} from './store.js';
import { flushedWithin, settlesWithin } from '../../lib/lmdb-commit-guard.js';

type Key = (string | number)[];
type Code = 'm' | 'n';

const RecordSchema = Type.Object({ callId: Type.String(), servedUser: Type.String(), expiresAt: Type.Number() });
const RowSchema = Type.Object({
  payload: Type.Uint8Array(),
  contentType: Type.String(),
  imdnMessageId: Type.Optional(Type.String()),
  negativeDelivery: Type.Boolean(),
  sender: Type.Optional(Type.String()),
  expiresAt: Type.Number(),
  storedAt: Type.Number(),
});
const TotalsSchema = Type.Object({ items: Type.Number(), bytes: Type.Number() });
type Row = Static<typeof RowSchema>;
type Totals = Static<typeof TotalsSchema>;
const isRecord = TypeCompiler.Compile(RecordSchema);
const isRow = TypeCompiler.Compile(RowSchema);
const isTotals = TypeCompiler.Compile(TotalsSchema);

const MAX_SEQ = Number.MAX_SAFE_INTEGER;
const code = (k: ItemKind): Code => (k === 'messages' ? 'm' : 'n');
const TOTALS: Key = ['t'];

function toItem(seq: number, r: Row): StoredItem {
  return {
    seq, storedAt: r.storedAt, expiresAt: r.expiresAt, payload: Buffer.from(r.payload), contentType: r.contentType,
    negativeDelivery: r.negativeDelivery,
    ...(r.imdnMessageId === undefined ? {} : { imdnMessageId: r.imdnMessageId }),
    ...(r.sender === undefined ? {} : { sender: r.sender }),
  };
}

function toRow(item: NewItem, storedAt: number): Row {
  return {
    payload: item.payload, contentType: item.contentType, negativeDelivery: item.negativeDelivery, expiresAt: item.expiresAt, storedAt,
    ...(item.imdnMessageId === undefined ? {} : { imdnMessageId: item.imdnMessageId }),
    ...(item.sender === undefined ? {} : { sender: item.sender }),
  };
}

export interface LmdbDeferredStoreOptions {
  /** LMDB file (a directory-less data file, as the history store's). */
  readonly path: string;
  readonly bounds?: Partial<DeferredBounds>;
  /** The clock of storedAt (tests). Default Date.now. */
  readonly now?: () => number;
}

export class LmdbDeferredStore implements DeferredStore {
  private readonly db: RootDatabase<unknown, Key>;
  private readonly bounds: DeferredBounds;
  private readonly now: () => number;

  constructor(o: LmdbDeferredStoreOptions) {
    this.db = open<unknown, Key>({ path: o.path, compression: false });
    this.bounds = { ...DEFAULT_BOUNDS, ...o.bounds };
    this.now = o.now ?? Date.now;
  }

  async putRecord(id: string, record: DeferredRecord): Promise<void> {
    await this.write(() => {
      this.db.putSync(['r', id], { callId: record.callId, servedUser: record.servedUser, expiresAt: record.expiresAt });
    });
  }

  async record(id: string): Promise<DeferredRecord | undefined> {
    const v = this.db.get(['r', id]);
    return isRecord.Check(v) ? v : undefined;
  }

  async append(id: string, kind: ItemKind, item: NewItem, opts: { readonly unbounded?: boolean } = {}): Promise<AppendResult> {
    if (item.payload.length > this.bounds.maxItemBytes) return { ok: false, reason: 'too-big' };
    let out: AppendResult = { ok: false, reason: 'full' };
    await this.write(() => {
      const t = this.totalsNow();
      if (!opts.unbounded) {
        if (t.items + 1 > this.bounds.maxItems || t.bytes + item.payload.length > this.bounds.maxBytes) return;
        if (this.countOf(id, 'm') + this.countOf(id, 'n') + 1 > this.bounds.maxItemsPerId) return;
      }
      out = { ok: true, seq: this.put(id, code(kind), item, t) };
    });
    return out;
  }

  async pending(id: string, kind: ItemKind, limit = MAX_SEQ): Promise<StoredItem[]> {
    const c = code(kind);
    const out: StoredItem[] = [];
    for (const { key, value } of this.db.getRange({ start: ['i', id, c, 0], end: ['i', id, c, MAX_SEQ], limit })) {
      if (isRow.Check(value)) out.push(toItem(Number(key[3]), value));
    }
    return out;
  }

  async markDone(id: string, kind: ItemKind, seq: number): Promise<boolean> {
    let removed = false;
    await this.write(() => {
      removed = this.removeItem(id, code(kind), seq);
    });
    return removed;
  }

  async discard(id: string): Promise<number> {
    let messages = 0;
    await this.write(() => {
      for (const c of ['m', 'n'] as const) {
        for (const { key } of this.db.getRange({ start: ['i', id, c, 0], end: ['i', id, c, MAX_SEQ] })) {
          if (this.removeItem(id, c, Number(key[3])) && c === 'm') messages += 1;
        }
      }
      this.db.removeSync(['r', id]);
      this.db.removeSync(['s', id]);
    });
    return messages;
  }

  async counts(id: string): Promise<DeferredCounts> {
    let oldest: number | undefined;
    for (const c of ['m', 'n'] as const) {
      for (const { value } of this.db.getRange({ start: ['i', id, c, 0], end: ['i', id, c, MAX_SEQ], limit: 1 })) {
        if (isRow.Check(value) && (oldest === undefined || value.storedAt < oldest)) oldest = value.storedAt;
      }
    }
    return { messages: this.countOf(id, 'm'), notifications: this.countOf(id, 'n'), ...(oldest === undefined ? {} : { oldest }) };
  }

  async expire(now: number, notice: ExpiryNotice, busy: ReadonlySet<string> = new Set()): Promise<ExpiredBatch[]> {
    const expired = new Map<string, number>();
    await this.write(() => {
      const due: { id: string; c: Code; seq: number }[] = [];
      for (const { key } of this.db.getRange({ start: ['x', 0], end: ['x', now + 1] })) {
        const [, , id, c, seq] = key;
        if (typeof id !== 'string' || (c !== 'm' && c !== 'n') || typeof seq !== 'number') this.db.removeSync(key);
        else if (!busy.has(id)) due.push({ id, c, seq }); // a busy id's index entries stay for the next sweep
      }
      for (const { id, c, seq } of due) {
        const row = this.db.get(['i', id, c, seq]);
        if (!this.removeItem(id, c, seq) || c !== 'm') continue;
        expired.set(id, (expired.get(id) ?? 0) + 1);
        if (!isRow.Check(row)) continue;
        const rec = this.db.get(['r', id]);
        const n = notice(toItem(seq, row), isRecord.Check(rec) ? rec : undefined);
        if (n) this.put(id, 'n', n, this.totalsNow());
      }
      // Records whose expiry passed and that hold nothing any more.
      for (const { key, value } of this.db.getRange({ start: ['r', ''], end: ['r', '\uffff'] })) {
        const id = key[1];
        if (typeof id !== 'string' || !isRecord.Check(value) || value.expiresAt > now || busy.has(id)) continue;
        if (this.countOf(id, 'm') + this.countOf(id, 'n') === 0) {
          this.db.removeSync(['r', id]);
          this.db.removeSync(['s', id]);
        }
      }
    });
    const out: ExpiredBatch[] = [];
    for (const [id, n] of expired) {
      const rec = await this.record(id);
      out.push({ id, callId: rec?.callId ?? '', expired: n, notifications: this.countOf(id, 'n') });
    }
    return out;
  }

  async totals(): Promise<{ items: number; bytes: number }> {
    return this.totalsNow();
  }

  async close(): Promise<void> {
    await settlesWithin(this.db.close());
  }

  // ---- inside a write transaction ---------------------------------------------------

  /** One transaction, resolved once flushed to disk. */
  private async write(body: () => void): Promise<void> {
    await this.db.transaction(body);
    // the sender's 200 waits for the flush, and the write fails (500) rather than come before it
    await flushedWithin(this.db.flushed);
  }

  private totalsNow(): Totals {
    const v = this.db.get(TOTALS);
    return isTotals.Check(v) ? v : { items: 0, bytes: 0 };
  }

  private countOf(id: string, c: Code): number {
    return this.db.getCount({ start: ['i', id, c, 0], end: ['i', id, c, MAX_SEQ] });
  }

  private put(id: string, c: Code, item: NewItem, t: Totals): number {
    const last = this.db.get(['s', id]);
    const seq = (typeof last === 'number' ? last : 0) + 1;
    this.db.putSync(['s', id], seq);
    this.db.putSync(['i', id, c, seq], toRow(item, this.now()));
    this.db.putSync(['x', item.expiresAt, id, c, seq], 1);
    this.db.putSync(TOTALS, { items: t.items + 1, bytes: t.bytes + item.payload.length });
    return seq;
  }

  private removeItem(id: string, c: Code, seq: number): boolean {
    const key: Key = ['i', id, c, seq];
    const row = this.db.get(key);
    if (row === undefined) return false;
    this.db.removeSync(key);
    const t = this.totalsNow();
    if (isRow.Check(row)) {
      this.db.removeSync(['x', row.expiresAt, id, c, seq]);
      this.db.putSync(TOTALS, { items: Math.max(0, t.items - 1), bytes: Math.max(0, t.bytes - row.payload.length) });
    }
    return true;
  }
}
