// History recording (CR 8.5): each user chat message and each disposition notification
// is reassembled, as the sender sent it, and stored as message/cpim in the session's
// history folder (docs/media-relay.md, "History").

import type { Logger } from 'pino';
import { isRecordedKind, type PayloadKind } from '../cpim/head.js';
import { CPIM_OBJECT_TYPE, GROUP_STATE_TYPE, type AppendItem, type AppendOptions, type Direction, type HistoryWriter } from '../history/mss.js';
import type { Chunk } from './frames.js';
import type { Session } from './session.js';

/** Gathered bytes past which the recorder writes at once, whatever the time. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/** Shared, never changed: one options object per direction instead of one per message. */
const BY_DIRECTION: Readonly<Record<Direction, AppendOptions>> = { received: { direction: 'received' }, sent: { direction: 'sent' } };

export interface HistoryBuffer {
  /** The message's MSRP Content-Type: with the whole message it tells what to record. */
  readonly msrpType: string | undefined;
  parts: Buffer[];
  size: number;
  overflow: boolean;
  /** The served user's view: from the originator received, from a device sent (docs/history.md). */
  direction?: Direction;
}

export class HistoryRecorder {
  /** Writes in flight; `flush()` waits for them. */
  private readonly writes = new Set<Promise<unknown>>();
  /**
   * The objects gathered, in order, and the calls they belong to: handed to the store in
   * one appendMany after `batchMs` (one LMDB transaction and commit, one queue commit,
   * instead of one per message; docs/history.md "Where the cost of history goes"), or at
   * once past MAX_BATCH_BYTES.
   */
  private batch: AppendItem[] = [];
  private batchCalls = new Set<string>();

  private batchBytes = 0;
  /** Cancels the pending write of the batch (its timer or immediate). */
  private cancel: (() => void) | undefined;

  constructor(
    private readonly store: HistoryWriter | undefined,
    private readonly log: Logger | undefined,
    private readonly maxMessage: number,
    /** How long objects are gathered before one write (0: to the end of the event-loop turn). */
    private readonly batchMs = 0,
  ) {}

  /** The session records and a store is configured. */
  recording(s: Session): boolean {
    return s.record && this.store !== undefined;
  }

  /**
   * A buffer for one message of a recorded session. Whether it is recorded (CR 8.5: user
   * chat messages and disposition notifications, not isComposing) is decided on the whole
   * message, at its last chunk, so the relay need not read the head before relaying.
   */
  wants(s: Session, from: 'originator' | 'device', msrpType: string | undefined): HistoryBuffer | undefined {
    if (!this.recording(s)) return undefined;
    return { msrpType, parts: [], size: 0, overflow: false, direction: from === 'originator' ? 'received' : 'sent' };
  }

  /** CR 8.5: ensure the Session History Folder exists, with its session info object. */
  openFolder(s: Session): void {
    if (!s.record || !s.conversationId || !s.contributionId || !this.store) return;
    const callId = s.callId;
    this.writeBatch(); // the store gets every write in call order
    this.track(this.store.ensureSessionFolder(
      { conversationId: s.conversationId, contributionId: s.contributionId },
      { callId, ...(s.servedUser ? { to: s.servedUser } : {}), startedAt: new Date().toISOString() },
    ).catch((err: unknown) => this.log?.error({ err, callId }, 'history write failed')));
  }

  /** Add one chunk; the last chunk of a message stores it. */
  record(s: Session, h: HistoryBuffer, c: Pick<Chunk, 'body' | 'flag'>): void {
    if (!h.overflow) {
      h.size += c.body.length;
      if (h.size > this.maxMessage) {
        h.overflow = true;
        h.parts = [];
      } else {
        for (const p of c.body.parts) h.parts.push(p); // joined once, at the last chunk
      }
    }
    if (c.flag !== '$') {
      if (c.flag === '#') h.parts = [];
      return;
    }
    if (h.overflow) {
      this.log?.warn({ callId: s.callId }, 'message too large for history');
      return;
    }
    // Stored as message/cpim (CR 8.5), in byte order.
    const data = Buffer.concat(h.parts); // a copy: the parts may be views of the socket's read buffers
    h.parts = [];
    if (isRecordedKind(h.msrpType, data)) this.keep(s, data, h.direction);
  }

  /**
   * One whole message the relay took itself (deferral.ts: a stored message from the
   * originator, a notification from a delivery session's peer), recorded as `record`
   * would record it relayed. False when not recorded (not wanted, or no store).
   */
  whole(s: Session, kind: PayloadKind, from: 'originator' | 'device', payload: Buffer): boolean {
    if (!this.recording(s) || (kind !== 'chat' && kind !== 'imdn')) return false;
    if (payload.length > this.maxMessage) {
      this.log?.warn({ callId: s.callId }, 'message too large for history');
    } else {
      this.keep(s, payload, from === 'originator' ? 'received' : 'sent');
    }
    return true;
  }

  /** CR 8.3.2.4: a group session's Group State Object, in its folder. False without a store. */
  groupState(ref: { conversationId: string; contributionId: string }, xml: string, callId: string): boolean {
    if (!this.store) return false;
    // In the batch, so it lands after the messages recorded before it.
    this.add({ ref, contentType: GROUP_STATE_TYPE, data: Buffer.from(xml, 'utf8') }, callId);
    return true;
  }

  /** Resolves once every write handed over so far, what is gathered included, is done. */
  async flush(): Promise<void> {
    do {
      this.writeBatch();
      await Promise.all([...this.writes]);
    } while (this.writes.size > 0 || this.batch.length > 0);
  }

  /** Store one message/cpim object (CR 8.5) in the session's folder. */
  private keep(s: Session, data: Buffer, direction: Direction | undefined): void {
    if (!s.conversationId || !s.contributionId) return;
    const ref = { conversationId: s.conversationId, contributionId: s.contributionId };
    this.add({ ref, contentType: CPIM_OBJECT_TYPE, data, opts: direction === undefined ? undefined : BY_DIRECTION[direction] }, s.callId);
  }

  private add(item: AppendItem, callId: string): void {
    if (!this.store) return;
    if (this.batch.length === 0) {
      if (this.batchMs > 0) {
        const t = setTimeout(this.writeBatch, this.batchMs);
        this.cancel = () => clearTimeout(t);
      } else {
        const i = setImmediate(this.writeBatch);
        this.cancel = () => clearImmediate(i);
      }
    }
    this.batch.push(item);
    this.batchCalls.add(callId);
    this.batchBytes += item.data.length;
    if (this.batchBytes >= MAX_BATCH_BYTES) this.writeBatch();
  }

  private readonly writeBatch = (): void => {
    this.cancel?.();
    this.cancel = undefined;
    if (this.batch.length === 0 || !this.store) return;
    const calls = [...this.batchCalls];
    const w = this.store.appendMany(this.batch).catch((err: unknown) => this.log?.error({ err, calls }, 'history write failed'));
    this.batch = [];
    this.batchCalls = new Set();
    this.batchBytes = 0;
    this.track(w);
  };

  private track(w: Promise<unknown>): void {
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
  }
}
