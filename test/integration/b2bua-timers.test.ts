/**
 * On real Kamailio, the B2BUA's RFC 4028 session timers per leg and the CR 8.3.2.4
 * expiry procedure, and requests inside a session (docs/b2bua.md "Session timers",
 * "Mid-session requests"). The caller and the devices are plain UDP sockets driven by
 * the test, so each refresh (UPDATE or re-INVITE, either way) is sent or withheld here.
 *
 * Time: the wire carries real RFC 4028 values (Session-Expires 90, the RFC floor), and
 * b2bua.sessionTimerUnitMs = 50 makes one of those seconds last 50 ms in the B2BUA's
 * timers: a 90 s interval is refreshed by us after 2.25 s and expires after 3 s. T1 is
 * 100 ms. After each case the B2BUA's calls and the relay's sessions are back to zero.
 */
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { Lab, runDir } from '../../lab/lab.js';
import { vars, type InviteOptions } from '../../lab/calls.js';
import { freePort, until } from '../../lab/proc.js';
import { b2buaCounts, waitSettled, type B2buaCounts } from '../../lab/b2bua-watch.js';
import { CPM_DEVICE_PARAMS, parseResponse, register, token, type SipResponse } from '../../lab/sip.js';
import { sipMessage } from '../../lab/sip-fixtures.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const UNIT_MS = 50;
/** 90 RFC seconds: our expiry of a side the other end refreshes comes after 60 of them. */
const EXPIRY_MS = 60 * UNIT_MS;

const dir = runDir('it-b2bua-timers');
const lab = await Lab.start({ dir, mode: 'b2bua', b2bua: { multiDevice: 'C', t1Ms: 100, sessionTimerUnitMs: UNIT_MS } });
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
const sip = lab.sipPort;
const opened: RawUa[] = [];
t.teardown(async () => {
  for (const u of opened) u.close();
  await relay.close();
  await lab.stop();
});

const live = (): Promise<B2buaCounts> => b2buaCounts(lab.service, relay);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function settled(t: Test, timeoutMs = 15_000): Promise<void> {
  const r = await waitSettled(live, timeoutMs);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
}

// ---------------------------------------------------------------- raw UDP user agents

/** A header's values in a raw message, in order (every line of that name). */
function headers(msg: string, name: string): string[] {
  const head = msg.split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'gim');
  return [...head.matchAll(re)].map((m) => m[1]!.trim());
}
const header = (msg: string, name: string): string | undefined => headers(msg, name)[0];
const bodyOf = (msg: string): string => msg.slice(msg.indexOf('\r\n\r\n') + 4);
const tag = (v: string | undefined): string | undefined => /;\s*tag=([^;>\s]+)/i.exec(v ?? '')?.[1];
const angle = (v: string | undefined): string => /<([^>]+)>/.exec(v ?? '')?.[1] ?? '';

/** The dialog as one side sees it (RFC 3261 §12.1). */
interface RawDialog {
  readonly callId: string;
  readonly local: string;
  readonly remote: string;
  readonly target: string;
  readonly routes: readonly string[];
}

/** A SIP UA on a UDP socket, sending to Kamailio; in-dialog requests along `dialog`. */
class RawUa {
  readonly received: string[] = [];
  dialog: RawDialog | null = null;
  cseq = 1;
  /** Answer the B2BUA's requests (BYE, UPDATE, re-INVITE, OPTIONS) with 200. */
  autoAnswer = true;
  /** Extra header lines of the 200 to a refresh. */
  refreshAnswer: readonly string[] = [];

  protected constructor(
    readonly sock: dgram.Socket,
    readonly port: number,
    readonly sdp: string,
  ) {
    sock.on('message', (b) => {
      const m = b.toString('utf8');
      this.received.push(m);
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
    return new Promise((resolve, reject) => this.sock.send(text, sip, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  }

  requests(method: string): string[] {
    return this.received.filter((m) => m.startsWith(`${method} `));
  }

  responses(): SipResponse[] {
    return this.received.filter((m) => m.startsWith('SIP/2.0 ')).map(parseResponse);
  }

  /** The `n`-th (0-based) `method` request it received, waited for. */
  request(method: string, n = 0, timeoutMs = 10_000): Promise<string> {
    return until(async () => this.requests(method)[n], timeoutMs, `${method} #${n + 1}`, 20);
  }

  /** The final response (>= min) to CSeq `seq method`, waited for. */
  final(seq: number, method: string, timeoutMs = 10_000, min = 200): Promise<SipResponse> {
    const want = new RegExp(`^${seq} ${method}$`);
    return until(async () => this.responses().find((r) => r.status >= min && want.test(r.header('cseq') ?? '')), timeoutMs, `final to ${seq} ${method}`, 20);
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

const callerSdp = (port: number, path = `s${token(4)}`): string =>
  [
    'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=message ${port} TCP/MSRP *`,
    `a=path:msrp://127.0.0.1:${port}/${path};tcp`, 'a=accept-types:message/cpim', 'a=setup:active',
  ].map((l) => `${l}\r\n`).join('');

/** The caller: a chat INVITE to `to`, the dialog learnt from the 200 (RFC 3261 §12.1.2). */
class Caller extends RawUa {
  readonly callId = `${token()}@timers`;
  readonly fromTag = token(4);
  invite200: SipResponse | null = null;

  static async open(): Promise<Caller> {
    const sock = await RawUa.bind(0);
    const port = sock.address().port;
    const c = new Caller(sock, port, callerSdp(port));
    opened.push(c);
    return c;
  }

  inviteText(to: string, o: Partial<InviteOptions> = {}, extra: readonly string[] = []): string {
    const v = vars({ dir, sipPort: sip, to, ...o }, null);
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
 */
class RawDevice extends RawUa {
  se = '90;refresher=uas';
  allow = 'INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS';
  firstStatus: { status: number; lines: readonly string[] } | null = null;
  #refreshing: NodeJS.Timeout | null = null;

  static async start(user: string): Promise<RawDevice> {
    const port = await freePort();
    const instance = `urn:uuid:${randomUUID()}`;
    const params = `;+sip.instance="<${instance}>"${CPM_DEVICE_PARAMS}`;
    const reg = await register(sip, { callId: token(), cseq: 1, user, contactPort: port, instance, params: CPM_DEVICE_PARAMS, fromPort: port });
    if (reg.status !== 200) throw new Error(`REGISTER: ${reg.status}`);
    const sock = await RawUa.bind(port);
    const sdp = [
      'v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=message ${port} TCP/MSRP *`,
      `a=path:msrp://127.0.0.1:${port}/d${token(4)};tcp`, 'a=accept-types:message/cpim', 'a=setup:active',
    ].map((l) => `${l}\r\n`).join('');
    const d = new RawDevice(sock, port, sdp);
    d.contactParams = params;
    opened.push(d);
    return d;
  }

  contactParams = '';

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
async function got(ua: RawUa, method: string, n0: number, timeoutMs = 10_000): Promise<string> {
  return ua.request(method, n0, timeoutMs);
}

// ---------------------------------------------------------------- cases

t.test('a session whose device refreshes by UPDATE and re-INVITE, and whose caller does too, stays up', async (t) => {
  const dev = await RawDevice.start('tina');
  const c = await Caller.open();
  const ok = await c.establish('tina', { headers: { 'Session-Expires': '90' } });
  t.match(ok.header('session-expires') ?? '', /^90;refresher=uac$/, 'the caller refreshes (it asked for nothing else)');
  t.match(ok.header('require') ?? '', /timer/, 'Require: timer (RFC 4028 §9)');
  const inv = dev.requests('INVITE')[0]!;
  t.match(header(inv, 'Session-Expires') ?? '', /;refresher=uas$/, 'the device is offered refresher=uas (CR)');
  t.match(header(inv, 'Allow') ?? '', /UPDATE/, 'our Allow lists UPDATE');
  // five expiry periods, refreshed either way
  const end = Date.now() + 3 * EXPIRY_MS;
  let n = 0;
  while (Date.now() < end) {
    const a = await dev.refresh(n % 2 === 0 ? 'UPDATE' : 'INVITE');
    t.equal(a.status, 200, `device refresh ${n + 1} (${n % 2 === 0 ? 'UPDATE' : 're-INVITE'}): 200`);
    if (n === 0) t.match(a.header('session-expires') ?? '', /^90;refresher=uac$/, 'the device stays the refresher');
    if (n === 1) t.match(bodyOf(a.raw), /m=message/, 'a re-INVITE gets the SDP already given');
    const b = await c.refresh(n % 2 === 0 ? 'UPDATE' : 'INVITE');
    t.equal(b.status, 200, `caller refresh ${n + 1}: 200`);
    n++;
    await sleep(EXPIRY_MS / 3);
  }
  t.equal(dev.requests('BYE').length, 0, 'no BYE to the device');
  t.equal(c.requests('BYE').length, 0, 'no BYE to the caller');
  t.equal((await live()).calls, 1, 'the call is up');
  await c.hangUp();
  await got(dev, 'BYE', 0);
  await settled(t);
});

t.test('CR 8.3.2.4: one of two devices stops refreshing: BYE to it, the session goes on; the last one: BYE to the caller too', async (t) => {
  const d1 = await RawDevice.start('uma');
  const d2 = await RawDevice.start('uma');
  const c = await Caller.open();
  await c.establish('uma');
  await got(d1, 'ACK', 0);
  await got(d2, 'ACK', 0);
  d1.startRefreshing(EXPIRY_MS / 3);
  const t0 = Date.now();
  const bye2 = await got(d2, 'BYE', 0, 4 * EXPIRY_MS);
  t.ok(Date.now() - t0 >= EXPIRY_MS - 500, `the silent device's BYE came at its expiry (${Date.now() - t0} ms)`);
  t.match(header(bye2, 'Reason') ?? '', /Session timer expired/, 'with a Reason');
  await sleep(EXPIRY_MS);
  t.equal(d1.requests('BYE').length, 0, 'the refreshing device stays');
  t.equal(c.requests('BYE').length, 0, 'no BYE to the caller yet');
  const l = await live();
  t.equal(l.calls, 1, 'the call is up');
  t.equal(l.sessions, 1, 'the relay session is up');
  d1.stopRefreshing();
  await got(d1, 'BYE', 0, 4 * EXPIRY_MS);
  await got(c, 'BYE', 0, 5000);
  t.pass('the last device expired: BYE to it and to the caller');
  await settled(t);
});

t.test('we refresh towards the caller when it asks refresher=uas: UPDATE when it allows UPDATE, else re-INVITE', async (t) => {
  const dev = await RawDevice.start('vera');
  const cu = await Caller.open();
  const ok = await cu.establish('vera', { headers: { 'Session-Expires': '90;refresher=uas' } }, ['Allow: INVITE, ACK, CANCEL, BYE, UPDATE']);
  t.match(ok.header('session-expires') ?? '', /^90;refresher=uas$/, 'we refresh');
  t.notOk(/timer/.test(ok.header('require') ?? ''), 'no Require: timer when we refresh');
  dev.startRefreshing(EXPIRY_MS / 3);
  const up = await got(cu, 'UPDATE', 0, 3 * EXPIRY_MS);
  t.match(header(up, 'Session-Expires') ?? '', /^90;refresher=uac$/, 'our UPDATE keeps us the refresher');
  await got(cu, 'UPDATE', 1, 3 * EXPIRY_MS);
  t.equal(cu.requests('BYE').length, 0, 'refreshed twice, still up');
  await cu.hangUp();
  dev.stopRefreshing();

  const dev2 = await RawDevice.start('vera');
  const ci = await Caller.open();
  await ci.establish('vera', { headers: { 'Session-Expires': '90;refresher=uas' } });
  dev.startRefreshing(EXPIRY_MS / 3);
  dev2.startRefreshing(EXPIRY_MS / 3);
  const ri = await got(ci, 'INVITE', 0, 3 * EXPIRY_MS);
  t.match(bodyOf(ri), /m=message/, 'no UPDATE in its Allow: a re-INVITE with the same SDP');
  await got(ci, 'ACK', 0, 5000);
  t.pass('our 2xx to the re-INVITE was ACKed by the B2BUA');
  t.equal(ci.requests('BYE').length, 0, 'still up');
  await ci.hangUp();
  dev.stopRefreshing();
  dev2.stopRefreshing();
  await settled(t);
});

t.test('a device that wants us to refresh (refresher=uac in its 200) gets our UPDATE; unanswered, the leg ends', async (t) => {
  const dev = await RawDevice.start('walt');
  dev.se = '90;refresher=uac';
  const c = await Caller.open();
  await c.establish('walt');
  const up = await got(dev, 'UPDATE', 0, 3 * EXPIRY_MS);
  t.match(header(up, 'Session-Expires') ?? '', /^90;refresher=uac$/, 'our UPDATE to the device');
  await got(dev, 'UPDATE', 1, 3 * EXPIRY_MS);
  t.equal(dev.requests('BYE').length, 0, 'refreshed twice, still up');
  // the device goes silent: our next UPDATE gets no answer, the leg and then the caller end
  dev.autoAnswer = false;
  const u0 = dev.requests('UPDATE').length;
  await until(async () => (dev.requests('BYE').length > 0 ? true : undefined), 6 * EXPIRY_MS + 10_000, 'BYE to the silent device');
  t.ok(dev.requests('UPDATE').length > u0, 'the BYE followed an UPDATE it left unanswered');
  await got(c, 'BYE', 0, 5000);
  await settled(t, 20_000);
});

t.test('a device that wants us to refresh and does not allow UPDATE gets our re-INVITE, ACKed', async (t) => {
  const dev = await RawDevice.start('xavi');
  dev.se = '90;refresher=uac';
  dev.allow = 'INVITE, ACK, CANCEL, BYE, OPTIONS';
  const c = await Caller.open();
  await c.establish('xavi');
  await got(dev, 'ACK', 0);
  const ri = await got(dev, 'INVITE', 1, 3 * EXPIRY_MS);
  t.match(header(ri, 'Session-Expires') ?? '', /^90;refresher=uac$/, 'a re-INVITE refresh');
  t.match(bodyOf(ri), /m=message/, 'with the SDP we offered');
  await got(dev, 'ACK', 1, 5000);
  t.pass('its 2xx ACKed');
  t.equal(dev.requests('UPDATE').length, 0, 'no UPDATE');
  await c.hangUp();
  await got(dev, 'BYE', 0);
  await settled(t);
});

t.test('RFC 4028 422: a caller asking too short an interval gets 422 with Min-SE; a device that wants more gets the INVITE again', async (t) => {
  const xena = await RawDevice.start('xena');
  const c = await Caller.open();
  const inv = c.inviteText('xena', { headers: { 'Session-Expires': '60' } });
  await c.send(inv);
  const r = await c.final(1, 'INVITE');
  t.equal(r.status, 422, 'Session-Expires 60: 422');
  t.equal(r.header('min-se'), '90', 'Min-SE: 90');
  // the ACK of a non-2xx: the INVITE's branch (RFC 3261 §17.1.1.3)
  await c.send(sipMessage(`ACK sip:xena@example.net SIP/2.0`, [
    `Via: ${headers(inv, 'Via')[0]}`, `From: <sip:alice@example.net>;tag=${c.fromTag}`, `To: ${r.header('to') ?? ''}`,
    `Call-ID: ${c.callId}`, 'CSeq: 1 ACK', 'Max-Forwards: 70',
  ])).catch(() => undefined);
  t.equal(xena.requests('INVITE').length, 0, 'no device was invited');

  const dev = await RawDevice.start('yuri');
  dev.firstStatus = { status: 422, lines: ['Min-SE: 120'] };
  const c2 = await Caller.open();
  const ok = await c2.establish('yuri');
  t.equal(ok.status, 200, 'the call is answered after the retry');
  const invites = dev.requests('INVITE');
  t.equal(invites.length, 2, 'the device got the INVITE twice');
  t.equal(header(invites[1]!, 'Min-SE'), '120', 'the retry carries the Min-SE of the 422');
  t.equal(header(invites[1]!, 'Call-ID'), header(invites[0]!, 'Call-ID'), 'same Call-ID');
  t.match(header(invites[1]!, 'CSeq') ?? '', /^2 INVITE$/, 'the next CSeq');
  dev.startRefreshing(EXPIRY_MS / 3);
  await c2.hangUp();
  await got(dev, 'BYE', 0);
  dev.stopRefreshing();
  await settled(t);
});

t.test('bad input inside a session: absurd interval capped, stale CSeq 500, a moved MSRP path 488, unknown dialog 481, MESSAGE 405, OPTIONS and INFO 200', async (t) => {
  const dev = await RawDevice.start('zack');
  const c = await Caller.open();
  const ok = await c.establish('zack', { headers: { 'Session-Expires': '99999999999999' } });
  t.equal(ok.header('session-expires'), '1800;refresher=uac', 'an absurd Session-Expires is lowered to ours (1800)');
  dev.startRefreshing(EXPIRY_MS / 3);
  // a refresh with a stale CSeq (RFC 3261 §12.2.2)
  const first = await c.refresh('UPDATE');
  t.equal(first.status, 200, 'an UPDATE refresh: 200');
  const stale = c.inDialog('UPDATE', { seq: 1, lines: ['Supported: timer', 'Session-Expires: 90'] });
  await c.send(stale.text);
  t.equal((await c.final(1, 'UPDATE')).status, 500, 'a lower CSeq: 500');
  // a re-INVITE whose SDP moves the MSRP path
  const moved = await c.refresh('INVITE', { body: callerSdp(c.port, 'elsewhere') });
  t.equal(moved.status, 488, 'a moved a=path: 488');
  t.match(moved.header('warning') ?? '', /MSRP/, 'with a Warning that says why');
  await c.send(sipMessage(`ACK ${c.dialog!.target} SIP/2.0`, [
    `Via: ${headers(moved.raw, 'Via')[0]}`, ...c.dialog!.routes.map((r) => `Route: ${r}`), `From: ${c.dialog!.local}`,
    `To: ${c.dialog!.remote}`, `Call-ID: ${c.callId}`, `CSeq: ${c.cseq} ACK`, 'Max-Forwards: 70',
  ]));
  // a Session-Expires below Min-SE on a refresh: 422
  const short = await c.refresh('UPDATE', { lines: ['Supported: timer', 'Session-Expires: 30'] });
  t.equal(short.status, 422, 'a refresh with Session-Expires 30: 422');
  t.equal(short.header('min-se'), '90', '... with Min-SE: 90');
  // other methods on the leg they arrive on
  const msg = c.inDialog('MESSAGE', { body: 'hi', bodyType: 'text/plain' });
  await c.send(msg.text);
  const m = await c.final(msg.seq, 'MESSAGE');
  t.equal(m.status, 405, 'in-dialog MESSAGE: 405');
  t.match(m.header('allow') ?? '', /UPDATE/, '... with Allow');
  const opt = c.inDialog('OPTIONS');
  await c.send(opt.text);
  const o = await c.final(opt.seq, 'OPTIONS');
  t.equal(o.status, 200, 'in-dialog OPTIONS: 200');
  t.match(o.header('supported') ?? '', /timer/, '... with Supported: timer');
  const info = c.inDialog('INFO');
  await c.send(info.text);
  t.equal((await c.final(info.seq, 'INFO')).status, 200, 'a legacy INFO: 200');
  const pkg = c.inDialog('INFO', { lines: ['Info-Package: dtmf'], body: 'Signal=1', bodyType: 'application/dtmf-relay' });
  await c.send(pkg.text);
  t.equal((await c.final(pkg.seq, 'INFO')).status, 469, 'an INFO with a package: 469');
  t.equal(dev.requests('MESSAGE').length + dev.requests('INFO').length + dev.requests('OPTIONS').length, 0, 'nothing reached the device');
  // an UPDATE of a dialog nobody has
  const saved = c.dialog!;
  c.dialog = { ...saved, remote: `<sip:zack@example.net>;tag=${token(4)}` };
  const ghost = await c.refresh('UPDATE');
  t.equal(ghost.status, 481, 'an UPDATE of an unknown dialog: 481');
  c.dialog = saved;
  t.equal((await live()).calls, 1, 'the call is still up');
  await c.hangUp();
  dev.stopRefreshing();
  await got(dev, 'BYE', 0);
  await settled(t);
});

t.test('a BYE crossing our refresh ends the session cleanly', async (t) => {
  const dev = await RawDevice.start('yves');
  const c = await Caller.open();
  await c.establish('yves', { headers: { 'Session-Expires': '90;refresher=uas' } }, ['Allow: INVITE, ACK, CANCEL, BYE, UPDATE']);
  dev.startRefreshing(EXPIRY_MS / 3);
  c.autoAnswer = false;
  const up = await got(c, 'UPDATE', 0, 3 * EXPIRY_MS);
  // our BYE first, then the late 481 to the UPDATE: the dialog is gone on our side
  await c.hangUp();
  await c.send(c.reply(up, 481));
  dev.stopRefreshing();
  await got(dev, 'BYE', 0);
  await settled(t);
  t.equal(c.requests('BYE').length, 0, 'no BYE to the caller (it left)');
});
