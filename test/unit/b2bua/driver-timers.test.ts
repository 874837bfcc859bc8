/**
 * The B2BUA driver (plugin/b2bua/b2bua.ts) on a fake clock and a fake relay, with its
 * real transaction layer: RFC 4028 timers at their real lengths (no wait), refresh
 * glare (RFC 3261 §14.2), a 2xx to a re-INVITE never ACKed, the UPDATE-to-re-INVITE
 * fallback, 422 retries of a leg INVITE. Messages are written here as Kamailio would
 * relay them.
 */
import t from 'tap';
import type { SipMessage, SipRequest } from '../../../plugin/sip/message.js';
import type { RelayPort } from '../../../plugin/b2bua/b2bua.js';
import {
  CALLER_SDP, DEVICE, DEVICE_SDP, KAM_RR, T1, US, driverWorld, flush, ok, requests, responses, statusOf, text, toCaller, toDevice, yesRelay,
} from './driver-world.js';

/** One B2BUA, a relay that says yes and records the Group State Objects it is asked to store. */
function world() {
  const groupStates: Parameters<RelayPort['groupState']>[0][] = [];
  const w = driverWorld(yesRelay({ groupState: async (p) => (groupStates.push(p), ok) }));
  return { ...w, groupStates };
}
type World = ReturnType<typeof world>;

let branch = 0;
const via = (): string => `Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKk${++branch}`;

interface Up {
  readonly w: World;
  /** Our 200 to the caller (its To carries our tag). */
  readonly ok200: SipMessage;
  readonly legInvite: SipRequest;
  callerSeq: number;
  deviceSeq: number;
}

/** A call up: caller INVITE (extra headers), the device's 200 (its Session-Expires), the caller's ACK. */
async function callUp(callerExtra: readonly string[], deviceSe: string | null, contact = '<sip:alice@127.0.0.1:5555>'): Promise<Up> {
  const w = world();
  const ticket = w.tickets.issue({ callId: 'c1', servedUser: 'sip:bob@example.net', targets: [DEVICE], service: { remove: [], hdrs: '' }, stage: 'step-8' });
  w.layer.receive(text(`INVITE ${US} SIP/2.0`, [
    via(), `Record-Route: ${KAM_RR}`, 'From: <sip:alice@example.net>;tag=a1', 'To: <sip:bob@example.net>', 'Call-ID: c1', 'CSeq: 1 INVITE',
    `Contact: ${contact}`, 'Max-Forwards: 69', `X-PF-Ticket: ${ticket}`, ...callerExtra, 'Content-Type: application/sdp',
  ], CALLER_SDP));
  await flush();
  const legInvite = requests(w, 'INVITE').at(-1)!;
  await deviceAnswers(w, legInvite, deviceSe);
  const ok200 = responses(w, /^1 INVITE$/).find((r) => statusOf(r) === 200)!;
  w.layer.receive(text(`ACK ${US} SIP/2.0`, [
    via(), 'From: <sip:alice@example.net>;tag=a1', `To: ${ok200.get('To')}`, 'Call-ID: c1', 'CSeq: 1 ACK', 'Max-Forwards: 69',
  ]));
  await flush();
  return { w, ok200, legInvite, callerSeq: 1, deviceSeq: 0 };
}

async function deviceAnswers(w: World, inv: SipRequest, se: string | null, status = 200, extra: readonly string[] = []): Promise<void> {
  w.layer.receive(text(`SIP/2.0 ${status} X`, [
    ...inv.getAll('Via').map((v) => `Via: ${v}`), `From: ${inv.get('From')}`, `To: ${inv.get('To')};tag=d1`, `Call-ID: ${inv.get('Call-ID')}`,
    `CSeq: ${inv.get('CSeq')}`, `Record-Route: ${KAM_RR}`, 'Contact: <sip:bob@127.0.0.1:5099>', 'Allow: INVITE, ACK, BYE, UPDATE',
    ...(se === null ? [] : [`Session-Expires: ${se}`]), ...extra, ...(status === 200 ? ['Content-Type: application/sdp'] : []),
  ], status === 200 ? DEVICE_SDP : ''));
  await flush();
}

/** A request from the caller in its dialog. */
function fromCaller(u: Up, method: string, lines: readonly string[] = [], body = '', seq = ++u.callerSeq): string {
  return text(`${method} ${US} SIP/2.0`, [
    via(), 'From: <sip:alice@example.net>;tag=a1', `To: ${u.ok200.get('To')}`, 'Call-ID: c1', `CSeq: ${seq} ${method}`,
    'Contact: <sip:alice@127.0.0.1:5555>', 'Max-Forwards: 69', ...lines, ...(body ? ['Content-Type: application/sdp'] : []),
  ], body);
}

/** A request from the device in its dialog. */
function fromDevice(u: Up, method: string, lines: readonly string[] = [], body = ''): string {
  const inv = u.legInvite;
  return text(`${method} ${US} SIP/2.0`, [
    via(), `From: ${inv.get('To')};tag=d1`, `To: ${inv.get('From')}`, `Call-ID: ${inv.get('Call-ID')}`, `CSeq: ${++u.deviceSeq} ${method}`,
    'Contact: <sip:bob@127.0.0.1:5099>', 'Max-Forwards: 69', ...lines, ...(body ? ['Content-Type: application/sdp'] : []),
  ], body);
}

/** Our answer to a request we sent. */
function answer(req: SipRequest, status: number, lines: readonly string[] = [], body = ''): string {
  return text(`SIP/2.0 ${status} X`, [
    ...req.getAll('Via').map((v) => `Via: ${v}`), `From: ${req.get('From')}`, `To: ${req.get('To')}`, `Call-ID: ${req.get('Call-ID')}`,
    `CSeq: ${req.get('CSeq')}`, ...lines, ...(body ? ['Content-Type: application/sdp'] : []),
  ], body);
}


t.test('a device that refreshes stays; one that stops gets BYE 60 s after its last refresh (90 s interval), then the caller', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 1800'], '90;refresher=uas');
  const { w } = u;
  t.equal(u.ok200.get('Session-Expires'), '1800;refresher=uac', 'the caller refreshes its leg');
  w.clock.advance(40_000);
  w.layer.receive(fromDevice(u, 'UPDATE', ['Supported: timer', 'Session-Expires: 90;refresher=uac']));
  await flush();
  t.equal(statusOf(responses(w, /UPDATE$/).at(-1)), 200, 'the refresh: 200');
  w.clock.advance(59_000);
  await flush();
  t.equal(toDevice(w, 'BYE').length, 0, '59 s after the refresh: no BYE');
  w.clock.advance(1_000);
  await flush();
  t.equal(toDevice(w, 'BYE').length, 1, '60 s after it: BYE to the device');
  t.match(toDevice(w, 'BYE')[0]!.get('Reason') ?? '', /Session timer expired/);
  t.equal(toCaller(w, 'BYE').length, 1, 'the last device: BYE to the caller');
});

t.test('a device 200 without Session-Expires: no timer on that leg', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 1800'], null);
  u.w.clock.advance(1700_000);
  await flush();
  t.equal(requests(u.w, 'BYE').length, 0, 'no BYE after 1700 s');
});

t.test('a caller that neither supports nor asks: no timer, no refresh on its leg', async (t) => {
  const u = await callUp([], null);
  t.equal(u.ok200.get('Session-Expires'), undefined, 'no Session-Expires in our 200');
  u.w.clock.advance(3600_000);
  await flush();
  t.equal(toCaller(u.w, 'UPDATE').length + toCaller(u.w, 'INVITE').length + requests(u.w, 'BYE').length, 0, 'nothing sent in an hour');
});

t.test('we refresh the caller by UPDATE; a 501 to it: a re-INVITE at once, its 2xx ACKed', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 90;refresher=uas', 'Allow: INVITE, ACK, BYE, UPDATE'], null);
  const { w } = u;
  w.clock.advance(44_000);
  await flush();
  t.equal(toCaller(w, 'UPDATE').length, 0, 'not before half the interval');
  w.clock.advance(1_000);
  await flush();
  const up = toCaller(w, 'UPDATE')[0]!;
  t.ok(up, 'UPDATE at 45 s');
  t.equal(up.get('Session-Expires'), '90;refresher=uac');
  w.layer.receive(answer(up, 501));
  await flush();
  const ri = toCaller(w, 'INVITE')[0]!;
  t.ok(ri, 'a re-INVITE after the 501');
  t.match(ri.body, /a=path:msrp:\/\/127.0.0.1:2855\/r1;tcp/, 'with the SDP of our 200');
  w.layer.receive(answer(ri, 200, ['Contact: <sip:alice@127.0.0.1:5555>', 'Session-Expires: 90;refresher=uac'], CALLER_SDP));
  await flush();
  t.equal(toCaller(w, 'ACK').length, 1, 'its 2xx ACKed');
  w.clock.advance(45_000);
  await flush();
  t.equal(toCaller(w, 'INVITE').length, 2, 'the next refresh is a re-INVITE again');
});

t.test('our refresh times out (RFC 4028 §10, as a 408): BYE both sides at once', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 90;refresher=uas', 'Allow: UPDATE'], null);
  const { w } = u;
  w.clock.advance(45_000);
  await flush();
  t.equal(toCaller(w, 'UPDATE').length, 1, 'UPDATE at 45 s');
  w.clock.advance(64 * T1 - 1);
  await flush();
  t.equal(toCaller(w, 'BYE').length, 0, 'not before the transaction times out');
  w.clock.advance(1);
  await flush();
  t.equal(toCaller(w, 'BYE').length, 1, 'BYE to the caller at timer F');
  t.equal(toDevice(w, 'BYE').length, 1, 'and to the device');
});

t.test('our refresh refused with 500: the session goes on until the expiry (60 s after the last refresh)', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 90;refresher=uas', 'Allow: UPDATE'], null);
  const { w } = u;
  w.clock.advance(45_000);
  await flush();
  w.layer.receive(answer(toCaller(w, 'UPDATE')[0]!, 500));
  await flush();
  w.clock.advance(14_999);
  await flush();
  t.equal(toCaller(w, 'BYE').length, 0, 'not yet');
  w.clock.advance(1);
  await flush();
  t.equal(toCaller(w, 'BYE').length, 1, 'BYE to the caller at 60 s');
  t.equal(toDevice(w, 'BYE').length, 1, 'and to the device');
});

t.test('RFC 3261 §14.2 glare: their re-INVITE while ours is pending: 491; while their last 2xx waits for its ACK: 500', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 90;refresher=uas'], null);
  const { w } = u;
  w.clock.advance(45_000);
  await flush();
  t.equal(toCaller(w, 'INVITE').length, 1, 'our re-INVITE to the caller');
  w.layer.receive(fromCaller(u, 'INVITE', [], CALLER_SDP));
  await flush();
  t.equal(statusOf(responses(w, /^2 INVITE$/).at(-1)), 491, '491 while ours is pending');
  w.layer.receive(answer(toCaller(w, 'INVITE')[0]!, 200, ['Contact: <sip:alice@127.0.0.1:5555>'], CALLER_SDP));
  await flush();
  w.layer.receive(fromCaller(u, 'INVITE', [], CALLER_SDP));
  await flush();
  t.equal(statusOf(responses(w, /^3 INVITE$/).at(-1)), 200, 'now 200');
  w.layer.receive(fromCaller(u, 'INVITE', [], CALLER_SDP));
  await flush();
  t.equal(statusOf(responses(w, /^4 INVITE$/).at(-1)), 500, '500 while our 2xx to the last one waits for its ACK');
  t.equal(responses(w, /^4 INVITE$/).at(-1)?.get('Retry-After') !== undefined, true, 'with Retry-After');
});

t.test('our 2xx to their re-INVITE never ACKed: that side ends after 64*T1 (RFC 3261 §13.3.1.4)', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 1800'], null);
  const { w } = u;
  w.layer.receive(fromCaller(u, 'INVITE', ['Supported: timer', 'Session-Expires: 1800'], CALLER_SDP));
  await flush();
  t.equal(statusOf(responses(w, /^2 INVITE$/).at(-1)), 200, 'the re-INVITE: 200');
  w.clock.advance(64 * T1);
  await flush();
  t.equal(toCaller(w, 'BYE').length, 1, 'BYE to the caller');
  t.equal(toDevice(w, 'BYE').length, 1, 'and to the device');
});

t.test('RFC 4028 §7.4: 422 from the device: the INVITE again with its Min-SE, twice at most', async (t) => {
  const w = world();
  const ticket = w.tickets.issue({ callId: 'c1', servedUser: 'sip:bob@example.net', targets: [DEVICE], service: { remove: [], hdrs: '' }, stage: 'step-8' });
  w.layer.receive(text(`INVITE ${US} SIP/2.0`, [
    via(), `Record-Route: ${KAM_RR}`, 'From: <sip:alice@example.net>;tag=a1', 'To: <sip:bob@example.net>', 'Call-ID: c1', 'CSeq: 1 INVITE',
    'Contact: <sip:alice@127.0.0.1:5555>', 'Max-Forwards: 69', `X-PF-Ticket: ${ticket}`, 'Content-Type: application/sdp',
  ], CALLER_SDP));
  await flush();
  for (const minSE of [120, 200, 300]) {
    const inv = toDevice(w, 'INVITE').at(-1)!;
    await deviceAnswers(w, inv, null, 422, [`Min-SE: ${minSE}`]);
  }
  const invites = toDevice(w, 'INVITE');
  t.equal(invites.length, 3, 'the first INVITE and two retries');
  t.same(invites.map((i) => i.get('Min-SE')), [undefined, '120', '200'], 'each with the Min-SE of the 422 before it');
  t.same(invites.map((i) => i.get('CSeq')), ['1 INVITE', '2 INVITE', '3 INVITE'], 'CSeq one up');
  t.equal(new Set(invites.map((i) => i.get('Call-ID'))).size, 1, 'one Call-ID');
  t.equal(statusOf(responses(w, /^1 INVITE$/).at(-1)), 500, 'the caller: 500 (not 422: its own interval was fine)');
});

t.test('the caller: Session-Expires below Min-SE: 422 Min-SE: 90; a malformed one: 400; nothing kept', async (t) => {
  for (const [se, status] of [['60', 422], ['soon', 400]] as const) {
    const w = world();
    const ticket = w.tickets.issue({ callId: 'c1', servedUser: 'sip:bob@example.net', targets: [DEVICE], service: { remove: [], hdrs: '' }, stage: 'step-8' });
    w.layer.receive(text(`INVITE ${US} SIP/2.0`, [
      via(), 'From: <sip:alice@example.net>;tag=a1', 'To: <sip:bob@example.net>', 'Call-ID: c1', 'CSeq: 1 INVITE',
      'Contact: <sip:alice@127.0.0.1:5555>', `X-PF-Ticket: ${ticket}`, 'Supported: timer', `Session-Expires: ${se}`, 'Content-Type: application/sdp',
    ], CALLER_SDP));
    await flush();
    const r = responses(w, /^1 INVITE$/).at(-1);
    t.equal(statusOf(r), status, `Session-Expires ${se}: ${status}`);
    if (status === 422) t.equal(r?.get('Min-SE'), '90');
    t.equal(w.b.counts.calls, 0, 'no call kept');
    t.equal(toDevice(w, 'INVITE').length, 0, 'no device invited');
  }
});

t.test('CR 8.3.2.4: the last device of a group session expires: the relay is asked to store its Group State Object', async (t) => {
  const u = await callUp(
    ['Supported: timer', 'Session-Expires: 1800', 'Conversation-ID: conv1', 'Contribution-ID: contrib1'], '90;refresher=uas',
    '<sip:conf@cf.example.net;transport=tcp>;isfocus',
  );
  u.w.clock.advance(60_000);
  await flush();
  t.equal(toDevice(u.w, 'BYE').length, 1, 'BYE to the device');
  t.same(u.w.groupStates, [{ 'call-id': 'c1', 'conversation-id': 'conv1', 'contribution-id': 'contrib1', focus: 'sip:conf@cf.example.net;transport=tcp' }],
    'once, for the session folder, with the focus');
});

t.test('a one-to-one session whose last device expires stores nothing', async (t) => {
  const u = await callUp(['Supported: timer', 'Session-Expires: 1800', 'Conversation-ID: conv1', 'Contribution-ID: contrib1'], '90;refresher=uas');
  u.w.clock.advance(60_000);
  await flush();
  t.equal(toDevice(u.w, 'BYE').length, 1, 'BYE to the device');
  t.same(u.w.groupStates, [], 'no Group State Object');
});
