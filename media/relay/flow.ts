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
