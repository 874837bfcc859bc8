// Flow control on connections, through the connection's own pause()/resume()/cork():
//  - backpressure: stop reading a source while a destination is over its high-water mark
//    (docs/media-relay.md, "Backpressure");
//  - write coalescing: cork a socket until the next tick.

import type { MsrpConnectionLike } from '../msrp/index.js';
import type { Route } from './leg.js';

const corked = new Set<MsrpConnectionLike>();

/**
 * Coalesce the writes made while one batch of inbound bytes is processed into one
 * syscall per socket: cork now, uncork on the next tick (frames and their 200s alike).
 */
export function corkUntilNextTick(conn: MsrpConnectionLike): void {
  if (corked.has(conn) || !conn.cork()) return;
  corked.add(conn);
  if (corked.size === 1) {
    process.nextTick(() => {
      for (const x of corked) x.uncork();
      corked.clear();
    });
  }
}

/**
 * Backpressure: a source connection is paused while any destination it wrote to is over
 * the high-water mark, and resumed when every such destination has drained. Sources and
 * destinations are forgotten when their connection closes.
 */
export class Backpressure {
  /** Source connection id -> destination connection ids it waits on. */
  private readonly blockedOn = new Map<string, { src: MsrpConnectionLike; dests: Set<string> }>();
  private readonly watched = new WeakSet<MsrpConnectionLike>();

  constructor(
    private readonly highWaterMark: number,
    /** Called when a watched connection closes. */
    private readonly onClosed: (conn: MsrpConnectionLike) => void,
  ) {}

  /** After relaying a chunk from `src`: pause it if a destination is over the mark. */
  throttle(src: MsrpConnectionLike, routes: readonly Route[]): void {
    for (const r of routes) {
      const d = r.leg.conn;
      if (!d || d.closed || d === src || d.queuedBytes <= this.highWaterMark) continue;
      let b = this.blockedOn.get(src.id);
      if (!b) {
        b = { src, dests: new Set() };
        this.blockedOn.set(src.id, b);
        if (!src.closed) src.pause();
      }
      b.dests.add(d.id);
    }
  }

  /** Follow a connection's drain and close (once per connection). */
  watch(conn: MsrpConnectionLike): void {
    if (this.watched.has(conn)) return;
    this.watched.add(conn);
    const release = (): void => {
      for (const [id, b] of this.blockedOn) {
        if (!b.dests.delete(conn.id)) continue;
        if (b.dests.size === 0) {
          this.blockedOn.delete(id);
          if (!b.src.closed) b.src.resume();
        }
      }
    };
    conn.on('drain', release);
    conn.on('close', () => {
      release();
      this.blockedOn.delete(conn.id);
      this.onClosed(conn);
    });
  }
}
