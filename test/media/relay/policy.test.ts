// CR 8.3.2.1.1 B over real connections: only a CPIM user message or an isComposing (bare or
// in CPIM) makes a device the first active one (media/relay/multi-device.ts). Deleting a
// session closes every leg once.
import t from 'tap';
import { buildCpim, type MsrpPeer } from '../../../media/client/peer.js';
import { world } from './helpers.js';

const ALICE = 'sip:alice@example.net';
const BOB = 'sip:bob@example.net';

t.test('policy B: non-CPIM payloads and IMDNs are not activity', async t => {
  const w = await world(3, { policy: 'B' });
  t.teardown(() => w.close());
  const [d1, d2, d3] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  const plain = await d1.sendMessage('hello', { contentType: 'text/plain' });
  await w.origin.waitForMessage(m => m.messageId === plain.messageId);
  const octets = await d2.sendMessage('\r\n', { contentType: 'application/octet-stream' });
  await w.origin.waitForMessage(m => m.messageId === octets.messageId);
  const imdn = await d1.sendMessage(buildCpim({ from: BOB, to: ALICE, body: '<imdn/>', contentType: 'message/imdn+xml' }));
  await w.origin.waitForMessage(m => m.messageId === imdn.messageId);
  t.equal(w.events.filter(e => e.event === 'first-active').length, 0, 'relayed, but no device picked');
  const chat = await d3.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'me' }));
  await w.origin.waitForMessage(m => m.messageId === chat.messageId);
  t.match(await w.waitEvent(e => e.event === 'first-active'), { leg: 'dev3', kind: 'chat' });
  const q = w.relay.query({ 'call-id': w.callId });
  t.equal(q.result === 'ok' && q['first-active'], 'dev3');
});

t.test('policy B: a CPIM envelope with no content (keepalive) is not activity; a bare isComposing is', async t => {
  const w = await world(3, { policy: 'B' });
  t.teardown(() => w.close());
  const [d1, d2] = w.devices as [MsrpPeer, MsrpPeer, MsrpPeer];
  // A foreign client's keepalive: labelled message/cpim, but no CPIM headers and no
  // encapsulated MIME object (RFC 3862 §3.3), so no user message.
  const ka1 = await d1.sendMessage('\r\n\r\n', { contentType: 'message/cpim' });
  await w.origin.waitForMessage(m => m.messageId === ka1.messageId);
  const ka2 = await d1.sendMessage(`From: <${BOB}>\r\nTo: <${ALICE}>\r\n\r\n\r\n`, { contentType: 'message/cpim' });
  await w.origin.waitForMessage(m => m.messageId === ka2.messageId);
  t.equal(w.events.filter(e => e.event === 'first-active').length, 0, 'keepalives relayed, no device picked');
  const ic = await d2.sendMessage('<isComposing/>', { contentType: 'application/im-iscomposing+xml' });
  await w.origin.waitForMessage(m => m.messageId === ic.messageId);
  t.match(await w.waitEvent(e => e.event === 'first-active'), { leg: 'dev2', kind: 'isComposing' });
  t.equal(w.events.filter(e => e.event === 'first-active').length, 1, 'reported once');
});

t.test('delete closes every leg once (session offered -> active -> deleted)', async t => {
  const w = await world(2);
  t.teardown(() => w.close());
  t.equal(w.relay.delete({ 'call-id': w.callId }).result, 'ok');
  t.same(w.events.filter(e => e.event === 'leg-closed').map(e => e.leg).sort(), ['dev1', 'dev2', 'originator']);
  t.equal(w.relay.delete({ 'call-id': w.callId }).result, 'error', 'second delete: unknown session');
  t.equal(w.relay.sessionCount, 0);
});
