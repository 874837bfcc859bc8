/**
 * One traced call as a ladder diagram (docs/lab.md "Live view"): who the participants
 * are and one row per message, in capture order. Pure.
 *
 * Every SIP capture is Kamailio's, so one side of it is Kamailio and the other is
 * named, in this order:
 *   1. a response Kamailio received: whoever Kamailio sent the request to (same Call-ID,
 *      CSeq and top Via branch, RFC 3261 §17.1.3);
 *   2. an address already named in this call (the source of a request Kamailio received);
 *   3. the address the caller's INVITE came from: `caller`;
 *   4. a registered device's address (its Contact, or where its REGISTER came from);
 *   5. the B2BUA's address, or a request whose top Via is the B2BUA's: `pf`;
 *   6. else the address itself.
 * pf.invite is two rows between Kamailio and the PF (the question, the decision with its
 * CR stage). An MSRP frame goes between the owners of its first From-Path and To-Path
 * URIs: the sender of the SDP that named each (a=path); the PF's SDP names the relay.
 */
import { deviceKey } from '../devices/identity.js';
import type { Device } from '../devices/types.js';
import { parseUri } from '../sip/uri.js';
import type { CallTrace, SipRecord, TraceRecord } from './store.js';
import type { CallSummary, Ladder, LadderRow, Participant } from './schema.js';

export interface LadderContext {
  isKamailio(addr: string): boolean;
  /** The B2BUA's Via sent-by (`ip:port`), when it runs. */
  readonly pfSentBy: string | null;
  /** Registered devices (any user). */
  readonly devices: readonly Device[];
}

/** `sip:bob@127.0.0.1:5062;transport=udp` or `udp:127.0.0.1:5062` -> `127.0.0.1:5062`. */
export function addressOf(text: string): string | null {
  const uri = parseUri(text);
  if (uri && uri.scheme !== 'tel') return `${uri.host}:${uri.port ?? 5060}`;
  const m = /(\[[^\]]+\]|[^:@;<>\s]+):(\d+)$/.exec(text.trim());
  return m ? `${m[1]}:${m[2]}` : null;
}

function userOf(uri: string | null): string {
  if (uri === null) return '?';
  const u = parseUri(uri);
  if (u?.scheme === 'tel') return u.number;
  return u?.user ?? uri;
}

function short(instance: string | null, contact: string): string {
  if (instance === null) return addressOf(contact) ?? contact;
  const id = instance.replace(/^<|>$/g, '').replace(/^urn:uuid:/i, '');
  return id.slice(0, 8);
}

export function summary(c: CallTrace): CallSummary {
  return {
    callId: c.id, started: c.started, updated: c.updated, state: c.state, from: c.from, to: c.to, decision: c.decision,
    legs: [...c.legs], messages: c.records.length, dropped: c.dropped,
  };
}

function sipLabel(r: SipRecord): string {
  if (r.method !== null) return `${r.method}${r.method === 'INVITE' && r.ruri ? ` ${r.ruri}` : ''}`;
  const method = /\s(\S+)$/.exec(r.cseq)?.[1] ?? '';
  return `${r.status} ${r.reason}${method ? ` (${method})` : ''}`;
}

export function buildLadder(call: CallTrace, ctx: LadderContext): Ladder {
  const byAddr = new Map<string, Device>();
  for (const d of ctx.devices) {
    for (const a of [d.received === null ? null : addressOf(d.received), addressOf(d.contact)]) if (a !== null && !byAddr.has(a)) byAddr.set(a, d);
  }
  const participants = new Map<string, Participant>();
  const order: string[] = [];
  const see = (id: string, label: string, detail: string): string => {
    if (!participants.has(id)) {
      participants.set(id, { id, label, detail });
      order.push(id);
    }
    return id;
  };
  see('caller', `caller ${userOf(call.from)}`, call.caller ?? '');
  see('kamailio', 'Kamailio', [...new Set(call.records.flatMap((r) => (r.kind === 'sip' ? [r.src, r.dst] : [])))].filter((a) => ctx.isKamailio(a)).join(' ') || 'SIP proxy');
  see('pf', ctx.pfSentBy === null ? 'PF' : 'PF (B2BUA)', ctx.pfSentBy === null ? 'the decision service' : `the decision service, B2BUA at ${ctx.pfSentBy}`);

  const named = new Map<string, string>();
  /** `<Call-ID> <CSeq> <branch>` of a request Kamailio sent -> who it went to. */
  const sentTo = new Map<string, string>();
  /** Sender of each SIP record (for the MSRP URIs its SDP names). */
  const senderOf = new Map<SipRecord, string>();

  const nameAddr = (addr: string, r: SipRecord, received: boolean): string => {
    const known = named.get(addr);
    if (known !== undefined) return known;
    if (addr === call.caller) return 'caller';
    const d = byAddr.get(addr);
    if (d) return see(`dev:${deviceKey(d)}`, `${userOf(d.aor)} ${short(d.instance, d.contact)}`, d.contact);
    if (ctx.pfSentBy !== null && (addr === ctx.pfSentBy || (received && r.method !== null && r.viaSentBy === ctx.pfSentBy))) return 'pf';
    const user = ruriUser.get(addr);
    return see(`addr:${addr}`, user === undefined ? addr : `${user} ${addr}`, addr);
  };

  const rows: LadderRow[] = [];
  // Kamailio's workers time their captures apart: a response can be stamped before the
  // request it answers was (the request's capture is taken after its send). A response
  // Kamailio received goes right after the request Kamailio sent it for.
  const sentAt = new Map<string, number>();
  for (const r of call.records) {
    if (r.kind === 'sip' && r.method !== null && ctx.isKamailio(r.src) && !ctx.isKamailio(r.dst)) sentAt.set(`${r.callId} ${r.cseq} ${r.branch ?? ''}`, r.t);
  }
  const at = (r: TraceRecord): number => {
    if (r.kind === 'decision') return r.tAsk;
    if (r.kind !== 'sip' || r.status === null || ctx.isKamailio(r.src)) return r.t;
    const req = sentAt.get(`${r.callId} ${r.cseq} ${r.branch ?? ''}`);
    return req !== undefined && req >= r.t ? req + 0.001 : r.t;
  };
  // unknown addresses are named by the Request-URIs Kamailio sent them (a device gone since)
  const ruriUser = new Map<string, string>();
  for (const r of call.records) {
    if (r.kind === 'sip' && r.ruri !== null && ctx.isKamailio(r.src) && !ruriUser.has(r.dst)) {
      const u = parseUri(r.ruri);
      if (u && u.scheme !== 'tel' && u.user) ruriUser.set(r.dst, u.user);
    }
  }
  const records: readonly TraceRecord[] = [...call.records].sort((a, b) => at(a) - at(b));
  const msrp: TraceRecord[] = [];
  for (const r of records) {
    const leg = r.kind === 'decision' || r.kind === 'sip' ? (r.callId === call.id ? null : r.callId) : null;
    if (r.kind === 'msrp') {
      msrp.push(r);
      continue;
    }
    if (r.kind === 'decision') {
      rows.push({ t: r.tAsk, from: 'kamailio', to: 'pf', kind: 'rpc', label: 'pf.invite', detail: 'JSON-RPC pf.invite (docs/jsonrpc.md)', leg });
      const what = r.action === 'error' ? `pf.invite failed: ${r.text}` : `decision: ${r.action}${r.code === null ? '' : ` ${r.code}`} · stage ${r.stage ?? '-'}`;
      rows.push({ t: r.t, from: 'pf', to: 'kamailio', kind: 'decision', label: what, detail: r.text, leg });
      continue;
    }
    const received = ctx.isKamailio(r.dst) || !ctx.isKamailio(r.src);
    const addr = received ? r.src : r.dst;
    const key = `${r.callId} ${r.cseq} ${r.branch ?? ''}`;
    let peer: string;
    if (received && r.method === null && sentTo.has(key)) peer = sentTo.get(key)!;
    else peer = nameAddr(addr, r, received);
    if (received && r.method !== null && !named.has(addr)) named.set(addr, peer);
    if (!received && r.method !== null) sentTo.set(key, peer);
    const from = received ? peer : 'kamailio';
    senderOf.set(r, from);
    rows.push({ t: at(r), from, to: received ? 'kamailio' : peer, kind: 'sip', label: sipLabel(r), detail: r.text, leg });
  }
  const uriOwner = (uri: string | null): string => {
    if (uri === null) return see('addr:?', 'MSRP peer', '');
    const rec = call.msrpUris.get(uri);
    const who = rec === 'relay' ? 'pf' : rec ? senderOf.get(rec) : undefined;
    if (who === 'pf') return see('relay', 'PF MSRP relay', uri);
    if (who !== undefined) return who;
    return see(`addr:${uri}`, uri, uri);
  };
  for (const r of msrp) {
    if (r.kind !== 'msrp') continue;
    const label = r.method !== null ? `MSRP ${r.method}` : `MSRP ${r.status ?? ''}`;
    rows.push({ t: r.t, from: uriOwner(r.fromUri), to: uriOwner(r.toUri), kind: 'msrp', label, detail: r.text, leg: null });
  }
  rows.sort((a, b) => a.t - b.t);

  const answeredBy = new Set<string>();
  for (const row of rows) {
    if (row.kind === 'sip' && row.from.startsWith('dev:') && /^2\d\d .*\(INVITE\)$/.test(row.label)) answeredBy.add(participants.get(row.from)!.label);
  }
  // participants: caller, Kamailio, PF, the relay, then devices and others as they came
  const rank = (id: string): number => (id === 'caller' ? 0 : id === 'kamailio' ? 1 : id === 'pf' ? 2 : id === 'relay' ? 3 : id.startsWith('dev:') ? 4 : 5);
  const sorted = order.map((id, i) => ({ id, i })).sort((a, b) => rank(a.id) - rank(b.id) || a.i - b.i).map(({ id }) => participants.get(id)!);
  return { call: summary(call), participants: sorted, rows, answeredBy: [...answeredBy] };
}
