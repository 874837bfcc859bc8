// a=setup roles and CEMA over real TCP (RFC 4145 §4.1, RFC 6135, RFC 6714): the relay
// dials a passive originator, binds with an empty SEND, relays both ways; an unreachable
// originator closes its leg; a CEMA originator is reached at c=/m=, not at its a=path.
import t, { type Test } from 'tap';
import net from 'node:net';
import { MsrpPeer, buildCpim } from '../../../media/client/peer.js';
import { getHeader } from '../../../media/msrp/index.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { listenWithEvents, makeCert, sdpFor } from './helpers.js';

const ALICE = 'sip:alice@example.net';
const BOB = 'sip:bob@example.net';

/** A loopback port nobody listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>(resolve => srv.close(() => resolve()));
  return port;
}

/** The originator's SDP with its own c=/m= and, for CEMA, a=msrp-cema. */
function offerSdp(path: string, setup: string, opts: { cPort?: number; cema?: boolean; c?: string } = {}): string {
  let sdp = sdpFor(path, setup);
  if (opts.cPort !== undefined) sdp = sdp.replace('m=message 9 ', `m=message ${opts.cPort} `);
  if (opts.c !== undefined) sdp = sdp.replace('c=IN IP4 127.0.0.1', `c=${opts.c}`);
  if (opts.cema) sdp = sdp.replace('a=setup:', 'a=msrp-cema\r\na=setup:');
  return sdp;
}

/** A device connected to the relay and bound; messages both ways between it and `origin`. */
async function exchange(t: Test, relay: MsrpRelay, port: number, callId: string, deviceUri: string, origin: MsrpPeer): Promise<void> {
  const d = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: deviceUri });
  t.teardown(() => d.close());
  t.match(relay.answer({ 'call-id': callId, leg: 'dev1', sdp: sdpFor(d.localUri) }), { result: 'ok' });
  t.equal(await d.bind(), 200);
  const out = await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'hello through the relay' }), { chunkSize: 64 });
  t.ok(out.statuses.every(s => s === 200), 'originator chunks answered 200 over the dialed connection');
  const got = await d.waitForMessage(m => m.messageId === out.messageId);
  t.match(got.body.toString(), /hello through the relay/);
  const back = await d.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'and back' }));
  t.same(back.statuses, [200]);
  const m = await origin.waitForMessage(x => x.messageId === back.messageId);
  t.match(m.body.toString(), /and back/);
}

t.test('passive originator: the relay answers active, dials, binds with an empty SEND, relays both ways', async t => {
  const { relay, port, events, waitEvent } = await listenWithEvents();
  t.teardown(() => relay.close());
  const origin = await MsrpPeer.listen();
  t.teardown(() => origin.close());
  const o = relay.offer({ 'call-id': 'p1', sdp: sdpFor(origin.localUri, 'passive') });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.match(o.sdp, /\r\na=setup:active\r\n/, 'answer to a passive offer is active (RFC 4145 §4.1)');
  t.notOk(o.warnings, 'no warning: a passive offer is served');
  t.match(o['device-sdp'], /\r\na=setup:passive\r\n/, 'devices still connect to the relay');
  await origin.waitForConnection();
  await waitEvent(e => e.event === 'leg-connected' && e.leg === 'originator');
  await origin.until(() => origin.requests.length > 0);
  const first = origin.requests[0]!;
  t.equal(first.kind === 'request' && first.method, 'SEND', 'the first frame is a SEND');
  t.notOk(first.hasBody, 'an empty one');
  t.equal(getHeader(first, 'To-Path'), origin.localUri, 'To-Path is the originator a=path');
  t.equal(getHeader(first, 'From-Path'), o['relay-uri'], 'From-Path is the relay URI of the answer');
  t.equal(getHeader(first, 'Byte-Range'), '1-0/0');
  t.equal(origin.remotePath, o['relay-uri']);
  await exchange(t, relay, port, 'p1', o['device-relay-uri'], origin);
  t.match(relay.query({ 'call-id': 'p1' }), { legs: [{ leg: 'originator', state: 'connected' }, { leg: 'dev1', state: 'connected' }] });
  t.equal(events.filter(e => e.event === 'leg-closed').length, 0);
});

t.test('passive originator that cannot be reached: leg-closed with a reason, nothing left behind', async t => {
  const { relay, events, waitEvent } = await listenWithEvents({ dial: { attempts: 2, backoffMs: 20 } });
  t.teardown(() => relay.close());
  const dead = await closedPort();
  const o = relay.offer({ 'call-id': 'p2', sdp: sdpFor(`msrp://127.0.0.1:${dead}/gone;tcp`, 'passive') });
  t.match(o, { result: 'ok', sdp: /a=setup:active/ });
  t.equal(relay.dialing, 1, 'dialing right after the offer');
  const closed = await waitEvent(e => e.event === 'leg-closed' && e.leg === 'originator');
  t.match(closed, { 'call-id': 'p2', reason: new RegExp(`^connect to 127\\.0\\.0\\.1:${dead} failed after 2 attempt\\(s\\): `) });
  t.equal(relay.dialing, 0, 'no attempt or timer left');
  t.equal(relay.endpoint.connections.size, 0, 'no socket left');
  t.match(relay.query({ 'call-id': 'p2' }), { legs: [{ leg: 'originator', state: 'closed' }] });
  t.match(relay.delete({ 'call-id': 'p2' }), { result: 'ok' }, 'the session can be deleted');
  t.equal(relay.sessionCount, 0);
  t.equal(events.filter(e => e.event === 'leg-closed').length, 1, 'leg-closed once: delete does not repeat it');
});

t.test('delete while dialing: the attempt is abandoned and reports nothing', async t => {
  // A closed port and a long backoff: the dial is under way (connecting or waiting) at the delete.
  const { relay, events } = await listenWithEvents({ dial: { attempts: 5, backoffMs: 60_000 } });
  t.teardown(() => relay.close());
  const dead = await closedPort();
  t.match(relay.offer({ 'call-id': 'p3', sdp: sdpFor(`msrp://127.0.0.1:${dead}/gone;tcp`, 'passive') }), { result: 'ok' });
  t.equal(relay.dialing, 1);
  t.match(relay.delete({ 'call-id': 'p3' }), { result: 'ok' });
  t.equal(relay.dialing, 0, 'cancelled at once');
  t.same(events.map(e => e.event === 'leg-closed' && e.reason), ['deleted'], 'only the delete closed the leg');
  t.equal(relay.endpoint.connections.size, 0);
});

t.test('CEMA originator: reached at c=/m=, addressed by its a=path', async t => {
  const { relay, port, waitEvent } = await listenWithEvents();
  t.teardown(() => relay.close());
  const origin = await MsrpPeer.listen();
  t.teardown(() => origin.close());
  const dead = await closedPort();
  // The a=path names a port nobody listens on; c=/m= name the listening peer (RFC 6714).
  const path = `msrp://127.0.0.1:${dead}/${origin.sessionId};tcp`;
  const o = relay.offer({ 'call-id': 'c1', sdp: offerSdp(path, 'passive', { cema: true, cPort: origin.endpoint.port }) });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.match(o.sdp, /\r\na=msrp-cema\r\n/, 'the relay declares CEMA in its answer');
  t.match(o['device-sdp'], /\r\na=msrp-cema\r\n/, 'and in its device offer');
  await waitEvent(e => e.event === 'leg-connected' && e.leg === 'originator');
  await origin.until(() => origin.requests.length > 0);
  t.equal(getHeader(origin.requests[0]!, 'To-Path'), path, 'To-Path is still the a=path');
  await exchange(t, relay, port, 'c1', o['device-relay-uri'], origin);
});

t.test('without CEMA the same offer is dialed at its a=path, which fails', async t => {
  const { relay, waitEvent } = await listenWithEvents({ dial: { attempts: 1 } });
  t.teardown(() => relay.close());
  const origin = await MsrpPeer.listen();
  t.teardown(() => origin.close());
  const dead = await closedPort();
  const path = `msrp://127.0.0.1:${dead}/${origin.sessionId};tcp`;
  t.match(relay.offer({ 'call-id': 'c2', sdp: offerSdp(path, 'passive', { cPort: origin.endpoint.port }) }), { result: 'ok' });
  t.match(await waitEvent(e => e.event === 'leg-closed'), { leg: 'originator', reason: new RegExp(`127\\.0\\.0\\.1:${dead}`) });
  t.equal(origin.connection, undefined, 'the peer at c=/m= was not contacted');
});

t.test('CEMA device: its frames are matched by the session-id of its a=path (RFC 6714)', async t => {
  const { relay, port } = await listenWithEvents();
  t.teardown(() => relay.close());
  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  t.teardown(() => origin.close());
  const o = relay.offer({ 'call-id': 'c3', sdp: sdpFor(origin.localUri) });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  origin.remotePath = o['relay-uri'];
  t.equal(await origin.bind(), 200);
  for (const [leg, cema, expect] of [['plain', false, 481], ['cema', true, 200]] as const) {
    const d = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: o['device-relay-uri'] });
    t.teardown(() => d.close());
    // The SDP a=path has another host and port than the device's From-Path; same session-id.
    const sdpPath = `msrp://198.51.100.7:7000/${d.sessionId};tcp`;
    t.match(relay.answer({ 'call-id': 'c3', leg, sdp: offerSdp(sdpPath, 'active', { cema }) }), { result: 'ok' });
    const r = await d.sendMessage(buildCpim({ from: BOB, to: ALICE, body: `from ${leg}` }));
    t.same(r.statuses, [expect], `${leg}: ${expect}`);
  }
});

t.test('a passive originator that answers the binding SEND with 481: leg closed with that reason', async t => {
  const { relay, waitEvent } = await listenWithEvents();
  t.teardown(() => relay.close());
  const origin = await MsrpPeer.listen();
  t.teardown(() => origin.close());
  // A session-id the peer does not serve: its endpoint answers 481 (RFC 4975 §7.3.1).
  const path = `msrp://127.0.0.1:${origin.endpoint.port}/not-${origin.sessionId};tcp`;
  t.match(relay.offer({ 'call-id': 'r1', sdp: sdpFor(path, 'passive') }), { result: 'ok' });
  await waitEvent(e => e.event === 'leg-connected' && e.leg === 'originator');
  const closed = await waitEvent(e => e.event === 'leg-closed' && e.leg === 'originator');
  t.match(closed, { reason: "the peer answered 481 to the relay's binding SEND" });
  t.match(relay.query({ 'call-id': 'r1' }), { legs: [{ leg: 'originator', state: 'closed' }] });
});

t.test('passive msrps originator: dialed over TLS with the relay TLS client settings', async t => {
  const dir = t.testdir();
  const cert = (name: string): { key: Buffer; cert: Buffer } => makeCert(dir, name);
  const relayCert = cert('relay');
  const originCert = cert('origin');
  const { relay, port, waitEvent } = await listenWithEvents({ tls: relayCert, tlsClient: { ca: originCert.cert } });
  t.teardown(() => relay.close());
  const origin = await MsrpPeer.listen({ tls: originCert });
  t.teardown(() => origin.close());
  t.match(origin.localUri, /^msrps:/);
  const o = relay.offer({ 'call-id': 't1', sdp: sdpFor(origin.localUri, 'passive').replace('TCP/MSRP', 'TCP/TLS/MSRP') });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.match(o.sdp, /\r\nm=message \d+ TCP\/TLS\/MSRP \*\r\n[^]*\r\na=setup:active\r\n/);
  await waitEvent(e => e.event === 'leg-connected' && e.leg === 'originator');
  t.match(relay.query({ 'call-id': 't1' }), { legs: [{ leg: 'originator', transport: 'tls', state: 'connected' }] });
  // A TCP device; the originator's frames come in on the dialed TLS connection.
  await exchange(t, relay, port, 't1', o['device-relay-uri-tcp']!, origin);
});
