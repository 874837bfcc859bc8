/**
 * The live view's ladder (plugin/live/ladder.ts): who each capture is between, and the
 * rows of a proxy call and of a B2BUA call with its leg and MSRP frames.
 */
import t from 'tap';
import { TraceStore } from '../../../plugin/live/store.js';
import { addressOf, buildLadder, type LadderContext } from '../../../plugin/live/ladder.js';
import { device } from '../service/fixtures/helpers.js';
import { A, ALICE_MSRP, BOB_MSRP, D, K, P, RELAY_DEV, RELAY_ORIG, b2buaCall, msrpOk, msrpSend, proxyBye, proxyCall } from './fixtures/captures.js';

const BOB = device({ aor: 'sip:bob@example.net', contact: `sip:bob@${D}`, instance: '<urn:uuid:0badcafe-0000-0000-0000-000000000001>', received: `udp:${D}` });
const ctx = (pfSentBy: string | null): LadderContext => ({ isKamailio: (a) => a === K, pfSentBy, devices: [BOB] });
const rows = (l: ReturnType<typeof buildLadder>): string[] => l.rows.map((r) => `${r.from} > ${r.to}: ${r.label}${r.leg ? ' [leg]' : ''}`);
const DEV = 'dev:<urn:uuid:0badcafe-0000-0000-0000-000000000001>';

t.test('addressOf', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['sip:bob@127.0.0.1:5062;transport=udp', '127.0.0.1:5062'],
    ['sip:bob@example.net', 'example.net:5060'],
    ['udp:127.0.0.1:40010', '127.0.0.1:40010'],
    ['tcp:[::1]:5060', '[::1]:5060'],
    ['tel:+1555', null],
    ['', null],
  ];
  for (const [text, want] of cases) t.equal(addressOf(text), want, text);
});

t.test('a proxy call', async (t) => {
  const s = new TraceStore({ maxCalls: 5, maxRecords: 100, kamailio: [K] });
  for (const m of proxyCall()) s.sip(m);
  s.decision({ callId: 'c1', tAsk: 3, t: 4, action: 'proxy', stage: 'proxy', code: null, text: 'proxy|proxy|||||' });
  for (const m of proxyBye()) s.sip(m);
  const l = buildLadder(s.get('c1')!, ctx(null));
  t.same(l.participants.map((p) => [p.id, p.label]), [['caller', 'caller alice'], ['kamailio', 'Kamailio'], ['pf', 'PF'], [DEV, 'bob 0badcafe']]);
  t.same(rows(l), [
    'caller > kamailio: INVITE sip:bob@example.net',
    'kamailio > caller: 100 Trying (INVITE)',
    'kamailio > pf: pf.invite',
    'pf > kamailio: decision: proxy · stage proxy',
    `kamailio > ${DEV}: INVITE sip:bob@${D}`,
    `${DEV} > kamailio: 180 Ringing (INVITE)`,
    'kamailio > caller: 180 Ringing (INVITE)',
    `${DEV} > kamailio: 200 OK (INVITE)`,
    'kamailio > caller: 200 OK (INVITE)',
    'caller > kamailio: ACK',
    `kamailio > ${DEV}: ACK`,
    'caller > kamailio: BYE',
    `kamailio > ${DEV}: BYE`,
    `${DEV} > kamailio: 200 OK (BYE)`,
    'kamailio > caller: 200 OK (BYE)',
  ]);
  t.same(l.answeredBy, ['bob 0badcafe']);
  t.equal(l.call.state, 'ended');
});

t.test('a rejection and a failed decision', async (t) => {
  const s = new TraceStore({ maxCalls: 5, maxRecords: 100, kamailio: [K] });
  s.sip(proxyCall('r1')[0]!);
  s.decision({ callId: 'r1', tAsk: 2, t: 3, action: 'reject', stage: 'blacklist', code: 403, text: '{}' });
  s.decision({ callId: 'r1', tAsk: 4, t: 5, action: 'error', stage: null, code: null, text: 'XDM unavailable' });
  t.same(rows(buildLadder(s.get('r1')!, ctx(null))).slice(1), [
    'kamailio > pf: pf.invite', 'pf > kamailio: decision: reject 403 · stage blacklist',
    'kamailio > pf: pf.invite', 'pf > kamailio: pf.invite failed: XDM unavailable',
  ]);
});

t.test('a B2BUA call: the leg, the relay and the frames', async (t) => {
  const s = new TraceStore({ maxCalls: 5, maxRecords: 100, kamailio: [K] });
  const msgs = b2buaCall();
  s.sip(msgs[0]!);
  s.decision({ callId: 'b1', tAsk: 2, t: 3, action: 'b2bua', stage: 'b2bua', code: null, text: '{}' });
  for (const m of msgs.slice(1, 3)) s.sip(m);
  s.relaySession('b1', 4, `a=path:${RELAY_ORIG}\r\na=path:${RELAY_DEV}\r\n`);
  for (const m of msgs.slice(3)) s.sip(m);
  s.msrp(20, msrpSend('t1', RELAY_ORIG, ALICE_MSRP));
  s.msrp(21, msrpOk('t1', ALICE_MSRP, RELAY_ORIG));
  s.msrp(22, msrpSend('t2', BOB_MSRP, RELAY_DEV));
  s.msrp(23, msrpOk('t2', RELAY_DEV, BOB_MSRP));
  s.msrp(24, `MSRP t3 REPORT\r\nTo-Path: ${RELAY_DEV}\r\nFrom-Path: ${BOB_MSRP}\r\nMessage-ID: m1\r\nByte-Range: 1-5/5\r\nStatus: 000 200 OK\r\n-------t3$\r\n`);
  s.msrp(25, `MSRP t4 REPORT\r\nTo-Path: ${ALICE_MSRP}\r\nFrom-Path: ${RELAY_ORIG}\r\nMessage-ID: m1\r\nByte-Range: 1-5/5\r\nStatus: 000 200 OK\r\n-------t4$\r\n`);
  const l = buildLadder(s.get('b1')!, ctx(P));
  t.same(l.participants.map((p) => p.id), ['caller', 'kamailio', 'pf', 'relay', DEV]);
  t.same(rows(l), [
    'caller > kamailio: INVITE sip:bob@example.net',
    'kamailio > pf: pf.invite',
    'pf > kamailio: decision: b2bua · stage b2bua',
    'kamailio > pf: INVITE sip:bob@example.net',
    'pf > kamailio: 100 Trying (INVITE)',
    'pf > kamailio: INVITE sip:bob@example.net;gr=urn:uuid:1 [leg]',
    `kamailio > ${DEV}: INVITE sip:bob@example.net;gr=urn:uuid:1 [leg]`,
    `${DEV} > kamailio: 200 OK (INVITE) [leg]`,
    'kamailio > pf: 200 OK (INVITE) [leg]',
    'pf > kamailio: 200 OK (INVITE)',
    'kamailio > caller: 200 OK (INVITE)',
    'caller > relay: MSRP SEND',
    'relay > caller: MSRP 200',
    `relay > ${DEV}: MSRP SEND`,
    `${DEV} > relay: MSRP 200`,
    `${DEV} > relay: MSRP REPORT`,
    'relay > caller: MSRP REPORT',
  ]);
  t.same(l.answeredBy, ['bob 0badcafe'], "the leg's device answered");
  t.equal(l.call.legs.length, 1);
  t.equal(A, l.participants[0]!.detail, "the caller's address");
});

t.test("a response stamped before its request follows it; a device gone since is named by its Request-URI", async (t) => {
  const s = new TraceStore({ maxCalls: 5, maxRecords: 100, kamailio: [K] });
  const msgs = proxyCall();
  // the INVITE to the device (t 5) stamped after the device's 180 (t 6)
  for (const m of msgs) s.sip(m.t === 5 ? { ...m, t: 6.5 } : m);
  const l = buildLadder(s.get('c1')!, { ...ctx(null), devices: [] });
  const dev = `addr:${D}`;
  t.same(l.participants.find((p) => p.id === dev)?.label, `bob ${D}`, "the Request-URI's user and the address");
  t.same(rows(l).slice(2, 5), [`kamailio > ${dev}: INVITE sip:bob@${D}`, `${dev} > kamailio: 180 Ringing (INVITE)`, 'kamailio > caller: 180 Ringing (INVITE)']);
});
