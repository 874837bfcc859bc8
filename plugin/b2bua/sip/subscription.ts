/**
 * The subscriber side of SIP-specific event notification (RFC 6665), as far as the
 * B2BUA needs it: a SUBSCRIBE of one event package (the conference package of
 * RFC 4575 for a deferred group session, docs/deferred.md "Delivery"), the dialog it makes
 * (from its 2xx, or from a NOTIFY that overtook the 2xx, §4.1.2.4), and the readers of
 * Subscription-State and Expires. Pure, over the dialog record of ./dialog.ts; the
 * caller sends through the transaction layer.
 *
 *   (SUBSCRIBE sent) --2xx or NOTIFY--> active --(refresh before Expires)--> active
 *          |                              +--(Expires: 0 sent, or NOTIFY terminated)--> terminated
 *          +--(non-2xx, timeout)--> terminated
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { parseParams } from '../../sip/uri.js';
import { MAX_FORWARDS, newBranch, printRequest, tagOf, type Built, type Header } from './build.js';
import { buildInDialog, contactUri, DialogError, type Dialog } from './dialog.js';

export interface SubscribeInput {
  readonly sentBy: string;
  /** Request-URI and To: the notifier (the conference focus). */
  readonly target: string;
  /** From: whom we subscribe for (the served user), bare URI. */
  readonly subscriber: string;
  readonly callId: string;
  readonly localTag: string;
  readonly contact: string;
  /** Loose-routing outbound proxy (Kamailio). */
  readonly outboundProxy: string;
  readonly event: string;
  readonly accept: string;
  readonly expires: number;
  /** Added after the standard fields (X-PF-Leg, User-Agent). */
  readonly headers?: readonly Header[];
}

/** The initial SUBSCRIBE (RFC 6665 §4.1.2.1), CSeq 1. */
export function initialSubscribe(i: SubscribeInput): Built<SipRequest> {
  const h: Header[] = [
    ['Via', `SIP/2.0/TCP ${i.sentBy};branch=${newBranch()};rport`],
    ['Max-Forwards', String(MAX_FORWARDS)],
    ['Route', `<${i.outboundProxy}>`],
    ['From', `<${i.subscriber}>;tag=${i.localTag}`],
    ['To', `<${i.target}>`],
    ['Call-ID', i.callId],
    ['CSeq', '1 SUBSCRIBE'],
    ['Contact', `<${i.contact}>`],
    ['Event', i.event],
    ['Accept', i.accept],
    ['Expires', String(i.expires)],
    ...(i.headers ?? []),
  ];
  return printRequest('SUBSCRIBE', i.target, h);
}

/** A refresh, or with `expires` 0 the end (§4.1.2.2, §4.1.2.3), in the dialog. */
export function subscribeInDialog(d: Dialog, o: { sentBy: string; contact: string; event: string; accept: string; expires: number }): { dialog: Dialog; request: Built<SipRequest> } {
  return buildInDialog(d, 'SUBSCRIBE', {
    sentBy: o.sentBy,
    headers: [['Contact', `<${o.contact}>`], ['Event', o.event], ['Accept', o.accept], ['Expires', String(o.expires)]],
  });
}

/**
 * The dialog of a 2xx to our SUBSCRIBE: as an INVITE's (RFC 3261 §12.1.2, the route set
 * from the 2xx's Record-Route reversed). Throws DialogError without To-tag or Contact.
 */
export function dialogFromSubscribe2xx(sub: SipRequest, res: SipResponse): Dialog {
  const localTag = tagOf(sub.get('From'));
  const remoteTag = tagOf(res.get('To'));
  if (!localTag || !remoteTag) throw new DialogError('missing From or To tag');
  return {
    role: 'uac', state: 'confirmed', callId: sub.get('Call-ID') ?? '', localTag, remoteTag, localUri: uriIn(sub.get('From')),
    remoteUri: uriIn(sub.get('To')), localSeq: 1, remoteSeq: null, remoteTarget: contactUri(res),
    routeSet: [...res.getValues('Record-Route')].reverse(), secure: false,
  };
}

/**
 * The dialog made by a NOTIFY (RFC 6665 §4.1.2.4: it may overtake the 2xx): its From-tag
 * is the remote tag, its Contact the target, its Record-Route the route set in the order
 * received (we are the recipient of the request, RFC 3261 §12.1.1).
 */
export function dialogFromNotify(sub: SipRequest, notify: SipRequest): Dialog {
  const localTag = tagOf(sub.get('From'));
  const remoteTag = tagOf(notify.get('From'));
  if (!localTag || !remoteTag) throw new DialogError('missing From or To tag');
  const cseq = /^(\d+)/.exec(notify.get('CSeq') ?? '');
  return {
    role: 'uac', state: 'confirmed', callId: sub.get('Call-ID') ?? '', localTag, remoteTag, localUri: uriIn(sub.get('From')),
    remoteUri: uriIn(sub.get('To')), localSeq: 1, remoteSeq: cseq ? Number(cseq[1]) : null, remoteTarget: contactUri(notify),
    routeSet: [...notify.getValues('Record-Route')], secure: false,
  };
}

function uriIn(value: string | undefined): string {
  const m = /<([^>]+)>/.exec(value ?? '');
  const uri = (m ? m[1] : (value ?? '').split(';')[0])?.trim() ?? '';
  if (uri === '') throw new DialogError('no URI');
  return uri;
}

export interface SubscriptionState {
  readonly state: 'active' | 'pending' | 'terminated';
  /** Seconds, when given. */
  readonly expires: number | null;
  readonly reason: string | null;
}

/** RFC 6665 §8.2.3 Subscription-State; null when missing or malformed. */
export function subscriptionState(value: string | undefined): SubscriptionState | null {
  if (value === undefined) return null;
  const m = /^\s*([A-Za-z-]+)\s*(;.*)?$/.exec(value);
  if (!m) return null;
  const state = m[1]!.toLowerCase();
  if (state !== 'active' && state !== 'pending' && state !== 'terminated') return null;
  const params = parseParams(m[2] ?? '');
  const e = params?.['expires'];
  const r = params?.['reason'];
  return {
    state,
    expires: typeof e === 'string' && /^\d{1,10}$/.test(e) ? Number(e) : null,
    reason: typeof r === 'string' ? r.toLowerCase() : null,
  };
}

/** The Expires of a 2xx to SUBSCRIBE (§4.1.2.1: it may shorten ours); null when absent or bad. */
export function expiresOf(res: SipResponse): number | null {
  const v = res.get('Expires')?.trim();
  return v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : null;
}

/**
 * When to refresh a subscription of `seconds` (§4.1.2.2: before it expires): at 80%, and
 * at least 5 s before the end when that comes sooner. Milliseconds from now.
 */
export function refreshInMs(seconds: number, unitMs = 1000): number {
  return Math.max(0, Math.min(seconds * 0.8, seconds - 5)) * unitMs;
}
