/**
 * Who is in which session (CR 8.3.2.1 step 9, Session-Replaces), from the session
 * lines Kamailio keeps: pf.cfg writes one line per confirmed dialog into the htable
 * entry of its Contribution-ID and sends the replaced session's entry with a
 * Session-Replaces INVITE (`pf.invite` `sessions`, docs/jsonrpc.md). Pure.
 */
import type { Device } from '../devices/types.js';
import { answeringDevice } from '../devices/identity.js';
import { parseNameAddr } from '../sip/uri.js';

/** One dialog of a session entry. */
export interface SessionDialog {
  /** `<Call-ID>;<device tag>` */
  readonly dialog: string;
  /** The Request-URI of the INVITE (the served user). */
  readonly ruri: string;
  /** The answering device's Contact header field value, unfolded. */
  readonly contact: string;
}

/**
 * The dialogs of a `sessions` entry: one per line, `<Call-ID>;<device tag> TAB <R-URI>
 * TAB <Contact>`. A line ends at an LF not followed by SP or HTAB (a folded Contact keeps
 * its CRLF + WSP, RFC 3261 §7.3.1); a line without two TABs or with an empty field is
 * skipped.
 */
export function sessionDialogs(entry: string): SessionDialog[] {
  const out: SessionDialog[] = [];
  for (const raw of entry.split(/\n(?![ \t])/)) {
    const t1 = raw.indexOf('\t');
    const t2 = t1 === -1 ? -1 : raw.indexOf('\t', t1 + 1);
    if (t2 === -1) continue;
    const dialog = raw.slice(0, t1);
    const ruri = raw.slice(t1 + 1, t2).trim();
    const contact = raw.slice(t2 + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
    if (!dialog || !ruri || !contact) continue;
    out.push({ dialog, ruri, contact });
  }
  return out;
}

/**
 * The served user's devices connected in the session, each once, in line order: from
 * the lines whose R-URI is the served user (`isServedUser`), the device that answered
 * (`answeringDevice` over `registered`, the user's devices). Null when there is none:
 * the session is unknown (docs/policy.md "Session-Replaces").
 */
export function sessionDevices(
  entry: string,
  isServedUser: (ruri: string) => boolean,
  registered: readonly Device[],
): string[] | null {
  const out: string[] = [];
  for (const dialog of sessionDialogs(entry)) {
    if (!isServedUser(dialog.ruri)) continue;
    const contact = parseNameAddr(dialog.contact);
    if (!contact) continue;
    const device = answeringDevice(contact, registered);
    if (!out.includes(device)) out.push(device);
  }
  return out.length > 0 ? out : null;
}
