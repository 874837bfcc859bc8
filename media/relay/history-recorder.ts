// History recording (CR 8.5): each user chat message and each disposition notification
// is reassembled, as the sender sent it, and stored as message/cpim in the session's
// history folder (docs/media-relay.md, "History").

import type { Logger } from 'pino';
import type { PayloadKind } from '../cpim/head.js';
import { GROUP_STATE_TYPE, type Direction, type HistoryWriter } from '../history/mss.js';
import { Body, type Chunk } from './frames.js';
import type { Session } from './session.js';

export interface HistoryBuffer {
  parts: Buffer[];
  size: number;
  overflow: boolean;
  /** The served user's view: from the originator received, from a device sent (docs/history.md). */
  direction?: Direction;
}

export class HistoryRecorder {
  /** Writes in flight; `flush()` waits for them. */
  private readonly writes = new Set<Promise<unknown>>();

  constructor(
    private readonly store: HistoryWriter | undefined,
    private readonly log: Logger | undefined,
    private readonly maxMessage: number,
  ) {}

  /** The session records and a store is configured. */
  recording(s: Session): boolean {
    return s.record && this.store !== undefined;
  }

  /** CR 8.5: user chat messages and disposition notifications are recorded. */
  wants(s: Session, kind: PayloadKind, from?: 'originator' | 'device'): HistoryBuffer | undefined {
    if (!this.recording(s) || (kind !== 'chat' && kind !== 'imdn')) return undefined;
    return { parts: [], size: 0, overflow: false, ...(from ? { direction: from === 'originator' ? 'received' : 'sent' } : {}) };
  }

  /** CR 8.5: ensure the Session History Folder exists, with its session info object. */
  openFolder(s: Session): void {
    if (!s.record || !s.conversationId || !s.contributionId || !this.store) return;
    this.track(this.store.ensureSessionFolder(
      { conversationId: s.conversationId, contributionId: s.contributionId },
      { callId: s.callId, ...(s.servedUser ? { to: s.servedUser } : {}), startedAt: new Date().toISOString() },
    ), s);
  }

  /** Add one chunk; the last chunk of a message stores it. */
  record(s: Session, h: HistoryBuffer, c: Pick<Chunk, 'body' | 'flag'>): void {
    if (!h.overflow) {
      h.size += c.body.length;
      if (h.size > this.maxMessage) {
        h.overflow = true;
        h.parts = [];
      } else {
        h.parts.push(c.body.buffer);
      }
    }
    if (c.flag !== '$') {
      if (c.flag === '#') h.parts = [];
      return;
    }
    if (h.overflow || !s.conversationId || !s.contributionId || !this.store) {
      if (h.overflow) this.log?.warn({ callId: s.callId }, 'message too large for history');
      return;
    }
    // Stored as message/cpim (CR 8.5), in byte order.
    const data = Buffer.concat(h.parts);
    h.parts = [];
    this.track(this.store.append({ conversationId: s.conversationId, contributionId: s.contributionId }, 'message/cpim', data,
      h.direction ? { direction: h.direction } : {}), s);
  }

  /**
   * One whole message the relay took itself (deferral.ts: a stored message from the
   * originator, a notification from a delivery session's peer), recorded as `record`
   * would record it relayed. False when not recorded (not wanted, or no store).
   */
  whole(s: Session, kind: PayloadKind, from: 'originator' | 'device', payload: Buffer): boolean {
    const h = this.wants(s, kind, from);
    if (!h) return false;
    this.record(s, h, { body: new Body([payload], payload.length), flag: '$' });
    return true;
  }

  /** CR 8.3.2.4: a group session's Group State Object, in its folder. False without a store. */
  groupState(ref: { conversationId: string; contributionId: string }, xml: string, callId: string): boolean {
    if (!this.store) return false;
    const w = this.store
      .append(ref, GROUP_STATE_TYPE, Buffer.from(xml, 'utf8'))
      .catch((err: unknown) => this.log?.error({ err, callId }, 'group state write failed'));
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
    return true;
  }

  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  private track(p: Promise<unknown>, s: Session): void {
    const w = p.catch((err: unknown) => this.log?.error({ err, callId: s.callId }, 'history write failed'));
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
  }
}
