/**
 * SIP user agents on plain UDP sockets, sending to the lab's Kamailio: a caller and a
 * registered chat device whose every request and answer the driver decides, so a
 * session timer refresh (RFC 4028, UPDATE or re-INVITE, either way) is sent or withheld
 * at will. Used by test/integration/b2bua-timers.test.ts and bench/b2bua-soak.ts.
 *
 * A UA keeps what it received (`received`) and answers the B2BUA's in-dialog requests
 * (BYE, UPDATE, re-INVITE, OPTIONS) with 200 unless `autoAnswer` is off. Waits for a
 * request or a response are woken by each message that arrives (no polling).
 */
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { vars, type InviteOptions } from './calls.js';
import { freePort } from './proc.js';
import { CPM_DEVICE_PARAMS, parseResponse, register, token, type SipResponse } from './sip.js';
import { sipMessage } from './sip-fixtures.js';

/** Where the UAs send (Kamailio's SIP port), the run dir (for `vars`), and a list of every UA opened (for a teardown), if kept. */
export interface RawUaLab {
  readonly sipPort: number;
  readonly dir: string;
  readonly opened?: RawUa[];
}

/** A header's values in a raw message, in order (every line of that name). */
export function headers(msg: string, name: string): string[] {
  const head = msg.split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'gim');
  return [...head.matchAll(re)].map((m) => m[1]!.trim());
}
export const header = (msg: string, name: string): string | undefined => headers(msg, name)[0];
export const bodyOf = (msg: string): string => msg.slice(msg.indexOf('\r\n\r\n') + 4);
export const tag = (v: string | undefined): string | undefined => /;\s*tag=([^;>\s]+)/i.exec(v ?? '')?.[1];
export const angle = (v: string | undefined): string => /<([^>]+)>/.exec(v ?? '')?.[1] ?? '';

/** The dialog as one side sees it (RFC 3261 §12.1). */
export interface RawDialog {
  readonly callId: string;
  readonly local: string;
  readonly remote: string;
  readonly target: string;
  readonly routes: readonly string[];
}

/** A SIP UA on a UDP socket, sending to Kamailio; in-dialog requests along `dialog`. */
export class RawUa {
  readonly received: string[] = [];
  dialog: RawDialog | null = null;
  cseq = 1;
  /** Answer the B2BUA's requests (BYE, UPDATE, re-INVITE, OPTIONS) with 200. */
  autoAnswer = true;
  /** Extra header lines of the 200 to a refresh. */
  refreshAnswer: readonly string[] = [];
  /** Called with every message received, after it is kept and before it is answered. */
  onMessage: ((m: string) => void) | null = null;
  readonly #wakers = new Set<() => void>();

  protected constructor(
    readonly lab: RawUaLab,
    readonly sock: dgram.Socket,
    readonly port: number,
    readonly sdp: string,
  ) {
    sock.on('message', (b) => {
      const m = b.toString('utf8');
      this.received.push(m);
      this.onMessage?.(m);
      for (const w of [...this.#wakers]) w();
      if (!m.startsWith('SIP/2.0') && this.autoAnswer) void this.onRequest(m);
    });
  }

  protected static async bind(port: number): Promise<dgram.Socket> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, '127.0.0.1', resolve);
    });
    return sock;
  }

  send(text: string): Promise<void> {
    return new Promise((resolve, reject) => this.sock.send(text, this.lab.sipPort, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  }

  /** Forget what was received (a UA reused for another dialog). */
  forget(): void {
    this.received.length = 0;
  }

  requests(method: string): string[] {
    return this.received.filter((m) => m.startsWith(`${method} `));
  }

  responses(): SipResponse[] {
    return this.received.filter((m) => m.startsWith('SIP/2.0 ')).map(parseResponse);
  }

  /** `probe`'s value once it has one: tried now and at every message received; rejects after `timeoutMs`. */
  when<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const now = probe();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
      };
      const wake = (): void => {
        const v = probe();
        if (v === undefined) return;
        done();
        resolve(v);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timeout waiting for ${what}`));
      }, timeoutMs);
      this.#wakers.add(wake);
    });
  }

  /** The `n`-th (0-based) `method` request it received, waited for. */
  request(method: string, n = 0, timeoutMs = 10_000): Promise<string> {
    return this.when(() => this.requests(method)[n], timeoutMs, `${method} #${n + 1}`);
  }

  /** The final response (>= min) to CSeq `seq method` (of the dialog's Call-ID once there is a dialog), waited for. */
  final(seq: number, method: string, timeoutMs = 10_000, min = 200): Promise<SipResponse> {
    const want = new RegExp(`^${seq} ${method}$`);
    const callId = this.dialog?.callId;
    return this.when(
      () => this.responses().find((r) => r.status >= min && want.test(r.header('cseq') ?? '') && (callId === undefined || r.header('call-id') === callId)),
      timeoutMs,
      `final to ${seq} ${method}`,
    );
  }

  /** A response to `req`, copying Via, From, To (a tag added if given), Call-ID, CSeq and, with `rr`, Record-Route. */
  reply(req: string, status: number, o: { toTag?: string; rr?: boolean; lines?: readonly string[]; body?: string } = {}): string {
    const to = header(req, 'To') ?? '';
    const h = [
      ...headers(req, 'Via').map((v) => `Via: ${v}`),
      `From: ${header(req, 'From') ?? ''}`,
      `To: ${o.toTag !== undefined && tag(to) === undefined ? `${to};tag=${o.toTag}` : to}`,
      `Call-ID: ${header(req, 'Call-ID') ?? ''}`,
      `CSeq: ${header(req, 'CSeq') ?? ''}`,
      ...(o.rr ? headers(req, 'Record-Route').map((v) => `Record-Route: ${v}`) : []),
      ...(o.lines ?? []),
    ];
    return sipMessage(`SIP/2.0 ${status} ${status === 200 ? 'OK' : 'X'}`, h, o.body ?? '');
  }

  /** An in-dialog request (ACK: `seq` of its INVITE). */
  inDialog(method: string, o: { seq?: number; lines?: readonly string[]; body?: string; bodyType?: string } = {}): { text: string; seq: number } {
    const d = this.dialog;
    if (!d) throw new Error('no dialog');
    const seq = o.seq ?? ++this.cseq;
    const text = sipMessage(
      `${method} ${d.target} SIP/2.0`,
      [
        `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=z9hG4bK${token()};rport`,
        ...d.routes.map((r) => `Route: ${r}`),
        'Max-Forwards: 70',
        `From: ${d.local}`,
        `To: ${d.remote}`,
        `Call-ID: ${d.callId}`,
        `CSeq: ${seq} ${method}`,
        ...(method === 'ACK' ? [] : [`Contact: <sip:ua@127.0.0.1:${this.port}>`]),
        ...(o.lines ?? []),
        ...(o.body ? [`Content-Type: ${o.bodyType ?? 'application/sdp'}`] : []),
      ],
      o.body ?? '',
    );
    return { text, seq };
  }

  /** A refresh request and its final response; a re-INVITE's 2xx is ACKed. */
  async refresh(method: 'UPDATE' | 'INVITE', o: { lines?: readonly string[]; body?: string } = {}): Promise<SipResponse> {
    const lines = o.lines ?? ['Supported: timer', 'Session-Expires: 90;refresher=uac'];
    const body = o.body ?? (method === 'INVITE' ? this.sdp : undefined);
    const r = this.inDialog(method, { lines, ...(body === undefined ? {} : { body }) });
    await this.send(r.text);
    const res = await this.final(r.seq, method);
    if (method === 'INVITE' && res.status < 300) await this.send(this.inDialog('ACK', { seq: r.seq }).text);
    return res;
  }

  /** The B2BUA's requests: 200 (a refresh gets Session-Expires back, a re-INVITE our SDP). */
  protected async onRequest(m: string): Promise<void> {
    const method = m.slice(0, m.indexOf(' '));
    if (method === 'ACK') return;
    if (method === 'UPDATE' || (method === 'INVITE' && tag(header(m, 'To')) !== undefined)) {
      const se = header(m, 'Session-Expires');
      const lines = [`Contact: <sip:ua@127.0.0.1:${this.port}>`, ...(se ? ['Supported: timer', `Session-Expires: ${se}`] : []), ...this.refreshAnswer];
      const body = method === 'INVITE' ? this.sdp : '';
      await this.send(this.reply(m, 200, { lines: body ? [...lines, 'Content-Type: application/sdp'] : lines, body }));
      return;
    }
    if (method !== 'INVITE') await this.send(this.reply(m, 200));
  }

  close(): void {
    try {
      this.sock.close();
    } catch {
      // closed already
    }
  }
}

/** A caller's chat SDP (MSRP over TCP, RFC 4975 a=path; `setup:active`). */
export const callerSdp = (port: number, path = `s${token(4)}`): string =>
  [
    'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=message ${port} TCP/MSRP *`,
    `a=path:msrp://127.0.0.1:${port}/${path};tcp`, 'a=accept-types:message/cpim', 'a=setup:active',
  ].map((l) => `${l}\r\n`).join('');

/** The caller: a chat INVITE to `to`, the dialog learnt from the 200 (RFC 3261 §12.1.2). */
export class Caller extends RawUa {
  readonly callId = `${token()}@timers`;
  readonly fromTag = token(4);
  invite200: SipResponse | null = null;

  static async open(lab: RawUaLab): Promise<Caller> {
    const sock = await RawUa.bind(0);
    const port = sock.address().port;
    const c = new Caller(lab, sock, port, callerSdp(port));
    lab.opened?.push(c);
    return c;
  }

  inviteText(to: string, o: Partial<InviteOptions> = {}, extra: readonly string[] = []): string {
    const v = vars({ dir: this.lab.dir, sipPort: this.lab.sipPort, to, ...o }, null);
    return sipMessage(
      `INVITE sip:${to}@example.net SIP/2.0`,
      [
        `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=z9hG4bK${token()};rport`,
        `From: <sip:alice@example.net>;tag=${this.fromTag}`,
        `To: <sip:${to}@example.net>`,
        `Call-ID: ${this.callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:alice@127.0.0.1:${this.port}>`,
        'Max-Forwards: 70',
        ...String(v.EXTRA).split('\n').filter((l) => l !== ''),
        ...extra,
        'Content-Type: application/sdp',
      ],
      this.sdp,
    );
  }

  /** INVITE, its 200, the ACK: the session is up. */
  async establish(to: string, o: Partial<InviteOptions> = {}, extra: readonly string[] = []): Promise<SipResponse> {
    await this.send(this.inviteText(to, o, extra));
    const ok = await this.final(1, 'INVITE', 15_000);
    if (ok.status !== 200) throw new Error(`INVITE: ${ok.status}`);
    this.invite200 = ok;
    const rr = (ok.headers.get('record-route') ?? []).flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim());
    this.dialog = {
      callId: this.callId, local: `<sip:alice@example.net>;tag=${this.fromTag}`, remote: ok.header('to')!,
      target: angle(ok.header('contact')), routes: rr.reverse(),
    };
    await this.send(this.inDialog('ACK', { seq: 1 }).text);
    return ok;
  }

  async hangUp(): Promise<void> {
    const r = this.inDialog('BYE');
    await this.send(r.text);
    await this.final(r.seq, 'BYE');
  }
}

/**
 * A registered chat device of `user`: answers the B2BUA's INVITE with 200, its SDP and
 * `Session-Expires: <se>` (refresher=uas: it refreshes, as the CR offers; uac: we do),
 * and `Allow` with UPDATE. `status`: answer the first INVITE with this instead (422 ...).
 * One dialog at a time: a new INVITE replaces `dialog`.
 */
export class RawDevice extends RawUa {
  se = '90;refresher=uas';
  allow = 'INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS';
  firstStatus: { status: number; lines: readonly string[] } | null = null;
  contactParams = '';
  #refreshing: NodeJS.Timeout | null = null;

  /** Register (`expires`: the binding's lifetime in s, default 600) and bind the device's port. */
  static async start(lab: RawUaLab, user: string, o: { expires?: number } = {}): Promise<RawDevice> {
    const port = await freePort();
    const instance = `urn:uuid:${randomUUID()}`;
    const params = `;+sip.instance="<${instance}>"${CPM_DEVICE_PARAMS}`;
    const reg = await register(lab.sipPort, {
      callId: token(), cseq: 1, user, contactPort: port, instance, params: CPM_DEVICE_PARAMS, fromPort: port,
      ...(o.expires === undefined ? {} : { expires: o.expires }),
    });
    if (reg.status !== 200) throw new Error(`REGISTER: ${reg.status}`);
    const sock = await RawUa.bind(port);
    const sdp = [
      'v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=message ${port} TCP/MSRP *`,
      `a=path:msrp://127.0.0.1:${port}/d${token(4)};tcp`, 'a=accept-types:message/cpim', 'a=setup:active',
    ].map((l) => `${l}\r\n`).join('');
    const d = new RawDevice(lab, sock, port, sdp);
    d.contactParams = params;
    lab.opened?.push(d);
    return d;
  }

  protected override async onRequest(m: string): Promise<void> {
    const method = m.slice(0, m.indexOf(' '));
    if (method === 'INVITE' && tag(header(m, 'To')) === undefined) {
      if (this.firstStatus) {
        const f = this.firstStatus;
        this.firstStatus = null;
        await this.send(this.reply(m, f.status, { toTag: token(4), lines: f.lines }));
        return;
      }
      const toTag = token(4);
      const rr = headers(m, 'Record-Route').flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim());
      this.dialog = {
        callId: header(m, 'Call-ID')!, local: `${header(m, 'To')!};tag=${toTag}`, remote: header(m, 'From')!, target: angle(header(m, 'Contact')), routes: rr,
      };
      this.cseq = 0;
      await this.send(this.reply(m, 200, {
        toTag, rr: true, body: this.sdp,
        lines: [
          `Contact: <sip:dev@127.0.0.1:${this.port}>${this.contactParams}`, 'Supported: timer', `Session-Expires: ${this.se}`,
          `Allow: ${this.allow}`, 'Content-Type: application/sdp',
        ],
      }));
      return;
    }
    await super.onRequest(m);
  }

  /** Send an UPDATE refresh every `everyMs` until stopRefreshing(). */
  startRefreshing(everyMs = 1000): void {
    this.#refreshing = setInterval(() => void this.refresh('UPDATE').catch(() => undefined), everyMs);
  }

  stopRefreshing(): void {
    if (this.#refreshing) clearInterval(this.#refreshing);
    this.#refreshing = null;
  }

  override close(): void {
    this.stopRefreshing();
    super.close();
  }
}

/** Wait until `ua` received more than `n0` requests of `method`; the newest. */
export function got(ua: RawUa, method: string, n0: number, timeoutMs = 10_000): Promise<string> {
  return ua.request(method, n0, timeoutMs);
}
