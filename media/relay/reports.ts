// REPORT routing (RFC 4975 §7.1.2): a REPORT goes back to the sender of the message it
// names, its Byte-Range mapped back into the sender's coordinates when the relay
// inserted Message-Direction (docs/media-relay.md, "REPORT mapping").
//
// Per destination leg, Message-ID -> sender. The mappings live in two generations per
// leg: at maxTracked / 2 new ones, every leg's current generation becomes its old one
// and the old one is forgotten. So at most maxTracked are kept per session, the oldest
// forgotten first. (A Map with deletions at this rate cost about 2 µs per message.)

import { getHeader, type RequestHead } from '../msrp/index.js';
import { formatByteRange, parseByteRange, unshiftRange, type Injection } from '../cpim/direction.js';
import type { Leg } from './leg.js';
import { legsOf, type Session } from './session.js';

/** Remember that `messageId`, sent to `dest`, came from `src` with `injection`. */
export function rememberSender(s: Session, src: Leg, dest: Leg, messageId: string, injection: Injection | null, maxTracked: number): void {
  if (dest.sent.has(messageId)) return;
  if (++s.sentCount > Math.max(1, maxTracked >> 1)) {
    s.sentCount = 1;
    for (const leg of legsOf(s)) {
      leg.sentOld = leg.sent;
      leg.sent = new Map();
    }
  }
  // Without injection, the source's one shared entry (nothing more to keep per message).
  dest.sent.set(messageId, injection === null ? (src.plain ??= { src, injection: null }) : { src, injection });
}

/** Where a REPORT received from `from` goes back to, and its mapped Byte-Range. */
export function reportTarget(from: Leg, head: RequestHead): { back: Leg; range: string | undefined } | undefined {
  const messageId = getHeader(head.headers, 'Message-ID');
  if (!messageId) return undefined;
  const t = from.sent.get(messageId) ?? from.sentOld?.get(messageId);
  if (!t || t.src.state === 'closed') return undefined;
  const r = parseByteRange(getHeader(head.headers, 'Byte-Range'));
  return { back: t.src, range: r ? formatByteRange(unshiftRange(r, t.injection)) : undefined };
}

export function forgetSenders(s: Session): void {
  for (const leg of legsOf(s)) {
    leg.sent = new Map();
    leg.sentOld = undefined;
  }
  s.sentCount = 0;
}
