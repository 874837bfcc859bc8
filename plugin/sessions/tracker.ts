/**
 * Which of a served user's devices are connected in which session (by Contribution-ID),
 * from Kamailio's dialog events (`pf.dialog`). CR 8.3.2.1 step 9 needs it for
 * `Session-Replaces`: the group INVITE goes to the devices in the replaced 1-1 session.
 * In memory: sessions are transient. Capped, and stale entries expire.
 */

export interface SessionEntry {
  readonly aor: string;
  readonly contributionId: string;
  /** Device key: `+sip.instance` of the answering contact, else its URI. */
  readonly device: string;
  readonly callId: string;
  readonly fromTag: string;
  readonly toTag: string;
  readonly confirmedAt: number;
}

export interface DialogId {
  readonly callId: string;
  readonly fromTag: string;
  readonly toTag: string;
}

function dialogKey(d: DialogId): string {
  return `${d.callId}\u0000${d.fromTag}\u0000${d.toTag}`;
}

function sessionKey(aor: string, contributionId: string): string {
  return `${aor}\u0000${contributionId}`;
}

export interface SessionTrackerOptions {
  readonly max: number;
  readonly staleMs: number;
}

export class SessionTracker {
  /** Dialog key -> entry, in insertion order (oldest first, for the cap). */
  private readonly dialogs = new Map<string, SessionEntry>();
  /** aor + Contribution-ID -> dialog keys. */
  private readonly bySession = new Map<string, Set<string>>();

  constructor(private readonly opts: SessionTrackerOptions) {}

  get size(): number {
    return this.dialogs.size;
  }

  /** A dialog with one of the user's devices was confirmed (2xx/ACK). */
  confirmed(entry: SessionEntry): void {
    const dk = dialogKey(entry);
    this.drop(dk);
    while (this.dialogs.size >= this.opts.max) {
      const oldest = this.dialogs.keys().next();
      if (oldest.done === true) break;
      this.drop(oldest.value);
    }
    this.dialogs.set(dk, entry);
    const sk = sessionKey(entry.aor, entry.contributionId);
    let set = this.bySession.get(sk);
    if (!set) {
      set = new Set();
      this.bySession.set(sk, set);
    }
    set.add(dk);
  }

  /** The dialog ended; returns whether it was tracked. */
  terminated(id: DialogId): boolean {
    return this.drop(dialogKey(id));
  }

  /**
   * Device keys of `aor`'s devices connected in the session `contributionId`
   * (byte-exact match, docs/policy.md "Session-Replaces"); null when none is known.
   */
  devicesIn(aor: string, contributionId: string, now: number): readonly string[] | null {
    const set = this.bySession.get(sessionKey(aor, contributionId));
    if (!set) return null;
    const out: string[] = [];
    for (const dk of [...set]) {
      const e = this.dialogs.get(dk);
      if (!e) continue;
      if (now - e.confirmedAt > this.opts.staleMs) {
        this.drop(dk);
        continue;
      }
      if (!out.includes(e.device)) out.push(e.device);
    }
    return out.length > 0 ? out : null;
  }

  /** Drop entries older than staleMs; returns how many. */
  purge(now: number): number {
    let n = 0;
    for (const [dk, e] of this.dialogs) {
      if (now - e.confirmedAt > this.opts.staleMs) {
        this.drop(dk);
        n++;
      }
    }
    return n;
  }

  list(): readonly SessionEntry[] {
    return [...this.dialogs.values()];
  }

  private drop(dk: string): boolean {
    const e = this.dialogs.get(dk);
    if (!e) return false;
    this.dialogs.delete(dk);
    const sk = sessionKey(e.aor, e.contributionId);
    const set = this.bySession.get(sk);
    if (set) {
      set.delete(dk);
      if (set.size === 0) this.bySession.delete(sk);
    }
    return true;
  }
}
