// REPORTs over real connections (RFC 4975 §7.1.2; media/relay/reports.ts, report-merge.ts):
// the sender hears its recipient only, once per message, however many devices got it.
//
// Ordering without sleeps: a peer's frames are relayed in order on one connection, so
// once a marker message sent by a device after its REPORT has reached a peer, any REPORT
// the relay forwarded to that peer before it is there too.
import t from 'tap';
import { buildCpim, type MsrpPeer } from '../../../media/client/peer.js';
import { buildRequest } from '../../../media/msrp/index.js';
import { sdpFor, world } from './helpers.js';

const ALICE = 'sip:alice@example.net';
const BOB = 'sip:bob@example.net'; // the served user

/** A REPORT from `dev` for `messageId`, as a foreign client would send it. */
function report(dev: MsrpPeer, messageId: string, status: string, byteRange?: string): void {
  dev.send(buildRequest({
    method: 'REPORT', toPath: dev.remotePath!, fromPath: dev.localUri,
    headers: [
      { name: 'Message-ID', value: messageId },
      ...(byteRange ? [{ name: 'Byte-Range', value: byteRange }] : []),
      { name: 'Status', value: status },
    ],
  }));
}

/** Each device sends a marker message to the originator; resolves when all arrived there. */
async function markers(origin: MsrpPeer, devices: MsrpPeer[]): Promise<void> {
  const sent = await Promise.all(devices.map(d => d.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'marker' }))));
  for (const m of sent) await origin.waitForMessage(x => x.messageId === m.messageId);
}

function reportsFor(peer: MsrpPeer, messageId: string): MsrpPeer['reports'] {
  return peer.reports.filter(r => r.messageId === messageId);
}

t.test('direct delivery: REPORTs for the copies marked sent are absorbed; the sender hears its recipient only', async t => {
  const w = await world(3, { policy: 'C', 'direct-delivery': true, 'served-user': `<${BOB}>` });
  t.teardown(() => w.close());
  const [d1, d2, d3] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  const body = buildCpim({ from: BOB, to: ALICE, body: 'from my phone' });
  // Success-Report: yes is relayed on the copies too; d2 and d3 answer with success REPORTs.
  const r = await d1.sendMessage(body, { successReport: true });
  for (const d of [d2, d3]) await d.waitForMessage(m => m.messageId === r.messageId);
  // A foreign device also sends a failure REPORT for its copy.
  report(d3, r.messageId, '000 415 Unsupported Media Type', `1-${body.length + 25}/${body.length + 25}`);
  await w.origin.waitForMessage(m => m.messageId === r.messageId);
  const back = await d1.waitForReport(r.messageId);
  t.equal(back.status?.code, 200, 'the originator, the real recipient, reports success');
  // Markers from d2 and d3 are copied to d1 (direct delivery), after their REPORTs.
  const m2 = await d2.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'marker 2' }));
  const m3 = await d3.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'marker 3' }));
  await d1.waitForMessage(m => m.messageId === m2.messageId);
  await d1.waitForMessage(m => m.messageId === m3.messageId);
  const got = reportsFor(d1, r.messageId);
  t.equal(got.length, 1, 'one REPORT: the copies\' success and failure reports were absorbed');
  t.equal(got[0]?.status?.code, 200);
  t.equal(got[0]?.byteRange, `1-${body.length}/${body.length}`, 'the originator\'s range, in the sender\'s bytes');
});

t.test('direct delivery, mirrored own message: the devices\' REPORTs for the marked copies are absorbed', async t => {
  const w = await world(2, { policy: 'C', 'direct-delivery': true, 'served-user': `<${BOB}>` });
  t.teardown(() => w.close());
  const [d1, d2] = w.devices as [MsrpPeer, MsrpPeer];
  const mine = await w.origin.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'sent from elsewhere' }), { successReport: true });
  for (const d of [d1, d2]) await d.waitForMessage(m => m.messageId === mine.messageId);
  const peer = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'from alice' }), { successReport: true });
  await w.origin.waitForReport(peer.messageId);
  await markers(w.origin, [d1, d2]);
  t.equal(reportsFor(w.origin, mine.messageId).length, 0, 'no REPORT for the mirrored copy');
  t.equal(reportsFor(w.origin, peer.messageId).length, 1, 'one REPORT for the message to the served user');
});

t.test('fan-out: one success REPORT per message, whatever the number of devices', async t => {
  const w = await world(3, { policy: 'C' });
  t.teardown(() => w.close());
  const single = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'hi' }), { successReport: true });
  const body = buildCpim({ from: ALICE, to: BOB, body: Buffer.alloc(3000, 0x61) });
  const chunked = await w.origin.sendMessage(body, { successReport: true, chunkSize: 1000 });
  for (const d of w.devices) await d.waitForMessage(m => m.messageId === chunked.messageId);
  await markers(w.origin, w.devices);
  t.equal(reportsFor(w.origin, single.messageId).length, 1, 'one success REPORT for three devices');
  t.equal(reportsFor(w.origin, chunked.messageId).length, 1, 'one for a chunked message too');
  t.equal(reportsFor(w.origin, chunked.messageId)[0]?.byteRange, `1-${body.length}/${body.length}`);
});

t.test('fan-out, chunks: the first device to confirm speaks for the user; each range once, the others absorbed', async t => {
  const w = await world(2, { policy: 'C' });
  t.teardown(() => w.close());
  const [d1, d2] = w.devices as [MsrpPeer, MsrpPeer];
  const id = 'chunked-1';
  const body = buildCpim({ from: ALICE, to: BOB, body: Buffer.alloc(300, 0x62) });
  const n = body.length;
  const chunk = (start: number, end: number): Promise<unknown> => w.origin.request(buildRequest({
    method: 'SEND', toPath: w.origin.remotePath!, fromPath: w.origin.localUri, contentType: 'message/cpim',
    headers: [{ name: 'Message-ID', value: id }, { name: 'Byte-Range', value: `${start}-${end}/${n}` }, { name: 'Success-Report', value: 'yes' }],
    body: body.subarray(start - 1, end), flag: end < n ? '+' : '$',
  }));
  await chunk(1, 200);
  await Promise.all([d1, d2].map(d => d.until(() => d.requests.some(h => h.kind === 'request' && h.method === 'SEND' && h.headers.some(x => x.value === id)))));
  // Both devices confirm the first chunk; d1 first.
  report(d1, id, '000 200 OK', `1-200/${n}`);
  await markers(w.origin, [d1]);
  report(d2, id, '000 200 OK', `1-200/${n}`);
  report(d1, id, '000 200 OK', `1-200/${n}`);
  await markers(w.origin, [d1, d2]);
  t.same(reportsFor(w.origin, id).map(r => r.byteRange), [`1-200/${n}`], 'd1 speaks for the user; the repeat and d2 absorbed');
  // The last chunk: both devices report the whole message (the test client does), in any order.
  await chunk(201, n);
  for (const d of [d1, d2]) await d.waitForMessage(m => m.messageId === id);
  await markers(w.origin, [d1, d2]);
  t.same(reportsFor(w.origin, id).map(r => r.byteRange), [`1-200/${n}`, `1-${n}/${n}`], 'then d1\'s whole-message report, once');
});

t.test('fan-out failure: one failure REPORT once every device failed or went, with the best status', async t => {
  const w = await world(3, { policy: 'C' });
  t.teardown(() => w.close());
  const [d1, d2, d3] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  const m = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'x' }));
  for (const d of w.devices) await d.waitForMessage(x => x.messageId === m.messageId);
  report(d1, m.messageId, '000 481 No Such Session', '1-10/10');
  report(d2, m.messageId, '000 415 Unsupported Media Type', '1-10/10');
  await markers(w.origin, [d1, d2]);
  t.equal(reportsFor(w.origin, m.messageId).length, 0, 'held: dev3 has not failed');
  report(d3, m.messageId, '000 481 No Such Session', '1-10/10');
  const f = await w.origin.waitForReport(m.messageId);
  t.equal(f.status?.code, 415, 'the best status of the three');
  await markers(w.origin, [d1, d2, d3]);
  t.equal(reportsFor(w.origin, m.messageId).length, 1, 'exactly one failure REPORT');

  // A success from any device: the message reached the served user; failures are absorbed.
  const m2 = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'y' }), { successReport: true });
  for (const d of w.devices) await d.waitForMessage(x => x.messageId === m2.messageId);
  report(d1, m2.messageId, '000 413 Message Too Large', '1-10/10');
  await markers(w.origin, w.devices);
  const got = reportsFor(w.origin, m2.messageId);
  t.equal(got.length, 1);
  t.equal(got[0]?.status?.code, 200, 'the success went through, the failure did not');
});

t.test('fan-out failure: a device dropped before the message reached it counts as gone', async t => {
  const w = await world(2, { policy: 'C' });
  t.teardown(() => w.close());
  const [d1] = w.devices as [MsrpPeer, MsrpPeer];
  // A third device answered but never connected: its copy waits in the relay's backlog.
  const a = w.relay.answer({ 'call-id': w.callId, leg: 'dev3', sdp: sdpFor('msrp://127.0.0.1:9/never;tcp') });
  t.equal(a.result, 'ok');
  const m = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'z' }));
  for (const d of w.devices) await d.waitForMessage(x => x.messageId === m.messageId);
  report(d1, m.messageId, '000 413 Message Too Large', '1-10/10');
  report(w.devices[1]!, m.messageId, '000 481 No Such Session', '1-10/10');
  await markers(w.origin, w.devices);
  t.equal(reportsFor(w.origin, m.messageId).length, 0, 'dev3 may still get it');
  t.equal(w.relay.drop({ 'call-id': w.callId, leg: 'dev3' }).result, 'ok');
  const f = await w.origin.waitForReport(m.messageId);
  t.equal(f.status?.code, 413, 'dev3 dropped with the message still queued: the failure goes through');
});

t.test('Failure-Report: no and Success-Report: no are honoured (RFC 4975 §7.1.1)', async t => {
  const w = await world(1, { policy: 'C' });
  t.teardown(() => w.close());
  const [d1] = w.devices as [MsrpPeer];
  const noFailure = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'a' }), { failureReport: 'no' });
  const noSuccess = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'b' }));
  const partial = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'c' }), { failureReport: 'partial' });
  for (const id of [noFailure.messageId, noSuccess.messageId, partial.messageId]) await d1.waitForMessage(x => x.messageId === id);
  report(d1, noFailure.messageId, '000 415 Unsupported Media Type', '1-10/10');
  report(d1, noSuccess.messageId, '000 200 OK', '1-10/10');
  report(d1, partial.messageId, '000 415 Unsupported Media Type', '1-10/10');
  const f = await w.origin.waitForReport(partial.messageId);
  t.equal(f.status?.code, 415, 'Failure-Report: partial still gets failure REPORTs');
  await markers(w.origin, [d1]);
  t.equal(reportsFor(w.origin, noFailure.messageId).length, 0, 'Failure-Report: no: failure absorbed');
  t.equal(reportsFor(w.origin, noSuccess.messageId).length, 0, 'Success-Report absent: a success REPORT is absorbed');
});
