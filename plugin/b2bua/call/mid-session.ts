/**
 * Requests inside an established dialog, on the leg they arrive on (docs/b2bua.md
 * "Mid-session requests"), as pure verdicts for the driver (../b2bua.ts). Nothing here
 * crosses to the other side of the B2BUA: the session's media goes through the relay,
 * and each leg's session timer is its own (RFC 4028).
 *
 * - re-INVITE and UPDATE: session refreshes (RFC 4028 §7.4, RFC 3311). An SDP offer that
 *   keeps the MSRP media (m=, c=, a=path) is answered with the SDP already given on that
 *   leg; one that moves it gets 488 (the relay cannot re-bind a leg mid-session).
 * - INFO (RFC 6086): no Info Package is supported: 469 with an empty Recv-Info when it
 *   names one (§4.2.2), 200 for a legacy INFO without Info-Package.
 * - OPTIONS (RFC 3261 §11.2): 200 with Allow, Accept and Supported.
 * - MESSAGE (RFC 3428): 405 with Allow. Chat goes over MSRP in a CPM session; a pager
 *   message inside the session dialog is not taken, and the sender learns it at once.
 * - Other methods the B2BUA knows but does not take in a dialog (REFER, SUBSCRIBE,
 *   NOTIFY, PRACK, PUBLISH): 405 with Allow; the rest 501 (RFC 3261 §8.2.1).
 */
import type { Header } from '../sip/build.js';

/** What the B2BUA takes (405 and 501 name it, RFC 3261 §20.5; UPDATE per RFC 3311 §5). */
export const ALLOW_METHODS = 'INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO';

const KNOWN_NOT_TAKEN: ReadonlySet<string> = new Set(['MESSAGE', 'REFER', 'SUBSCRIBE', 'NOTIFY', 'PRACK', 'PUBLISH', 'REGISTER']);

export type InDialogVerdict =
  /** re-INVITE or UPDATE: the driver negotiates the timer and answers the offer. */
  | { readonly kind: 'refresh' }
  | { readonly kind: 'bye' }
  /** Answer it on its leg with this status and these extra header fields; nothing goes on. */
  | { readonly kind: 'respond'; readonly status: number; readonly headers: readonly Header[] };

/** The verdict for an in-dialog request (not ACK, not CANCEL) with this method and Info-Package value. */
export function inDialogVerdict(method: string, infoPackage: string | undefined): InDialogVerdict {
  const allow: Header = ['Allow', ALLOW_METHODS];
  switch (method) {
    case 'INVITE':
    case 'UPDATE':
      return { kind: 'refresh' };
    case 'BYE':
      return { kind: 'bye' };
    case 'OPTIONS':
      return { kind: 'respond', status: 200, headers: [allow, ['Accept', 'application/sdp'], ['Supported', 'timer']] };
    case 'INFO':
      return infoPackage === undefined || infoPackage.trim() === ''
        ? { kind: 'respond', status: 200, headers: [] }
        : { kind: 'respond', status: 469, headers: [['Recv-Info', '']] };
    default:
      return { kind: 'respond', status: KNOWN_NOT_TAKEN.has(method) ? 405 : 501, headers: [allow] };
  }
}

/** Methods that exist only inside a dialog (RFC 3261 §15, RFC 3311 §5.1, RFC 6086 §4.2, RFC 3262 §7.1). */
const DIALOG_ONLY: ReadonlySet<string> = new Set(['BYE', 'UPDATE', 'INFO', 'PRACK']);

/**
 * A request without a To-tag that is not an INVITE: a keepalive OPTIONS gets 200; a
 * method that exists only in a dialog gets 481 (there is no dialog it could belong to);
 * anything else is not ours: 405.
 */
export function outOfDialogStatus(method: string): 200 | 405 | 481 {
  if (method === 'OPTIONS') return 200;
  return DIALOG_ONLY.has(method) ? 481 : 405;
}

/** The SDP lines that say where MSRP goes (RFC 4975 §8): m=, c= and a=path, in order, trimmed. */
export function msrpMediaOf(sdp: string): string[] {
  return sdp
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('m=') || l.startsWith('c=') || l.startsWith('a=path:'));
}

/** An offer moves the media of a leg whose current SDP is `current` (m=, c= or a=path differ). */
export function movesMedia(current: string, offer: string): boolean {
  const a = msrpMediaOf(current);
  const b = msrpMediaOf(offer);
  return a.length !== b.length || a.some((l, i) => l !== b[i]);
}

/** A body carries SDP (Content-Type application/sdp, or multipart with an SDP part). */
export function hasSdp(contentType: string | undefined, body: string): boolean {
  if (body.trim() === '') return false;
  const ct = (contentType ?? '').toLowerCase();
  return ct.startsWith('application/sdp') || (ct.startsWith('multipart/') && /application\/sdp/i.test(body));
}
