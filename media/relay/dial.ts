// Dialing out to a passive peer (RFC 4145 §4.1, RFC 6135: the active end opens the TCP
// connection). The relay is the active end of a leg only when the originator offered
// a=setup:passive (negotiation.ts); it then connects right after `offer`, with a few
// attempts and a short, growing pause between them (docs/media-relay.md, "Dialing out").
//
// Dial state:
//
//   connecting ──connected──▶ connected
//     │    ▲  └──last attempt failed──▶ failed
//     │    └───── retry timer ─────┐
//     ├──attempt failed──▶ backoff ┘
//     └──cancel (delete, relay stopped)──▶ cancelled ◀──cancel── backoff
//
// moveDial() is the only place a dial's state changes; it throws IllegalTransition
// (lib/fsm.ts) on an illegal move. A cancelled dial aborts its socket and clears its
// timer, and reports nothing.

import { guardedTransition, type NextTable } from '../../lib/fsm.js';
import type { MsrpConnection } from '../msrp/index.js';

export type DialState = 'connecting' | 'backoff' | 'connected' | 'failed' | 'cancelled';

export const DIAL_NEXT: NextTable<DialState> = {
  connecting: ['connected', 'backoff', 'failed', 'cancelled'],
  backoff: ['connecting', 'cancelled'],
  connected: [],
  failed: [],
  cancelled: [],
};

/** Where to connect: from the first a=path URI, or from c=/m= for a CEMA peer (RFC 6714). */
export interface DialTarget {
  readonly host: string;
  readonly port: number;
  /** msrps: TLS (RFC 4975 §6), with the relay's TLS client settings. */
  readonly tls: boolean;
}

export interface DialOptions {
  /** Connection attempts before the leg is given up. Default 3. */
  attempts?: number;
  /** Pause after the first failed attempt; doubled after each further one. Default 200 ms. */
  backoffMs?: number;
  /** Timeout of one attempt. Default 3000 ms. */
  timeoutMs?: number;
}

export interface DialSettings {
  readonly attempts: number;
  readonly backoffMs: number;
  readonly timeoutMs: number;
}

export function dialSettings(o: DialOptions = {}): DialSettings {
  return { attempts: Math.max(1, o.attempts ?? 3), backoffMs: Math.max(0, o.backoffMs ?? 200), timeoutMs: o.timeoutMs ?? 3000 };
}

/** Pause before attempt `next` (2, 3, ...): backoffMs, then doubled each time. */
export function backoffDelay(next: number, backoffMs: number): number {
  return backoffMs * 2 ** Math.max(0, next - 2);
}

export type DialOutcome = { readonly conn: MsrpConnection } | { readonly error: string };

/** Opens one connection; must give up (reject) when `signal` aborts. */
export type Connector = (target: DialTarget, timeoutMs: number, signal: AbortSignal) => Promise<MsrpConnection>;

export function moveDial(d: Dial, to: DialState): void {
  (d as { state: DialState }).state = guardedTransition('dial', DIAL_NEXT, d.state, to);
}

/** One dial-out: attempts until connected, failed or cancelled; `done` is called once, never after cancel(). */
export class Dial {
  /** Read-only outside moveDial(). */
  readonly state: DialState = 'connecting';
  attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private abort: AbortController | undefined;
  private lastError = '';

  constructor(
    readonly target: DialTarget,
    private readonly settings: DialSettings,
    private readonly connect: Connector,
    private readonly done: (outcome: DialOutcome) => void,
  ) {
    this.tryOnce();
  }

  /** A timer or a socket is held: the dial is still under way. */
  get busy(): boolean {
    return this.timer !== undefined || this.abort !== undefined;
  }

  cancel(): void {
    if (this.state !== 'connecting' && this.state !== 'backoff') return;
    moveDial(this, 'cancelled');
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort();
    this.abort = undefined;
  }

  private tryOnce(): void {
    this.attempt += 1;
    const abort = new AbortController();
    this.abort = abort;
    this.connect(this.target, this.settings.timeoutMs, abort.signal).then(
      conn => {
        if (this.abort === abort) this.abort = undefined;
        if (this.state !== 'connecting') {
          conn.close(); // cancelled while the connect completed
          return;
        }
        moveDial(this, 'connected');
        this.done({ conn });
      },
      (err: unknown) => {
        if (this.abort === abort) this.abort = undefined;
        if (this.state !== 'connecting') return;
        this.lastError = err instanceof Error ? err.message : String(err);
        if (this.attempt >= this.settings.attempts) {
          moveDial(this, 'failed');
          const { host, port } = this.target;
          this.done({ error: `connect to ${host}:${port} failed after ${this.attempt} attempt(s): ${this.lastError}` });
          return;
        }
        moveDial(this, 'backoff');
        this.timer = setTimeout(() => {
          this.timer = undefined;
          moveDial(this, 'connecting');
          this.tryOnce();
        }, backoffDelay(this.attempt + 1, this.settings.backoffMs));
      },
    );
  }
}
