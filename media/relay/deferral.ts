// Deferred delivery in the relay (CR 8.3.2.1.1 step 3 i, 8.3.2.9; docs/deferred.md "In
// the relay", docs/media-control.md "Deferred delivery").
//
// Two kinds of session carry a deferral:
//  - store: an ordinary session after `defer`. Every complete message from its originator
//    is stored (media/deferred/) and answered 200 only once durable; isComposing is
//    answered and dropped. When a device leg connects, the stored backlog is sent to it
//    first; once empty the session relays live like any other.
//  - delivery: a session made by `deliver`, with no originator. Its backlog (the stored
//    messages, or the notifications pending for the sender) goes to its one peer once
//    connected. IMDNs from that peer go to the original session's originator when it is
//    connected, else they are stored for the sender. A messages delivery with `record`
//    records each of them in the original session's history folder (CR 8.5); the backlog
//    is not recorded again (it was when stored).
//
// The backlog goes one item at a time: each item's SEND (chunked when large) carries its
// original payload bytes, a new Message-ID, Success-Report: no and Failure-Report: yes;
// the item is marked done in the store when every chunk got its 200, and only then does
// the next one go. A non-200, 30 s without an answer, the leg closing, or the store
// failing (flush()) stops the backlog; what is not done stays stored. A store session
// with another device leg still connected (policy B/C) starts the backlog again on that
// leg (its `delivered` names it); legs that connect while one is flushed get nothing of
// it, and live messages only once the backlog is empty.
//
// Deferral state (moveDeferral() is the only place it changes):
//
//   store:     storing ──device leg connects──▶ flushing ──backlog empty──▶ live
//                 ▲                                 │
//                 └────── that leg closes, fails ───┘ (then to another connected leg)
//   delivery:  waiting ──peer connects──▶ flushing ──backlog empty──▶ done
//                                           │
//                                           └── the peer closes, fails ──▶ stopped
//   any ── session deleted ──▶ stopped

import type { Logger } from 'pino';
import {
  buildRequest, getHeader, newMessageId, responseFor, type ContinuationFlag, type MsrpConnectionLike, type RequestHead,
} from '../msrp/index.js';
import { cpimFacts, expiryNotice } from '../deferred/imdn.js';
import type { DeferredStore, ItemKind, StoredItem } from '../deferred/store.js';
import { guardedTransition, type NextTable } from '../../lib/fsm.js';
import type { ByteRange } from '../cpim/direction.js';
import type { RelayContext } from './context.js';
import type { Forwarder } from './forwarding.js';
import { Body, frameParts } from './frames.js';
import type { HistoryRecorder } from './history-recorder.js';
import type { Leg } from './leg.js';
import type { Session } from './session.js';
import type { DeliverWhat } from './types.js';

export type DeferralState = 'storing' | 'waiting' | 'flushing' | 'live' | 'done' | 'stopped';

export const DEFERRAL_NEXT: NextTable<DeferralState> = {
  storing: ['flushing', 'stopped'],
  waiting: ['flushing', 'stopped'],
  flushing: ['live', 'done', 'storing', 'stopped'],
  live: ['stopped'],
  done: ['stopped'],
  stopped: [],
};

/** A message being reassembled from its chunks (per Message-ID). */
interface Assembly {
  readonly contentType: string;
  readonly parts: { start: number; buf: Buffer }[];
  size: number;
}

/**
 * RFC 4975 §7.3 Byte-Range: the chunks of a message (each its 1-based start and length)
 * cover 1..total, in order once sorted, with no gap and no overlap. `total` '*' or
 * unknown: whatever they cover from byte 1.
 */
export function contiguous(parts: readonly { readonly start: number; readonly length: number }[], total: number | '*' | undefined): boolean {
  let next = 1;
  for (const p of [...parts].sort((x, y) => x.start - y.start)) {
    if (p.start !== next) return false;
    next += p.length;
  }
  return typeof total === 'number' ? next - 1 === total : true;
}

/** The item in flight: its chunks' transaction-ids still unanswered. */
interface InFlight {
  readonly seq: number;
  readonly tids: Set<string>;
  readonly settle: (ok: boolean, reason?: string) => void;
}

export interface Deferral {
  readonly id: string;
  readonly role: 'store' | 'delivery';
  readonly what: DeliverWhat;
  /** Store: the served user (From of generated notifications); delivery: as `deliver` gave it. */
  readonly servedUser: string | undefined;
  /** Store: the expiry of what is stored (`defer`'s expires-at). */
  readonly expiresAt: number;
  /** Read-only outside moveDeferral(). */
  readonly state: DeferralState;
  /** The leg the backlog goes to, while flushing. */
  target: Leg | undefined;
  inFlight: InFlight | undefined;
  /** Items sent and done in the current backlog run. */
  sent: number;
  /** Items stored while the backlog ran (flushed too: `remaining`). */
  arrived: number;
  /** Appends not yet durable, and a counter of every append started. */
  appending: number;
  appendEpoch: number;
  /** Appends in order, whatever the backend. */
  chain: Promise<unknown>;
  readonly assembling: Map<string, Assembly>;
}

export function moveDeferral(d: Deferral, to: DeferralState): void {
  (d as { state: DeferralState }).state = guardedTransition(`deferral ${d.id}`, DEFERRAL_NEXT, d.state, to);
}

export function newDeferral(
  role: 'store' | 'delivery', id: string, what: DeliverWhat, servedUser: string | undefined, expiresAt: number,
): Deferral {
  return {
    id, role, what, servedUser, expiresAt, state: role === 'store' ? 'storing' : 'waiting', target: undefined, inFlight: undefined,
    sent: 0, arrived: 0, appending: 0, appendEpoch: 0, chain: Promise.resolve(), assembling: new Map(),
  };
}

/** Largest chunk of a backlog item's SEND (RFC 4975 §7.1.1: chunking is the sender's choice). */
const SEND_CHUNK = 64 * 1024;
/** RFC 4975 §7.3.1: a transaction without a response in 30 s has failed. */
const RESPONSE_TIMEOUT_MS = 30_000;
/** Messages reassembled at once per session; past it the oldest is dropped (its last chunk then gets 400). */
const MAX_ASSEMBLING = 32;

export interface DeferralOptions {
  readonly store: DeferredStore;
  /** Expiry sweep period (ms). Default 30 s. */
  readonly sweepMs?: number;
  /** How long a pending notification for a sender is kept (ms). Default 7 days. */
  readonly notificationTtlMs?: number;
  /** Largest message reassembled for the store (bytes). Default 1 MiB + 64 KiB. */
  readonly maxMessage?: number;
}

/** What deferral needs of the relay: its sessions by deferred-id and the leg closer. */
export interface DeferralHost {
  closeLeg(s: Session, leg: Leg, reason: string): void;
}

export class Deferrals {
  readonly store: DeferredStore;
  private readonly log: Logger | undefined;
  /** Store sessions by deferred-id (the originals of IMDNs from a delivery). */
  private readonly originals = new Map<string, Session>();
  /** `${id}/${what}` -> the session sending that backlog (one at a time). */
  private readonly senders = new Map<string, Session>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly notificationTtlMs: number;
  private readonly maxMessage: number;
  private readonly sweepMs: number;

  constructor(
    private readonly ctx: RelayContext,
    private readonly forwarder: Forwarder,
    private readonly history: HistoryRecorder,
    private readonly host: DeferralHost,
    o: DeferralOptions,
  ) {
    this.store = o.store;
    this.log = ctx.log;
    this.notificationTtlMs = o.notificationTtlMs ?? 7 * 24 * 3600_000;
    this.maxMessage = o.maxMessage ?? 1024 * 1024 + 64 * 1024;
    this.sweepMs = o.sweepMs ?? 30_000;
  }

  // ---- sessions -------------------------------------------------------------------------

  /** The store session using `id`, if any. */
  original(id: string): Session | undefined {
    return this.originals.get(id);
  }

  /** A backlog of `id` is being sent by some session. */
  busy(id: string, what: DeliverWhat): boolean {
    return this.senders.has(`${id}/${what}`);
  }

  /** `defer` took: the session stores from now on. */
  deferred(s: Session, d: Deferral, callId: string): void {
    s.deferred = d;
    this.originals.set(d.id, s);
    const rec = this.store.putRecord(d.id, { callId, servedUser: d.servedUser ?? '', expiresAt: d.expiresAt });
    d.chain = rec.catch((err: unknown) => this.log?.error({ err, callId, deferredId: d.id }, 'deferred record not stored'));
  }

  /** `deliver` took: a session whose backlog waits for its peer. */
  delivering(s: Session, d: Deferral): void {
    s.deferred = d;
    this.senders.set(`${d.id}/${d.what}`, s);
  }

  sessionDeleted(s: Session): void {
    const d = s.deferred;
    if (!d) return;
    if (d.state !== 'stopped') moveDeferral(d, 'stopped');
    d.inFlight?.settle(false, 'session deleted');
    if (this.originals.get(d.id) === s) this.originals.delete(d.id);
    if (this.senders.get(`${d.id}/${d.what}`) === s) this.senders.delete(`${d.id}/${d.what}`);
    d.assembling.clear();
  }

  /** relay.ts, on leg-connected: a store session's first device, or a delivery's peer, starts the backlog. */
  legConnected(s: Session | undefined, tag: string): void {
    const d = s?.deferred;
    if (!s || !d || (d.state !== 'storing' && d.state !== 'waiting')) return;
    const leg = s.devices.get(tag);
    if (!leg || leg.state !== 'connected') return;
    const key = `${d.id}/${d.what}`;
    if (d.role === 'store') {
      const other = this.senders.get(key);
      if (other !== undefined && other !== s) {
        this.log?.warn({ callId: s.callId, deferredId: d.id }, 'a delivery of this deferred-id is under way: the device gets live messages only');
        return;
      }
      this.senders.set(key, s);
    }
    d.target = leg;
    d.sent = 0;
    d.arrived = 0;
    moveDeferral(d, 'flushing');
    void this.flush(s, d).catch((err: unknown) => this.log?.error({ err, callId: s.callId }, 'deferred backlog failed'));
  }

  /** relay.ts, on leg-closed: the backlog's leg went. */
  legClosed(s: Session | undefined, tag: string): void {
    const d = s?.deferred;
    if (!d || d.target?.tag !== tag) return;
    d.inFlight?.settle(false, 'leg closed');
  }

  // ---- frames -----------------------------------------------------------------------------

  /**
   * Ingress asks at frame start: the relay answers this SEND itself (after storing it).
   * With `head`: also the rest of a message whose first chunks were taken.
   */
  owns(s: Session, leg: Leg, head?: RequestHead): boolean {
    const d = s.deferred;
    if (!d) return false;
    if (d.role === 'delivery') return leg.role === 'device' && d.state !== 'stopped';
    if (leg.role !== 'originator') return false;
    if (d.state === 'storing' || d.state === 'flushing') return true;
    if (d.assembling.size === 0 || head === undefined || d.state === 'stopped') return false;
    const id = getHeader(head.headers, 'Message-ID');
    return id !== undefined && d.assembling.has(id);
  }

  /** A response from a leg: one of a backlog item's chunks answered. */
  response(s: Session, leg: Leg, tid: string, status: number): void {
    const d = s.deferred;
    const f = d?.inFlight;
    if (!d || !f || d.target !== leg || !f.tids.has(tid)) return;
    if (status !== 200) {
      f.settle(false, `the peer answered ${status} to a stored message`);
      return;
    }
    f.tids.delete(tid);
    if (f.tids.size === 0) f.settle(true);
  }

  /**
   * A SEND chunk that owns() took at its start: answered here, always. Chunks are
   * reassembled; the whole message is stored (store) or handled (delivery).
   */
  take(
    s: Session, leg: Leg, conn: MsrpConnectionLike, head: RequestHead, body: Body, flag: ContinuationFlag,
    range: ByteRange | undefined, rangeText: string | undefined, oversize: boolean, answered = false,
  ): void {
    const answer = (status: number): void => {
      if (answered) return;
      const resp = responseFor(head, status);
      if (resp && !conn.closed) conn.sendFrame(resp);
    };
    const d = s.deferred;
    if (s.state === 'deleted' || !d || d.state === 'stopped') return answer(481);
    const messageId = getHeader(head.headers, 'Message-ID');
    if (!messageId || (!head.hasBody && body.length === 0)) return answer(200); // a binding SEND (RFC 4975 §7.1)
    let a = d.assembling.get(messageId);
    if (!this.owns(s, leg) && a === undefined) {
      // The backlog emptied while this chunk arrived: the session is live again.
      answer(200);
      if (answered) return; // ingress relays it (it asked owns() first)
      this.forwarder.send(s, leg, conn, head, body, flag, range, rangeText);
      return;
    }
    const contentType = getHeader(head.headers, 'Content-Type') ?? '';
    if (!a) {
      if (d.assembling.size >= MAX_ASSEMBLING) d.assembling.delete(d.assembling.keys().next().value!);
      a = { contentType, parts: [], size: 0 };
      d.assembling.set(messageId, a);
    }
    if (flag === '#') {
      d.assembling.delete(messageId); // abandoned (RFC 4975 §7.1.1): nothing to store
      return answer(200);
    }
    a.size += body.length;
    if (oversize || a.size > this.maxMessage) {
      d.assembling.delete(messageId);
      leg.dropped += 1;
      return answer(413); // RFC 4975 §7.3.1: stop sending this message
    }
    // RFC 4975 §7.1.1: every chunk after the first carries a Byte-Range (0: not contiguous)
    a.parts.push({ start: range?.start ?? (a.parts.length === 0 ? 1 : 0), buf: Buffer.from(body.buffer) });
    if (flag === '+') return answer(200);
    d.assembling.delete(messageId);
    if (!contiguous(a.parts.map(p => ({ start: p.start, length: p.buf.length })), range?.total)) {
      // A gap or overlap, or the rest of a message whose first chunks were evicted (more
      // than MAX_ASSEMBLING at once): never stored in part. No RFC 4975 §7.3.1 code names
      // a failed reassembly; 400 tells the sender this message was not taken.
      this.log?.warn({ callId: s.callId, deferredId: d.id, messageId }, 'deferred message chunks not contiguous: refused');
      leg.dropped += 1;
      return answer(400);
    }
    const payload = Buffer.concat(a.parts.sort((x, y) => x.start - y.start).map(p => p.buf));
    if (d.role === 'store' && d.state === 'live') {
      // begun while the backlog ran, ended after it: relayed whole, as live messages are
      answer(200);
      const whole = { start: 1, end: payload.length, total: payload.length };
      this.forwarder.send(s, leg, conn, head, new Body([payload], payload.length), '$', whole, `1-${payload.length}/${payload.length}`);
      return;
    }
    if (d.role === 'store') this.storeMessage(s, d, leg, head, payload, a.contentType, answer);
    else this.fromPeer(s, d, leg, head, payload, a.contentType, answer);
  }

  /** Store role: a complete message from the originator. */
  private storeMessage(
    s: Session, d: Deferral, leg: Leg, head: RequestHead, payload: Buffer, contentType: string, answer: (status: number) => void,
  ): void {
    const facts = cpimFacts(payload, contentType);
    if (facts.kind === 'isComposing' || facts.kind === 'empty') {
      leg.dropped += 1;
      return answer(200);
    }
    // CR 8.5 recording goes on (docs/media-control.md "defer"); a delivery does not record these again.
    this.history.whole(s, facts.kind, 'originator', payload);
    d.appending += 1;
    d.appendEpoch += 1;
    if (d.state === 'flushing') d.arrived += 1;
    const item = {
      payload, contentType, negativeDelivery: facts.negativeDelivery, expiresAt: d.expiresAt,
      ...(facts.imdnMessageId ? { imdnMessageId: facts.imdnMessageId } : {}),
      ...(facts.sender ? { sender: facts.sender } : {}),
    };
    const done = d.chain.then(() => this.store.append(d.id, 'messages', item));
    d.chain = done.catch(() => undefined);
    done.then(
      r => {
        d.appending -= 1;
        if (r.ok) answer(200);
        else {
          // RFC 4975 §7.3: 413 for a message too large to keep, 500 when the store is full.
          this.log?.warn({ callId: s.callId, deferredId: d.id, reason: r.reason }, 'deferred message refused');
          answer(r.reason === 'too-big' ? 413 : 500);
        }
      },
      (err: unknown) => {
        d.appending -= 1;
        this.log?.error({ err, callId: s.callId, deferredId: d.id }, 'deferred store failed');
        answer(500);
      },
    );
  }

  /** Delivery role: a complete message from the peer (an IMDN from the served user's device, say). */
  private fromPeer(
    s: Session, d: Deferral, leg: Leg, head: RequestHead, payload: Buffer, contentType: string, answer: (status: number) => void,
  ): void {
    const facts = cpimFacts(payload, contentType);
    // A notifications delivery's peer is the sender: whatever it sends is no part of the
    // served user's history (the sender's own PF records the sender's), so nothing is recorded.
    if (d.what !== 'messages' || facts.kind !== 'imdn') {
      leg.dropped += 1;
      return answer(200);
    }
    // CR 8.5: the served user's device's notification, recorded once as a live session
    // records it (from a device: `sent`), when it is taken (relayed, or stored for the
    // sender with a 200): a refused one comes again and is recorded then.
    const recordIt = (): void => void this.history.whole(s, facts.kind, 'device', payload);
    const orig = this.originals.get(d.id);
    const to = orig?.originator;
    if (orig && to && orig.state !== 'deleted' && to.state === 'connected') {
      recordIt();
      answer(200);
      to.framesOut += 1;
      to.bytesOut += payload.length;
      this.forwarder.write(to, frameParts('SEND', head.headers, to.toPathText, to.ownUri, `1-${payload.length}/${payload.length}`, payload, true, '$'));
      return;
    }
    const item = {
      payload, contentType, negativeDelivery: false, expiresAt: Date.now() + this.notificationTtlMs,
      ...(facts.imdnMessageId ? { imdnMessageId: facts.imdnMessageId } : {}),
      ...(facts.sender ? { sender: facts.sender } : {}),
    };
    const done = d.chain.then(() => this.store.append(d.id, 'notifications', item));
    d.chain = done.catch(() => undefined);
    done.then(
      r => {
        if (r.ok) recordIt();
        answer(r.ok ? 200 : r.reason === 'too-big' ? 413 : 500);
      },
      (err: unknown) => {
        this.log?.error({ err, callId: s.callId, deferredId: d.id }, 'deferred store failed');
        answer(500);
      },
    );
  }

  // ---- the backlog --------------------------------------------------------------------

  /**
   * Send the backlog to d.target, one item at a time (see the header). Never rejects: a
   * store failure (pending or markDone: an engine time-out, a disk error) ends the backlog
   * as a refused item does, back to storing with the leg closed, rather than retrying: the
   * failure may last, and a retry loop would hold the session in `flushing`, where the
   * caller's messages are stored and never sent to the connected device. What was not
   * marked done stays stored and goes to the next device again (at least once).
   */
  private async flush(s: Session, d: Deferral): Promise<void> {
    const kind: ItemKind = d.what;
    for (;;) {
      if (d.state !== 'flushing') return;
      const leg = d.target!;
      const epoch = d.appendEpoch;
      let next: StoredItem | undefined;
      try {
        [next] = await this.store.pending(d.id, kind, 1);
      } catch (err) {
        return this.storeFailed(s, d, leg, err);
      }
      if (d.state !== 'flushing') return;
      if (!next) {
        if (d.appending > 0 || epoch !== d.appendEpoch) {
          await d.chain; // an append under way: its item comes next
          continue;
        }
        this.finish(s, d);
        return;
      }
      const outcome = await this.sendItem(d, leg, next);
      if (outcome === true) {
        // its 200 came: done, even if the session went meanwhile (never sent again)
        try {
          await this.store.markDone(d.id, kind, next.seq);
        } catch (err) {
          return this.storeFailed(s, d, leg, err);
        }
        d.sent += 1;
      }
      if (d.state !== 'flushing') return;
      if (outcome !== true) {
        this.stopBacklog(s, d, leg, outcome);
        return;
      }
    }
  }

  /** The store failed during the backlog: logged, and the backlog stops (when still running). */
  private storeFailed(s: Session, d: Deferral, leg: Leg, err: unknown): void {
    this.log?.error({ err, callId: s.callId, deferredId: d.id }, 'deferred store failed during the backlog');
    if (d.state === 'flushing' && d.target === leg) this.stopBacklog(s, d, leg, `store failed: ${err instanceof Error ? err.message : String(err)}`);
  }

  /** One item as one SEND, or chunks of SEND_CHUNK; true once every chunk got its 200. */
  private sendItem(d: Deferral, leg: Leg, item: StoredItem): Promise<true | string> {
    const conn = leg.conn;
    if (!conn || conn.closed || leg.state !== 'connected') return Promise.resolve('leg not connected');
    return new Promise(resolve => {
      const tids = new Set<string>();
      const timer = setTimeout(() => settle(false, 'no response in 30 s'), RESPONSE_TIMEOUT_MS);
      const settle = (ok: boolean, reason?: string): void => {
        if (d.inFlight?.tids !== tids) return;
        clearTimeout(timer);
        d.inFlight = undefined;
        resolve(ok ? true : reason ?? 'failed');
      };
      d.inFlight = { seq: item.seq, tids, settle };
      const total = item.payload.length;
      const messageId = newMessageId();
      for (let start = 0; start < total || start === 0; start += SEND_CHUNK) {
        const end = Math.min(total, start + SEND_CHUNK);
        const frame = buildRequest({
          method: 'SEND', toPath: leg.toPathText, fromPath: leg.ownUri,
          headers: [
            { name: 'Message-ID', value: messageId },
            { name: 'Success-Report', value: 'no' },
            { name: 'Failure-Report', value: 'yes' },
            { name: 'Byte-Range', value: `${start + 1}-${end}/${total}` },
          ],
          contentType: item.contentType || 'message/cpim',
          body: item.payload.subarray(start, end),
          flag: end < total ? '+' : '$',
        });
        tids.add(frame.head.transactionId);
        leg.framesOut += 1;
        leg.bytesOut += end - start;
        conn.sendFrame(frame);
        if (total === 0) break;
      }
    });
  }

  /** The backlog is empty: `delivered`, and a store session relays live from now on. */
  private finish(s: Session, d: Deferral): void {
    const leg = d.target!;
    this.senders.delete(`${d.id}/${d.what}`);
    moveDeferral(d, d.role === 'store' ? 'live' : 'done');
    d.target = undefined;
    this.ctx.emit({
      event: 'delivered', 'call-id': s.callId, leg: leg.tag, 'deferred-id': d.id, what: d.what, sent: d.sent, remaining: d.arrived,
    });
  }

  /** The backlog failed: a store session stores again; a delivery's peer is closed (leg-closed). */
  private stopBacklog(s: Session, d: Deferral, leg: Leg, reason: string): void {
    this.senders.delete(`${d.id}/${d.what}`);
    d.target = undefined;
    this.log?.info({ callId: s.callId, deferredId: d.id, leg: leg.tag, reason }, 'deferred backlog stopped');
    if (d.role === 'store') {
      moveDeferral(d, 'storing');
      if (leg.state !== 'closed') this.host.closeLeg(s, leg, `deferred backlog: ${reason}`);
      // Another device leg still connected (policy B/C) takes the backlog over; each
      // failure closes its leg, so this ends when the legs run out.
      const other = [...s.devices.values()].find(l => l !== leg && l.state === 'connected');
      if (other && d.state === 'storing') this.legConnected(s, other.tag);
      return;
    }
    moveDeferral(d, 'stopped');
    if (leg.state !== 'closed') this.host.closeLeg(s, leg, `deferred backlog: ${reason}`);
  }

  // ---- expiry -------------------------------------------------------------------------

  /** Sweep at once, then every sweepMs (unref'd). */
  startSweeps(): void {
    if (this.sweepTimer) return;
    void this.sweep();
    this.sweepTimer = setInterval(() => void this.sweep(), this.sweepMs);
    this.sweepTimer.unref();
  }

  /**
   * Remove expired items; each expired message that asked negative-delivery leaves a
   * failed notification for its sender (RFC 5438 §7.2.1.1). Event `deferred-expired`
   * per deferred-id. One sweep at a time.
   */
  sweep(now = Date.now()): Promise<void> {
    // A deferred-id whose backlog is being sent is skipped: removing its item in flight
    // would make markDone find nothing, and the sender get both the device's IMDN and
    // a failed notice. Its expired items go at the first sweep after the delivery.
    const busy = new Set([...this.senders.keys()].map(k => k.slice(0, k.lastIndexOf('/'))));
    this.sweeping ??= this.store.expire(now, expiryNotice(now, this.notificationTtlMs), busy).then(
      batches => {
        for (const b of batches) {
          this.ctx.emit({ event: 'deferred-expired', 'call-id': b.callId, 'deferred-id': b.id, expired: b.expired, notifications: b.notifications });
        }
      },
      (err: unknown) => this.log?.error({ err }, 'deferred expiry sweep failed'),
    ).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    await this.sweeping;
  }
}
