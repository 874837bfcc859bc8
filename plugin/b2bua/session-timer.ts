/**
 * RFC 4028 session timers as pure functions, one leg at a time (the B2BUA is a UA on
 * every leg and keeps each leg's timer on its own; docs/b2bua.md "Session timers").
 *
 * - `negotiateUas`: a request we answer (the caller's INVITE, any re-INVITE or UPDATE on
 *   any leg): 422 with Min-SE when its Session-Expires is below our minimum (§9), the
 *   interval and refresher of our 2xx otherwise.
 * - `uacTimer`: the 2xx of a request we sent (a device INVITE, our refresh): the
 *   interval and refresher it chose (§7.2).
 * - `retryAfter422`: the Session-Expires and Min-SE of the INVITE sent again after a 422 (§7.4).
 * - `refreshDelay` / `expiryDelay`: when the refresher sends (half the interval) and when
 *   the other side gives up (interval - min(32, interval/3)), §10.
 *
 * Intervals are whole seconds; the driver turns them into timers.
 */
import type { SipMessage } from '../sip/message.js';
import { parseParams } from '../sip/uri.js';
import type { Header } from './sip/build.js';

/** RFC 4028 §4, §5: the smallest Session-Expires and Min-SE. */
export const RFC_MIN_SE = 90;
/**
 * Our cap on any interval (one day): a Session-Expires above it is lowered to it (the UAS
 * may lower it, §9); a request whose Min-SE is above it gets 400 (we cannot lower the
 * interval below its Min-SE and will not hold a session unrefreshed for longer).
 */
export const MAX_INTERVAL = 86_400;

/** Who refreshes, in the words of the request that negotiated it (§4). */
export type Refresher = 'uac' | 'uas';

export interface SessionTimer {
  /** Seconds. */
  readonly interval: number;
  readonly refresher: Refresher;
}

export interface TimerConfig {
  /** The interval we want (b2bua.sessionExpires), seconds. */
  readonly sessionExpires: number;
  /** The smallest interval we accept (b2bua.minSE), at least 90. */
  readonly minSE: number;
}

/** `delta-seconds *(;param)` (§4, §5), or 'bad'; absent: null. Digits beyond 10 read as "very large". */
export function parseDelta(value: string | undefined): { seconds: number; refresher: Refresher | null } | 'bad' | null {
  if (value === undefined) return null;
  const m = /^\s*([0-9]+)\s*(;.*)?$/.exec(value);
  if (!m) return 'bad';
  const params = parseParams(m[2] ?? '');
  if (!params) return 'bad';
  const r = params['refresher'];
  const refresher = typeof r === 'string' && (r.toLowerCase() === 'uac' || r.toLowerCase() === 'uas') ? (r.toLowerCase() as Refresher) : null;
  if (r !== undefined && refresher === null) return 'bad';
  // more than 10 digits is past any 32-bit delta-seconds: read as "very large"
  const seconds = m[1]!.length > 10 ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  return { seconds, refresher };
}

/** The request says `Supported: timer` (or `Require: timer`). */
export function supportsTimer(msg: SipMessage): boolean {
  const has = (name: string): boolean => msg.getValues(name).some((t) => t.trim().toLowerCase() === 'timer');
  return has('Supported') || has('Require');
}

export type UasVerdict =
  /** Answer 2xx; `timer` null: no session timer on this leg (the 2xx carries none). */
  | { readonly kind: 'ok'; readonly timer: SessionTimer | null; readonly require: boolean }
  /** §9: Session-Expires below our minimum; the 422 carries `Min-SE: minSE`. */
  | { readonly kind: 'reject'; readonly status: 422; readonly minSE: number }
  /** A malformed Session-Expires or Min-SE, or a Min-SE over MAX_INTERVAL. */
  | { readonly kind: 'bad'; readonly status: 400; readonly why: string };

/**
 * RFC 4028 §9, our side as UAS of a session refresh request (initial INVITE, re-INVITE,
 * UPDATE). The refresher follows the request when it names one; otherwise the sender
 * refreshes (`uac`) when it supports timers, we do (`uas`) when it does not. A request
 * that does not support timers is never answered 422 (§9) and, without Session-Expires,
 * gets no timer.
 */
export function negotiateUas(req: SipMessage, cfg: TimerConfig): UasVerdict {
  const se = parseDelta(req.get('Session-Expires'));
  const min = parseDelta(req.get('Min-SE'));
  if (se === 'bad') return { kind: 'bad', status: 400, why: 'Bad Session-Expires' };
  if (min === 'bad') return { kind: 'bad', status: 400, why: 'Bad Min-SE' };
  const theirMin = Math.max(RFC_MIN_SE, min?.seconds ?? RFC_MIN_SE);
  if (theirMin > MAX_INTERVAL) return { kind: 'bad', status: 400, why: `Min-SE over ${MAX_INTERVAL}` };
  const supported = supportsTimer(req);
  const ours = Math.min(Math.max(cfg.sessionExpires, cfg.minSE), MAX_INTERVAL);
  if (se === null) {
    if (!supported) return { kind: 'ok', timer: null, require: false };
    // §9: it supports timers and asks for none; we ask for ours, the sender refreshing
    return { kind: 'ok', timer: { interval: Math.max(ours, theirMin), refresher: 'uac' }, require: true };
  }
  const floor = Math.max(cfg.minSE, theirMin);
  if (se.seconds < floor) {
    // §9: too short for us (or below its own Min-SE): 422, unless the sender cannot read one
    if (supported) return { kind: 'reject', status: 422, minSE: floor };
    return { kind: 'ok', timer: { interval: Math.max(se.seconds, RFC_MIN_SE), refresher: 'uas' }, require: false };
  }
  // §9: lowered to our interval (never below its Min-SE), never raised; a huge one is capped
  const interval = Math.max(Math.min(se.seconds, ours), theirMin);
  const refresher: Refresher = !supported ? 'uas' : (se.refresher ?? 'uac');
  return { kind: 'ok', timer: { interval, refresher }, require: refresher === 'uac' };
}

/**
 * §7.2: the timer a 2xx to our request sets. No Session-Expires: the peer runs no
 * timer (null). The interval is held to [90, MAX_INTERVAL] whatever the peer wrote; a
 * missing or unknown refresher reads as `uac` (we refresh: the safe side).
 */
export function uacTimer(res: SipMessage): SessionTimer | null {
  const se = parseDelta(res.get('Session-Expires'));
  if (se === null || se === 'bad') return null;
  return { interval: Math.min(Math.max(se.seconds, RFC_MIN_SE), MAX_INTERVAL), refresher: se.refresher ?? 'uac' };
}

/** Whether we refresh, given the timer and our role in the request that set it. */
export function weRefresh(t: SessionTimer, weSentIt: boolean): boolean {
  return t.refresher === (weSentIt ? 'uac' : 'uas');
}

/** What a leg INVITE offers: its Session-Expires and Min-SE (seconds). */
export interface Offered {
  readonly sessionExpires: number;
  readonly minSE: number;
}

/**
 * §7.4: after a 422 to our INVITE, the retry carries the 422's Min-SE (and a
 * Session-Expires at least that). Null: no retry (no usable Min-SE, not larger than what
 * we sent, or over MAX_INTERVAL).
 */
export function retryAfter422(res: SipMessage, sent: Offered): Offered | null {
  const m = parseDelta(res.get('Min-SE'));
  if (m === null || m === 'bad' || m.seconds <= sent.minSE || m.seconds > MAX_INTERVAL) return null;
  return { minSE: m.seconds, sessionExpires: Math.max(sent.sessionExpires, m.seconds) };
}

/** §10: the refresher sends its refresh at half the interval (seconds). */
export function refreshDelay(interval: number): number {
  return interval / 2;
}

/** §10: without a refresh, the other side ends the session after interval - min(32, interval/3) (seconds). */
export function expiryDelay(interval: number): number {
  return interval - Math.min(32, interval / 3);
}

/** The header fields of our 2xx to a refresh request or INVITE (§9): Supported, Require when uac refreshes, Session-Expires. */
export function answerHeaders(v: { readonly timer: SessionTimer | null; readonly require: boolean }): Header[] {
  const h: Header[] = [['Supported', 'timer']];
  if (v.timer === null) return h;
  if (v.require) h.push(['Require', 'timer']);
  h.push(['Session-Expires', `${v.timer.interval};refresher=${v.timer.refresher}`]);
  return h;
}

/** The header fields of our own refresh request (§7.4): we stay the refresher. */
export function refreshHeaders(interval: number, minSE: number): Header[] {
  return [['Supported', 'timer'], ['Session-Expires', `${interval};refresher=uac`], ['Min-SE', String(minSE)]];
}
