import t from 'tap';
import { parseSipMessage, splitCommaList, MAX_SIP_MESSAGE_BYTES } from '../../../plugin/sip/message.js';

const INVITE = [
  'INVITE sip:bob@example.net SIP/2.0',
  'v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1',
  'Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-2',
  'f: <sip:alice@example.net>;tag=a1',
  't: <sip:bob@example.net>',
  'i: c1',
  'CSeq: 1 INVITE',
  'm: "Alice, A." <sip:alice@127.0.0.1>;+g.oma.sip-im',
  'a: *;+g.3gpp.icsi-ref="urn%3Aa,urn%3Ab"',
  'j: *;audio',
  'd: fork',
  'b: <sip:carol@example.net>',
  'k: timer',
  'x: 1800',
  'Subject: a, b',
  'X-Folded: one',
  '  two',
  'c: application/sdp',
  'l: 9',
  '',
  'v=0\r\nx=é',
].join('\r\n');

t.test('request: compact forms, case-insensitive names, folding, body', async (t) => {
  const m = parseSipMessage(INVITE);
  if (m.kind !== 'request') throw new Error('expected request');
  t.equal(m.method, 'INVITE');
  t.equal(m.ruri, 'sip:bob@example.net');
  t.same(m.getAll('via'), ['SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1', 'SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-2']);
  t.equal(m.get('V'), 'SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1', 'compact name looks up the full one');
  const pairs: [string, string][] = [
    ['From', '<sip:alice@example.net>;tag=a1'],
    ['To', '<sip:bob@example.net>'],
    ['Call-ID', 'c1'],
    ['Accept-Contact', '*;+g.3gpp.icsi-ref="urn%3Aa,urn%3Ab"'],
    ['Reject-Contact', '*;audio'],
    ['Request-Disposition', 'fork'],
    ['Referred-By', '<sip:carol@example.net>'],
    ['Supported', 'timer'],
    ['Session-Expires', '1800'],
    ['content-type', 'application/sdp'],
    ['CONTENT-LENGTH', '9'],
    ['x-folded', 'one two'],
  ];
  for (const [name, v] of pairs) t.equal(m.get(name), v, name);
  t.equal(m.headers.find((h) => h.value === 'c1')?.name, 'Call-ID', 'compact names are printed in full');
  t.same(m.getValues('Contact'), ['"Alice, A." <sip:alice@127.0.0.1>;+g.oma.sip-im'], 'comma in quotes does not split');
  t.same(m.getValues('Accept-Contact'), ['*;+g.3gpp.icsi-ref="urn%3Aa,urn%3Ab"'], 'comma in a quoted param does not split');
  t.same(m.getValues('Subject'), ['a, b'], 'Subject is never split');
  t.equal(m.get('Absent'), undefined);
  t.same(m.getAll('Absent'), []);
  t.equal(m.body, 'v=0\r\nx=é', 'multi-byte UTF-8 body kept');
});

t.test('response, bare LF line ends, leading CRLF', async (t) => {
  const m = parseSipMessage('\r\n\r\nSIP/2.0 180 Ringing\nVia: x\nContent-Length: 0\n\n');
  if (m.kind !== 'response') throw new Error('expected response');
  t.equal(m.status, 180);
  t.equal(m.reason, 'Ringing');
  t.equal(m.get('via'), 'x');
  t.equal(m.body, '');
  const noReason = parseSipMessage('SIP/2.0 200\r\n\r\n');
  t.equal(noReason.kind === 'response' && noReason.reason, '');
});

t.test('headers only, no blank line', async (t) => {
  const m = parseSipMessage('OPTIONS sip:x SIP/2.0\r\nCall-ID: 1');
  t.equal(m.get('call-id'), '1');
  t.equal(m.body, '');
});

t.test('coded errors', async (t) => {
  const cases: [string, string][] = [
    ['', 'SIP_EMPTY'],
    ['\r\n\r\n', 'SIP_EMPTY'],
    ['HELLO', 'SIP_BAD_START_LINE'],
    ['INVITE sip:x SIP/3.0\r\n\r\n', 'SIP_BAD_START_LINE'],
    ['SIP/2.0 99 Low\r\n\r\n', 'SIP_BAD_START_LINE'],
    ['SIP/2.0 700 High\r\n\r\n', 'SIP_BAD_START_LINE'],
    ['INVITE  sip:x SIP/2.0\r\n\r\n', 'SIP_BAD_START_LINE'],
    ['INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n', 'SIP_BAD_HEADER'],
    ['INVITE sip:x SIP/2.0\r\n: empty name\r\n\r\n', 'SIP_BAD_HEADER'],
    ['INVITE sip:x SIP/2.0\r\nBad Name: x\r\n\r\n', 'SIP_BAD_HEADER'],
    ['INVITE sip:x SIP/2.0\r\n folded-first\r\n\r\n', 'SIP_BAD_HEADER'],
    [`INVITE sip:x SIP/2.0\r\nX: ${'a'.repeat(MAX_SIP_MESSAGE_BYTES)}\r\n\r\n`, 'SIP_TOO_LARGE'],
    [`INVITE sip:x SIP/2.0\r\nX: ${'é'.repeat(MAX_SIP_MESSAGE_BYTES / 2)}\r\n\r\n`, 'SIP_TOO_LARGE'],
  ];
  for (const [raw, code] of cases) {
    t.throws(() => parseSipMessage(raw), { name: 'SipParseError', code }, `${JSON.stringify(raw.slice(0, 40))} -> ${code}`);
  }
});

t.test('splitCommaList', async (t) => {
  const cases: [string, string[]][] = [
    ['a, b ,c', ['a', 'b', 'c']],
    ['<sip:a,b>;x, <sip:c>', ['<sip:a,b>;x', '<sip:c>']],
    ['"x, \\"y" <sip:a>, b', ['"x, \\"y" <sip:a>', 'b']],
    [',,, ,', []],
    ['"unterminated, b', ['"unterminated, b']],
  ];
  for (const [v, want] of cases) t.same(splitCommaList(v), want, v);
});
