// Relay over real TCP on loopback, driven by the MsrpPeer test client.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { MsrpPeer, buildCpim } from '../../../media/client/peer.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { buildRequest, serializeFrame } from '../../../media/msrp/serializer.js';
import { rangesOf, sdpFor, until, world } from './helpers.js';

const ALICE = 'sip:alice@example.net';
const BOB = 'sip:bob@example.net'; // the served user

t.test('unknown session gets 481', async t => {
  const relay = new MsrpRelay({ port: 0 });
  const port = await relay.listen();
  const p = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: `msrp://127.0.0.1:${port}/nosuchsession;tcp` });
  t.equal(await p.bind(), 481);
  const r = await p.sendMessage('hello', { contentType: 'text/plain' });
  t.same(r.statuses, [481]);
  await p.close();
  await relay.close();
});

t.test('device with an unknown From-Path gets 481', async t => {
  const w = await world(1);
  const stranger = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  const r = await stranger.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'let me in' }));
  t.same(r.statuses, [481]);
  t.equal(w.origin.messages.length, 0, 'nothing relayed');
  await stranger.close();
  await w.close();
});

t.test('device that binds before its answer is parked, then bound by answer', async t => {
  const w = await world(1);
  const early = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  t.equal(await early.bind(), 200, 'empty SEND accepted while the answer is on its way');
  t.notOk(w.events.some(e => e.event === 'leg-connected' && e.leg === 'late'));
  const a = w.relay.answer({ 'call-id': w.callId, leg: 'late', sdp: sdpFor(early.localUri) });
  t.equal(a.result, 'ok');
  await w.waitEvent(e => e.event === 'leg-connected' && e.leg === 'late');
  const m = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'hello late device' }));
  t.ok((await early.waitForMessage(x => x.messageId === m.messageId)).body.length > 0, 'relayed to the late device');
  const back = await early.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'hi' }));
  t.same(back.statuses, [200]);
  await w.origin.waitForMessage(x => x.messageId === back.messageId);
  await early.close();
  await w.close();
});

t.test('a parked device that sends before its answer: held, then relayed in order once answered (policy B counts it)', async t => {
  const w = await world(1, { policy: 'B' });
  const early = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  t.equal(await early.bind(), 200, 'empty SEND accepted while the answer is on its way');
  // the device's answer is still on its way through the B2BUA: a message in 3 chunks, then another
  const body1 = buildCpim({ from: BOB, to: ALICE, body: 'x'.repeat(100) });
  const first = await early.sendMessage(body1, { chunkSize: 64 });
  const second = await early.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'second' }));
  const statuses = [...first.statuses, ...second.statuses];
  t.ok(first.statuses.length > 1 && statuses.every(x => x === 200), `each chunk taken (200), none 481 (${statuses.join(',')})`);
  t.equal(w.origin.messages.length, 0, 'nothing relayed before the answer');
  const a = w.relay.answer({ 'call-id': w.callId, leg: 'late', sdp: sdpFor(early.localUri) });
  t.equal(a.result, 'ok');
  await w.waitEvent(e => e.event === 'leg-connected' && e.leg === 'late');
  const got1 = await w.origin.waitForMessage(x => x.messageId === first.messageId);
  const got2 = await w.origin.waitForMessage(x => x.messageId === second.messageId);
  t.ok(got1.body.equals(body1), 'the held message whole');
  t.ok(w.origin.messages.indexOf(got1) < w.origin.messages.indexOf(got2), 'in the order sent');
  t.match(await w.waitEvent(e => e.event === 'first-active'), { leg: 'late', kind: 'chat' }, 'a held chat message makes its device the first active');
  await early.close();
  await w.close();
});

t.test('a parked device: a chunk still arriving when answer binds it follows the held ones', async t => {
  const w = await world(1);
  const early = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  t.equal(await early.bind(), 200);
  const held = await early.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'held' }));
  const body = buildCpim({ from: BOB, to: ALICE, body: 'y'.repeat(3000) });
  const frame = buildRequest({
    method: 'SEND', toPath: early.remotePath!, fromPath: early.localUri,
    headers: [{ name: 'Message-ID', value: 'split1' }, { name: 'Byte-Range', value: `1-${body.length}/${body.length}` }],
    contentType: 'message/cpim', body, flag: '$',
  });
  const bytes = serializeFrame(frame);
  const sock = early.connection!.socket;
  sock.write(bytes.subarray(0, 1000));
  // the relay has the chunk's head and part of its body (its frame in progress, read here)
  const receiving = (w.relay as unknown as { ingress: { receiving: Map<string, unknown> } }).ingress.receiving;
  await until(() => receiving.size > 0, 5000);
  t.equal(w.relay.answer({ 'call-id': w.callId, leg: 'late', sdp: sdpFor(early.localUri) }).result, 'ok');
  sock.write(bytes.subarray(1000));
  const got = await w.origin.waitForMessage(x => x.messageId === 'split1');
  t.ok(got.body.equals(body), 'the split chunk relayed whole');
  const first = w.origin.messages.findIndex(x => x.messageId === held.messageId);
  t.ok(first !== -1 && first < w.origin.messages.indexOf(got), 'after the held message');
  await early.close();
  await w.close();
});

t.test('a parked device: a body on a connection that is not parked, or past the hold, gets 481', async t => {
  const w = await world(1, {}, { maxPending: 100 });
  const stranger = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  t.same((await stranger.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'first frame' }))).statuses, [481], 'no binding SEND first: 481');
  const early = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  t.equal(await early.bind(), 200);
  t.same((await early.sendMessage('a'.repeat(80), { contentType: 'text/plain' })).statuses, [200], 'within the hold');
  t.same((await early.sendMessage('b'.repeat(80), { contentType: 'text/plain' })).statuses, [481], 'past the hold (maxPending)');
  const other = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  t.equal(await other.bind(), 200, 'another parked device');
  t.same((await other.sendMessage('c'.repeat(80), { contentType: 'text/plain' })).statuses, [481], 'the hold is per session: full');
  await Promise.all([stranger.close(), early.close(), other.close()]);
  await w.close();
});

t.test('one originator, three devices (policy C): 1 MB chunked both ways', async t => {
  const w = await world(3, { policy: 'C' });
  t.same(w.events.filter(e => e.event === 'leg-connected').map(e => e.leg), ['originator', 'dev1', 'dev2', 'dev3']);
  const big = Buffer.concat([randomBytes(512 * 1024), Buffer.from('ü✓😀'.repeat(40000), 'utf8')]).subarray(0, 1024 * 1024);
  const body = buildCpim({ from: ALICE, to: BOB, body: big, contentType: 'application/octet-stream' });
  const sent = await w.origin.sendMessage(body, { chunkSize: 16 * 1024 });
  t.ok(sent.statuses.every(s => s === 200), 'every chunk answered 200 hop by hop');
  for (const d of w.devices) {
    const m = await d.waitForMessage(m => m.messageId === sent.messageId, 20000);
    t.ok(m.body.equals(body), 'device got the 1 MB message byte for byte');
    t.equal(m.chunks, sent.statuses.length);
    t.equal(m.fromPath, d.remotePath, 'From-Path is the relay URI');
  }
  // Each device answers with its own 1 MB message to the originator.
  const bodies = w.devices.map((_d, i) => buildCpim({ from: BOB, to: ALICE, body: Buffer.alloc(1024 * 1024, 0x61 + i) }));
  const back = await Promise.all(w.devices.map((d, i) => d.sendMessage(bodies[i]!, { chunkSize: 32 * 1024 })));
  for (const [i, r] of back.entries()) {
    const m = await w.origin.waitForMessage(m => m.messageId === r.messageId, 20000);
    t.ok(m.body.equals(bodies[i]!), 'device message arrived intact, not interleaved');
    t.equal(m.fromPath, w.origin.remotePath, 'From-Path toward the originator is the relay URI');
  }
  t.equal(w.origin.messages.length, 3, 'originator got exactly three messages');
  for (const d of w.devices) t.equal(d.messages.length, 1, 'devices do not see each other without direct delivery');
  await w.close();
});

t.test('policy A: only the first device leg is kept', async t => {
  const w = await world(1, { policy: 'A' });
  const d2 = await MsrpPeer.connect({ host: '127.0.0.1', port: w.port, remotePath: w.devices[0]!.remotePath! });
  const a = w.relay.answer({ 'call-id': w.callId, leg: 'dev2', sdp: sdpFor(d2.localUri) });
  t.equal(a.result, 'error');
  t.equal(a.result === 'error' && a['error-code'], 'POLICY_REJECTED');
  t.same((await d2.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'x' }))).statuses, [481], 'rejected device cannot send');
  const r = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'hi' }));
  await w.devices[0]!.waitForMessage(m => m.messageId === r.messageId);
  const m = await w.devices[0]!.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'yo' }));
  await w.origin.waitForMessage(x => x.messageId === m.messageId);
  const ev = await w.waitEvent(e => e.event === 'first-active');
  t.match(ev, { leg: 'dev1', kind: 'chat' });
  await d2.close();
  await w.close();
});

t.test('policy B: first active device reported; others relayed until dropped', async t => {
  const w = await world(3, { policy: 'B' });
  const [d1, d2, d3] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  // An IMDN is not activity (CR 8.3.2.1.4 4.A.i): no event yet.
  await d1.sendMessage(buildCpim({ from: BOB, to: ALICE, body: '<imdn/>', contentType: 'message/imdn+xml' }));
  t.equal(w.events.filter(e => e.event === 'first-active').length, 0, 'IMDN does not pick a device');
  await d2.sendMessage(buildCpim({ from: BOB, to: ALICE, body: '<isComposing/>', contentType: 'application/im-iscomposing+xml' }));
  const ev = await w.waitEvent(e => e.event === 'first-active');
  t.match(ev, { event: 'first-active', leg: 'dev2', kind: 'isComposing', 'call-id': w.callId });
  await d3.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'late' }));
  t.equal(w.events.filter(e => e.event === 'first-active').length, 1, 'reported once');
  // Still relaying to every leg until the SIP side drops them.
  const m1 = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'to all' }));
  for (const d of w.devices) await d.waitForMessage(m => m.messageId === m1.messageId);
  t.equal(w.relay.drop({ 'call-id': w.callId, leg: 'dev1' }).result, 'ok');
  t.equal(w.relay.drop({ 'call-id': w.callId, leg: 'dev3' }).result, 'ok');
  await w.waitEvent(e => e.event === 'leg-closed' && e.leg === 'dev3');
  const m2 = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'only dev2' }));
  await d2.waitForMessage(m => m.messageId === m2.messageId);
  t.notOk(d1.messages.some(m => m.messageId === m2.messageId));
  t.notOk(d3.messages.some(m => m.messageId === m2.messageId));
  t.equal(w.relay.drop({ 'call-id': w.callId, leg: 'dev1' }).result, 'error', 'second drop: unknown leg');
  const q = w.relay.query({ 'call-id': w.callId });
  t.equal(q.result === 'ok' && q['first-active'], 'dev2');
  await w.close();
});

t.test('direct delivery: Message-Direction injected across chunks, byte by byte', async t => {
  const w = await world(3, { policy: 'C', 'direct-delivery': true, 'served-user': `<${BOB}>` });
  const [d1, d2, d3] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  const payload = Buffer.from('Grüße 😀 '.repeat(300), 'utf8');
  const body = buildCpim({ from: BOB, to: ALICE, body: payload, dispositionNotification: ['positive-delivery'] });
  const blockEnd = body.indexOf('\r\n\r\n') + 2;
  const marked = Buffer.concat([body.subarray(0, blockEnd), Buffer.from('Message-Direction: sent\r\n'), body.subarray(blockEnd)]);
  // 37-byte chunks: the CPIM header block spans several chunks.
  const r = await d1.sendMessage(body, { chunkSize: 37, successReport: true });
  const toOrigin = await w.origin.waitForMessage(m => m.messageId === r.messageId, 10000);
  t.ok(toOrigin.body.equals(body), 'originating side gets it unmarked');
  for (const d of [d2, d3]) {
    const m = await d.waitForMessage(x => x.messageId === r.messageId, 10000);
    t.ok(m.body.equals(marked), 'other device gets Message-Direction: sent, byte for byte');
    const ranges = rangesOf(d, r.messageId);
    t.equal(ranges.length, Math.ceil(body.length / 37), 'one chunk out per chunk in');
    t.ok(ranges.every(x => x.endsWith(`/${marked.length}`)), 'every total shifted');
    let next = 1;
    for (const x of ranges) {
      const [a, b] = x.split('/')[0]!.split('-').map(Number) as [number, number];
      if (a !== next) t.fail(`gap at ${x}`);
      next = b + 1;
    }
    t.equal(next, marked.length + 1, 'ranges tile the marked message');
  }
  t.notOk(d1.messages.some(m => m.messageId === r.messageId), 'no echo to the sender');
  // The success report of the recipient (the originating side) comes back; those of the
  // copies marked sent are the relay's to absorb (reports.test.ts counts them).
  const rep = await d1.waitForReport(r.messageId);
  t.equal(rep.byteRange, `1-${body.length}/${body.length}`, 'REPORT byte range in the sender\'s bytes');

  // From the originating side: marked only when CPIM From is the served user.
  const mine = buildCpim({ from: BOB, to: ALICE, body: 'mirrored' });
  const peer = buildCpim({ from: ALICE, to: BOB, body: 'from alice' });
  const odd = buildCpim({ from: BOB, to: ALICE, body: 'odd', extraHeaders: [['Message-Direction', 'sideways']] });
  const s1 = await w.origin.sendMessage(mine, { chunkSize: 20 });
  const s2 = await w.origin.sendMessage(peer, { chunkSize: 20 });
  const s3 = await w.origin.sendMessage(odd, { chunkSize: 20 });
  for (const d of w.devices) {
    const a = await d.waitForMessage(m => m.messageId === s1.messageId);
    t.match(a.body.toString(), /\r\nMessage-Direction: sent\r\n\r\nContent-Type/, 'served user mirror marked');
    const b = await d.waitForMessage(m => m.messageId === s2.messageId);
    t.ok(b.body.equals(peer), 'peer message unmarked');
    const c = await d.waitForMessage(m => m.messageId === s3.messageId);
    t.ok(c.body.equals(odd), 'unknown Message-Direction value kept, not doubled, not rejected');
  }
  // isComposing and IMDN are never copied to the other devices.
  const ic = await d1.sendMessage(buildCpim({ from: BOB, to: ALICE, body: '<x/>', contentType: 'application/im-iscomposing+xml' }));
  await w.origin.waitForMessage(m => m.messageId === ic.messageId);
  t.notOk(d2.messages.some(m => m.messageId === ic.messageId), 'isComposing not copied');
  await w.close();
});

t.test('slow reader: bounded relay memory, message still delivered', async t => {
  const hwm = 64 * 1024;
  const chunk = 64 * 1024;
  const w = await world(2, {}, { connection: { highWaterMark: hwm, maxQueuedBytes: 8 * 1024 * 1024 } });
  const [fastDev, slowDev] = w.devices as [MsrpPeer, MsrpPeer];
  slowDev.pauseReading(); // a device that stops reading altogether for a while
  const body = randomBytes(24 * 1024 * 1024);
  const sending = w.origin.sendMessage(body, { chunkSize: chunk, contentType: 'application/octet-stream', timeoutMs: 30000 });
  const conns = (): Array<{ queuedBytes: number; peakQueuedBytes: number; socket: { isPaused(): boolean } }> => [...w.relay.endpoint.connections];
  // Kernel buffers fill, then the relay's queue toward the slow device passes the HWM...
  await until(() => conns().some(c => c.queuedBytes > hwm), 20000);
  // ...and the relay stops reading from the originator (backpressure, not buffering).
  await until(() => conns().some(c => c.socket.isPaused()), 5000);
  const answered = w.origin.responses.length;
  t.ok(answered < body.length / chunk, `sender held back after ${answered} chunks`);
  slowDev.resumeReading();
  const sent = await sending;
  t.ok(sent.statuses.every(s => s === 200));
  const fast = await fastDev.waitForMessage(m => m.messageId === sent.messageId, 30000);
  const slow = await slowDev.waitForMessage(m => m.messageId === sent.messageId, 30000);
  t.ok(fast.body.equals(body) && slow.body.equals(body), 'both devices got 24 MB intact');
  const peak = Math.max(...conns().map(c => c.peakQueuedBytes));
  t.ok(peak <= hwm + 2 * (chunk + 1024), `relay output queue peaked at ${peak} bytes (HWM ${hwm} + at most one chunk per route)`);
  await w.close();
});

t.test('device disconnecting mid-message: the others still get it', async t => {
  const w = await world(3);
  const [d1, d2, d3] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  const body = randomBytes(1024 * 1024);
  let closed = false;
  const sending = w.origin.sendMessage(body, { chunkSize: 8 * 1024, contentType: 'application/octet-stream', timeoutMs: 20000 });
  // Close dev3 once it has seen a few chunks.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('dev3 saw no chunks')), 10000);
    const poll = (): void => {
      if (d3.requests.length >= 5) {
        clearTimeout(timer);
        closed = true;
        void d3.close().then(resolve);
      } else setImmediate(poll);
    };
    poll();
  });
  const sent = await sending;
  t.ok(closed);
  t.ok(sent.statuses.every(s => s === 200), 'sender unaffected');
  for (const d of [d1, d2]) t.ok((await d.waitForMessage(m => m.messageId === sent.messageId, 20000)).body.equals(body));
  const ev = await w.waitEvent(e => e.event === 'leg-closed' && e.leg === 'dev3');
  t.equal(ev['call-id'], w.callId);
  const q = w.relay.query({ 'call-id': w.callId });
  t.same(q.result === 'ok' && q.legs.map(l => [l.leg, l.state]), [['originator', 'connected'], ['dev1', 'connected'], ['dev2', 'connected'], ['dev3', 'closed']]);
  const again = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'still here' }));
  await d1.waitForMessage(m => m.messageId === again.messageId);
  await w.close();
});
