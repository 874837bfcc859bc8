/**
 * The live view's trace store (plugin/live/store.ts) and the call state it keeps
 * (plugin/live/call-state.ts): what is kept, under which call, and the bounds.
 */
import t from 'tap';
import { TraceStore, msrpKey, sdpPathUris } from '../../../plugin/live/store.js';
import { CALL_NEXT, callStep, type CallEvent, type CallState } from '../../../plugin/live/call-state.js';
import { A, ALICE_MSRP, BOB_MSRP, D, K, RELAY_DEV, RELAY_ORIG, b2buaCall, cap, msrpOk, msrpSend, proxyBye, proxyCall } from './fixtures/captures.js';

const store = (o: Partial<ConstructorParameters<typeof TraceStore>[0]> = {}) => new TraceStore({ maxCalls: 10, maxRecords: 100, kamailio: [K], ...o });

t.test('callStep: every state and event', async (t) => {
  const table: Array<[CallState, CallEvent, CallState]> = [
    ['trying', 'provisional', 'ringing'], ['trying', 'answered', 'established'], ['trying', 'rejected', 'failed'], ['trying', 'bye', 'ended'],
    ['ringing', 'provisional', 'ringing'], ['ringing', 'answered', 'established'], ['ringing', 'rejected', 'failed'], ['ringing', 'bye', 'ended'],
    ['established', 'provisional', 'established'], ['established', 'answered', 'established'], ['established', 'rejected', 'established'], ['established', 'bye', 'ended'],
    ['failed', 'provisional', 'failed'], ['failed', 'answered', 'failed'], ['failed', 'rejected', 'failed'], ['failed', 'bye', 'failed'],
    ['ended', 'provisional', 'ended'], ['ended', 'answered', 'ended'], ['ended', 'rejected', 'ended'], ['ended', 'bye', 'ended'],
  ];
  for (const [from, ev, to] of table) {
    t.equal(callStep(from, ev), to, `${from} --${ev}--> ${to}`);
    if (to !== from) t.ok(CALL_NEXT[from].includes(to), `${from} -> ${to} is in the table`);
  }
});

t.test('helpers', async (t) => {
  t.equal(msrpKey('MSRP://Host.Example:2855/AbC;tcp'), 'msrp://host.example:2855/AbC', 'scheme and authority without case, session-id as is, no params');
  t.same(sdpPathUris('v=0\r\na=path:msrp://r:1/x;tcp msrp://b:2/y;tcp\r\nm=message 1 TCP/MSRP *\r\na=path:msrp://c:3/z;tcp\r\n'), ['msrp://r:1/x;tcp', 'msrp://b:2/y;tcp', 'msrp://c:3/z;tcp']);
  t.same(sdpPathUris('v=0\r\n'), []);
});

t.test('a proxy call: kept from its INVITE, its state from the caller side only', async (t) => {
  const s = store();
  s.sip({ t: 0, src: D, dst: K, transport: 'udp', payload: 'REGISTER sip:example.net SIP/2.0\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n' });
  t.equal(s.size, 0, 'a REGISTER starts no call');
  t.equal(s.stats.untracked, 1);
  const msgs = proxyCall();
  const states: string[] = [];
  for (const m of msgs) {
    s.sip(m);
    states.push(s.get('c1')?.state ?? '-');
  }
  t.same(states, ['trying', 'trying', 'trying', 'trying', 'ringing', 'ringing', 'established', 'established', 'established'], "the device's 180 and 200 to Kamailio do not move it; Kamailio's to the caller do");
  const c = s.get('c1')!;
  t.equal(c.caller, A, "the caller's address");
  t.equal(c.from, 'sip:alice@example.net');
  t.equal(c.to, 'sip:bob@example.net');
  t.equal(c.records.length, msgs.length);
  t.same(s.live().map((x) => x.id), ['c1'], 'in progress');
  s.decision({ callId: 'c1', tAsk: 3, t: 4, action: 'proxy', stage: 'proxy', code: null, text: 'proxy|proxy|...' });
  t.same(c.decision, { action: 'proxy', stage: 'proxy' });
  for (const m of proxyBye()) s.sip(m);
  t.equal(c.state, 'ended', 'BYE ends it');
  t.same(s.live(), [], 'nothing in progress');
  s.sip({ t: 1, src: A, dst: K, transport: 'udp', payload: 'garbage' });
  t.equal(s.stats.unparsed, 1, 'a payload that is not SIP is counted');
});

t.test('a rejected call fails; a forked branch\'s 487 does not fail it', async (t) => {
  const s = store();
  const [invite] = proxyCall('r1');
  s.sip(invite!);
  s.sip(cap(2, D, K, { start: 'SIP/2.0 487 Request Terminated', callId: 'r1', cseq: '1 INVITE', via: [K, 'z9hG4bKk1'], toTag: true }));
  t.equal(s.get('r1')?.state, 'trying', "a branch's final to Kamailio");
  s.sip(cap(3, K, A, { start: 'SIP/2.0 480 Temporarily Unavailable', callId: 'r1', cseq: '1 INVITE', via: [A, 'z9hG4bKa'], toTag: true }));
  t.equal(s.get('r1')?.state, 'failed', "Kamailio's final to the caller");
});

t.test('B2BUA legs and MSRP frames are filed under the caller\'s call', async (t) => {
  const s = store();
  const msgs = b2buaCall();
  for (const m of msgs.slice(0, 3)) s.sip(m);
  s.relaySession('b1', 4, `a=path:${RELAY_ORIG}\r\na=path:${RELAY_DEV}\r\n`);
  for (const m of msgs.slice(3)) s.sip(m);
  t.equal(s.size, 1, 'one call');
  const c = s.get('b1')!;
  t.same(c.legs, ['L1'], "the leg INVITE naming the relay's device URI is linked");
  t.equal(s.get('L1'), c, 'found by the leg Call-ID too');
  t.equal(c.state, 'established');
  s.msrp(20, msrpSend('t1', RELAY_ORIG, ALICE_MSRP));
  s.msrp(21, msrpOk('t1', ALICE_MSRP, RELAY_ORIG));
  s.msrp(22, msrpSend('t2', BOB_MSRP, RELAY_DEV));
  s.msrp(23, msrpSend('t3', 'msrp://127.0.0.1:1/unknown;tcp', 'msrp://127.0.0.1:2/unknown;tcp'));
  s.msrp(24, 'not msrp');
  const frames = c.records.filter((r) => r.kind === 'msrp');
  t.same(frames.map((r) => (r.kind === 'msrp' ? [r.method, r.status, r.fromUri, r.toUri] : null)), [
    ['SEND', null, msrpKey(ALICE_MSRP), msrpKey(RELAY_ORIG)],
    [null, 200, msrpKey(RELAY_ORIG), msrpKey(ALICE_MSRP)],
    ['SEND', null, msrpKey(RELAY_DEV), msrpKey(BOB_MSRP)],
  ]);
  t.equal(s.stats.untracked, 1, 'a frame of no known session');
  t.equal(s.stats.unparsed, 1, 'a payload without an MSRP start line');
  // the leg's capture overtook the relay's: the leg is moved under the call once it comes
  const late = store();
  for (const m of msgs.slice(0, 3)) late.sip(m);
  for (const m of msgs.slice(3)) late.sip(m);
  t.equal(late.size, 2, 'before the relay names its URIs the leg is a call of its own');
  late.relaySession('b1', 4, `a=path:${RELAY_ORIG}\r\na=path:${RELAY_DEV}\r\n`);
  t.same(late.calls().map((c) => [c.id, c.legs, c.records.length]), [['b1', ['L1'], msgs.length]], 'then one call, with the leg');
  t.equal(late.get('L1')?.id, 'b1');
  late.msrp(22, msrpSend('t2', BOB_MSRP, RELAY_DEV));
  t.equal(late.get('b1')?.records.length, msgs.length + 1, "a frame to the device's URI is filed under the call");
  const linked = store();
  linked.link('x1', 'xl', 1);
  linked.sip(cap(2, A, K, { start: 'INVITE sip:bob@example.net SIP/2.0', callId: 'xl', cseq: '1 INVITE', via: [A, 'z9hG4bKx'] }));
  t.equal(linked.size, 1, 'a leg linked by link() before its INVITE');
  t.equal(linked.get('xl')?.id, 'x1');
});

t.test('bounds: calls (finished ones go first), records per call', async (t) => {
  const s = store({ maxCalls: 3, maxRecords: 5 });
  for (const m of proxyCall('live')) s.sip(m); // established, oldest
  for (const id of ['f1', 'f2']) {
    s.sip(proxyCall(id)[0]!);
    s.sip(cap(3, K, A, { start: 'SIP/2.0 486 Busy Here', callId: id, cseq: '1 INVITE', via: [A, 'z9hG4bKa'], toTag: true }));
  }
  s.sip(proxyCall('n1')[0]!);
  t.same(s.calls().map((c) => c.id), ['n1', 'f2', 'live'], 'the oldest finished call went, the older live one stayed');
  t.equal(s.stats.evicted, 1);
  t.equal(s.get('live')?.records.length, 5, 'five records kept');
  t.equal(s.get('live')?.dropped, 4, 'the rest counted');
  const all = store({ maxCalls: 2 });
  for (const id of ['a', 'b', 'c']) for (const m of proxyCall(id)) all.sip(m);
  t.same(all.calls().map((c) => c.id), ['c', 'b'], 'all live: the oldest goes');
});

t.test('Kamailio learned from the first request when not configured', async (t) => {
  const s = store({ kamailio: [] });
  for (const m of proxyCall()) s.sip(m);
  t.ok(s.isKamailio(K), "the first request's destination");
  t.equal(s.get('c1')?.state, 'established');
});
