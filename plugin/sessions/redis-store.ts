/**
 * Who is in which session on the shared-state engine (docs/decisions/0003-shared-state-engine.md
 * "Session-Replaces state"): every Kamailio node tells a service instance of its dialogs
 * (pf.dialog.start / pf.dialog.end), every instance reads every session. Same contract as
 * LocalSessionStore (plugin/sessions/store.ts).
 *
 * - Session key `<prefix>:sess:{<base64url(Contribution-ID)>}`, value its dialogs as JSON
 *   (`until` in the engine's clock), TTL the latest dialog's `until`: the engine drops a
 *   session whose dialogs all ended without BYE.
 * - Dialog key `<prefix>:sdlg:{<base64url(dialog)>}`, value the Contribution-ID, same TTL
 *   as the dialog: a BYE through any node finds the session (a BYE carries no
 *   Contribution-ID).
 * - Reads (`entry`) are synchronous from an in-memory copy of every session, loaded at
 *   start and kept current by the notices each write publishes (`<prefix>:changed:sess`).
 * - Writes are compare-and-set (CAS_ATTEMPTS); engine down: they fail with
 *   SharedStateError, reads answer from the copy.
 */
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CAS_ATTEMPTS, SharedStateError, fromKeyPart, keyPart, type SharedEngine } from '../shared-state/redis.js';
import { DIALOGS_MAX, DIALOG_TTL_MS, entryOf, lineField, withDialog, withoutDialog, type DialogRecord, type DialogStart, type SessionStore } from './store.js';

const StoredDialogs = Type.Array(
  Type.Object({ dialog: Type.String(), ruri: Type.String(), contact: Type.String(), until: Type.Number() }),
);

// the schema and DialogRecord must stay the same shape
const sameShape: (d: DialogRecord) => (typeof StoredDialogs.static)[number] = (d) => d;
void sameShape;

export interface RedisSessionStoreOptions {
  readonly prefix?: string;
  /** Dialogs kept at most, over every session (default DIALOGS_MAX). */
  readonly maxDialogs?: number;
  /** A stored value that does not pass the schema (skipped: no session). */
  readonly onBadRecord?: (key: string, why: string) => void;
}

export class RedisSessionStore implements SessionStore {
  private open = true;
  /** Every session's dialogs, by Contribution-ID, `until` in our clock. */
  private readonly copy = new Map<string, readonly DialogRecord[]>();
  /** Dialogs in the copy (every instance's, live or not yet dropped). */
  private dialogs = 0;
  private starts = 0;
  private readonly changeListeners = new Set<(cid: string) => void>();
  private readonly prefix: string;

  private constructor(
    private readonly engine: SharedEngine,
    private readonly opts: RedisSessionStoreOptions,
  ) {
    this.prefix = opts.prefix ?? 'pf';
  }

  /** Subscribe to change notices, then load every session. */
  static async open(engine: SharedEngine, opts: RedisSessionStoreOptions = {}): Promise<RedisSessionStore> {
    const s = new RedisSessionStore(engine, opts);
    await engine.subscribe(s.channel, (notice) => void s.refresh(fromKeyPart(notice)).catch(() => undefined));
    engine.onResync(() => void s.reload().catch(() => undefined));
    await s.reload();
    return s;
  }

  private get channel(): string {
    return `${this.prefix}:changed:sess`;
  }

  private key(cid: string): string {
    return `${this.prefix}:sess:{${keyPart(cid)}}`;
  }

  private dialogKey(dialog: string): string {
    return `${this.prefix}:sdlg:{${keyPart(dialog)}}`;
  }

  /** Called with each session that changed here or on another instance (tests). */
  onChange(listener: (cid: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private decode(key: string, raw: string | null): readonly DialogRecord[] {
    if (raw === null) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this.opts.onBadRecord?.(key, 'not JSON');
      return [];
    }
    if (!Value.Check(StoredDialogs, parsed)) {
      this.opts.onBadRecord?.(key, 'does not match the session schema');
      return [];
    }
    const off = this.engine.offsetMs;
    return off === 0 ? parsed : parsed.map((r) => ({ ...r, until: r.until - off }));
  }

  private encode(records: readonly DialogRecord[]): string {
    const off = this.engine.offsetMs;
    return JSON.stringify(records.map((r) => ({ dialog: r.dialog, ruri: r.ruri, contact: r.contact, until: r.until + off })));
  }

  private set(cid: string, records: readonly DialogRecord[]): void {
    this.dialogs += records.length - (this.copy.get(cid)?.length ?? 0);
    if (records.length === 0) this.copy.delete(cid);
    else this.copy.set(cid, records);
    for (const l of this.changeListeners) l(cid);
  }

  private async refresh(cid: string): Promise<void> {
    if (!this.open) return;
    const key = this.key(cid);
    this.set(cid, this.decode(key, await this.engine.get(key)));
  }

  private async reload(): Promise<void> {
    const prefix = `${this.prefix}:sess:{`;
    const seen = new Set<string>();
    for await (const keys of this.engine.scan(`${prefix}*`)) {
      for (const key of keys) {
        if (!key.startsWith(prefix) || !key.endsWith('}')) continue;
        const cid = fromKeyPart(key.slice(prefix.length, -1));
        seen.add(cid);
        await this.refresh(cid);
      }
    }
    for (const cid of [...this.copy.keys()]) if (!seen.has(cid)) this.set(cid, []);
  }

  /** Compare-and-set the session `cid` to `change(records)` until it lands; false when `change` gives null (nothing to do). */
  private async update(cid: string, now: number, change: (records: readonly DialogRecord[]) => DialogRecord[] | null): Promise<boolean> {
    if (!this.open) throw new Error('session store is closed');
    const key = this.key(cid);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = await this.engine.get(key);
      const records = change(this.decode(key, raw));
      if (records === null) return false;
      const next = records.length === 0 ? null : this.encode(records);
      const ttl = Math.max(0, ...records.map((r) => r.until)) - now;
      if (raw === null && next === null) return false;
      if (await this.engine.cas(key, raw, next, ttl, this.channel, keyPart(cid))) {
        this.set(cid, records);
        return true;
      }
    }
    throw new SharedStateError(`session store: ${CAS_ATTEMPTS} concurrent writers on one session, gave up`);
  }

  /**
   * Drop from the copy the dialogs that ended without BYE: the engine expires their keys
   * without a notice, so the copy would keep them (entry() already leaves them out).
   */
  private sweep(now: number): void {
    for (const [cid, records] of this.copy) {
      const live = records.filter((r) => r.until > now);
      if (live.length !== records.length) this.set(cid, live);
    }
  }

  async start(d: DialogStart, now: number): Promise<boolean> {
    const max = this.opts.maxDialogs ?? DIALOGS_MAX;
    if (++this.starts % 1024 === 0 || this.dialogs >= max) this.sweep(now);
    if (this.dialogs >= max) return false;
    const recorded = await this.update(d.cid, now, (records) => withDialog(records, d, now));
    if (!recorded) return false;
    // the dialog's way back to its session, for a BYE through any node
    const dkey = this.dialogKey(lineField(d.dialog));
    const cur = await this.engine.get(dkey);
    await this.engine.cas(dkey, cur, d.cid, DIALOG_TTL_MS, `${this.prefix}:changed:sdlg`, '');
    return true;
  }

  async end(callId: string, tags: readonly string[], now: number): Promise<boolean> {
    for (const tag of tags) {
      const dialog = lineField(`${callId};${tag}`);
      const dkey = this.dialogKey(dialog);
      const cid = await this.engine.get(dkey);
      if (cid === null) continue;
      const ended = await this.update(cid, now, (records) => withoutDialog(records, dialog, now));
      await this.engine.cas(dkey, cid, null, 0, `${this.prefix}:changed:sdlg`, '');
      if (ended) return true;
    }
    return false;
  }

  entry(cid: string, now: number): string | undefined {
    const records = this.copy.get(cid);
    return records ? entryOf(records, now) : undefined;
  }

  close(): Promise<void> {
    this.open = false;
    this.changeListeners.clear();
    return Promise.resolve();
  }
}
