/**
 * Dialog state (RFC 3261 §12) as a plain JSON record, and pure functions over it: create
 * as UAS (§12.1.1) or UAC (§12.1.2, one dialog per To-tag of a forked INVITE,
 * §13.2.2.4), build an in-dialog request (§12.2.1.1), check a request's CSeq (§12.2.2),
 * refresh the target (§12.2.1.2, §12.2.2). Stored at each change by the B2BUA, so
 * fromJSON(toJSON(d)) must give d back.
 *
 *   early --(2xx)--> confirmed --(BYE, or error)--> terminated
 *     +--------(non-2xx final, BYE)----------------> terminated
 *
 * Used by the B2BUA (../b2bua.ts): the call, its legs, and their refreshes (docs/b2bua.md).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { SipMessage, SipRequest, SipResponse } from '../../sip/message.js';
import { parseNameAddr, parseUri } from '../../sip/uri.js';
import { BuildError, cseqOf, MAX_FORWARDS, newBranch, printRequest, tagOf, type Built, type Header } from './build.js';
import { guardedTransition, type NextTable } from '../../../lib/fsm.js';

export const DialogStateSchema = Type.Union([Type.Literal('early'), Type.Literal('confirmed'), Type.Literal('terminated')]);
export type DialogStateName = Static<typeof DialogStateSchema>;

export const DialogSchema = Type.Object(
  {
    role: Type.Union([Type.Literal('uac'), Type.Literal('uas')]),
    state: DialogStateSchema,
    callId: Type.String({ minLength: 1 }),
    localTag: Type.String({ minLength: 1 }),
    remoteTag: Type.String({ minLength: 1 }),
    /** URIs only (no display name, no tag): From/To are rebuilt from them. */
    localUri: Type.String({ minLength: 1 }),
    remoteUri: Type.String({ minLength: 1 }),
    /** Null while empty (§12.1.1: the UAS's local sequence number starts empty). */
    localSeq: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    remoteSeq: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    remoteTarget: Type.String({ minLength: 1 }),
    /** Route header values (name-addr), in the order they go into Route. */
    routeSet: Type.Array(Type.String()),
    secure: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type Dialog = Static<typeof DialogSchema>;

export const DIALOG_NEXT: NextTable<DialogStateName> = {
  early: ['confirmed', 'terminated'],
  confirmed: ['terminated'],
  terminated: [],
};

/** The one guarded move of a dialog's state; throws IllegalTransition. */
export function transitionDialog(d: Dialog, to: DialogStateName): Dialog {
  return { ...d, state: guardedTransition('dialog', DIALOG_NEXT, d.state, to) };
}

/** Why a dialog cannot be built from these messages. */
export class DialogError extends Error {
  override readonly name = 'DialogError';
}

/** The key the B2BUA files a dialog under: Call-ID, local tag, remote tag (§12). */
export function dialogId(d: Pick<Dialog, 'callId' | 'localTag' | 'remoteTag'>): string {
  return `${d.callId};${d.localTag};${d.remoteTag}`;
}

/** The dialog id an incoming request names (§12.2.2: its To-tag is ours), or null. */
export function incomingDialogId(req: SipRequest): string | null {
  const callId = req.get('Call-ID');
  const local = tagOf(req.get('To'));
  const remote = tagOf(req.get('From'));
  return callId && local && remote ? dialogId({ callId, localTag: local, remoteTag: remote }) : null;
}

function uriOf(value: string | undefined, what: string): string {
  const na = value === undefined ? null : parseNameAddr(value);
  if (!na) throw new DialogError(`no valid ${what}`);
  return na.uri;
}

/** The single Contact URI (§12.1.1, §12.1.2: the remote target), or throws DialogError. */
export function contactUri(msg: SipMessage): string {
  const values = msg.getValues('Contact');
  if (values.length !== 1) throw new DialogError(`expected one Contact, got ${values.length}`);
  const uri = uriOf(values[0], 'Contact');
  const u = parseUri(uri);
  if (!u || u.scheme === 'tel') throw new DialogError('Contact is not a SIP URI'); // §8.1.1.8
  return uri;
}

function seqOf(msg: SipMessage): number {
  const c = cseqOf(msg);
  if (!c) throw new DialogError('no valid CSeq');
  return c.seq;
}

const isSips = (ruri: string): boolean => parseUri(ruri)?.scheme === 'sips';

/**
 * UAS side (§12.1.1): from the dialog-creating request and our response with a To-tag
 * (1xx: early, 2xx: confirmed). Route set = Record-Route as it is; remote target = the
 * request's Contact. `secure`: a sips Request-URI (Kamailio terminates TLS).
 */
export function dialogAsUas(req: SipRequest, res: SipResponse): Dialog {
  if (res.status <= 100 || res.status >= 300) throw new DialogError(`status ${res.status} creates no dialog`);
  const localTag = tagOf(res.get('To'));
  const remoteTag = tagOf(req.get('From'));
  const callId = req.get('Call-ID');
  if (!localTag || !remoteTag || !callId) throw new DialogError('missing Call-ID, From tag or To tag');
  return {
    role: 'uas', state: res.status < 200 ? 'early' : 'confirmed', callId, localTag, remoteTag,
    localUri: uriOf(req.get('To'), 'To'), remoteUri: uriOf(req.get('From'), 'From'),
    localSeq: null, remoteSeq: seqOf(req), remoteTarget: contactUri(req),
    routeSet: [...req.getValues('Record-Route')], secure: isSips(req.ruri),
  };
}

/**
 * UAC side (§12.1.2): from our request and a 1xx (with To-tag) or 2xx; each To-tag of a
 * forked INVITE is its own dialog (§13.2.2.4). Route set = Record-Route reversed.
 */
export function dialogAsUac(req: SipRequest, res: SipResponse): Dialog {
  if (res.status <= 100 || res.status >= 300) throw new DialogError(`status ${res.status} creates no dialog`);
  const localTag = tagOf(req.get('From'));
  const remoteTag = tagOf(res.get('To'));
  const callId = req.get('Call-ID');
  if (!localTag || !remoteTag || !callId) throw new DialogError('missing Call-ID, From tag or To tag');
  return {
    role: 'uac', state: res.status < 200 ? 'early' : 'confirmed', callId, localTag, remoteTag,
    localUri: uriOf(req.get('From'), 'From'), remoteUri: uriOf(req.get('To'), 'To'),
    localSeq: seqOf(req), remoteSeq: null, remoteTarget: contactUri(res),
    routeSet: [...res.getValues('Record-Route')].reverse(), secure: isSips(req.ruri),
  };
}

/**
 * An early UAC dialog confirmed by the 2xx of its INVITE (§13.2.2.4): the route set is
 * recomputed from the 2xx's Record-Route and the target from its Contact.
 */
export function confirmAsUac(d: Dialog, res: SipResponse): Dialog {
  const next = transitionDialog(d, 'confirmed');
  return { ...next, remoteTarget: contactUri(res), routeSet: [...res.getValues('Record-Route')].reverse() };
}

/**
 * Target refresh (§12.2.1.2 on the 2xx of our re-INVITE/UPDATE, §12.2.2 on theirs): the
 * remote target becomes the message's Contact. Throws DialogError without one Contact
 * (the B2BUA answers such a request 400).
 */
export function refreshTarget(d: Dialog, msg: SipMessage): Dialog {
  return { ...d, remoteTarget: contactUri(msg) };
}

export type CseqCheck = { readonly ok: true; readonly dialog: Dialog } | { readonly ok: false; readonly status: 500 | 400 };

/**
 * §12.2.2: an in-dialog request with a CSeq lower than the remote sequence number is out
 * of order (500); otherwise the number is remembered. ACK and CANCEL carry the number of
 * the request they belong to and are not checked.
 */
export function checkRemoteCseq(d: Dialog, req: SipRequest): CseqCheck {
  const c = cseqOf(req);
  if (!c) return { ok: false, status: 400 };
  if (req.method === 'ACK' || req.method === 'CANCEL') return { ok: true, dialog: d };
  if (d.remoteSeq !== null && c.seq < d.remoteSeq) return { ok: false, status: 500 };
  return { ok: true, dialog: { ...d, remoteSeq: c.seq } };
}

export interface InDialogOptions {
  /** Top Via's sent-by, ours (e.g. 127.0.0.1:5070). */
  readonly sentBy: string;
  /** Default: a new one (§8.1.1.7). */
  readonly branch?: string;
  /** ACK (§13.2.2.4) and CANCEL take the INVITE's number; others the next local one. */
  readonly seq?: number;
  readonly headers?: readonly Header[];
  readonly body?: string;
}

/** Request-URI and Route lines from the remote target and route set (§12.2.1.1). */
export function routing(d: Dialog): { ruri: string; routes: string[] } {
  const first = d.routeSet[0];
  if (first === undefined) return { ruri: d.remoteTarget, routes: [] };
  const na = parseNameAddr(first);
  const u = na ? parseUri(na.uri) : null;
  if (!na || !u || u.scheme === 'tel') throw new DialogError(`route set entry is not a SIP URI: ${first}`);
  if (u.params['lr'] !== undefined) return { ruri: d.remoteTarget, routes: [...d.routeSet] }; // loose routing
  // Strict router: it goes into the Request-URI (URI parameters kept, headers dropped,
  // §12.2.1.1), the remote target becomes the last Route.
  const q = na.uri.indexOf('?');
  return { ruri: q === -1 ? na.uri : na.uri.slice(0, q), routes: [...d.routeSet.slice(1), `<${d.remoteTarget}>`] };
}

/**
 * An in-dialog request (§12.2.1.1): To = remote URI and tag, From = local URI and tag,
 * Call-ID, CSeq, Request-URI and Route from `routing`. Returns the dialog with its local
 * sequence number moved on (unchanged for ACK and CANCEL).
 */
export function buildInDialog(d: Dialog, method: string, o: InDialogOptions): { dialog: Dialog; request: Built<SipRequest> } {
  if (d.state === 'terminated' && method !== 'ACK') throw new DialogError(`${method} on a terminated dialog`);
  const fixed = method === 'ACK' || method === 'CANCEL';
  if (fixed && o.seq === undefined) throw new DialogError(`${method} needs the INVITE's CSeq number`);
  const seq = fixed ? o.seq! : o.seq ?? (d.localSeq === null ? 1 : d.localSeq + 1);
  const { ruri, routes } = routing(d);
  const h: Header[] = [
    ['Via', `SIP/2.0/TCP ${o.sentBy};branch=${o.branch ?? newBranch()}`], ['Max-Forwards', String(MAX_FORWARDS)],
    ['From', `<${d.localUri}>;tag=${d.localTag}`], ['To', `<${d.remoteUri}>;tag=${d.remoteTag}`],
    ['Call-ID', d.callId], ['CSeq', `${seq} ${method}`], ...routes.map((r) => ['Route', r] as const), ...(o.headers ?? []),
  ];
  let request: Built<SipRequest>;
  try {
    request = printRequest(method, ruri, h, o.body ?? '');
  } catch (err) {
    throw err instanceof BuildError ? new DialogError(err.message) : err;
  }
  return { dialog: fixed ? d : { ...d, localSeq: seq }, request };
}

/** The dialog as stored (plain data already; a copy). */
export function toJSON(d: Dialog): string {
  return JSON.stringify(d);
}

/** A stored dialog back, checked against DialogSchema; throws DialogError when it does not fit. */
export function fromJSON(text: string): Dialog {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new DialogError('stored dialog is not JSON');
  }
  if (!Value.Check(DialogSchema, v)) throw new DialogError('stored dialog does not match the schema');
  return v;
}
