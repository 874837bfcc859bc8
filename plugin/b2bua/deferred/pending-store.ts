/**
 * Pending deliveries (docs/deferred.md "Delivery"): the deferred sessions whose caller has
 * left (./record.ts, handed over by the B2BUA), kept durably until their stored messages
 * reach a device of the served user, are discarded (a 603, CR 8.3.2.1.1), or expire at
 * the record's `expiresAt`. Each entry also carries what the delivery needs to resume
 * after a restart: whether messages and notifications are still pending, the latest
 * conference state of a group session (RFC 4575), its subscription, and the delivery call
 * in flight.
 *
 * `PendingDeliveries` is what the driver needs; `LmdbPendingDeliveries` keeps entries in
 * their own LMDB environment beside the call store (`<dataDir>/b2bua-pending`), every
 * write durable before it resolves; `MemoryPendingDeliveries` in a map (tests);
 * `RedisPendingDeliveries` (./pending-redis.ts) on the shared engine, one interface suite
 * for all (test/unit/b2bua/deferred/pending-suite.ts). Each entry has a claim beside it,
 * the node delivering it (./claim.ts); removing an entry removes its claim.
 * Entries are checked against `PendingEntrySchema` on read; a damaged one is reported
 * and skipped.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { DurableLmdbStore } from '../../lmdb/durable.js';
import { DialogSchema } from '../sip/dialog.js';
import { DeferredRecordSchema, type DeferredRecord } from './record.js';
import type { ClaimStore } from './claim.js';
import { settlesWithin } from '../../../lib/lmdb-commit-guard.js';

export const PENDING_VERSION = 1;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const ParticipantSchema = Type.Object(
  { uri: Type.String({ minLength: 1, maxLength: 1024 }), name: Type.Optional(Type.String({ maxLength: 256 })) },
  { additionalProperties: false },
);

export const ConferenceStateSchema = Type.Object(
  { version: Type.Integer({ minimum: 0 }), participants: Type.Array(ParticipantSchema, { maxItems: 1000 }) },
  { additionalProperties: false },
);

/** Our SUBSCRIBE dialog to the focus (RFC 6665), for its refresh and its end. */
export const SubscriptionSchema = Type.Object(
  {
    /** Null until the 2xx (or the first NOTIFY) made the dialog. */
    dialog: Nullable(DialogSchema),
    /** Call-ID and From-tag of our SUBSCRIBE: a NOTIFY naming them is ours even before the 2xx. */
    callId: Type.String({ minLength: 1 }),
    localTag: Type.String({ minLength: 1 }),
    /** When the subscription lapses unless refreshed (epoch ms). */
    expiresAt: Type.Number(),
  },
  { additionalProperties: false },
);

/** The delivery call in flight (its Call-ID is the relay's delivery session key). */
export const AttemptSchema = Type.Object(
  {
    callId: Type.String({ minLength: 1 }),
    what: Type.Union([Type.Literal('messages'), Type.Literal('notifications')]),
    /** The confirmed dialog, once the peer's 200 came: a restart can still end it with BYE. */
    dialog: Nullable(DialogSchema),
    startedAt: Type.Number(),
  },
  { additionalProperties: false },
);

export const PendingEntrySchema = Type.Object(
  {
    v: Type.Literal(PENDING_VERSION),
    record: DeferredRecordSchema,
    /** When the B2BUA handed it over (epoch ms): deliveries go in this order. */
    createdAt: Type.Number(),
    /** The deferring call is still up (its caller there): a REGISTER joins that call, no delivery call. */
    live: Type.Boolean(),
    /** Stored messages not yet delivered to a device. */
    messages: Type.Boolean(),
    /** Disposition notifications pending for the original sender (relay `deferred-state`). */
    notifications: Type.Boolean(),
    conference: Nullable(ConferenceStateSchema),
    subscription: Nullable(SubscriptionSchema),
    attempt: Nullable(AttemptSchema),
  },
  { additionalProperties: false },
);

export type PendingEntry = Static<typeof PendingEntrySchema>;
export type ConferenceStateRecord = Static<typeof ConferenceStateSchema>;
export type Subscription = Static<typeof SubscriptionSchema>;
export type Attempt = Static<typeof AttemptSchema>;

const check = TypeCompiler.Compile(PendingEntrySchema);

/** A new entry for a record the B2BUA handed over. */
/** How long the relay keeps a deferred-id's notifications for the sender past its expiry (media/relay/deferral.ts). */
export const NOTIFICATION_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * Until when a store keeps an entry (its sweep): `expiresAt`, or with notifications for the
 * sender pending, as long as the relay keeps those (the driver's sweep removes it earlier
 * once the relay's deferred-state says none are left). Pure.
 */
export function keptUntil(e: PendingEntry): number {
  return e.notifications ? e.record.expiresAt + NOTIFICATION_TTL_MS : e.record.expiresAt;
}

export function newEntry(record: DeferredRecord, now: number, live = false): PendingEntry {
  return { v: PENDING_VERSION, record, createdAt: now, live, messages: true, notifications: false, conference: null, subscription: null, attempt: null };
}

/** A stored entry back, or why it cannot be used. Pure. */
export function parseEntry(text: string): { ok: true; entry: PendingEntry } | { ok: false; why: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  if (!check.Check(v)) {
    const e = check.Errors(v).First();
    return { ok: false, why: e ? `${e.path || '/'}: ${e.message}` : 'does not fit the schema' };
  }
  return { ok: true, entry: v };
}

/** Delivery order of one user's entries: creation time, then deferred-id. Pure. */
export function byCreation(a: PendingEntry, b: PendingEntry): number {
  return a.createdAt - b.createdAt || (a.record.deferredId < b.record.deferredId ? -1 : a.record.deferredId > b.record.deferredId ? 1 : 0);
}

/** Where pending deliveries are kept. Every write resolves once durable. */
export interface PendingDeliveries extends ClaimStore {
  /** Insert or replace (keyed by the record's deferredId). */
  put(entry: PendingEntry): Promise<void>;
  get(deferredId: string): Promise<PendingEntry | null>;
  /** Idempotent. */
  remove(deferredId: string): Promise<void>;
  /** One user's entries not expired at `now`, in creation order. */
  forUser(servedUser: string, now: number): Promise<PendingEntry[]>;
  /** Every entry not expired at `now` (a restart resumes subscriptions and calls in flight). */
  all(now: number): Promise<PendingEntry[]>;
  /** Remove the entries expired at `now` (and their claims); their deferredIds. */
  sweep(now: number): Promise<string[]>;
  close(): Promise<void>;
}

export type BadEntry = (key: string, why: string) => void;

/** In memory (tests); entries kept as text, so a test can damage one. */
export class MemoryPendingDeliveries implements PendingDeliveries {
  readonly records = new Map<string, string>();
  readonly claims = new Map<string, string>();
  constructor(private readonly onBad: BadEntry = () => {}) {}
  async claimant(deferredId: string): Promise<string | null> {
    return this.claims.get(deferredId) ?? null;
  }
  async casClaim(deferredId: string, expected: string | null, next: string | null): Promise<boolean> {
    if ((this.claims.get(deferredId) ?? null) !== expected) return false;
    if (next === null) this.claims.delete(deferredId);
    else this.claims.set(deferredId, next);
    return true;
  }
  async put(entry: PendingEntry): Promise<void> {
    this.records.set(entry.record.deferredId, JSON.stringify(entry));
  }
  async get(deferredId: string): Promise<PendingEntry | null> {
    return this.#read(deferredId, this.records.get(deferredId));
  }
  async remove(deferredId: string): Promise<void> {
    this.records.delete(deferredId);
    this.claims.delete(deferredId);
  }
  async forUser(servedUser: string, now: number): Promise<PendingEntry[]> {
    return (await this.all(now)).filter((e) => e.record.servedUser === servedUser);
  }
  async all(now: number): Promise<PendingEntry[]> {
    const out: PendingEntry[] = [];
    for (const [k, v] of this.records) {
      const e = this.#read(k, v);
      if (e && e.record.expiresAt > now) out.push(e);
    }
    return out.sort(byCreation);
  }
  async sweep(now: number): Promise<string[]> {
    const gone: string[] = [];
    for (const [k, v] of [...this.records]) {
      const e = this.#read(k, v);
      if (e && keptUntil(e) <= now) {
        this.records.delete(k);
        this.claims.delete(k);
        gone.push(k);
      }
    }
    return gone;
  }
  async close(): Promise<void> {}
  #read(key: string, text: string | undefined): PendingEntry | null {
    if (text === undefined) return null;
    const r = parseEntry(text);
    if (!r.ok) {
      this.onBad(key, r.why);
      return null;
    }
    return r.entry;
  }
}

/** The user index key: served user, creation time, deferred-id (LMDB orders array keys). */
type IndexKey = [string, number, string];

/**
 * In LMDB: `pending` (deferredId -> entry JSON), `by-user` ([servedUser, createdAt,
 * deferredId] -> '') and `claims` (deferredId -> node) in one environment, written in one
 * transaction, each write flushed to disk before it resolves.
 */
export class LmdbPendingDeliveries extends DurableLmdbStore<string, string> implements PendingDeliveries {
  constructor(
    private readonly root: RootDatabase,
    db: Database<string, string>,
    private readonly index: Database<string, IndexKey>,
    /** Null: a read-only look at the entries (a test's snapshot), no claims. */
    private readonly claims: Database<string, string> | null = null,
    private readonly onBad: BadEntry = () => {},
  ) {
    super(db);
  }

  async claimant(deferredId: string): Promise<string | null> {
    return this.claims?.get(deferredId) ?? null;
  }

  async casClaim(deferredId: string, expected: string | null, next: string | null): Promise<boolean> {
    const claims = this.claims;
    if (claims === null) throw new Error('pending deliveries opened without claims');
    return this.writeDurably(() => {
      if ((claims.get(deferredId) ?? null) !== expected) return false;
      this.inTransaction(next === null ? claims.remove(deferredId) : claims.put(deferredId, next));
      return true;
    });
  }

  async put(entry: PendingEntry): Promise<void> {
    const id = entry.record.deferredId;
    await this.writeDurably(() => {
      const old = this.#read(id, this.db.get(id));
      if (old) this.inTransaction(this.index.remove(this.#indexKey(old)));
      this.inTransaction(this.db.put(id, JSON.stringify(entry)));
      this.inTransaction(this.index.put(this.#indexKey(entry), ''));
    });
  }

  async get(deferredId: string): Promise<PendingEntry | null> {
    return this.#read(deferredId, this.db.get(deferredId));
  }

  async remove(deferredId: string): Promise<void> {
    await this.writeDurably(() => {
      const old = this.#read(deferredId, this.db.get(deferredId));
      if (old) this.inTransaction(this.index.remove(this.#indexKey(old)));
      this.inTransaction(this.db.remove(deferredId));
      if (this.claims) this.inTransaction(this.claims.remove(deferredId));
    });
  }

  async forUser(servedUser: string, now: number): Promise<PendingEntry[]> {
    const out: PendingEntry[] = [];
    for (const { key } of this.index.getRange({ start: [servedUser], end: [servedUser, Number.MAX_SAFE_INTEGER, '\uffff'] })) {
      const id = key[2];
      const e = this.#read(id, this.db.get(id));
      if (e && e.record.servedUser === servedUser && e.record.expiresAt > now) out.push(e);
    }
    return out.sort(byCreation);
  }

  async all(now: number): Promise<PendingEntry[]> {
    const out: PendingEntry[] = [];
    for (const { key, value } of this.db.getRange()) {
      const e = this.#read(String(key), value);
      if (e && e.record.expiresAt > now) out.push(e);
    }
    return out.sort(byCreation);
  }

  async sweep(now: number): Promise<string[]> {
    return this.writeDurably(() => {
      const gone: string[] = [];
      for (const { key, value } of this.db.getRange()) {
        const e = this.#read(String(key), value);
        if (!e || keptUntil(e) > now) continue;
        this.inTransaction(this.index.remove(this.#indexKey(e)));
        this.inTransaction(this.db.remove(String(key)));
        if (this.claims) this.inTransaction(this.claims.remove(String(key)));
        gone.push(String(key));
      }
      return gone;
    });
  }

  override async close(): Promise<void> {
    if (!this.isOpen) return;
    await super.close();
    await settlesWithin(this.root.close());
  }

  #indexKey(e: PendingEntry): IndexKey {
    return [e.record.servedUser, e.createdAt, e.record.deferredId];
  }

  #read(key: string, text: string | undefined): PendingEntry | null {
    if (text === undefined) return null;
    const r = parseEntry(typeof text === 'string' ? text : String(text));
    if (!r.ok) {
      this.onBad(key, r.why);
      return null;
    }
    return r.entry;
  }
}

/** Open (create) the store in `path`, a directory of its own. */
export function openLmdbPendingDeliveries(path: string, onBad?: BadEntry): LmdbPendingDeliveries {
  mkdirSync(path, { recursive: true });
  const root = open({ path, maxDbs: 3 });
  const db = root.openDB<string, string>({ name: 'pending', encoding: 'string' });
  const index = root.openDB<string, IndexKey>({ name: 'by-user', encoding: 'string' });
  const claims = root.openDB<string, string>({ name: 'claims', encoding: 'string' });
  return new LmdbPendingDeliveries(root, db, index, claims, onBad);
}
