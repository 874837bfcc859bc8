/**
 * A small SIP user agent over UDP for the lab's chat phones and chat caller (RFC 3261):
 * one socket bound before anything is sent (a phone listens before it registers), client
 * transactions with UDP retransmission (§17.1.1.2 timer A, §17.1.2.2 timer E, both ended
 * by timer B/F), the ACK of a non-2xx final (§17.1.1.3), server transactions that answer a
 * retransmitted request with the last response (§17.2), and CANCEL matching (§9.2).
 * Dialog logic (ACK of a 2xx, BYE, route sets) is the caller's: lab/chat-phone.ts.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { token } from './sip.js';
import { sipMessage } from './sip-fixtures.js';

export interface SipMsg {
  readonly raw: string;
  readonly kind: 'request' | 'response';
  /** Request method, or the CSeq method of a response. */
  readonly method: string;
  /** Request-URI ('' for a response). */
  readonly ruri: string;
  /** Status code (0 for a request). */
  readonly status: number;
  readonly reason: string;
  /** Header lines in order, names lower-cased and compact forms expanded (RFC 3261 §7.3.3). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

const COMPACT: Readonly<Record<string, string>> = {
  v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type',
  k: 'supported', s: 'subject', e: 'content-encoding', a: 'accept-contact', j: 'reject-contact', d: 'request-disposition',
};
/** Headers whose values may be comma-joined on one line (RFC 3261 §7.3.1). */
const LISTS = new Set(['via', 'route', 'record-route', 'contact']);

/** Split a header value at commas outside quotes and angle brackets. */
function splitList(v: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < v.length; i++) {
    const ch = v[i];
    if (ch === '"' && v[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && ch === '<') depth++;
    else if (!quoted && ch === '>') depth--;
    else if (!quoted && depth === 0 && ch === ',') {
      out.push(v.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(v.slice(start).trim());
  return out.filter((s) => s !== '');
}

/** Parse one SIP message; null for anything that is not one (a keepalive, garbage). */
export function parseSip(raw: string): SipMsg | null {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const lines = head.split('\r\n');
  const first = lines[0] ?? '';
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const short = line.slice(0, i).trim().toLowerCase();
    const name = COMPACT[short] ?? short;
    const value = line.slice(i + 1).trim();
    for (const one of LISTS.has(name) && value !== '*' ? splitList(value) : [value]) headers.push([name, one]);
  }
  const body = end === -1 ? '' : raw.slice(end + 4);
  const cseqMethod = (headers.find(([n]) => n === 'cseq')?.[1] ?? '').split(/\s+/)[1] ?? '';
  const resp = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(first);
  if (resp) return { raw, kind: 'response', method: cseqMethod, ruri: '', status: Number(resp[1]), reason: resp[2] ?? '', headers, body };
  const req = /^([A-Z]+) (\S+) SIP\/2\.0$/.exec(first);
  if (req) return { raw, kind: 'request', method: req[1]!, ruri: req[2]!, status: 0, reason: '', headers, body };
  return null;
}

export const hdr = (m: SipMsg, name: string): string | undefined => m.headers.find(([n]) => n === name.toLowerCase())?.[1];
export const hdrs = (m: SipMsg, name: string): string[] => m.headers.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);

/** A header parameter (`;tag=`, `;branch=`), outside the angle brackets. */
export function param(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  const gt = value.lastIndexOf('>');
  const tail = gt === -1 ? value : value.slice(gt + 1);
  return new RegExp(`;\\s*${name}=([^;\\s,]+)`, 'i').exec(tail)?.[1];
}

/** The URI of a name-addr (`"Bob" <sip:bob@x>;tag=1` -> `sip:bob@x`). */
export function uriOf(value: string): string {
  const lt = value.indexOf('<');
  const gt = value.indexOf('>', lt + 1);
  if (lt !== -1 && gt > lt) return value.slice(lt + 1, gt);
  return value.split(';')[0]!.trim();
}

/** host and port of a SIP URI (default 5060). */
export function hostPort(uri: string): { host: string; port: number } {
  const m = /^sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;>?]+)(?::(\d+))?/i.exec(uri);
  if (!m) throw new Error(`not a SIP URI: ${uri}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 5060 };
}

export const T1 = 500;
const T2 = 4000;
const TIMER_B = 64 * T1;

export interface Dest {
  readonly host: string;
  readonly port: number;
}

interface ClientTx {
  readonly method: string;
  readonly text: string;
  readonly dest: Dest;
  final: SipMsg | undefined;
  onResponse: (r: SipMsg) => void;
  /** Timer A / E (retransmissions). */
  retransmit: NodeJS.Timeout | undefined;
  /** Timer B / F (no final response), then the linger after the final. */
  timeout: NodeJS.Timeout | undefined;
}

interface ServerTx {
  readonly request: SipMsg;
  readonly from: Dest;
  last: string | undefined;
  lastStatus: number;
}

export interface UaEvents {
  /** A new request (not a retransmission, not an ACK a transaction absorbed, not CANCEL). */
  request: [req: SipMsg, from: Dest];
  /** A CANCEL matched an INVITE server transaction; the UA answered it 200 (RFC 3261 §9.2). */
  cancel: [invite: SipMsg];
}

const branchOf = (m: SipMsg): string => param(hdr(m, 'via'), 'branch') ?? '';

export class SipUa extends EventEmitter<UaEvents> {
  private readonly clients = new Map<string, ClientTx>();
  private readonly servers = new Map<string, ServerTx>();
  private closed = false;

  private constructor(
    private readonly sock: dgram.Socket,
    readonly host: string,
    readonly port: number,
  ) {
    super();
    sock.on('message', (buf, rinfo) => this.onMessage(buf.toString('utf8'), { host: rinfo.address, port: rinfo.port }));
  }

  /** Bind the UA's socket (port 0: any free one). */
  static async open(port = 0, host = '127.0.0.1'): Promise<SipUa> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', () => undefined);
    return new SipUa(sock, host, sock.address().port);
  }

  /** A Via for a new client transaction from this UA. */
  via(branch = `z9hG4bK${token()}`): string {
    return `SIP/2.0/UDP ${this.host}:${this.port};branch=${branch};rport`;
  }

  send(text: string, dest: Dest): void {
    if (!this.closed) this.sock.send(text, dest.port, dest.host);
  }

  /**
   * Send a request (its top Via from via()) as a client transaction. `onResponse` sees every
   * response, also 2xx retransmissions and the 2xx of other fork branches that arrive after
   * the first final (RFC 3261 §13.2.2.4); the promise resolves with the first final.
   */
  request(text: string, dest: Dest, onResponse: (r: SipMsg) => void = () => undefined): Promise<SipMsg> {
    const msg = parseSip(text);
    if (!msg || msg.kind !== 'request') throw new Error('not a SIP request');
    const branch = branchOf(msg);
    return new Promise<SipMsg>((resolve, reject) => {
      const tx: ClientTx = {
        method: msg.method,
        text,
        dest,
        final: undefined,
        onResponse: (r) => {
          onResponse(r);
          if (r.status >= 200 && tx.final === undefined) {
            tx.final = r;
            this.stopTimers(tx);
            // keep matching for a while: 2xx retransmissions and other branches' 2xx
            tx.timeout = setTimeout(() => this.clients.delete(branch), TIMER_B);
            resolve(r);
          }
        },
        retransmit: undefined,
        timeout: undefined,
      };
      this.clients.set(branch, tx);
      const isInvite = msg.method === 'INVITE';
      const retransmit = (interval: number): void => {
        tx.retransmit = setTimeout(() => {
          this.send(text, dest);
          retransmit(isInvite ? interval * 2 : Math.min(interval * 2, T2));
        }, interval);
      };
      retransmit(T1);
      tx.timeout = setTimeout(() => {
        this.stopTimers(tx);
        this.clients.delete(branch);
        reject(new Error(`${msg.method}: no final response within ${TIMER_B} ms`));
      }, TIMER_B);
      this.send(text, dest);
    });
  }

  /**
   * Answer a request: Via, From, To (with `toTag` when it has none), Call-ID and CSeq copied
   * (RFC 3261 §8.2.6.2), then `extra` header lines and the body. Sent back to where the
   * request came from; a retransmitted request gets it again.
   */
  respond(req: SipMsg, status: number, reason: string, o: { toTag?: string; extra?: readonly string[]; body?: string } = {}): void {
    const tx = this.servers.get(branchOf(req) + req.method);
    const to = hdr(req, 'to') ?? '';
    const lines = [
      ...hdrs(req, 'via').map((v) => `Via: ${v}`),
      `From: ${hdr(req, 'from') ?? ''}`,
      `To: ${o.toTag && param(to, 'tag') === undefined ? `${to};tag=${o.toTag}` : to}`,
      `Call-ID: ${hdr(req, 'call-id') ?? ''}`,
      `CSeq: ${hdr(req, 'cseq') ?? ''}`,
      ...(o.extra ?? []),
    ];
    const text = sipMessage(`SIP/2.0 ${status} ${reason}`, lines, o.body ?? '');
    if (tx) {
      tx.last = text;
      tx.lastStatus = status;
    }
    this.send(text, tx?.from ?? { host: '127.0.0.1', port: 0 });
  }

  /** Send the last response to `req` again (a 2xx until its ACK, RFC 3261 §13.3.1.4). */
  resend(req: SipMsg): void {
    const tx = this.servers.get(branchOf(req) + req.method);
    if (tx?.last) this.send(tx.last, tx.from);
  }

  /** Forget an answered INVITE server transaction (after its ACK, RFC 3261 §17.2.1). */
  forget(req: SipMsg): void {
    this.servers.delete(branchOf(req) + req.method);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const tx of this.clients.values()) this.stopTimers(tx);
    this.clients.clear();
    this.servers.clear();
    await new Promise<void>((resolve) => this.sock.close(() => resolve()));
  }

  private stopTimers(tx: ClientTx): void {
    clearTimeout(tx.retransmit);
    clearTimeout(tx.timeout);
    tx.retransmit = undefined;
    tx.timeout = undefined;
  }

  private onMessage(raw: string, from: Dest): void {
    const m = parseSip(raw);
    if (!m) return;
    const branch = branchOf(m);
    if (m.kind === 'response') {
      const tx = this.clients.get(branch);
      if (!tx) return;
      // a provisional after the final (Kamailio's workers may send them in either order)
      // matches no transaction any more (RFC 3261 §17.1.1.2): dropped
      if (tx.final !== undefined && m.status < 200) return;
      if (tx.method === 'INVITE' && m.status >= 300) this.ackNon2xx(tx, m);
      // any response stops the INVITE's retransmissions (RFC 3261 §17.1.1.2, Proceeding)
      // (and no timer B while it rings: the proxy's own timer ends an unanswered call)
      if (tx.method === 'INVITE' && tx.final === undefined) this.stopTimers(tx);
      tx.onResponse(m);
      return;
    }
    if (m.method === 'ACK') {
      const inv = this.servers.get(`${branch}INVITE`);
      // the ACK of a non-2xx belongs to the INVITE transaction (RFC 3261 §17.2.1)
      if (inv && inv.lastStatus >= 300) {
        this.servers.delete(`${branch}INVITE`);
        return;
      }
      this.emit('request', m, from);
      return;
    }
    if (m.method === 'CANCEL') {
      const inv = this.servers.get(`${branch}INVITE`);
      this.servers.set(`${branch}CANCEL`, { request: m, from, last: undefined, lastStatus: 0 });
      if (!inv) {
        this.respond(m, 481, 'Call/Transaction Does Not Exist');
        return;
      }
      this.respond(m, 200, 'OK');
      if (inv.lastStatus < 200) this.emit('cancel', inv.request);
      return;
    }
    const key = branch + m.method;
    const known = this.servers.get(key);
    if (known) {
      if (known.last) this.send(known.last, known.from);
      return;
    }
    this.servers.set(key, { request: m, from, last: undefined, lastStatus: 0 });
    // non-INVITE server transactions end after timer J (64*T1 on UDP, §17.2.2)
    if (m.method !== 'INVITE') setTimeout(() => this.servers.delete(key), TIMER_B).unref();
    this.emit('request', m, from);
  }

  /** ACK a non-2xx final: same branch, Request-URI and From; To of the response (RFC 3261 §17.1.1.3). */
  private ackNon2xx(tx: ClientTx, r: SipMsg): void {
    const inv = parseSip(tx.text)!;
    const lines = [
      `Via: ${hdr(inv, 'via') ?? ''}`,
      'Max-Forwards: 70',
      `From: ${hdr(inv, 'from') ?? ''}`,
      `To: ${hdr(r, 'to') ?? ''}`,
      `Call-ID: ${hdr(inv, 'call-id') ?? ''}`,
      `CSeq: ${(hdr(inv, 'cseq') ?? '').split(/\s+/)[0] ?? '1'} ACK`,
      ...hdrs(inv, 'route').map((v) => `Route: ${v}`),
    ];
    this.send(sipMessage(`ACK ${inv.ruri} SIP/2.0`, lines), tx.dest);
  }
}
