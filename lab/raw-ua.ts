/**
 * SIP user agents on plain UDP sockets, sending to the lab's Kamailio: a caller and a
 * registered chat device whose every request and answer the driver decides, so a
 * session timer refresh (RFC 4028, UPDATE or re-INVITE, either way) is sent or withheld
 * at will. Used by test/integration/b2bua-timers.test.ts and bench/b2bua-soak.ts.
 *
 * A UA keeps what it received (`received`) and answers the B2BUA's in-dialog requests
 * (BYE, UPDATE, re-INVITE, OPTIONS) with 200 unless `autoAnswer` is off. Waits for a
 * request or a response are woken by each message that arrives (no polling).
 *
 * `udp` (off by default; the tests run without loss) makes a UA do what RFC 3261 asks of
 * a UA over UDP, for load runs where datagrams get dropped: its requests are sent again
 * until a response comes (Timers A and E, §17.1.1.2, §17.1.2.2), every 2xx to its INVITE
 * is ACKed again (§13.2.2.4), and a device sends its 2xx to an INVITE again until the ACK
 * (§13.3.1.4) and answers a retransmitted INVITE with the same 2xx.
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
  /** RFC 3261 timers over UDP (see the header); null: every message is sent once. */
  udp: { readonly t1: number; readonly t2: number } | null = null;
  /** Datagrams sent again under `udp`. */
  retransmissions = 0;
  readonly #wakers = new Set<() => void>();
  /** Bumped by forget(): retransmissions of an earlier dialog stop. */
  #epoch = 0;
  /** The ACK sent for each INVITE CSeq of the dialog, to answer a retransmitted 2xx. */
  protected readonly acks = new Map<string, string>();

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
      if (this.udp && /^SIP\/2\.0 2/.test(m)) {
        const ack = this.acks.get(`${header(m, 'Call-ID')} ${header(m, 'CSeq')}`);
        if (ack) this.#resend(ack);
      }
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

  #resend(text: string): void {
    this.retransmissions++;
    this.sock.send(text, this.lab.sipPort, '127.0.0.1', () => undefined);
  }

  /**
   * Send a request; under `udp`, again at T1, 2*T1, ... (an INVITE doubling, other methods
   * capped at T2) until a response to CSeq `seq method` of this Call-ID arrives or 64*T1 passed.
   */
  async sendRequest(text: string, seq: number, method: string): Promise<void> {
    await this.send(text);
    const u = this.udp;
    if (!u) return;
    const callId = header(text, 'Call-ID');
    const cseq = `${seq} ${method}`;
    const answered = (): boolean =>
      this.received.some((m) => m.startsWith('SIP/2.0 ') && header(m, 'CSeq') === cseq && header(m, 'Call-ID') === callId);
    const epoch = this.#epoch;
    void (async () => {
      const end = Date.now() + 64 * u.t1;
      for (let wait = u.t1; Date.now() < end; wait = method === 'INVITE' ? wait * 2 : Math.min(wait * 2, u.t2)) {
        const got = await this.when(() => (answered() ? true : undefined), wait, cseq).catch(() => false);
        if (got || epoch !== this.#epoch) return;
        this.#resend(text);
      }
    })();
  }

  /** Send an ACK (kept, under `udp`, for a retransmitted 2xx of its INVITE). */
  async sendAck(text: string): Promise<void> {
    if (this.udp) this.acks.set(`${header(text, 'Call-ID')} ${/^CSeq:\s*(\d+)/im.exec(text)?.[1]} INVITE`, text);
    await this.send(text);
  }

  /** Send a 2xx to an INVITE; under `udp`, again at T1, 2*T1, ... (capped at T2) until `acked()` or 64*T1 passed. */
  protected async send2xx(text: string, acked: () => boolean): Promise<void> {
    await this.send(text);
    const u = this.udp;
    if (!u) return;
    const epoch = this.#epoch;
    void (async () => {
      const end = Date.now() + 64 * u.t1;
      for (let wait = u.t1; Date.now() < end; wait = Math.min(wait * 2, u.t2)) {
        const got = await this.when(() => (acked() ? true : undefined), wait, 'ACK').catch(() => false);
        if (got || epoch !== this.#epoch) return;
        this.#resend(text);
      }
    })();
  }

  /** Forget what was received (a UA reused for another dialog). */
  forget(): void {
    this.received.length = 0;
    this.acks.clear();
    this.#epoch++;
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
    await this.sendRequest(r.text, r.seq, method);
    const res = await this.final(r.seq, method);
    if (method === 'INVITE' && res.status < 300) await this.sendAck(this.inDialog('ACK', { seq: r.seq }).text);
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
    await this.sendRequest(this.inviteText(to, o, extra), 1, 'INVITE');
    const ok = await this.final(1, 'INVITE', 15_000);
    if (ok.status !== 200) throw new Error(`INVITE: ${ok.status}`);
    this.invite200 = ok;
    const rr = (ok.headers.get('record-route') ?? []).flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim());
    this.dialog = {
      callId: this.callId, local: `<sip:alice@example.net>;tag=${this.fromTag}`, remote: ok.header('to')!,
      target: angle(ok.header('contact')), routes: rr.reverse(),
    };
    await this.sendAck(this.inDialog('ACK', { seq: 1 }).text);
    return ok;
  }

  async hangUp(): Promise<void> {
    const r = this.inDialog('BYE');
    await this.sendRequest(r.text, r.seq, 'BYE');
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
  /** Under `udp`: the 2xx given to the current dialog's INVITE, for its retransmissions. */
  #answer: { callId: string; text: string } | null = null;

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
      if (this.udp && this.#answer && this.#answer.callId === header(m, 'Call-ID')) {
        await this.send(this.#answer.text); // a retransmitted INVITE (RFC 3261 §17.2.1)
        return;
      }
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
      const ok = this.reply(m, 200, {
        toTag, rr: true, body: this.sdp,
        lines: [
          `Contact: <sip:dev@127.0.0.1:${this.port}>${this.contactParams}`, 'Supported: timer', `Session-Expires: ${this.se}`,
          `Allow: ${this.allow}`, 'Content-Type: application/sdp',
        ],
      });
      const callId = this.dialog.callId;
      if (this.udp) this.#answer = { callId, text: ok };
      const cseq = `${/^(\d+)/.exec(header(m, 'CSeq') ?? '')?.[1]} ACK`;
      await this.send2xx(ok, () => this.received.some((x) => x.startsWith('ACK ') && header(x, 'Call-ID') === callId && header(x, 'CSeq') === cseq));
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
