// Per-message head tracker: collects the first bytes of a chunked message until its
// CPIM head is known, holding the chunks seen so far. The relay needs the head to
// classify the message (CR 8.3.2.1.4 step 4.A.i) and to plan Message-Direction
// injection before the first chunk leaves, because every chunk's Byte-Range total
// shifts (RFC 4975 §7.1.1). Memory is bounded by `limit`.

import { CPIM_HEAD_LIMIT, CPIM_TYPE, classify, mediaType, parseCpimHead, type CpimHead, type PayloadKind } from './head.js';

export interface HeadDecision {
  readonly kind: PayloadKind;
  /** Present when the body is message/cpim and its head parsed. */
  readonly head?: CpimHead;
  /** The body prefix collected (at least the head when `head` is set). */
  readonly prefix: Buffer;
}

export const DEFAULT_HEAD_LIMIT = CPIM_HEAD_LIMIT;

export class HeadTracker<T> {
  private readonly parts: Buffer[] = [];
  private length = 0;
  private held: T[] = [];
  private decision: HeadDecision | undefined;

  constructor(
    private readonly contentType: string | undefined,
    private readonly limit = DEFAULT_HEAD_LIMIT,
  ) {}

  get decided(): HeadDecision | undefined {
    return this.decision;
  }

  /** Number of chunks held back. */
  get holding(): number {
    return this.held.length;
  }

  /**
   * Feed one chunk (first byte at 1-based `start`). Returns null while the head is
   * incomplete (the chunk is held), else the decision and every chunk to release
   * in order. After the decision each call releases just its own chunk.
   */
  push(item: T, body: Buffer, start: number, final: boolean): { decision: HeadDecision; release: T[] } | null {
    if (this.decision) return { decision: this.decision, release: [item] };
    const type = mediaType(this.contentType);
    if (type !== CPIM_TYPE) return this.decide(item, { kind: classify(this.contentType, undefined), prefix: Buffer.alloc(0) });
    if (start - 1 !== this.length) {
      // Out of order before the head was seen: give up on the head, relay as is.
      return this.decide(item, { kind: classify(this.contentType, undefined), prefix: this.prefix() });
    }
    const room = this.limit - this.length;
    const take = body.length <= room ? body : body.subarray(0, room);
    this.parts.push(take);
    this.length += take.length;
    const prefix = this.prefix();
    const r = parseCpimHead(prefix);
    if (r.state === 'complete') return this.decide(item, { kind: classify(this.contentType, r.head), head: r.head, prefix });
    if (r.state === 'invalid' || final || this.length >= this.limit) {
      return this.decide(item, { kind: classify(this.contentType, undefined), prefix });
    }
    this.held.push(item);
    return null;
  }

  private prefix(): Buffer {
    if (this.parts.length > 1) {
      const all = Buffer.concat(this.parts, this.length);
      this.parts.length = 0;
      this.parts.push(all);
    }
    return this.parts[0] ?? Buffer.alloc(0);
  }

  private decide(item: T, d: HeadDecision): { decision: HeadDecision; release: T[] } {
    this.decision = d;
    const release = [...this.held, item];
    this.held = [];
    this.parts.length = 0;
    return { decision: d, release };
  }
}
