/**
 * On real Kamailio, B2BUA mode with real MSRP end to end (CR 8.3.2.1 step 8, 8.3.2.1.1,
 * 8.3.2.1.4): the lab's chat phones (lab/chat-phone.ts Phone) register as devices of a
 * served user, a chat caller (ChatCaller, or RawCaller below when the test needs MSRP
 * headers or an SDP of its own) calls through Kamailio; every byte of chat goes through
 * the relay (docs/media-relay.md). Cases:
 * - policy B: the first phone to type (isComposing, or a chat message alone) keeps the
 *   session, the others get BYE (ringing ones CANCEL) with the "Call completed elsewhere"
 *   Reason; a phone that speaks before the caller has connected; phones leaving early;
 * - direct delivery: a phone's message to the caller unmarked, to the other phone marked
 *   Message-Direction: sent, never back to itself, also in chunks;
 * - REPORTs as the sender sees them: one success REPORT per message, none for copies;
 * - setup roles: a passive caller dialed by the relay, a CEMA caller reached at c=/m=,
 *   a passive caller that cannot be reached; a caller whose MSRP drops;
 * - policy A: the first to answer stays.
 * Each case ends with every dialog over and no B2BUA call or relay session left.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { Lab, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { b2buaCounts, waitSettled, type B2buaCounts } from '../../lab/b2bua-watch.js';
import { cpmHeaders } from '../../lab/calls.js';
import { token } from '../../lab/sip.js';
import { sipMessage } from '../../lab/sip-fixtures.js';
import { SipUa, hdr, hdrs, hostPort, uriOf, type Dest, type SipMsg } from '../../lab/sip-ua.js';
import { ChatCaller, ChatSession, Phone } from '../../lab/chat-phone.js';
import { byes, chats, eventsOf, eventually, handset as phoneWithLog, reasonLines, sessionOf, texts, type Handset } from '../../lab/handset.js';
import { chatMessage, isComposing, readChatEvent, readChatSdp, ACCEPT_TYPES, ACCEPT_WRAPPED_TYPES, type ChatEvent } from '../../lab/chat.js';
import { MsrpPeer, type ReceivedMessage } from '../../media/client/peer.js';
import { getHeader } from '../../media/msrp/headers.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';

const dir = runDir('it-b2bua-media');
// one lab for every case: direct delivery on (its case needs it; the others do not
// depend on it), C by default, B and A for the users of those cases
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  serviceLogLevel: process.env.PF_TEST_LOG_LEVEL ?? 'info',
  b2bua: {
    multiDevice: 'C',
    multiDeviceByUser: Object.fromEntries([
      ...['bea', 'bee', 'bev', 'bob', 'bix'].map((u) => [`sip:${u}@example.net`, 'B']),
      ...['ann', 'amy'].map((u) => [`sip:${u}@example.net`, 'A']),
    ]),
    directDelivery: true,
  },
});
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
const phones: Phone[] = [];
/** Callers not hung up yet; a case that fails half way leaves its call to afterEach, not to the next case. */
const callers = new Set<{ hangup: () => Promise<void> }>();
const hangUpLeftovers = async (): Promise<void> => {
  const left = [...callers];
  callers.clear();
  await Promise.all(left.map((c) => c.hangup().catch(() => undefined)));
};
t.afterEach(hangUpLeftovers);
t.teardown(async () => {
  await hangUpLeftovers();
  await Promise.all(phones.map((p) => p.stop()));
  await relay.close();
  await lab.stop();
});
const sip = lab.sipPort;

// ---------------------------------------------------------------- helpers

/** Phone `n` of `user`, answering at once unless told otherwise. */
const handset = (user: string, n: number, answer: Phone['o']['answer'] = { kind: 'after', ms: 0 }): Promise<Handset> =>
  phoneWithLog({ sipPort: sip, phones }, user, n, answer);

/**
 * The MsrpPeer under a phone's ChatSession: ChatSession sends without Success-Report and
 * hides its REPORTs, so case 3 reaches the peer it holds (a private field; checked here so
 * that a change in lab/chat-phone.ts fails loudly rather than silently).
 */
function peerOf(s: ChatSession): MsrpPeer {
  const p = (s as unknown as { peer: unknown }).peer;
  if (!(p instanceof MsrpPeer)) throw new Error('ChatSession no longer holds its MsrpPeer as `peer`');
  return p;
}

const live = (): Promise<B2buaCounts> => b2buaCounts(lab.service, relay);

/** Nothing left behind once a case is over (as test/integration/b2bua.test.ts). */
async function settled(t: Test): Promise<void> {
  const r = await waitSettled(live);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
}

/** The caller hangs up; every phone still in the call gets its BYE. */
async function hangUp(caller: { hangup: () => Promise<void> }, stay: readonly Handset[]): Promise<void> {
  const before = stay.map((h) => byes(h).length);
  callers.delete(caller);
  await caller.hangup();
  await eventually(() => stay.every((h, i) => byes(h).length > before[i]!), 'the phones still in the call got BYE');
}

async function chatCaller(to: string, setup?: 'active' | 'passive' | 'actpass'): Promise<ChatCaller> {
  const c = await ChatCaller.place({ sipPort: sip, from: 'alice', to, out: () => undefined, ...(setup ? { setup } : {}) });
  callers.add(c);
  if (c.state !== 'confirmed') throw new Error(`call to ${to}: ${c.final?.status ?? '?'} ${c.final?.reason ?? ''}`);
  return c;
}

/** A port nobody listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * A chat caller that writes its own SDP and drives its MsrpPeer itself (REPORT headers,
 * a=msrp-cema). SIP as lab/chat-phone.ts ChatCaller does it: INVITE through Kamailio,
 * ACK and BYE along the route set of the 2xx (RFC 3261 §12.1.2, §12.2.1.1).
 * - active: the offer says a=setup:active, the caller connects to the relay's a=path and
 *   binds with an empty SEND from its own a=path (RFC 4975 §5.4, RFC 6135);
 * - passive: a=setup:passive, the relay connects; with `cema`, the a=path names a dead
 *   port and only c=/m= name the listener (RFC 6714 §4).
 */
class RawCaller {
  peer: MsrpPeer;
  private dialog: { callId: string; local: string; remote: string; target: string; routes: string[]; cseq: number } | undefined;
  final: SipMsg | undefined;
  /** BYEs from the PF. */
  readonly byes: SipMsg[] = [];

  private constructor(
    readonly ua: SipUa,
    private readonly listener: MsrpPeer,
    /** Our a=path. */
    readonly path: string,
  ) {
    this.peer = listener;
    ua.on('request', (req) => {
      if (req.method === 'BYE') {
        this.byes.push(req);
        this.dialog = undefined;
        ua.respond(req, 200, 'OK');
      } else if (req.method !== 'ACK') ua.respond(req, 481, 'Call/Transaction Does Not Exist');
    });
  }

  static async place(o: { to: string; setup: 'active' | 'passive'; cema?: boolean; unreachable?: boolean }): Promise<RawCaller> {
    const ua = await SipUa.open();
    const listener = await MsrpPeer.listen({ host: '127.0.0.1' });
    const port = listener.endpoint.port;
    // cema: the a=path names a dead port, c=/m= the listener; unreachable: both the dead port
    const dead = o.cema || o.unreachable ? `msrp://127.0.0.1:${await closedPort()}/${listener.sessionId};tcp` : undefined;
    const path = dead ?? listener.localUri;
    // what we send carries the a=path of our SDP, the URI the relay knows us by
    listener.localUri = path;
    const c = new RawCaller(ua, listener, path);
    callers.add(c);
    const sdp = [
      'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
      `m=message ${o.unreachable ? new URL(path.replace(/^msrp:/, 'http:')).port : port} TCP/MSRP *`, `a=path:${path}`,
      `a=accept-types:${ACCEPT_TYPES}`, `a=accept-wrapped-types:${ACCEPT_WRAPPED_TYPES}`,
      ...(o.cema ? ['a=msrp-cema'] : []), `a=setup:${o.setup}`, '',
    ].join('\r\n');
    const target = `sip:${o.to}@example.net`;
    const callId = `${randomUUID()}@127.0.0.1`;
    const local = `<sip:alice@example.net>;tag=${token(4)}`;
    const cpm = Object.entries(cpmHeaders({ from: 'alice' })).map(([k, v]) => `${k}: ${v}`);
    const invite = sipMessage(`INVITE ${target} SIP/2.0`, [
      `Via: ${ua.via()}`, 'Max-Forwards: 70', `From: ${local}`, `To: <${target}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
      `Contact: <sip:alice@127.0.0.1:${ua.port}>`, ...cpm, 'Content-Type: application/sdp',
    ], sdp);
    const final = await ua.request(invite, { host: '127.0.0.1', port: sip });
    c.final = final;
    if (final.status !== 200) return c;
    c.dialog = {
      callId, local, remote: hdr(final, 'to') ?? '', target: uriOf(hdr(final, 'contact') ?? ''),
      routes: hdrs(final, 'record-route').reverse(), cseq: 1,
    };
    ua.send(c.inDialog('ACK', 1), c.nextHop());
    const media = readChatSdp(final.body);
    if (o.setup === 'active') {
      const first = new URL(media.path[0]!.replace(/^msrps?:/, 'http:'));
      const peer = await MsrpPeer.connect({
        host: first.hostname, port: Number(first.port || 2855), remotePath: media.path.join(' '), sessionId: listener.sessionId,
      });
      peer.localUri = path;
      await listener.close();
      c.peer = peer;
      const status = await peer.bind();
      if (status !== 200) throw new Error(`MSRP bind answered ${status}`);
    } else {
      listener.remotePath = media.path.join(' ');
      if (!o.unreachable) await listener.waitForConnection(10_000);
    }
    return c;
  }

  private nextHop(): Dest {
    const d = this.dialog!;
    const first = d.routes[0];
    return hostPort(first === undefined ? d.target : uriOf(first));
  }

  private inDialog(method: 'ACK' | 'BYE', cseq: number): string {
    const d = this.dialog!;
    return sipMessage(`${method} ${d.target} SIP/2.0`, [
      `Via: ${this.ua.via()}`, 'Max-Forwards: 70', `From: ${d.local}`, `To: ${d.remote}`, `Call-ID: ${d.callId}`,
      `CSeq: ${cseq} ${method}`, ...d.routes.map((r) => `Route: ${r}`),
    ]);
  }

  /** A chat message (CPIM, asking for a delivery notification) with MSRP Success-Report: yes. */
  async send(text: string, from = 'sip:alice@example.net', to = 'sip:bob@example.net'): Promise<string> {
    const m = chatMessage({ from, to, text });
    const r = await this.peer.sendMessage(m.body, { contentType: 'message/cpim', successReport: true });
    if (r.statuses.some((s) => s !== 200)) throw new Error(`SEND answered ${r.statuses.join(',')}`);
    return r.messageId;
  }

  events(): ChatEvent[] {
    return this.peer.messages.map((m: ReceivedMessage) => readChatEvent(m.contentType, m.body));
  }

  /** BYE (when answered), then close MSRP and the SIP socket. */
  async hangup(): Promise<void> {
    const d = this.dialog;
    await this.peer.close();
    await this.listener.close();
    if (d) {
      d.cseq++;
      const bye = this.inDialog('BYE', d.cseq);
      const hop = this.nextHop();
      this.dialog = undefined;
      await this.ua.request(bye, hop);
    }
    await this.ua.close();
  }
}

// ---------------------------------------------------------------- cases

t.test('policy B, three phones: all answer; the first to type keeps the session, the others get BYE with the Reason', async (t) => {
  const hs = [await handset('bea', 1), await handset('bea', 2), await handset('bea', 3)];
  const caller = await chatCaller('bea');
  const ss = await Promise.all(hs.map(sessionOf));
  t.equal(ss.length, 3, 'all three phones answered and connected');

  await caller.session.send('hello bea');
  await eventually(() => hs.every((h) => texts(eventsOf(h)).includes('hello bea')), 'the first message at all three phones');
  t.pass("the caller's first message reached all three phones");

  // each phone answered the message's delivery notification request: a notification is
  // no activity (docs/media-relay.md "Multi-device policies"), so nobody is chosen yet
  await eventually(() => caller.session.events.filter((e) => e.kind === 'imdn').length === 3, 'three delivery notifications at the caller');
  const [h1, h2, h3] = hs as [Handset, Handset, Handset];
  t.same(hs.map((h) => byes(h).length), [0, 0, 0], 'no phone sent away by a delivery notification');

  // phone 2 starts typing (a bare isComposing in CPIM, RFC 3994): it is the first active
  await peerOf(ss[1]!).sendMessage(isComposing({ from: 'sip:bea@example.net', to: 'sip:alice@example.net', state: 'active' }), { contentType: 'message/cpim' });
  await eventually(() => caller.session.events.some((e) => e.kind === 'composing'), "phone 2's isComposing at the caller");
  await eventually(() => byes(h1).length > 0 && byes(h3).length > 0, 'phones 1 and 3 got BYE');
  await ss[1]!.send('bea here, on phone 2');
  await eventually(() => texts(caller.session.events).includes('bea here, on phone 2'), "phone 2's reply at the caller");
  t.pass("the chosen phone's reply reached the caller");
  for (const [name, h] of [['phone 1', h1], ['phone 3', h3]] as const) {
    t.equal(byes(h).length, 1, `${name}: one BYE`);
    t.same(reasonLines(byes(h)[0]!), [`Reason: ${ELSEWHERE}`], `${name}: exactly Reason: ${ELSEWHERE}`);
  }
  t.equal(byes(h2).length, 0, 'phone 2 keeps the session');
  // the relay's view: one device leg left, the first active one
  const callId = hdr(caller.final!, 'call-id') ?? '';
  const q = await until(async () => {
    const r = await relay.query({ 'call-id': callId });
    return r.result === 'ok' && r.legs.filter((l) => l.role === 'device' && l.state !== 'closed').length === 1 ? r : undefined;
  }, 10_000, 'one device leg left at the relay');
  const left = q.result === 'ok' ? q.legs.find((l) => l.role === 'device' && l.state !== 'closed') : undefined;
  t.equal(left?.leg, q.result === 'ok' ? q['first-active'] : '?', "the device leg left is the relay's first active one");

  await caller.session.send('only phone 2 now');
  await eventually(() => texts(eventsOf(h2)).includes('only phone 2 now'), 'the next message at phone 2');
  t.notOk(texts(eventsOf(h1)).includes('only phone 2 now'), 'not at phone 1');
  t.notOk(texts(eventsOf(h3)).includes('only phone 2 now'), 'not at phone 3');
  await ss[1]!.send('still here');
  await eventually(() => texts(caller.session.events).includes('still here'), "phone 2's next message at the caller");

  await hangUp(caller, [h2]);
  t.same(reasonLines(byes(h2)[0]!), [], "phone 2's BYE (the caller hung up) has no Reason");
  await settled(t);
});

t.test('policy B: a chat message without isComposing chooses; a ringing phone is cancelled; the chosen phone hangs up, the caller gets BYE', async (t) => {
  const [h1, h2] = [await handset('bee', 1), await handset('bee', 2)];
  const h3 = await handset('bee', 3, { kind: 'manual' });
  const caller = await chatCaller('bee');
  const [s1] = await Promise.all([sessionOf(h1), sessionOf(h2)]);
  t.equal(h3.phone.calls.size, 1, 'phone 3 rings');

  // phone 1's first frame with a body is a chat message (CPIM text/plain), no isComposing
  const m = chatMessage({ from: 'sip:bee@example.net', to: 'sip:alice@example.net', text: 'straight to the point' });
  await peerOf(s1!).sendMessage(m.body, { contentType: 'message/cpim' });
  await eventually(() => texts(caller.session.events).includes('straight to the point'), 'at the caller');
  await eventually(() => byes(h2).length > 0, 'phone 2 got BYE');
  t.same(reasonLines(byes(h2)[0]!), [`Reason: ${ELSEWHERE}`], `phone 2: exactly Reason: ${ELSEWHERE}`);
  await eventually(() => h3.phone.lines.some((l) => l.startsWith('<< CANCEL')), 'phone 3 got CANCEL');
  t.same(reasonLines(h3.cancels[0]!), [`Reason: ${ELSEWHERE}`], `phone 3's CANCEL has exactly Reason: ${ELSEWHERE} (RFC 3326)`);
  t.equal(byes(h1).length, 0, 'phone 1 keeps the session');

  const ended = new Promise<void>((resolve) => caller.once('ended', resolve));
  await h1.phone.hangup([...h1.phone.calls.keys()][0]!);
  await ended;
  t.equal(caller.state, 'ended', 'the last device gone: the caller got BYE');
  await settled(t);
});

t.test('policy B: a phone hangs up before anyone is active; the caller hangs up before anyone is: no "completed elsewhere"', async (t) => {
  const hs = [await handset('bev', 1), await handset('bev', 2), await handset('bev', 3)];
  const [h1, h2, h3] = hs as [Handset, Handset, Handset];
  const caller = await chatCaller('bev');
  const ss = await Promise.all(hs.map(sessionOf));
  await h3.phone.hangup([...h3.phone.calls.keys()][0]!);
  t.equal(caller.state, 'confirmed', 'the caller stays while two phones are left');
  await caller.session.send('anyone?');
  await eventually(() => [ss[0]!, ss[1]!].every((s) => texts(s.events).includes('anyone?')), 'at phones 1 and 2');
  await hangUp(caller, [h1, h2]);
  for (const h of [h1, h2]) t.same(reasonLines(byes(h)[0]!), [], `${h.phone.o.instance}: a plain BYE`);
  // the lab phone closes its MSRP before its BYE goes, and the B2BUA ends a leg whose
  // media closed: a BYE of ours may cross the phone's, and once ours is answered the
  // dialog is over, so the phone's may find none (481, RFC 3261 §12.2.2)
  const answered = h3.phone.lines.filter((l) => / \(BYE\)$/.test(l));
  t.ok(answered.length === 1 && /^<< (200|481) /.test(answered[0]!), `the phone's BYE answered 200, or 481 after ours (${answered.join('; ')})`);
  for (const b of byes(h3)) t.same(reasonLines(b), [], 'a crossing BYE to the phone that left is a plain one');
  await settled(t);
});

t.test('policy B: a phone speaks as soon as its MSRP is up, before the caller has connected; the other phone, still ringing, is cancelled', async (t) => {
  const h1 = await handset('bob', 1);
  const h2 = await handset('bob', 2, { kind: 'after', ms: 1500 });
  h1.phone.once('connected', (_id, s) => void s.send('early bird'));
  const caller = await chatCaller('bob');
  await eventually(() => texts(caller.session.events).includes('early bird'), 'the early message at the caller');
  t.pass("phone 1's message, sent before the caller connected, reached the caller");
  await eventually(() => h2.phone.lines.some((l) => l.startsWith('<< CANCEL')) || byes(h2).length > 0, 'phone 2 sent away');
  for (const m of [...byes(h2), ...h2.cancels]) t.same(reasonLines(m), [`Reason: ${ELSEWHERE}`], `phone 2's ${m.method} has exactly Reason: ${ELSEWHERE}`);
  const s1 = await sessionOf(h1);
  await caller.session.send('morning');
  await eventually(() => texts(s1.events).includes('morning'), 'the reply at phone 1');
  t.equal(byes(h1).length, 0, 'phone 1 keeps the session');
  await hangUp(caller, [h1]);
  await settled(t);
});

t.test('direct delivery, policy C: a phone\'s message reaches the caller unmarked and the other phone marked sent, not itself', async (t) => {
  const [h1, h2] = [await handset('dee', 1), await handset('dee', 2)];
  const caller = await chatCaller('dee');
  const [s1, s2] = await Promise.all([sessionOf(h1), sessionOf(h2)]);

  await s1.send('from phone 1');
  await eventually(() => texts(caller.session.events).includes('from phone 1'), 'at the caller');
  await eventually(() => texts(s2.events).includes('from phone 1'), 'at phone 2');
  const atCaller = chats(caller.session.events).filter((e) => e.text === 'from phone 1');
  const atPhone2 = chats(s2.events).filter((e) => e.text === 'from phone 1');
  t.equal(atCaller.length, 1, 'once at the caller');
  t.equal(atCaller[0]?.direction, undefined, 'unmarked at the caller');
  t.equal(atPhone2.length, 1, 'once at phone 2');
  t.equal(atPhone2[0]?.direction, 'sent', 'Message-Direction: sent in the CPIM headers at phone 2');
  // the relay writes to phone 1 in order: once the caller's next message is there, any
  // copy of phone 1's own message would have been too
  await caller.session.send('barrier');
  await eventually(() => texts(s1.events).includes('barrier'), "the caller's next message at phone 1");
  t.notOk(texts(s1.events).includes('from phone 1'), 'phone 1 does not get its own message back');
  t.ok(chats(s1.events).every((e) => e.direction === undefined), "phone 1's messages from the caller are unmarked");

  // a long one in 1000-byte chunks: the mark shifts every chunk's Byte-Range at phone 2
  // (docs/media-relay.md "Chunks"); both copies arrive whole
  const long = `long ${'0123456789'.repeat(1200)} end`;
  const lm = chatMessage({ from: 'sip:dee@example.net', to: 'sip:alice@example.net', text: long });
  await peerOf(s1).sendMessage(lm.body, { contentType: 'message/cpim', chunkSize: 1000 });
  await eventually(() => texts(caller.session.events).includes(long) && texts(s2.events).includes(long), 'the long message at the caller and at phone 2');
  t.equal(chats(caller.session.events).find((e) => e.text === long)?.direction, undefined, 'the long message: unmarked at the caller');
  t.equal(chats(s2.events).find((e) => e.text === long)?.direction, 'sent', 'the long message: marked sent at phone 2');

  await hangUp(caller, [h1, h2]);
  await settled(t);
});

t.test('REPORTs: one success REPORT for a message two phones took; REPORTs for copies marked sent never reach the sender', async (t) => {
  const [h1, h2] = [await handset('rex', 1), await handset('rex', 2)];
  const caller = await RawCaller.place({ to: 'rex', setup: 'active' });
  t.equal(caller.final?.status, 200, 'answered');
  const [s1, s2] = await Promise.all([sessionOf(h1), sessionOf(h2)]);
  const composing = (): number => caller.events().filter((e) => e.kind === 'composing').length;
  /**
   * A phone's peer writes its success REPORT as soon as a message is whole (RFC 4975
   * §7.1.2), before the message is handed on; an isComposing it writes afterwards on the
   * same connection reaches the caller (never copied, never merged) only once the relay has
   * handled that REPORT. So once the caller has these, every REPORT before them is settled.
   */
  const barrier = async (ss: readonly ChatSession[]): Promise<void> => {
    const n = composing();
    for (const s of ss) {
      await peerOf(s).sendMessage(isComposing({ from: 'sip:rex@example.net', to: 'sip:alice@example.net', state: 'idle' }), { contentType: 'message/cpim' });
    }
    await eventually(() => composing() >= n + ss.length, "the phones' isComposing at the caller");
  };

  // a message from the caller to both phones: each phone sends a success REPORT
  const id = await caller.send('report please', 'sip:alice@example.net', 'sip:rex@example.net');
  await eventually(() => texts(s1.events).includes('report please') && texts(s2.events).includes('report please'), 'at both phones');
  await barrier([s1, s2]);
  const reports = caller.peer.reports.filter((r) => r.messageId === id);
  t.equal(reports.length, 1, 'exactly one success REPORT at the caller');
  t.equal(reports[0]?.status?.code, 200, 'a success REPORT');
  t.equal(reports[0]?.byteRange?.replace(/^1-(\d+)\/\1$/, 'whole'), 'whole', 'for the whole message');

  // the served user's own message mirrored by the originating side (CPIM From = rex):
  // both phones get it marked sent; their REPORTs for those copies are absorbed
  const mirrored = await caller.send('sent from my other client', 'sip:rex@example.net', 'sip:alice@example.net');
  await eventually(() => [s1, s2].every((s) => chats(s.events).some((e) => e.text === 'sent from my other client' && e.direction === 'sent')), 'the marked copies at both phones');
  await barrier([s1, s2]);
  t.equal(caller.peer.reports.filter((r) => r.messageId === mirrored).length, 0, 'no REPORT for the copies marked sent');

  // a phone's message with Success-Report: yes: the caller's REPORT reaches phone 1, phone
  // 2's REPORT for its marked copy does not
  const p1 = peerOf(s1);
  const m = chatMessage({ from: 'sip:rex@example.net', to: 'sip:alice@example.net', text: 'from rex, phone 1' });
  const sent = await p1.sendMessage(m.body, { contentType: 'message/cpim', successReport: true });
  await eventually(() => chats(s2.events).some((e) => e.text === 'from rex, phone 1' && e.direction === 'sent'), 'the marked copy at phone 2');
  await eventually(() => p1.reports.some((r) => r.messageId === sent.messageId), "the caller's REPORT at phone 1");
  await barrier([s2]);
  // and the relay writes to phone 1 in order: the caller's next message comes after anything before it
  await caller.send('barrier', 'sip:alice@example.net', 'sip:rex@example.net');
  await eventually(() => texts(s1.events).includes('barrier'), 'the next message at phone 1');
  t.equal(p1.reports.filter((r) => r.messageId === sent.messageId).length, 1, "phone 1 gets one REPORT: the caller's");

  await hangUp(caller, [h1, h2]);
  await settled(t);
});

t.test('a passive offer: the relay answers active, dials the caller, messages both ways', async (t) => {
  const h = await handset('pat', 1);
  const caller = await chatCaller('pat', 'passive');
  t.equal(readChatSdp(caller.final?.body ?? '').setup, 'active', 'a=setup:active in our 200 (RFC 4145 §4.1)');
  const s = await sessionOf(h);
  await caller.session.send('hello pat');
  await eventually(() => texts(s.events).includes('hello pat'), 'at the phone');
  await s.send('hello alice');
  await eventually(() => texts(caller.session.events).includes('hello alice'), 'at the caller');
  t.pass('messages both ways');
  await hangUp(caller, [h]);
  await settled(t);
});

t.test('a passive caller and policy B: the relay dials the caller, the first phone to type keeps the session', async (t) => {
  const [h1, h2] = [await handset('bix', 1), await handset('bix', 2)];
  const caller = await chatCaller('bix', 'passive');
  const [, s2] = await Promise.all([sessionOf(h1), sessionOf(h2)]);
  await caller.session.send('hello bix');
  await eventually(() => [h1, h2].every((h) => texts(eventsOf(h)).includes('hello bix')), 'at both phones');
  await s2!.send('bix on phone 2');
  await eventually(() => texts(caller.session.events).includes('bix on phone 2'), 'at the caller');
  await eventually(() => byes(h1).length > 0, 'phone 1 got BYE');
  t.same(reasonLines(byes(h1)[0]!), [`Reason: ${ELSEWHERE}`], `phone 1: exactly Reason: ${ELSEWHERE}`);
  await caller.session.send('just phone 2');
  await eventually(() => texts(s2!.events).includes('just phone 2'), 'at phone 2');
  t.notOk(texts(eventsOf(h1)).includes('just phone 2'), 'not at phone 1');
  await hangUp(caller, [h2]);
  await settled(t);
});

t.test('CEMA: a passive caller whose a=path is unreachable is reached at its c=/m=', async (t) => {
  const h = await handset('cem', 1);
  const caller = await RawCaller.place({ to: 'cem', setup: 'passive', cema: true });
  t.equal(caller.final?.status, 200, 'answered');
  t.match(caller.final?.body ?? '', /\r\na=msrp-cema\r\n/, 'the relay declares CEMA in its answer');
  await caller.peer.until(() => caller.peer.requests.length > 0);
  t.equal(getHeader(caller.peer.requests[0]!, 'To-Path'), caller.path, "the relay's frames are addressed to the a=path");
  const s = await sessionOf(h);
  await caller.send('hello cem', 'sip:alice@example.net', 'sip:cem@example.net');
  await eventually(() => texts(s.events).includes('hello cem'), 'at the phone');
  await s.send('hello alice');
  await eventually(() => texts(caller.events()).includes('hello alice'), 'at the caller');
  t.pass('messages both ways');
  await hangUp(caller, [h]);
  await settled(t);
});

t.test('a passive caller the relay cannot reach: the dial fails, the PF ends the call on both sides', async (t) => {
  const h = await handset('una', 1);
  const caller = await RawCaller.place({ to: 'una', setup: 'passive', unreachable: true });
  t.equal(caller.final?.status, 200, 'answered (the dial fails after the 200)');
  await eventually(() => caller.byes.length > 0, 'the caller got BYE', 15_000);
  await eventually(() => byes(h).length > 0, 'the phone got BYE');
  callers.delete(caller);
  await caller.hangup();
  await settled(t);
});

t.test("the caller's MSRP connection drops without a BYE: the PF ends the call on both sides", async (t) => {
  const [h1, h2] = [await handset('uma', 1), await handset('uma', 2)];
  const caller = await chatCaller('uma');
  await Promise.all([sessionOf(h1), sessionOf(h2)]);
  const ended = new Promise<void>((resolve) => caller.once('ended', resolve));
  await caller.session.close();
  await ended;
  t.equal(caller.state, 'ended', 'the caller got BYE');
  await eventually(() => byes(h1).length > 0 && byes(h2).length > 0, 'both phones got BYE');
  callers.delete(caller);
  await settled(t);
});

t.test('policy A, two phones: the first to answer stays, the other is cancelled or gets BYE; chat flows', async (t) => {
  const h1 = await handset('ann', 1);
  const h2 = await handset('ann', 2, { kind: 'after', ms: 1000 });
  const caller = await chatCaller('ann');
  const s1 = await sessionOf(h1);
  await eventually(() => h2.requests.some((r) => r.method === 'BYE') || h2.phone.lines.some((l) => l.startsWith('<< CANCEL')), 'phone 2 cancelled or sent away');
  const bye2 = byes(h2);
  if (bye2.length > 0) t.same(reasonLines(bye2[0]!), [`Reason: ${ELSEWHERE}`], `phone 2's BYE has exactly Reason: ${ELSEWHERE}`);
  else t.same(reasonLines(h2.cancels[0]!), [`Reason: ${ELSEWHERE}`], `phone 2 was cancelled while ringing, with exactly Reason: ${ELSEWHERE}`);
  t.equal(byes(h1).length, 0, 'phone 1 stays');
  await caller.session.send('hello ann');
  await eventually(() => texts(s1.events).includes('hello ann'), 'at phone 1');
  await s1.send('hi alice');
  await eventually(() => texts(caller.session.events).includes('hi alice'), 'at the caller');
  t.notOk(texts(eventsOf(h2)).includes('hello ann'), 'not at phone 2');
  await hangUp(caller, [h1]);
  await settled(t);
});

t.test('policy A, two phones answer at once: one stays, the other gets ACK and BYE with the Reason (or CANCEL); chat flows', async (t) => {
  const hs = [await handset('amy', 1), await handset('amy', 2)];
  const caller = await chatCaller('amy');
  const sentAway = (h: Handset): boolean => byes(h).length > 0 || h.phone.lines.some((l) => l.startsWith('<< CANCEL'));
  await eventually(() => hs.some(sentAway), 'one phone sent away');
  const stays = hs.filter((h) => !sentAway(h));
  t.equal(stays.length, 1, 'one phone stays');
  const gone = hs.find(sentAway)!;
  for (const m of [...byes(gone), ...gone.cancels]) t.same(reasonLines(m), [`Reason: ${ELSEWHERE}`], `its ${m.method} has exactly Reason: ${ELSEWHERE}`);
  const s = await sessionOf(stays[0]!);
  await caller.session.send('hello amy');
  await eventually(() => texts(s.events).includes('hello amy'), 'at the phone that stays');
  await s.send('hi from amy');
  await eventually(() => texts(caller.session.events).includes('hi from amy'), 'at the caller');
  t.notOk(texts(eventsOf(gone)).includes('hello amy'), 'not at the other phone');
  await hangUp(caller, stays);
  await settled(t);
});

t.test('policy C: one phone hangs up, the other keeps the chat; one success REPORT from it', async (t) => {
  const [h1, h2] = [await handset('ray', 1), await handset('ray', 2)];
  const caller = await RawCaller.place({ to: 'ray', setup: 'active' });
  const [s1] = await Promise.all([sessionOf(h1), sessionOf(h2)]);
  await h2.phone.hangup([...h2.phone.calls.keys()][0]!);
  const id = await caller.send('just you', 'sip:alice@example.net', 'sip:ray@example.net');
  await eventually(() => texts(s1!.events).includes('just you'), 'at phone 1');
  await caller.peer.waitForReport(id);
  await eventually(() => caller.events().some((e) => e.kind === 'imdn'), "phone 1's notification at the caller");
  t.equal(caller.peer.reports.filter((r) => r.messageId === id).length, 1, 'one success REPORT');
  t.notOk(texts(eventsOf(h2)).includes('just you'), 'not at the phone that left');
  await hangUp(caller, [h1]);
  await settled(t);
});
