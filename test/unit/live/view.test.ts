/**
 * The live view's edges: the HEP3 collector on a real UDP socket (garbage counted and
 * dropped, good packets filed), and the routes (plugin/http/live.ts) through inject().
 */
import t from 'tap';
import dgram from 'node:dgram';
import { pino } from 'pino';
import { buildHttp } from '../../../plugin/http/server.js';
import { liveRoutes } from '../../../plugin/http/live.js';
import { LiveView, featureTags } from '../../../plugin/live/view.js';
import { fileHep } from '../../../plugin/live/collector.js';
import { encodeHep3, HEP_PROTO_MSRP, HEP_PROTO_SDP, HEP_PROTO_SIP } from '../../../wire/hep3.js';
import { until } from '../../../lab/proc.js';
import type { Device } from '../../../plugin/devices/types.js';
import type { Ladder, LiveState, Sessions } from '../../../plugin/live/schema.js';
import { device } from '../service/fixtures/helpers.js';
import { ALICE_MSRP, D, K, P, RELAY_DEV, RELAY_ORIG, b2buaCall, proxyCall } from './fixtures/captures.js';

const log = pino({ level: 'silent' });
const BOB: Device = device({
  aor: 'sip:bob@example.net', contact: `sip:bob@${D}`, instance: '<urn:uuid:0badcafe-0000-0000-0000-000000000001>', received: `udp:${D}`,
  pubGruu: 'sip:bob@example.net;gr=urn:uuid:0badcafe-0000-0000-0000-000000000001', params: { '+sip.instance': '<urn:uuid:0badcafe-0000-0000-0000-000000000001>', '+g.oma.sip-im': true, expires: '60' },
  expiresAt: Number.MAX_SAFE_INTEGER,
});
const devices = { users: () => ['sip:bob@example.net', 'sip:gone@example.net'], list: (aor: string) => (aor === 'sip:bob@example.net' ? [BOB] : []) };
const view = (hepPort = 0) => new LiveView({ host: '127.0.0.1', hepPort, maxCalls: 10, maxRecords: 100, kamailio: [K], devices, log, now: Date.now });
const hostPort = (a: string): [string, number] => [a.split(':')[0]!, Number(a.split(':')[1])];

t.test('featureTags', async (t) => {
  t.same(featureTags({ '+sip.instance': '<urn:uuid:1>', '+g.oma.sip-im': true, '+g.3gpp.icsi-ref': 'urn%3Ax', audio: true, expires: '60', transport: 'udp' }),
    ['+g.oma.sip-im', '+g.3gpp.icsi-ref="urn%3Ax"', 'audio']);
});

t.test('the collector on UDP: garbage dropped, captures filed', async (t) => {
  const live = view();
  const port0 = await live.collector.listen('127.0.0.1', 0);
  t.teardown(() => live.stop());
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  const send = (b: Buffer): Promise<void> => new Promise((resolve) => sock.send(b, port0, '127.0.0.1', () => resolve()));
  await send(Buffer.from('not HEP at all'));
  await send(Buffer.from('HEP3\u0000\u0001'));
  await send(encodeHep3({ timeMs: 1, protoType: 99, payload: Buffer.from('x') }));
  for (const m of proxyCall()) {
    const [srcIp, srcPort] = hostPort(m.src);
    const [dstIp, dstPort] = hostPort(m.dst);
    await send(encodeHep3({ srcIp, srcPort, dstIp, dstPort, ipProto: 17, timeMs: m.t, protoType: HEP_PROTO_SIP, payload: Buffer.from(m.payload) }));
  }
  await until(async () => (live.collector.counts.packets === 3 + proxyCall().length ? true : undefined), 5000, 'every datagram taken');
  t.same(live.collector.counts, { packets: 12, bad: 2, ignored: 1 }, 'two bad, one of another protocol');
  t.equal(live.store.get('c1')?.records.length, proxyCall().length, 'the call filed');
});

t.test('routes', async (t) => {
  const live = view();
  const table = [{ callId: 'b1', servedUser: 'sip:bob@example.net', state: 'confirmed' as const, legs: [{ id: 'L1', device: 'bob 0badcafe', state: 'up' as const }] }];
  live.b2bua = { sentBy: P, calls: () => 1, sessions: () => table };
  const http = buildHttp(log);
  await http.register(liveRoutes, { live, now: Date.now });
  t.teardown(() => http.close());
  const msgs = b2buaCall();
  live.store.sip(msgs[0]!);
  live.store.decision({ callId: 'b1', tAsk: 2, t: 3, action: 'b2bua', stage: 'b2bua', code: null, text: '{}' });
  for (const m of msgs.slice(1, 3)) live.store.sip(m);
  // the relay's session (HEP3 SDP with the caller's Call-ID), then the leg
  const none = { family: null, ipProto: null, srcIp: null, dstIp: null, srcPort: null, dstPort: null, captureId: null } as const;
  t.ok(fileHep(live.store, { ...none, timeMs: null, protoType: HEP_PROTO_SDP, correlationId: 'b1', payload: Buffer.from(`a=path:${RELAY_ORIG}\r\na=path:${RELAY_DEV}\r\n`) }, () => 4));
  for (const m of msgs.slice(3)) live.store.sip(m);
  t.ok(fileHep(live.store, { ...none, timeMs: 30, protoType: HEP_PROTO_MSRP, correlationId: null, payload: Buffer.from(`MSRP x SEND\r\nTo-Path: ${RELAY_ORIG}\r\nFrom-Path: ${ALICE_MSRP}\r\n\r\n`) }, Date.now));
  t.notOk(fileHep(live.store, { ...none, timeMs: 30, protoType: HEP_PROTO_SDP, correlationId: null, payload: Buffer.from('a=path:x') }, Date.now), 'SDP without a Call-ID: not filed');
  t.notOk(fileHep(live.store, { ...none, timeMs: 30, protoType: HEP_PROTO_SIP, correlationId: null, payload: null }, Date.now), 'no payload: not filed');

  const page = await http.inject('/lab/live');
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  t.match(page.body, /<title>CPM PF lab: live view<\/title>/);
  t.notMatch(page.body, /<script[^>]+src=/, 'no script loaded from elsewhere');

  const state = (await http.inject('/lab/live/state')).json<LiveState>();
  t.same(state.calls.map((c) => [c.callId, c.state, c.decision]), [['b1', 'established', { action: 'b2bua', stage: 'b2bua' }]]);
  t.same(state.users, [{ aor: 'sip:bob@example.net', devices: [{ key: BOB.instance, instance: BOB.instance, contact: BOB.contact, pubGruu: BOB.pubGruu, tags: ['+g.oma.sip-im'], expiresAt: BOB.expiresAt }] }], 'users with devices, tags without +sip.instance');
  t.equal(state.stats.decisions, 1);

  const ladder = await http.inject(`/lab/live/calls/${encodeURIComponent('b1')}`);
  t.equal(ladder.statusCode, 200);
  const l = ladder.json<Ladder>();
  t.ok(l.rows.some((r) => r.label === 'decision: b2bua · stage b2bua'), 'the decision row');
  t.ok(l.rows.some((r) => r.from === 'caller' && r.to === 'relay' && r.label === 'MSRP SEND'), 'the frame from the relay\'s HEP');
  t.equal((await http.inject('/lab/live/calls/L-unknown')).statusCode, 404, 'an unknown call: 404');

  const sessions = (await http.inject('/sessions')).json<Sessions>();
  t.same(sessions, { source: 'trace', b2buaCalls: 1, sessions: [{ callId: 'b1', state: 'established', mode: 'b2bua', from: 'sip:alice@example.net', to: 'sip:bob@example.net', started: 1, answeredBy: ['bob 0badcafe'], legs: ['L1'] }], b2bua: table }, 'sessions from the trace, the B2BUA count and its call table beside');
  t.same((await http.inject('/lab/live/devices')).json(), state.users);
});
