/**
 * CR 8.3.2.1 "200 OK procedure", B2BUA mode: what the B2BUA's 200 OK to the caller
 * carries besides what its SIP layer adds (Via, From, To with tag, Call-ID, CSeq,
 * Record-Route, Content-Length) and Content-Type (`contentType`). Pure. docs/policy.md
 * "Step 8 (B2BUA mode)".
 *
 * - Conversation-ID, Contribution-ID, InReplyTo-Contribution-ID of the INVITE, as they are.
 * - Session timer (RFC 4028 §9), only when the INVITE says `Supported: timer`:
 *   `Supported: timer`, `Session-Expires: <s>;refresher=<r>`, and `Require: timer`
 *   when r is `uac` (the caller must know it refreshes). r is the INVITE's refresher,
 *   else `uac`; s is the configured interval, lowered to the INVITE's Session-Expires,
 *   and never below its Min-SE (90 without one, RFC 4028 §5).
 * - The PF's User-Agent, Contact, and the relay's SDP answer as the body.
 */
import type { Header } from '../../b2bua/sip/build.js';
import type { SipRequest } from '../../sip/message.js';
import { parseParams } from '../../sip/uri.js';
import { MIN_SE, SESSION_ID_HEADERS } from '../b2bua-headers.js';
import { SDP_TYPE } from './device-invites.js';

export interface CallerAnswerInput {
  /** The caller's INVITE. */
  readonly original: SipRequest;
  /** The B2BUA's own URI for Contact, bare or in `<...>`. */
  readonly contact: string;
  /** Configured session interval, seconds. */
  readonly sessionExpires: number;
  /** The PF's User-Agent value (pfUserAgent()). */
  readonly userAgent: string;
  /** The MSRP relay's SDP answer towards the caller. */
  readonly answerSdp: string;
  /** The session timer the B2BUA negotiated (plugin/b2bua/session-timer.ts); absent: answerSessionTimer's. */
  readonly timer?: SessionTimer | null;
}

export interface CallerAnswer {
  /** Header fields in order, Contact included, Content-Type not (it is `contentType`). */
  readonly headers: readonly Header[];
  readonly body: string;
  readonly contentType: string;
}

export interface SessionTimer {
  readonly interval: number;
  readonly refresher: 'uac' | 'uas';
}

const DELTA = /^\s*([0-9]{1,10})\s*(;.*)?$/;

/** `delta-seconds *(; param)` (RFC 4028 §4): the seconds and the parameters, or null. */
function deltaSeconds(value: string | undefined): { seconds: number; params: Record<string, string | true> } | null {
  const m = value === undefined ? null : DELTA.exec(value);
  if (!m) return null;
  const params = parseParams(m[2] ?? '');
  return params ? { seconds: Number(m[1]), params } : null;
}

/**
 * RFC 4028 §9, the UAS side: the session timer of the 2xx to this INVITE, or null when
 * the INVITE does not support the extension (then the 2xx carries none).
 */
export function answerSessionTimer(invite: SipRequest, configured: number): SessionTimer | null {
  if (!invite.getValues('Supported').some((t) => t.toLowerCase() === 'timer')) return null;
  const se = deltaSeconds(invite.get('Session-Expires'));
  const minSe = Math.max(MIN_SE, deltaSeconds(invite.get('Min-SE'))?.seconds ?? MIN_SE);
  const own = Number.isFinite(configured) ? Math.floor(configured) : MIN_SE;
  // the UAS may lower the interval, never below Min-SE (RFC 4028 §9)
  const interval = Math.max(minSe, se === null ? own : Math.min(own, se.seconds));
  const asked = se?.params['refresher'];
  const refresher = typeof asked === 'string' && asked.toLowerCase() === 'uas' ? 'uas' : 'uac';
  return { interval, refresher };
}

/** The B2BUA's 200 OK to the caller (CR 8.3.2.1, 200 OK procedure). */
export function callerAnswer(input: CallerAnswerInput): CallerAnswer {
  const { original } = input;
  const headers: Header[] = [];
  for (const name of SESSION_ID_HEADERS) for (const v of original.getAll(name)) headers.push([name, v]);
  const contact = input.contact.trim();
  headers.push(['Contact', contact.startsWith('<') ? contact : `<${contact}>`]);
  const timer = input.timer !== undefined ? input.timer : answerSessionTimer(original, input.sessionExpires);
  if (timer) {
    headers.push(['Supported', 'timer']);
    if (timer.refresher === 'uac') headers.push(['Require', 'timer']);
    headers.push(['Session-Expires', `${timer.interval};refresher=${timer.refresher}`]);
  }
  headers.push(['User-Agent', input.userAgent]);
  return { headers, body: input.answerSdp, contentType: SDP_TYPE };
}
