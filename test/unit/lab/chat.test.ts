/** lab/chat.ts: the chat phones' SDP, CPIM payloads, call states and scripts, as case tables. */
import t from 'tap';
import {
  answerSetup,
  chatMessage,
  chatSdp,
  deliveryNotification,
  eventLine,
  inboundStep,
  isComposing,
  offererRole,
  outboundStep,
  parseScript,
  readChatEvent,
  readChatSdp,
  type InboundEvent,
  type InboundState,
  type OutboundEvent,
  type OutboundState,
  type Setup,
} from '../../../lab/chat.js';

t.test('answerSetup: the answerer role for an offer (RFC 4145 §4.1, RFC 6135 §4)', async (t) => {
  const cases: [string | undefined, string][] = [
    ['active', 'passive'],
    ['passive', 'active'],
    ['actpass', 'passive'],
    [undefined, 'passive'],
  ];
  for (const [offer, role] of cases) t.equal(answerSetup(offer), role, `offer ${String(offer)}`);
  t.throws(() => answerSetup('holdconn'), /not answerable/);
});

t.test('offererRole: the offerer role once the answer is in', async (t) => {
  const cases: [Setup, string | undefined, string][] = [
    ['actpass', 'active', 'passive'],
    ['actpass', 'passive', 'active'],
    ['actpass', undefined, 'active'],
    ['active', 'passive', 'active'],
    ['passive', 'active', 'passive'],
  ];
  for (const [offer, answer, role] of cases) t.equal(offererRole(offer, answer), role, `${offer} answered ${String(answer)}`);
  t.throws(() => offererRole('active', 'active'), /same role/);
  t.throws(() => offererRole('actpass', 'actpass'), /not active or passive/);
});

t.test('chatSdp and readChatSdp', async (t) => {
  const sdp = chatSdp({ path: 'msrp://127.0.0.1:40123/abc;tcp', setup: 'actpass' });
  t.match(sdp, 'm=message 40123 TCP/MSRP *\r\n');
  t.match(sdp, 'c=IN IP4 127.0.0.1\r\n');
  t.same(readChatSdp(sdp), { path: ['msrp://127.0.0.1:40123/abc;tcp'], setup: 'actpass' });
  const cases: [string, { path: string[]; setup: string | undefined } | RegExp][] = [
    ['v=0\r\nm=message 9 TCP/MSRP *\r\na=path:msrp://r:1/x;tcp msrp://d:2/y;tcp\r\na=setup:passive\r\n', { path: ['msrp://r:1/x;tcp', 'msrp://d:2/y;tcp'], setup: 'passive' }],
    ['v=0\r\nm=message 9 TCP/MSRP *\r\na=path:msrp://d:2/y;tcp\r\n', { path: ['msrp://d:2/y;tcp'], setup: undefined }],
    ['v=0\r\nm=message 0 TCP/MSRP *\r\na=path:msrp://d:2/y;tcp\r\n', /no active m=message/],
    ['v=0\r\nm=audio 9 RTP/AVP 0\r\n', /no active m=message/],
    ['v=0\r\nm=message 9 TCP/MSRP *\r\n', /without a=path/],
  ];
  for (const [text, want] of cases) {
    if (want instanceof RegExp) t.throws(() => readChatSdp(text), want);
    else t.same(readChatSdp(text), want);
  }
});

t.test('readChatEvent and eventLine: what arrives and what is printed', async (t) => {
  const chat = chatMessage({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', text: 'hello', imdnId: 'm1', dateTime: '2026-01-01T00:00:00Z' });
  t.equal(chat.imdnId, 'm1');
  const withDirection = Buffer.from(chat.body.toString('utf8').replace('\r\n\r\n', '\r\nMessage-Direction: sent\r\n\r\n'));
  const composing = isComposing({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', state: 'active' });
  const imdn = deliveryNotification({ from: 'sip:bob@example.net', to: 'sip:alice@example.net', messageId: 'm1', messageDateTime: '2026-01-01T00:00:00Z' });
  const cases: [string, Buffer, string][] = [
    ['chat', chat.body, '<< sip:alice@example.net: hello'],
    ['chat with Message-Direction', withDirection, '<< sip:alice@example.net: hello [Message-Direction: sent]'],
    ['isComposing', composing, '<< sip:alice@example.net is composing'],
    ['delivery notification', imdn, '<< imdn delivery:delivered m1 from sip:bob@example.net'],
    ['not CPIM', Buffer.from('plain'), '<< message/cpim (5 bytes)'],
  ];
  for (const [name, body, line] of cases) t.equal(eventLine(readChatEvent('message/cpim', body)), line, name);
  const e = readChatEvent('message/cpim', chat.body);
  t.same(e, { kind: 'chat', from: 'sip:alice@example.net', text: 'hello', direction: undefined, imdnId: 'm1', dateTime: '2026-01-01T00:00:00Z', notify: ['positive-delivery'] });
  t.match(imdn.toString('utf8'), 'Content-Disposition: notification\r\n');
});

t.test('inboundStep: the phone side of a call', async (t) => {
  const legal: [InboundState, InboundEvent, InboundState][] = [
    ['offered', 'ring', 'ringing'],
    ['offered', 'reject', 'ended'],
    ['ringing', 'answer', 'answered'],
    ['ringing', 'cancel', 'cancelled'],
    ['ringing', 'hangup', 'ended'],
    ['answered', 'ack', 'confirmed'],
    ['answered', 'bye', 'ended'],
    ['confirmed', 'ack', 'confirmed'],
    ['confirmed', 'bye', 'ended'],
    ['confirmed', 'hangup', 'ended'],
  ];
  for (const [s, e, next] of legal) t.equal(inboundStep(s, e), next, `${s} --${e}-->`);
  const illegal: [InboundState, InboundEvent][] = [['offered', 'answer'], ['cancelled', 'answer'], ['ended', 'bye'], ['answered', 'cancel']];
  for (const [s, e] of illegal) t.throws(() => inboundStep(s, e), new RegExp(`no '${e}' in state ${s}`));
});

t.test('outboundStep: the caller side of a call', async (t) => {
  const legal: [OutboundState, OutboundEvent, OutboundState][] = [
    ['calling', 'provisional', 'proceeding'],
    ['calling', 'answered', 'confirmed'],
    ['calling', 'failed', 'failed'],
    ['proceeding', 'provisional', 'proceeding'],
    ['proceeding', 'answered', 'confirmed'],
    ['proceeding', 'failed', 'failed'],
    ['confirmed', 'bye', 'ended'],
  ];
  for (const [s, e, next] of legal) t.equal(outboundStep(s, e), next, `${s} --${e}-->`);
  const illegal: [OutboundState, OutboundEvent][] = [['failed', 'answered'], ['ended', 'bye'], ['confirmed', 'provisional']];
  for (const [s, e] of illegal) t.throws(() => outboundStep(s, e), /outbound call: no/);
});

t.test('parseScript', async (t) => {
  t.same(parseScript('# hi\n\nsend hello there\nwait message\nwait message hi alice\nwait imdn\nbye\n'), [
    { kind: 'send', text: 'hello there' },
    { kind: 'wait-message', text: undefined },
    { kind: 'wait-message', text: 'hi alice' },
    { kind: 'wait-imdn' },
    { kind: 'bye' },
  ]);
  t.throws(() => parseScript('send hi\ndance\n'), /line 2: not understood: dance/);
});
