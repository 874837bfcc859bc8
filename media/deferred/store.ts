// The relay's deferred store (CR 8.3.2.1.1 step 3 i, 8.3.2.9; docs/deferred.md "In the
// relay"): per deferred-id, the messages stored for later delivery to the served user
// and the disposition notifications pending for the original sender, each list in
// arrival order. An item leaves the store when it is marked done (its 200 arrived),
// discarded, or expired; whatever is still there survives a restart.
//
// The interface is asynchronous so that another backend (Redis, ...) fits it; the LMDB
// implementation is media/deferred/lmdb.ts and test/media/deferred/suite.ts runs on any.

/** The two lists of a deferred-id (the wire names of `deliver`'s `what`). */
export type ItemKind = 'messages' | 'notifications';

/** An item as the relay hands it to the store. */
export interface NewItem {
  /** The complete payload as received, byte for byte (message/cpim). */
  readonly payload: Buffer;
  /** The MSRP Content-Type it came with. */
  readonly contentType: string;
  /** CPIM imdn.Message-ID (RFC 5438 §6.3), when the payload has one. */
  readonly imdnMessageId?: string;
  /** The sender asked for negative delivery notification (imdn.Disposition-Notification). */
  readonly negativeDelivery: boolean;
  /** CPIM From (addr-spec) of the payload: the original sender. */
  readonly sender?: string;
  /** ms since the epoch: the expiry sweep removes the item after this. */
  readonly expiresAt: number;
}

export interface StoredItem extends NewItem {
  /** Position in its deferred-id's order (increasing, across both lists). */
  readonly seq: number;
  /** ms since the epoch: when it was stored. */
  readonly storedAt: number;
}

/** What `defer` said about a deferred-id. */
export interface DeferredRecord {
  /** The Call-ID of the call that deferred (the `deferred-expired` event names it). */
  readonly callId: string;
  /** The served user: From of the notifications the relay generates. */
  readonly servedUser: string;
  /** ms since the epoch, as `defer` gave it. */
  readonly expiresAt: number;
}

export type AppendResult =
  | { readonly ok: true; readonly seq: number }
  /** too-big: the item alone is over maxItemBytes; full: a count or byte bound is reached. */
  | { readonly ok: false; readonly reason: 'too-big' | 'full' };

export interface DeferredBounds {
  /** Items (both lists, every deferred-id) at most. */
  readonly maxItems: number;
  /** Payload bytes (both lists, every deferred-id) at most. */
  readonly maxBytes: number;
  /** Payload bytes of one item at most. */
  readonly maxItemBytes: number;
  /** Items of one deferred-id (both lists) at most: one sender cannot fill the store. */
  readonly maxItemsPerId: number;
}

export const DEFAULT_BOUNDS: DeferredBounds = {
  maxItems: 100_000,
  maxBytes: 256 * 1024 * 1024,
  maxItemBytes: 1024 * 1024,
  maxItemsPerId: 1000,
};

export interface DeferredCounts {
  readonly messages: number;
  readonly notifications: number;
  /** storedAt of the oldest item of either list; absent when both are empty. */
  readonly oldest?: number;
}

/** What one sweep did to one deferred-id. */
export interface ExpiredBatch {
  readonly id: string;
  /** The record's Call-ID ('' when the record is gone). */
  readonly callId: string;
  /** Messages removed. */
  readonly expired: number;
  /** Notifications now pending for the sender (after the sweep's own). */
  readonly notifications: number;
}

/** For an expired message: the notification to store for its sender instead, or none. */
export type ExpiryNotice = (message: StoredItem, record: DeferredRecord | undefined) => NewItem | undefined;

export interface DeferredStore {
  /** Create or replace the record of `id`. */
  putRecord(id: string, record: DeferredRecord): Promise<void>;
  record(id: string): Promise<DeferredRecord | undefined>;
  /**
   * Append an item at the end of a list; resolved once durable. `unbounded` skips the
   * count and byte bounds (the sweep's own notifications, which replace larger messages).
   */
  append(id: string, kind: ItemKind, item: NewItem, opts?: { readonly unbounded?: boolean }): Promise<AppendResult>;
  /** The items of a list not done yet, in order; at most `limit`. */
  pending(id: string, kind: ItemKind, limit?: number): Promise<StoredItem[]>;
  /** Remove a delivered item, durably. False when it was no longer there (discarded, expired, done). */
  markDone(id: string, kind: ItemKind, seq: number): Promise<boolean>;
  /** Remove every item and the record of `id`; how many messages went. */
  discard(id: string): Promise<number>;
  counts(id: string): Promise<DeferredCounts>;
  /**
   * Remove the items whose expiresAt is at or before `now` and the records left empty
   * and expired. Each expired message's notice (if any) is stored for its sender in the
   * same write. One batch per deferred-id that lost messages. The ids in `busy` (their
   * backlog is being delivered: an item may be in flight, its markDone to come) are left
   * for a later sweep.
   */
  expire(now: number, notice: ExpiryNotice, busy?: ReadonlySet<string>): Promise<ExpiredBatch[]>;
  /** Items and payload bytes in the store. */
  totals(): Promise<{ items: number; bytes: number }>;
  close(): Promise<void>;
}
