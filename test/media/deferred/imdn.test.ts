// cpimFacts and failedDeliveryNotice (media/deferred/imdn.ts): case tables.
import t from 'tap';
import { cpimFacts, failedDeliveryNotice } from '../../../media/deferred/imdn.js';
import type { StoredItem } from '../../../media/deferred/store.js';

const cpim = (headers: string[], inner = 'text/plain', body = 'hi'): Buffer =>
  Buffer.from(`${headers.join('\r\n')}\r\n\r\nContent-Type: ${inner}\r\n\r\n${body}`, 'utf8');
const STD = ['From: "Alice" <sip:alice@Example.NET>', 'To: <sip:bob@example.net>', 'DateTime: 2026-12-06T00:00:00Z', 'NS: imdn <urn:ietf:params:imdn>', 'imdn.Message-ID: m-1'];

const factCases: ReadonlyArray<readonly [string, Buffer, string, object]> = [
  ['chat, no notification asked', cpim(STD), 'message/cpim',
    { kind: 'chat', imdnMessageId: 'm-1', negativeDelivery: false, sender: 'sip:alice@example.net', recipient: 'sip:bob@example.net', dateTime: '2026-12-06T00:00:00Z' }],
  ['negative-delivery among others', cpim([...STD, 'imdn.Disposition-Notification: positive-delivery, Negative-Delivery, display']), 'message/cpim',
    { kind: 'chat', negativeDelivery: true }],
  ['positive only', cpim([...STD, 'imdn.Disposition-Notification: positive-delivery']), 'message/cpim', { negativeDelivery: false }],
  ['another NS prefix (RFC 3862 §3.3.5)', cpim(['From: <sip:a@x>', 'NS: i <urn:ietf:params:imdn>', 'i.Message-ID: z-9', 'i.Disposition-Notification: negative-delivery']),
    'message/cpim', { imdnMessageId: 'z-9', negativeDelivery: true }],
  ['an IMDN', cpim(STD, 'message/imdn+xml', '<imdn/>'), 'message/cpim', { kind: 'imdn' }],
  ['isComposing in CPIM', cpim(STD, 'application/im-iscomposing+xml', '<isComposing/>'), 'message/cpim', { kind: 'isComposing' }],
  ['bare isComposing', Buffer.from('<isComposing/>'), 'application/im-iscomposing+xml', { kind: 'isComposing', negativeDelivery: false }],
  ['not CPIM, head-like bytes ignored', cpim(STD), 'text/plain', { kind: 'chat', negativeDelivery: false, imdnMessageId: undefined }],
  ['CPIM without its blank lines', Buffer.from('From: <sip:a@x>\r\n'), 'message/cpim', { kind: 'chat', negativeDelivery: false, sender: undefined }],
];

t.test('cpimFacts', async t => {
  for (const [name, payload, type, want] of factCases) t.match(cpimFacts(payload, type), want, name);
});

const stored = (payload: Buffer, over: Partial<StoredItem> = {}): StoredItem => ({
  seq: 1, storedAt: Date.UTC(2026, 11, 6), expiresAt: 0, payload, contentType: 'message/cpim', negativeDelivery: true, imdnMessageId: 'm-1',
  sender: 'sip:alice@example.net', ...over,
});

t.test('failedDeliveryNotice', async t => {
  const now = Date.UTC(2026, 11, 13);
  const none: ReadonlyArray<readonly [string, StoredItem]> = [
    ['not asked', stored(cpim(STD), { negativeDelivery: false })],
    ['no imdn.Message-ID', stored(cpim(STD), { imdnMessageId: undefined })],
    ['no sender anywhere', stored(cpim(['To: <sip:bob@example.net>']), { sender: undefined })],
  ];
  for (const [name, message] of none) t.equal(failedDeliveryNotice({ message, servedUser: 'sip:bob@example.net', now, expiresAt: now + 1 }), undefined, name);

  const n = failedDeliveryNotice({ message: stored(cpim(STD)), servedUser: 'sip:bob@example.net', now, expiresAt: now + 5, notificationId: 'n-1' });
  if (!n) throw new Error('no notice');
  const text = n.payload.toString('utf8');
  t.match(n, { contentType: 'message/cpim', imdnMessageId: 'n-1', negativeDelivery: false, sender: 'sip:bob@example.net', expiresAt: now + 5 });
  t.match(text, /^From: <sip:bob@example\.net>\r\nTo: <sip:alice@example\.net>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn\.Message-ID: n-1\r\nDateTime: 2026-12-13T00:00:00\.000Z\r\n\r\n/);
  t.match(text, /<message-id>m-1<\/message-id>/);
  t.match(text, /<datetime>2026-12-06T00:00:00Z<\/datetime>/, "the original's DateTime");
  t.match(text, /<failed\/>/);
  t.match(cpimFacts(n.payload, 'message/cpim'), { kind: 'imdn', imdnMessageId: 'n-1' }, 'the relay reads its own notice as an IMDN');
  const len = /Content-Length: (\d+)\r\n\r\n/.exec(text);
  t.equal(Number(len?.[1]), Buffer.byteLength(text.slice(text.indexOf('<?xml'))), 'Content-Length');

  const hostile = failedDeliveryNotice({
    message: stored(cpim(STD), { imdnMessageId: 'a<b>&"c' }), servedUser: 'sip:bob@example.net\r\nX: y', now, expiresAt: now,
  });
  const h = hostile!.payload.toString('utf8');
  t.match(h, /<message-id>a&lt;b&gt;&amp;&quot;c<\/message-id>/, 'XML escaped');
  t.notMatch(h, /\r\nX: y/, 'no header injection');
  t.match(failedDeliveryNotice({ message: stored(cpim(STD)), servedUser: undefined, now, expiresAt: now })!.payload.toString(), /^From: <sip:bob@example\.net>/,
    'no served user: the CPIM To');
});
