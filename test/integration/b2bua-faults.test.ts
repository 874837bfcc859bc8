/**
 * On real Kamailio, the PF in B2BUA mode (CR 8.3.2.1 step 8) under bad input and odd
 * timing: a BYE that overtakes the ACK, retransmitted and reordered requests, a 200 that
 * is never ACKed (RFC 3261 §13.3.1.4), a device that hangs up before the caller's ACK
 * (§15.1.1), a caller that BYEs our 180's early dialog (§15.1.2), a caller that vanishes
 * (b2bua.maxSessionAgeS), a caller's media the relay cannot dial or whose connection
 * closes (the relay's leg-closed), Session-Replaces (the B2BUA's own sessions), garbage
 * on the B2BUA's SIP port and the relay gone (once the B2BUA sees it down, pf.invite
 * answers -32001 and Kamailio's fail-safe 503 reaches the caller, docs/deployment.md §4).
 * Short timers: T1 = 100 ms (64*T1 = 6.4 s), maximum session age 10 s.
 * After each case the B2BUA's calls and the relay's sessions are back to zero.
 */
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Lab, Relay, runDir } from '../../lab/lab.js';
import { call, vars, replacingGroupInvite, type Device, type InviteOptions } from '../../lab/calls.js';
import { headerValues, requestsIn, responsesIn, runSipp } from '../../lab/sipp.js';
import { freePort, until } from '../../lab/proc.js';
import { b2buaCounts, b2buaDevices, waitSettled, type B2buaCounts } from '../../lab/b2bua-watch.js';
import { parseResponse, token, type SipResponse } from '../../lab/sip.js';
import { chatSdpLines, sipMessage } from '../../lab/sip-fixtures.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const T1_MS = 100;
const MAX_AGE_S = 10;

const dir = runDir('it-b2bua-faults');
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  b2bua: { multiDevice: 'C', multiDeviceByUser: { 'sip:rita@example.net': 'A' }, t1Ms: T1_MS, maxSessionAgeS: MAX_AGE_S },
});
let relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
/** The relay started again after case 6 (the lab's own one is stopped there). */
let restarted: Relay | null = null;
t.teardown(async () => {
  await relay.close();
  await Promise.all(devices.map((d) => d.stop()));
  await restarted?.stop();
  await lab.stop();
});
const sip = lab.sipPort;
const { device, all: devices } = b2buaDevices(dir, sip);
const reqs = (d: Device, method: string): string[] => requestsIn(d.agent.messages(), method);

/** The B2BUA's calls in progress (and started so far) and the relay's sessions. */
const live = (): Promise<B2buaCounts> => b2buaCounts(lab.service, relay);

/** The bad-input rule: nothing left behind once a case is over. */
async function settled(t: Test, timeoutMs = 15_000): Promise<void> {
  const r = await waitSettled(live, timeoutMs);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
}

// ---------------------------------------------------------------- a raw UDP caller

/** A caller on a plain UDP socket: every message it sends is written by the test. */
class UdpCaller {
  readonly received: string[] = [];
  readonly callId = `${token()}@faults`;
  readonly fromTag = token(4);
  readonly branch = `z9hG4bK${token()}`;
  /** The 200's To (with the B2BUA's tag), Contact and route set (RFC 3261 §12.1.2). */
  dialog: { to: string; target: string; routes: string[] } | null = null;
  private cseq = 1;

  private constructor(
    private readonly sock: dgram.Socket,
    readonly port: number,
    readonly to: string,
  ) {}

  static async open(to: string): Promise<UdpCaller> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, '127.0.0.1', resolve);
    });
    const c = new UdpCaller(sock, sock.address().port, to);
    sock.on('message', (b) => c.received.push(b.toString('utf8')));
    return c;
  }

  /** Resolves once the datagram left (a close() right after a send would drop it). */
  send(text: string): Promise<void> {
    return new Promise((resolve, reject) => this.sock.send(text, sip, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  }

  /** The chat INVITE (its text is kept: send it again for a retransmission). */
  invite(o: Partial<InviteOptions> = {}): string {
    const v = vars({ dir, sipPort: sip, to: this.to, ...o }, null);
    const body = String(v.BODY).replace(/\n/g, '\r\n') + '\r\n';
    return sipMessage(
      `INVITE sip:${this.to}@example.net SIP/2.0`,
      [
        `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${this.branch};rport`,
        `From: <sip:alice@example.net>;tag=${this.fromTag}`,
        `To: <sip:${this.to}@example.net>`,
        `Call-ID: ${this.callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:alice@127.0.0.1:${this.port}>`,
        'Max-Forwards: 70',
        ...String(v.EXTRA).split('\n').filter((l) => l !== ''),
        `Content-Type: ${String(v.BODY_TYPE)}`,
      ],
      body,
    );
  }

  responses(): SipResponse[] {
    return this.received.filter((m) => m.startsWith('SIP/2.0 ')).map(parseResponse);
  }

  requests(method: string): string[] {
    return this.received.filter((m) => m.startsWith(`${method} `));
  }

  /** Wait for the first `method` request it received. */
  request(method: string, timeoutMs: number, what: string, everyMs?: number): Promise<string> {
    return until(async () => this.requests(method)[0], timeoutMs, what, everyMs);
  }

  /** Wait for the first response of status `min` or more whose CSeq matches `cseq`. */
  final(cseq: RegExp, timeoutMs: number, what: string, everyMs?: number, min = 300): Promise<SipResponse> {
    return until(async () => this.responses().find((x) => x.status >= min && cseq.test(x.header('cseq') ?? '')), timeoutMs, what, everyMs);
  }

  /** How many 200s to its INVITE came (retransmissions counted). */
  invite200s(): number {
    return this.responses().filter((x) => x.status === 200 && /INVITE$/.test(x.header('cseq') ?? '')).length;
  }

  /** Wait for a response to CSeq method `method` with this status; learns the dialog from a 2xx INVITE. */
  async response(method: string, status: number, timeoutMs = 10_000): Promise<SipResponse> {
    const r = await until(
      async () => this.responses().find((x) => x.status === status && new RegExp(`^\\d+ ${method}$`).test(x.header('cseq') ?? '')),
      timeoutMs,
      `${status} to ${method}`,
      20,
    );
    if (method === 'INVITE' && status === 200 && this.dialog === null) this.learn(r);
    return r;
  }

  /** The dialog a 2xx or a 18x with a To-tag makes (RFC 3261 §12.1.2). */
  learn(r: SipResponse): void {
    const rr = (r.headers.get('record-route') ?? []).flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim());
    const target = /<([^>]+)>/.exec(r.header('contact') ?? '')?.[1];
    if (!target) throw new Error(`${r.status} without Contact`);
    this.dialog = { to: r.header('to')!, target, routes: rr.reverse() };
  }

  /** The ACK of a non-2xx final: hop by hop, the INVITE's branch (RFC 3261 §17.1.1.3). */
  ackNon2xx(r: SipResponse): Promise<void> {
    return this.send(sipMessage(`ACK sip:${this.to}@example.net SIP/2.0`, [
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${this.branch};rport`,
      'Max-Forwards: 70',
      `From: <sip:alice@example.net>;tag=${this.fromTag}`,
      `To: ${r.header('to') ?? ''}`,
      `Call-ID: ${this.callId}`,
      'CSeq: 1 ACK',
    ]));
  }

  /** An in-dialog request along the route set (ACK keeps the INVITE's CSeq number). */
  inDialog(method: 'ACK' | 'BYE' | 'INVITE' | 'UPDATE', branch = `z9hG4bK${token()}`, ackOf?: number): string {
    const d = this.dialog;
    if (!d) throw new Error('no dialog');
    const n = method === 'ACK' ? (ackOf ?? 1) : ++this.cseq;
    return sipMessage(`${method} ${d.target} SIP/2.0`, [
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`,
      ...d.routes.map((r) => `Route: ${r}`),
      'Max-Forwards: 70',
      `From: <sip:alice@example.net>;tag=${this.fromTag}`,
      `To: ${d.to}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${n} ${method}`,
    ]);
  }

  /** Answer a request it received with `status` (RFC 3261 §8.2.6). */
  answer(req: string, status = 200): Promise<void> {
    const head = req.split('\r\n\r\n')[0] ?? '';
    const keep = head.split('\r\n').filter((l) => /^(Via|v|From|f|To|t|Call-ID|i|CSeq)\s*:/i.test(l));
    return this.send(sipMessage(`SIP/2.0 ${status} OK`, keep));
  }

  close(): void {
    this.sock.close();
  }
}

/** A raw caller to `user` for `body`, closed whatever happens, then the nothing-left check. */
async function withCaller(t: Test, user: string, body: (c: UdpCaller) => Promise<void>, settleMs?: number): Promise<void> {
  const c = await UdpCaller.open(user);
  try {
    await body(c);
  } finally {
    c.close();
  }
  await settled(t, settleMs);
}

/** The INVITE sent and its 200 received (the dialog learnt); returns the 200. */
async function answered(c: UdpCaller, o?: Partial<InviteOptions>): Promise<SipResponse> {
  await c.send(c.invite(o));
  return c.response('INVITE', 200);
}

/** As answered, and the 200 ACKed. */
async function established(c: UdpCaller, o?: Partial<InviteOptions>): Promise<SipResponse> {
  const ok = await answered(c, o);
  await c.send(c.inDialog('ACK'));
  return ok;
}

/** The caller's BYE, answered 200. */
async function hangUp(c: UdpCaller): Promise<void> {
  await c.send(c.inDialog('BYE'));
  await c.response('BYE', 200);
}

/** Wait until device `d` received more `method` requests than `n0`. */
function deviceGot(d: Device, method: string, n0: number, what = `the device got ${method}`): Promise<true> {
  return until(async () => (reqs(d, method).length > n0 ? true : undefined), 5000, what);
}

// setup throws rather than asserting (tap ends the root test at its first assertion
// followed by a long await)
const BOB = await device('bob', { kind: 'answer' });
const RITA1 = await device('rita', { kind: 'answer' });
const RITA2 = await device('rita', { kind: 'answer' });
const HANG = await device('hang', { kind: 'answer-bye', holdMs: 0 });
const RING = await device('rick', { kind: 'ring' });

t.test('1. a BYE that overtakes the ACK: every leg ends, nothing left', async (t) => {
  const b0 = reqs(BOB, 'BYE').length;
  const r = await runSipp({
    scenario: 'uac-bye-before-ack.xml', dir, remote: `127.0.0.1:${sip}`, vars: vars({ dir, sipPort: sip, to: 'bob' }, 200), timeoutMs: 20_000, name: 'bye-first',
  });
  t.equal(r.code, 0, `the caller's BYE got 200 ${r.errors}`);
  t.equal(requestsIn(r.messages, 'BYE').filter((m) => /^BYE /.test(m)).length, 1, 'one BYE: the caller\'s own');
  await deviceGot(BOB, 'BYE', b0);
  await settled(t);
});

t.test('2a. the INVITE retransmitted (same branch): one call, one device INVITE', (t) =>
  withCaller(t, 'bob', async (c) => {
    const before = await live();
    const i0 = BOB.invites().length;
    const inv = c.invite();
    await c.send(inv);
    await c.send(inv);
    await c.response('INVITE', 100).catch(() => null);
    await c.send(inv);
    await c.response('INVITE', 200);
    // a retransmission after the 200 (its sender missed the 2xx) is absorbed as well
    await c.send(inv);
    await c.send(c.inDialog('ACK'));
    const now = await live();
    t.equal(now.started - before.started, 1, 'one B2BUA call');
    t.equal(BOB.invites().length - i0, 1, 'one INVITE at the device');
    const bye = c.inDialog('BYE');
    await c.send(bye);
    await c.response('BYE', 200);
    // 2b. the BYE retransmitted: answered again (or absorbed), nothing more happens
    await c.send(bye);
    await deviceGot(BOB, 'BYE', 0);
    t.equal((await live()).started - before.started, 1, 'still one call');
  }));

t.test('2c. a merged request (same Call-ID and CSeq, new branch): no second call', (t) =>
  withCaller(t, 'bob', async (c) => {
    const before = await live();
    const i0 = BOB.invites().length;
    const inv = c.invite();
    await c.send(inv);
    await c.response('INVITE', 200);
    await c.send(c.inDialog('ACK'));
    // the same INVITE on a new branch, as a forking proxy upstream would deliver it twice
    await c.send(inv.replace(c.branch, `z9hG4bK${token()}`));
    const second = await c.final(/INVITE$/, 10_000, 'a final to the merged INVITE');
    t.equal(second.status, 482, 'the merged INVITE: 482 Loop Detected (RFC 3261 §8.2.2.2)');
    t.equal((await live()).started - before.started, 1, 'one B2BUA call');
    t.equal(BOB.invites().length - i0, 1, 'one INVITE at the device');
    await hangUp(c);
  }));

t.test('2d. requests out of order: a CANCEL after the 200, an ACK twice, an ACK and a BYE of an unknown dialog', (t) =>
  withCaller(t, 'bob', async (c) => {
    const before = await live();
    await answered(c);
    // too late: the 200 went out (RFC 3261 §9.2); the call goes on
    await c.send(sipMessage(`CANCEL sip:bob@example.net SIP/2.0`, [
      `Via: SIP/2.0/UDP 127.0.0.1:${c.port};branch=${c.branch};rport`,
      `From: <sip:alice@example.net>;tag=${c.fromTag}`, 'To: <sip:bob@example.net>', `Call-ID: ${c.callId}`, 'CSeq: 1 CANCEL', 'Max-Forwards: 70',
    ]));
    const ack = c.inDialog('ACK');
    await c.send(ack);
    await c.send(ack);
    // an ACK and a BYE of a dialog nobody has (a wrong To-tag), along the same routes
    const d = c.dialog!;
    const saved = d.to;
    d.to = `<sip:bob@example.net>;tag=${token(4)}`;
    await c.send(c.inDialog('ACK'));
    await c.send(c.inDialog('BYE'));
    const stray = await c.final(/BYE$/, 10_000, 'a final to the stray BYE');
    t.equal(stray.status, 481, 'the stray BYE: 481 (RFC 3261 §12.2.2)');
    d.to = saved;
    const l = await live();
    t.equal(l.started - before.started, 1, 'one B2BUA call');
    t.equal(l.calls, 1, 'the call is still up');
    await hangUp(c);
  }));

t.test('2e. BYE and ACK sent back to back, the BYE first: the call ends on every leg', (t) =>
  withCaller(t, 'bob', async (c) => {
    const b0 = reqs(BOB, 'BYE').length;
    await answered(c);
    const bye = c.inDialog('BYE');
    const ack = c.inDialog('ACK');
    await c.send(bye);
    await c.send(ack);
    await c.response('BYE', 200);
    await deviceGot(BOB, 'BYE', b0);
    t.equal(c.requests('BYE').length, 0, 'no BYE to the caller');
  }));

t.test('2f. a re-INVITE without Contact (400, RFC 3261 §8.1.1.8) and a bare UPDATE (a refresh: 200) from the caller, the call goes on', (t) =>
  withCaller(t, 'bob', async (c) => {
    const b0 = reqs(BOB, 'BYE').length;
    await established(c);
    const reinvite = c.inDialog('INVITE');
    await c.send(reinvite);
    const ri = await c.final(/^2 INVITE$/, 5000, 'a final to the re-INVITE', 20);
    t.ok(ri.status >= 400, `the re-INVITE: ${ri.status}`);
    // its ACK: same branch, the To of the response (RFC 3261 §17.1.1.3)
    await c.send(reinvite.replace(/^INVITE /, 'ACK ').replace(/^CSeq: 2 INVITE$/m, 'CSeq: 2 ACK'));
    await c.send(c.inDialog('UPDATE'));
    const up = await c.final(/UPDATE$/, 5000, 'a final to the UPDATE', 20, 200);
    t.equal(up.status, 200, 'the UPDATE: 200 (docs/b2bua.md "Mid-session requests")');
    t.equal((await live()).calls, 1, 'the call is still up');
    t.equal(reqs(BOB, 'BYE').length, b0, 'the device still in the session');
    await hangUp(c);
    await deviceGot(BOB, 'BYE', b0);
  }));

t.test('3a. a device that answers 200 and never sends MSRP: the session stays until the caller\'s BYE', async (t) => {
  const a0 = reqs(BOB, 'ACK').length;
  const b0 = reqs(BOB, 'BYE').length;
  const HOLD = 4000;
  const done = call({ dir, sipPort: sip, to: 'bob' }, HOLD);
  await deviceGot(BOB, 'ACK', a0, 'the B2BUA ACKed the device');
  // the observation period: no MSRP connection comes, the session must stay
  await new Promise((r) => setTimeout(r, HOLD / 2));
  const l = await live();
  t.equal(l.calls, 1, 'the call is up');
  t.equal(l.sessions, 1, 'the relay session is up');
  t.equal(reqs(BOB, 'BYE').length, b0, 'no BYE to the device yet');
  const r = await done;
  t.equal(r.code, 0, `the caller's call ended normally ${r.errors}`);
  t.equal(requestsIn(r.messages, 'BYE').length, 1, 'one BYE at the caller: its own');
  await deviceGot(BOB, 'BYE', b0);
  await settled(t);
});

t.test('3b. the caller never ACKs our 200: after 64*T1 the B2BUA BYEs both sides (RFC 3261 §13.3.1.4)', (t) =>
  withCaller(t, 'bob', async (c) => {
    const b0 = reqs(BOB, 'BYE').length;
    await answered(c);
    const sent = Date.now();
    const bye = await c.request('BYE', 64 * T1_MS + 10_000, 'the BYE to the caller', 20);
    const after = Date.now() - sent;
    t.ok(after >= 64 * T1_MS - 2 * T1_MS, `BYE after about 64*T1 (${after} ms)`);
    t.ok(c.invite200s() > 1, 'the 200 was retransmitted meanwhile');
    await c.answer(bye);
    await deviceGot(BOB, 'BYE', b0);
  }));

t.test(`4. a caller that vanishes without a BYE: after maxSessionAgeS (${MAX_AGE_S} s) BYE to device and caller`, async (t) => {
  const c = await UdpCaller.open('bob');
  const b0 = reqs(BOB, 'BYE').length;
  try {
    await answered(c);
    const start = Date.now();
    await c.send(c.inDialog('ACK'));
    // the caller says nothing more, and answers nothing
    await c.request('BYE', MAX_AGE_S * 1000 + 5000, 'the BYE to the caller', 50);
    const after = Date.now() - start;
    t.ok(after >= MAX_AGE_S * 1000 - 1000, `BYE at the maximum session age (${after} ms)`);
    await deviceGot(BOB, 'BYE', b0);
    // the caller's BYE is never answered: the B2BUA's timer F (64*T1) ends it
    await settled(t, 64 * T1_MS + 15_000);
  } finally {
    c.close();
  }
});

t.test("4b. a device that rings past maxSessionAgeS: 408 to the caller, the device cancelled", (t) =>
  withCaller(t, 'rick', async (c) => {
    const c0 = reqs(RING, 'CANCEL').length;
    const start = Date.now();
    await c.send(c.invite());
    await c.response('INVITE', 180);
    const fin = await c.final(/INVITE$/, MAX_AGE_S * 1000 + 5000, 'a final to the INVITE', 50);
    t.equal(fin.status, 408, 'the caller gets 408');
    t.ok(Date.now() - start >= MAX_AGE_S * 1000 - 1000, `at the maximum session age (${Date.now() - start} ms)`);
    await c.ackNon2xx(fin);
    await deviceGot(RING, 'CANCEL', c0);
  }));

t.test('5. Session-Replaces in B2BUA mode reaches only the device connected in the replaced session', async (t) => {
  const cid = randomUUID();
  const n0 = [RITA1, RITA2].map((d) => d.invites().length);
  const a0 = [RITA1, RITA2].map((d) => reqs(d, 'ACK').length);
  const gone0 = [RITA1, RITA2].map((d) => reqs(d, 'BYE').length + reqs(d, 'CANCEL').length);
  // the first session, held while the group INVITE arrives; policy A keeps one device
  const first = call({ dir, sipPort: sip, to: 'rita', contributionId: cid }, 5000);
  // both answer; the one the B2BUA keeps is ACKed and not BYEd or cancelled
  await until(
    async () =>
      [RITA1, RITA2].some((d, i) => reqs(d, 'ACK').length > a0[i]!) &&
      [RITA1, RITA2].some((d, i) => reqs(d, 'BYE').length + reqs(d, 'CANCEL').length > gone0[i]!)
        ? true
        : undefined,
    10_000,
    'the first session up on one device, the other released',
  );
  const keptIdx = [RITA1, RITA2].findIndex((d, i) => reqs(d, 'BYE').length + reqs(d, 'CANCEL').length === gone0[i]);
  t.not(keptIdx, -1, 'one device kept the session');
  const kept = [RITA1, RITA2][keptIdx]!;
  const other = [RITA1, RITA2][1 - keptIdx]!;
  t.same([RITA1, RITA2].map((d, i) => d.invites().length - n0[i]!), [1, 1], 'both devices were invited to the first session');
  const o1 = other.invites().length;
  const k1 = kept.invites().length;
  const g = await call(replacingGroupInvite({ dir, sipPort: sip, to: 'rita', contributionId: cid }));
  t.equal(g.final?.status, 200, `the group session answered ${g.errors}`);
  t.equal(kept.invites().length - k1, 1, 'the connected device got the group INVITE');
  t.equal(other.invites().length, o1, 'the other device did not');
  const gi = kept.invites().at(-1) ?? '';
  t.match(gi, /Session-Replaces:/i, 'with Session-Replaces');
  const r = await first;
  t.equal(r.code, 0, `the first session ended normally ${r.errors}`);
  await settled(t);
  // the session is over: a Session-Replaces for it falls back to the suitable devices
  const n1 = [RITA1, RITA2].map((d) => d.invites().length);
  const again = await call(replacingGroupInvite({ dir, sipPort: sip, to: 'rita', contributionId: cid }));
  t.equal(again.final?.status, 200, `the group session answered ${again.errors}`);
  t.same([RITA1, RITA2].map((d, i) => d.invites().length - n1[i]!), [1, 1], 'after the session ended: both devices invited');
  await settled(t);
});

t.test('8. the device hangs up before the caller ACKed our 200: the BYE to the caller waits for the ACK (RFC 3261 §15.1.1)', (t) =>
  withCaller(t, 'hang', async (c) => {
    const b0 = reqs(HANG, 'BYE').length;
    await answered(c);
    // the device hangs up at once; once its BYE is answered the B2BUA knows
    await until(
      async () => (reqs(HANG, 'BYE').length > b0 && responsesIn(HANG.messages()).some((x) => /BYE$/.test(x.header('cseq') ?? '')) ? true : undefined),
      5000,
      "the device's BYE answered",
    );
    // then either our BYE comes (too early) or the 200 is sent once more (still waiting for the ACK)
    const n = c.invite200s();
    await until(async () => (c.requests('BYE').length > 0 || c.invite200s() > n ? true : undefined), 5000, 'a BYE or the 200 again');
    t.equal(c.requests('BYE').length, 0, 'no BYE to the caller before its ACK');
    await c.send(c.inDialog('ACK'));
    const bye = await c.request('BYE', 5000, 'the BYE to the caller after its ACK', 20);
    await c.answer(bye);
  }));

t.test('9. the caller BYEs the early dialog of our 180: 200, 487 to the INVITE, the device cancelled (RFC 3261 §15.1.2)', (t) =>
  withCaller(t, 'rick', async (c) => {
    const c0 = reqs(RING, 'CANCEL').length;
    await c.send(c.invite());
    c.learn(await c.response('INVITE', 180));
    await c.send(c.inDialog('BYE'));
    const r = await c.final(/BYE$/, 5000, 'a final to the BYE', 20, 200);
    t.equal(r.status, 200, 'the BYE: 200');
    const fin = await c.response('INVITE', 487);
    await c.ackNon2xx(fin);
    await deviceGot(RING, 'CANCEL', c0);
  }));

t.test("10. a passive caller the relay cannot dial: the B2BUA ends the call (docs/media-control.md, leg-closed)", async (t) => {
  const dead = await freePort();
  const body = chatSdpLines()
    .map((l) => l.replace('a=setup:active', 'a=setup:passive').replace(/msrp:\/\/127\.0\.0\.1:7654\//, `msrp://127.0.0.1:${dead}/`))
    .join('\n');
  await withCaller(t, 'bob', async (c) => {
    const b0 = reqs(BOB, 'BYE').length;
    const start = Date.now();
    // the device answers long before the relay's last dial attempt fails
    await established(c, { body });
    const bye = await c.request('BYE', 8000, 'the BYE to the caller', 20);
    t.ok(Date.now() - start < MAX_AGE_S * 1000, 'before the maximum session age');
    await c.answer(bye);
    await deviceGot(BOB, 'BYE', b0);
  });
});

t.test("11. the caller's MSRP connection closes: the B2BUA ends the call", (t) =>
  withCaller(t, 'bob', async (c) => {
    const b0 = reqs(BOB, 'BYE').length;
    const ok = await established(c);
    // bind the relay's leg with an empty SEND (RFC 4975 §5.4), as the active side
    const relayPath = /^a=path:(msrp:\/\/[^\s]+)/m.exec(ok.raw)?.[1];
    const m = relayPath === undefined ? null : /^msrp:\/\/([^:/]+):(\d+)\//.exec(relayPath);
    if (!relayPath || !m) throw new Error(`no a=path in the 200: ${ok.raw}`);
    const sock = connect(Number(m[2]), m[1]!);
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (got += d));
    sock.on('error', () => undefined);
    sock.write(
      ['MSRP bind01 SEND', `To-Path: ${relayPath}`, 'From-Path: msrp://127.0.0.1:7654/s1a2b3;tcp', 'Message-ID: m1', 'Byte-Range: 1-0/0', '-------bind01$', ''].join('\r\n'),
    );
    await until(async () => (/^MSRP bind01 200/m.test(got) ? true : undefined), 5000, "the relay's 200 to the binding SEND", 20);
    t.equal(c.requests('BYE').length, 0, 'the call is up while the connection is');
    sock.destroy();
    const bye = await c.request('BYE', 5000, 'the BYE to the caller', 20);
    await c.answer(bye);
    await deviceGot(BOB, 'BYE', b0);
  }));

t.test('12. a device that vanishes mid-call: the caller\'s BYE is answered, our unanswered BYE to the device ends after 64*T1', async (t) => {
  const gone = await device('vic', { kind: 'answer' });
  const a0 = reqs(gone, 'ACK').length;
  await withCaller(
    t,
    'vic',
    async (c) => {
      await established(c);
      await deviceGot(gone, 'ACK', a0, 'the device ACKed');
      await gone.stop();
      await hangUp(c);
      t.equal((await live()).calls, 1, 'the call waits for the BYE to the device');
    },
    64 * T1_MS + 15_000,
  );
});

/** Whether the B2BUA closes a TCP connection to its SIP port within 5 s of `text`. */
function closedAfter(text: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(lab.b2buaSipPort, '127.0.0.1', () => s.write(text));
    s.on('close', () => resolve(true));
    s.on('error', () => undefined);
    setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 5000).unref();
  });
}

t.test('7. garbage on the B2BUA\'s SIP port: that connection is closed, calls go on', async (t) => {
  const closed = await closedAfter('GARBAGE \u0000\u00ff not SIP at all\r\n\r\nmore garbage\r\n\r\n');
  t.ok(closed, 'the B2BUA closed the connection');
  // a head that never ends: closed once it passes the head limit
  const closedLong = await closedAfter(`INVITE sip:x SIP/2.0\r\nX: ${'a'.repeat(70_000)}`);
  t.ok(closedLong, 'an endless head: closed too');
  const r = await call({ dir, sipPort: sip, to: 'bob' }, 0);
  t.equal(r.final?.status, 200, 'a call afterwards is answered');
  await settled(t);
});

t.test('6. the relay down: a new call gets the fail-safe 503 and nothing is left', async (t) => {
  const before = await live();
  t.equal(before.sessions, 0, 'no relay session before');
  const i0 = BOB.invites().length;
  await relay.close();
  await lab.relay!.stop();
  // the B2BUA notices (its link pings every second): from then on no ticket, Kamailio's fail-safe answers
  await until(async () => (/^pf_b2bua_relay_up 0$/m.test(await lab.service.metrics()) ? true : undefined), 5000, 'relay seen down');
  const r = await runSipp({
    scenario: 'uac-invite.xml', dir, remote: `127.0.0.1:${sip}`, vars: vars({ dir, sipPort: sip, to: 'bob' }, 503), timeoutMs: 20_000, name: 'relay-down',
  });
  const final = responsesIn(r.messages).find((x) => x.status >= 200 && /INVITE$/.test(x.header('cseq') ?? ''));
  t.equal(final?.status, 503, 'the caller gets 503');
  t.ok(headerValues(final?.raw ?? '', 'Warning').some((w) => /"PF unavailable"/.test(w)), "with the fail-safe's Warning (docs/deployment.md §4)");
  t.equal(BOB.invites().length, i0, 'no device was invited');
  await until(async () => {
    const m = await lab.service.metrics();
    return /^pf_b2bua_calls 0$/m.test(m) ? true : undefined;
  }, 5000, 'no B2BUA call').catch(() => undefined);
  // the relay again on its ports: it has no session, and the B2BUA's link finds it
  restarted = await Relay.start(dir, lab.relay!.port, lab.relay!.controlPort);
  relay = await RelayControlClient.connect('127.0.0.1', restarted.controlPort);
  await until(async () => (/^pf_b2bua_relay_up 1$/m.test(await lab.service.metrics()) ? true : undefined), 5000, 'relay seen up again');
  await settled(t);
  const again = await call({ dir, sipPort: sip, to: 'bob' }, 0);
  t.equal(again.final?.status, 200, 'with the relay back, a call is answered');
  await settled(t);
});
