/**
 * Who is in which session (CR 8.3.2.1 step 9, Session-Replaces) kept by the service, for
 * several Kamailio nodes (docs/deployment.md §12): with `PF_SHARED_SESSIONS`, pf.cfg tells
 * the service of each confirmed dialog and each BYE (`pf.dialog.start`, `pf.dialog.end`,
 * docs/jsonrpc.md) instead of keeping them in its htable, and pf.invite reads the
 * replaced session's lines here. One host: in memory (LocalSessionStore); several:
 * the shared-state engine (plugin/sessions/redis-store.ts). Without `PF_SHARED_SESSIONS`
 * (the default) pf.cfg keeps its htable and this store stays empty.
 *
 * A dialog of a session:
 *
 *     (none) --start (2xx)--> live(until = now + DIALOG_TTL_MS) --end (BYE)--> (none)
 *                                  |
 *                                  +--until passes (no BYE seen)--> (none)
 *
 * `start` of a live dialog (a retransmitted 2xx) changes nothing.
 */

/** A dialog without BYE ends after 12 h, as pf.cfg's pfdlg htable (and the dialog module's default). */
export const DIALOG_TTL_MS = 12 * 3600_000;
/** Bytes of session lines kept per Contribution-ID, as pf.cfg's PF_SESSION_MAX_BYTES. */
export const SESSION_MAX_BYTES = 16_384;
/**
 * Dialogs kept at most, as pf.cfg's PF_DIALOGS_MAX: answered calls that never send BYE
 * stay 12 h, and every instance holds every dialog in memory. Past it a dialog is not
 * kept (no Session-Replaces for it).
 */
export const DIALOGS_MAX = 100_000;

/** One confirmed dialog, as pf.cfg's PF_REPLY_APPLY sees it. */
export interface DialogStart {
  /** The session's Contribution-ID. */
  readonly cid: string;
  /** `<Call-ID>;<device tag>` */
  readonly dialog: string;
  /** The Request-URI of the INVITE (the served user). */
  readonly ruri: string;
  /** The answering device's Contact header field value. */
  readonly contact: string;
}

export interface DialogRecord {
  readonly dialog: string;
  readonly ruri: string;
  readonly contact: string;
  /** When the dialog ends without BYE, ms since the epoch. */
  readonly until: number;
}

export interface SessionStore {
  /** A confirmed dialog of its session; resolves with whether it was recorded (false: known, the session is full, or DIALOGS_MAX reached). */
  start(d: DialogStart, now: number): Promise<boolean>;
  /** A BYE: the dialog of `callId` with either tag ends (the caller's BYE has the device's tag in To, the device's in From). Resolves with whether one did. */
  end(callId: string, tags: readonly string[], now: number): Promise<boolean>;
  /** The session's lines (plugin/sessions/lines.ts format), or undefined when it has no live dialog. Synchronous (the INVITE path). */
  entry(cid: string, now: number): string | undefined;
  close(): Promise<void>;
}

/** A line field: no TAB, CR or LF (the line format's separators); folded lines unfolded (RFC 3261 §7.3.1). */
export function lineField(s: string): string {
  return s.replace(/\r?\n[ \t]+/g, ' ').replace(/[\t\r\n]+/g, ' ').trim();
}

/** The text form of a session's live dialogs, in the order they started. */
export function entryOf(records: readonly DialogRecord[], now: number): string | undefined {
  let out = '';
  for (const r of records) if (r.until > now) out += `${r.dialog}\t${r.ruri}\t${r.contact}\n`;
  return out === '' ? undefined : out;
}

/**
 * The session's records after `d` started at `now`: expired ones dropped; null when
 * nothing changes (the dialog is live already, or the lines would pass SESSION_MAX_BYTES).
 */
export function withDialog(records: readonly DialogRecord[], d: DialogStart, now: number): DialogRecord[] | null {
  const liveOnes = records.filter((r) => r.until > now);
  const dialog = lineField(d.dialog);
  if (liveOnes.some((r) => r.dialog === dialog)) return null;
  const next: DialogRecord = { dialog, ruri: lineField(d.ruri), contact: lineField(d.contact), until: now + DIALOG_TTL_MS };
  if (Buffer.byteLength(entryOf(liveOnes, now) ?? '') >= SESSION_MAX_BYTES) return null;
  return [...liveOnes, next];
}

/** The session's records after the dialog `dialog` ended; null when it was not there. */
export function withoutDialog(records: readonly DialogRecord[], dialog: string, now: number): DialogRecord[] | null {
  if (!records.some((r) => r.dialog === dialog && r.until > now)) return null;
  return records.filter((r) => r.dialog !== dialog && r.until > now);
}

/** One host: sessions in memory (they end with the service, as pf.cfg's htable ends with Kamailio). */
export class LocalSessionStore implements SessionStore {
  constructor(private readonly maxDialogs = DIALOGS_MAX) {}
  private readonly sessions = new Map<string, readonly DialogRecord[]>();
  /** dialog -> its Contribution-ID */
  private readonly dialogs = new Map<string, string>();
  private starts = 0;

  start(d: DialogStart, now: number): Promise<boolean> {
    // dialogs that ended without BYE leave the index now and then
    if (++this.starts % 1024 === 0) this.sweep(now);
    if (this.dialogs.size >= this.maxDialogs) {
      this.sweep(now);
      if (this.dialogs.size >= this.maxDialogs) return Promise.resolve(false);
    }
    const dialog = lineField(d.dialog);
    const next = withDialog(this.sessions.get(d.cid) ?? [], d, now);
    if (next === null) return Promise.resolve(false);
    this.sessions.set(d.cid, next);
    this.dialogs.set(dialog, d.cid);
    return Promise.resolve(true);
  }

  end(callId: string, tags: readonly string[], now: number): Promise<boolean> {
    for (const tag of tags) {
      const dialog = lineField(`${callId};${tag}`);
      const cid = this.dialogs.get(dialog);
      if (cid === undefined) continue;
      this.dialogs.delete(dialog);
      const next = withoutDialog(this.sessions.get(cid) ?? [], dialog, now);
      if (next === null) continue;
      if (next.length === 0) this.sessions.delete(cid);
      else this.sessions.set(cid, next);
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  }

  private sweep(now: number): void {
    for (const [cid, records] of this.sessions) {
      const liveOnes = records.filter((r) => r.until > now);
      for (const r of records) if (r.until <= now) this.dialogs.delete(r.dialog);
      if (liveOnes.length === 0) this.sessions.delete(cid);
      else this.sessions.set(cid, liveOnes);
    }
  }

  entry(cid: string, now: number): string | undefined {
    const records = this.sessions.get(cid);
    return records ? entryOf(records, now) : undefined;
  }

  close(): Promise<void> {
    this.sessions.clear();
    this.dialogs.clear();
    return Promise.resolve();
  }
}
