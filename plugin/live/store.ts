/**
 * The live view's trace store (docs/lab.md "Live view"): a bounded ring of recent calls,
 * each the messages of one caller's call in arrival order, keyed by the caller's Call-ID.
 *
 * - SIP: what Kamailio received and sent (HEP3 from siptrace, ./collector.ts), with the
 *   addresses it captured. A call starts with an out-of-dialog INVITE; a message of a
 *   Call-ID the store does not know, and is not an INVITE, is not kept (REGISTER, OPTIONS).
 * - Decisions: what pf.invite answered, with its stage (./record.ts).
 * - B2BUA legs: their own Call-IDs, linked to the caller's by the B2BUA (`link`).
 * - MSRP: the relay's frames (HEP3 from media/relay/hep-trace.ts), filed under the call
 *   whose SDP named one of the frame's path URIs (a=path, RFC 4975 §8.2). The relay also
 *   names its session's URIs with the caller's Call-ID (`relaySession`): a B2BUA leg
 *   INVITE whose SDP names one of them is a leg of that call, like one the B2BUA linked.
 *
 * Bounds: `maxCalls` calls (the oldest call that is over goes first, else the oldest),
 * `maxRecords` records per call (later ones are counted as dropped), each record's text
 * cut to MAX_TEXT characters.
 */
import { parseSipMessage, SipParseError, type SipMessage } from '../sip/message.js';
import { parseNameAddr } from '../sip/uri.js';
import { callStep, isLive, type CallEvent, type CallState } from './call-state.js';

/** Characters of a message kept for the page (head and a short body). */
export const MAX_TEXT = 2048;
/** Leg Call-IDs linked to one call. */
const MAX_LEGS = 32;
/** MSRP URIs indexed per call. */
const MAX_URIS = 64;

export interface SipRecord {
  readonly kind: 'sip';
  /** Capture time, epoch ms. */
  readonly t: number;
  /** `ip:port` */
  readonly src: string;
  readonly dst: string;
  readonly transport: string;
  /** This message's Call-ID (a B2BUA leg's differs from the call's). */
  readonly callId: string;
  readonly method: string | null;
  readonly status: number | null;
  readonly reason: string;
  /** The Request-URI of a request. */
  readonly ruri: string | null;
  /** CSeq value, e.g. `1 INVITE`. */
  readonly cseq: string;
  /** Top Via branch and sent-by (`host:port`, port 5060 when absent). */
  readonly branch: string | null;
  readonly viaSentBy: string | null;
  readonly toTag: boolean;
  readonly text: string;
}

export interface DecisionRecord {
  readonly kind: 'decision';
  /** When the service answered. */
  readonly t: number;
  /** When pf.invite reached the service. */
  readonly tAsk: number;
  readonly callId: string;
  /** reject, proxy, isf, pass, b2bua; `error` when the service failed (JSON-RPC error). */
  readonly action: string;
  readonly stage: string | null;
  /** A rejection's status. */
  readonly code: number | null;
  readonly text: string;
}

export interface MsrpRecord {
  readonly kind: 'msrp';
  readonly t: number;
  /** SEND, REPORT, or null for a response. */
  readonly method: string | null;
  readonly status: number | null;
  /** The first From-Path and To-Path URIs (the hop that sent it, the hop it goes to). */
  readonly fromUri: string | null;
  readonly toUri: string | null;
  readonly text: string;
}

export type TraceRecord = SipRecord | DecisionRecord | MsrpRecord;

export interface CallTrace {
  /** The caller's Call-ID. */
  readonly id: string;
  readonly started: number;
  updated: number;
  /** B2BUA legs' Call-IDs. */
  readonly legs: string[];
  readonly records: TraceRecord[];
  /** Records past maxRecords. */
  dropped: number;
  state: CallState;
  /** Where the caller's INVITE came from (`ip:port`), once Kamailio received it. */
  caller: string | null;
  from: string | null;
  to: string | null;
  decision: { readonly action: string; readonly stage: string | null } | null;
  /** MSRP URI (normalised) -> the SIP message whose SDP named it, or `relay` (the relay's session). */
  readonly msrpUris: Map<string, SipRecord | 'relay'>;
}

export interface TraceStoreOptions {
  readonly maxCalls: number;
  readonly maxRecords: number;
  /** Kamailio's SIP addresses (`ip:port`); empty: learned from the first request. */
  readonly kamailio: readonly string[];
}

export interface SipInput {
  readonly t: number;
  readonly src: string;
  readonly dst: string;
  readonly transport: string;
  readonly payload: string;
}

export interface DecisionInput {
  readonly callId: string;
  readonly tAsk: number;
  readonly t: number;
  readonly action: string;
  readonly stage: string | null;
  readonly code: number | null;
  readonly text: string;
}

export interface StoreStats {
  sip: number;
  msrp: number;
  decisions: number;
  /** Messages of no traced call (REGISTER, OPTIONS, frames of no known session). */
  untracked: number;
  /** SIP payloads that did not parse, MSRP payloads without a start line. */
  unparsed: number;
  /** Records over a call's maxRecords. */
  dropped: number;
  /** Calls pushed out of the ring. */
  evicted: number;
}

/** `msrp://Host:port/id;tcp` -> `msrp://host:port/id` (scheme and authority compared without case, RFC 4975 §6.1). */
export function msrpKey(uri: string): string {
  const u = uri.trim().replace(/;.*$/, '');
  const slash = u.indexOf('/', u.indexOf('://') + 3);
  return slash === -1 ? u.toLowerCase() : u.slice(0, slash).toLowerCase() + u.slice(slash);
}

/** a=path URIs of an SDP body, each line's URIs in order. */
export function sdpPathUris(body: string): string[] {
  const out: string[] = [];
  for (const m of body.matchAll(/^a=path:[ \t]*(.+?)[ \t]*\r?$/gm)) out.push(...m[1]!.split(/\s+/).filter(Boolean));
  return out;
}

/** Top Via: branch and sent-by. */
function topVia(msg: SipMessage): { branch: string | null; sentBy: string | null } {
  const v = msg.getValues('Via')[0];
  if (v === undefined) return { branch: null, sentBy: null };
  const sent = /^\s*SIP\s*\/\s*2\.0\s*\/\s*[A-Za-z]+\s+([^;\s]+)/i.exec(v)?.[1] ?? null;
  const branch = /;\s*branch=([^;\s]+)/i.exec(v)?.[1] ?? null;
  return { branch, sentBy: sent === null || /:\d+$/.test(sent) ? sent : `${sent}:5060` };
}

/** The first URI of a path header value. */
function firstUri(v: string | undefined): string | null {
  const u = v?.trim().split(/\s+/)[0];
  return u ? msrpKey(u) : null;
}

export class TraceStore {
  readonly #calls = new Map<string, CallTrace>();
  /** Leg Call-ID -> the caller's Call-ID. */
  readonly #legs = new Map<string, string>();
  /** MSRP URI -> the call whose SDP named it. */
  readonly #uris = new Map<string, CallTrace>();
  readonly #kamailio: Set<string>;
  readonly #learn: boolean;
  readonly stats: StoreStats = { sip: 0, msrp: 0, decisions: 0, untracked: 0, unparsed: 0, dropped: 0, evicted: 0 };

  constructor(private readonly opts: TraceStoreOptions) {
    this.#kamailio = new Set(opts.kamailio);
    this.#learn = this.#kamailio.size === 0;
  }

  /** Kamailio's address: one side of every SIP capture. */
  isKamailio(addr: string): boolean {
    return this.#kamailio.has(addr);
  }

  get size(): number {
    return this.#calls.size;
  }

  /** Newest first. */
  calls(): CallTrace[] {
    return [...this.#calls.values()].reverse();
  }

  get(callId: string): CallTrace | undefined {
    return this.#calls.get(this.#legs.get(callId) ?? callId);
  }

  /** Calls set up or being set up. */
  live(): CallTrace[] {
    return this.calls().filter((c) => isLive(c.state));
  }

  /** The B2BUA's leg `legCallId` belongs to the caller's call `callId`. */
  link(callId: string, legCallId: string, t: number): void {
    const call = this.#calls.get(callId) ?? this.#open(callId, t);
    if (call.legs.length >= MAX_LEGS) return;
    call.legs.push(legCallId);
    this.#legs.set(legCallId, callId);
  }

  decision(d: DecisionInput): void {
    this.stats.decisions++;
    const id = this.#legs.get(d.callId) ?? d.callId;
    const call = this.#calls.get(id) ?? this.#open(id, d.tAsk);
    call.decision = { action: d.action, stage: d.stage };
    this.#push(call, { kind: 'decision', t: d.t, tAsk: d.tAsk, callId: d.callId, action: d.action, stage: d.stage, code: d.code, text: d.text.slice(0, MAX_TEXT) });
  }

  sip(p: SipInput): void {
    let msg: SipMessage;
    try {
      msg = parseSipMessage(p.payload);
    } catch (err) {
      if (!(err instanceof SipParseError)) throw err;
      this.stats.unparsed++;
      return;
    }
    const callId = msg.get('Call-ID');
    if (callId === undefined) {
      this.stats.unparsed++;
      return;
    }
    this.stats.sip++;
    const method = msg.kind === 'request' ? msg.method : null;
    const status = msg.kind === 'response' ? msg.status : null;
    const isRequest = method !== null;
    const toTag = /;\s*tag=/i.test(msg.get('To') ?? '');
    if (this.#learn && this.#kamailio.size === 0 && isRequest) this.#kamailio.add(p.dst);
    const id = this.#legs.get(callId) ?? callId;
    let call = this.#calls.get(id);
    if (!call) {
      if (!(method === 'INVITE' && !toTag)) {
        this.stats.untracked++;
        return;
      }
      // a B2BUA leg: its SDP is the relay's offer, whose URIs the relay named for the call
      const owner = sdpPathUris(msg.body).map((u) => this.#uris.get(msrpKey(u))).find((c) => c !== undefined);
      if (owner) {
        this.link(owner.id, callId, p.t);
        call = owner;
      } else call = this.#open(id, p.t);
    }
    const via = topVia(msg);
    const rec: SipRecord = {
      kind: 'sip', t: p.t, src: p.src, dst: p.dst, transport: p.transport, callId,
      method, status, reason: msg.kind === 'response' ? msg.reason : '',
      ruri: msg.kind === 'request' ? msg.ruri : null, cseq: msg.get('CSeq')?.trim() ?? '', branch: via.branch, viaSentBy: via.sentBy, toTag,
      text: p.payload.slice(0, MAX_TEXT),
    };
    this.#push(call, rec);
    if (/^application\/sdp\b/i.test(msg.get('Content-Type') ?? '') || msg.body.includes('a=path:')) {
      for (const uri of sdpPathUris(msg.body)) {
        const key = msrpKey(uri);
        if (call.msrpUris.has(key) || call.msrpUris.size >= MAX_URIS) continue;
        call.msrpUris.set(key, rec);
        this.#uris.set(key, call);
      }
    }
    if (callId !== call.id) return;
    const received = this.isKamailio(p.dst);
    if (method === 'INVITE' && !toTag && received && call.caller === null) {
      call.caller = p.src;
      call.from = parseNameAddr(msg.get('From') ?? '')?.uri ?? null;
      call.to = rec.ruri;
    }
    // the call's state: messages between Kamailio and the caller only
    if (call.caller === null) return;
    const withCaller = received ? p.src === call.caller : p.dst === call.caller;
    if (!withCaller) return;
    let ev: CallEvent | null = null;
    if (method === 'BYE') ev = 'bye';
    else if (status !== null && /\bINVITE$/i.test(rec.cseq) && !received) {
      ev = status < 200 ? (status === 100 ? null : 'provisional') : status < 300 ? 'answered' : 'rejected';
    }
    if (ev !== null) call.state = callStep(call.state, ev);
  }

  /**
   * The relay made a session for the caller's call `callId`; `sdp` has its URIs (a=path).
   * A leg whose INVITE came first (its capture overtook this one) is moved under the call.
   */
  relaySession(callId: string, t: number, sdp: string): void {
    const id = this.#legs.get(callId) ?? callId;
    const call = this.#calls.get(id) ?? this.#open(id, t);
    for (const uri of sdpPathUris(sdp)) {
      const key = msrpKey(uri);
      const early = this.#uris.get(key);
      if (early !== undefined && early !== call && this.#calls.get(early.id) === early) this.#adopt(call, early);
      if (call.msrpUris.size >= MAX_URIS) break;
      call.msrpUris.set(key, 'relay');
      this.#uris.set(key, call);
    }
  }

  /** A call that turned out to be a leg of `call`: its records and URIs move there. */
  #adopt(call: CallTrace, leg: CallTrace): void {
    this.#calls.delete(leg.id);
    for (const id of [leg.id, ...leg.legs]) {
      if (call.legs.length < MAX_LEGS) call.legs.push(id);
      this.#legs.set(id, call.id);
    }
    for (const r of leg.records) this.#push(call, r);
    for (const [k, v] of leg.msrpUris) {
      if (!call.msrpUris.has(k) && call.msrpUris.size < MAX_URIS) call.msrpUris.set(k, v);
      this.#uris.set(k, call);
    }
  }

  /** One MSRP frame head as the relay saw it (received) or wrote it (sent). */
  msrp(t: number, payload: string): void {
    const end = payload.search(/\r\n\r\n|\r\n-{7}/);
    const head = end === -1 ? payload : payload.slice(0, end);
    const lines = head.split('\r\n');
    const start = /^MSRP ([\w.\-+%=]+) (?:([A-Z]+)|(\d{3})(?: .*)?)$/.exec(lines[0] ?? '');
    if (!start) {
      this.stats.unparsed++;
      return;
    }
    this.stats.msrp++;
    const header = (name: string): string | undefined => {
      const l = lines.find((x) => x.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(name.length + 1).trim();
    };
    const fromUri = firstUri(header('From-Path'));
    const toUri = firstUri(header('To-Path'));
    const call = (fromUri !== null ? this.#uris.get(fromUri) : undefined) ?? (toUri !== null ? this.#uris.get(toUri) : undefined);
    if (!call || !this.#calls.has(call.id)) {
      this.stats.untracked++;
      return;
    }
    this.#push(call, {
      kind: 'msrp', t, method: start[2] ?? null, status: start[3] === undefined ? null : Number(start[3]), fromUri, toUri,
      text: payload.slice(0, MAX_TEXT),
    });
  }

  #open(id: string, t: number): CallTrace {
    if (this.#calls.size >= this.opts.maxCalls) this.#evict();
    const call: CallTrace = {
      id, started: t, updated: t, legs: [], records: [], dropped: 0, state: 'trying', caller: null, from: null, to: null,
      decision: null, msrpUris: new Map(),
    };
    this.#calls.set(id, call);
    return call;
  }

  /** The oldest call that is over, else the oldest. */
  #evict(): void {
    let victim: CallTrace | undefined;
    for (const c of this.#calls.values()) {
      victim ??= c;
      if (!isLive(c.state)) {
        victim = c;
        break;
      }
    }
    if (!victim) return;
    this.#calls.delete(victim.id);
    for (const l of victim.legs) this.#legs.delete(l);
    for (const u of victim.msrpUris.keys()) if (this.#uris.get(u) === victim) this.#uris.delete(u);
    this.stats.evicted++;
  }

  #push(call: CallTrace, rec: TraceRecord): void {
    call.updated = Math.max(call.updated, rec.t);
    if (call.records.length >= this.opts.maxRecords) {
      call.dropped++;
      this.stats.dropped++;
      return;
    }
    call.records.push(rec);
  }
}
