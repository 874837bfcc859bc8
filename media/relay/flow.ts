// Read-side flow control for a connection. MsrpConnectionLike has no pause(), so this
// uses the connection's own pause()/resume() when present, else its socket's.

import type { MsrpConnectionLike } from '../msrp/index.js';

interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

function isPausable(v: unknown): v is Pausable {
  return typeof v === 'object' && v !== null &&
    typeof (v as Partial<Pausable>).pause === 'function' && typeof (v as Partial<Pausable>).resume === 'function';
}

function target(conn: MsrpConnectionLike): Pausable | undefined {
  if (isPausable(conn)) return conn;
  const socket: unknown = (conn as unknown as { socket?: unknown }).socket;
  return isPausable(socket) ? socket : undefined;
}

/** True when the connection can be paused (else backpressure falls back to the output bound). */
export function canPause(conn: MsrpConnectionLike): boolean {
  return target(conn) !== undefined;
}

export function pauseConnection(conn: MsrpConnectionLike): void {
  if (!conn.closed) target(conn)?.pause();
}

export function resumeConnection(conn: MsrpConnectionLike): void {
  if (!conn.closed) target(conn)?.resume();
}

interface Corkable {
  cork(): void;
  uncork(): void;
  destroyed: boolean;
}

function socketOf(conn: MsrpConnectionLike): Corkable | undefined {
  const s: unknown = (conn as unknown as { socket?: unknown }).socket;
  return typeof s === 'object' && s !== null && typeof (s as Partial<Corkable>).cork === 'function' ? (s as Corkable) : undefined;
}

const corked = new Set<Corkable>();

/**
 * Coalesce the writes made while one batch of inbound bytes is processed into one
 * syscall per socket: cork now, uncork on the next tick (frames and their 200s alike).
 */
export function corkUntilNextTick(conn: MsrpConnectionLike): void {
  const s = socketOf(conn);
  if (!s || corked.has(s) || s.destroyed) return;
  s.cork();
  corked.add(s);
  if (corked.size === 1) {
    process.nextTick(() => {
      for (const c of corked) c.uncork();
      corked.clear();
    });
  }
}
