// Pure parts of the MSS client: folder name encoding (mailbox-name.ts) and the stored
// object format (object.ts), as case tables (docs/history.md "Folder names", "Stored objects").
import t from 'tap';
import { componentProblem, decodeComponent, encodeComponent, MAX_COMPONENT } from '../../../media/history/mailbox-name.js';
import { buildObject, cpimFacts, parseObject, rfc5322Date, verbatimSafe } from '../../../media/history/object.js';
import { GROUP_STATE_TYPE } from '../../../media/history/mss.js';
import { cpim } from './suite.js';

t.test('folder names: encode, decode', async t => {
  const cases: [id: string, name: string][] = [
    ['f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'],
    ['a.b', 'a=2Eb'],
    ['a/b', 'a=2Fb'],
    ['%*', '=25=2A'],
    ['&Jjo-', '=26Jjo-'],
    ['x=y', 'x=3Dy'],
    ['sip:bob@example.net', 'sip:bob@example=2Enet'],
    ['ü', '=C3=BC'],
    [' \t', '=20=09'],
    ['"\\', '=22=5C'],
    ['INBOX', '=49NBOX'],
    ['inbox', '=69nbox'],
    ['InBox', '=49nBox'],
    ['INBOX2', 'INBOX2'],
  ];
  for (const [id, name] of cases) {
    t.equal(encodeComponent(id), name, JSON.stringify(id));
    t.equal(decodeComponent(name), id, `${name} back`);
  }
  const bad: string[] = ['a.b', '=2', '=zz', '=2e', '=FF', 'a b'];
  for (const name of bad) t.equal(decodeComponent(name), undefined, `${name} is not an encoded name`);
  t.equal(componentProblem(''), 'empty');
  t.equal(componentProblem('a'.repeat(MAX_COMPONENT)), undefined);
  t.match(componentProblem('.'.repeat(41)), /123 characters/);
});

t.test('CPIM facts for the IMAP header', async t => {
  const cases: { name: string; data: Buffer; want: Record<string, unknown> }[] = [
    { name: 'usual', data: cpim('hi', 'abc'), want: { from: '<sip:alice@example.net>', to: '<sip:bob@example.net>', imdnMessageId: 'abc' } },
    {
      name: 'another NS prefix',
      data: Buffer.from('From: <sip:a@x>\r\nNS: d <urn:ietf:params:imdn>\r\nd.Message-ID: q1\r\nimdn.Message-ID: wrong\r\n\r\nContent-Type: text/plain\r\n\r\nx'),
      want: { from: '<sip:a@x>', imdnMessageId: 'q1' },
    },
    { name: 'truncated head', data: cpim('hi').subarray(0, 30), want: {} },
    { name: 'bad DateTime', data: Buffer.from('DateTime: yesterday\r\n\r\nContent-Type: text/plain\r\n\r\nx'), want: {} },
  ];
  for (const c of cases) t.same(cpimFacts(c.data), { ...c.want, ...(c.name === 'usual' ? { date: new Date('2026-11-24T01:00:00Z') } : {}) }, c.name);
});

t.test('verbatim or base64', async t => {
  const cases: [string, Buffer, boolean][] = [
    ['CRLF text', Buffer.from('a\r\nb\r\n'), true],
    ['UTF-8', Buffer.from('é\r\n'), true],
    ['no final CRLF', Buffer.from('a'), true],
    ['NUL', Buffer.from([0x61, 0]), false],
    ['bare LF', Buffer.from('a\nb'), false],
    ['bare CR', Buffer.from('a\rb'), false],
    ['CR at the end', Buffer.from('a\r'), false],
    ['999-octet line', Buffer.from('x'.repeat(999)), false],
    ['998-octet line', Buffer.from('x'.repeat(998)), true],
  ];
  for (const [name, data, safe] of cases) t.equal(verbatimSafe(data), safe, name);
});

t.test('stored object: header and round trip', async t => {
  const ref = { conversationId: 'conv\r\nX-Evil: 1', contributionId: 'c1' };
  const at = new Date('2026-12-05T10:00:00Z');
  const raw = buildObject(ref, 'message/cpim', cpim('hi', 'imdn-7'), { direction: 'sent', key: 'k1@cpm-pf', date: at });
  const head = raw.toString('utf8', 0, raw.indexOf('\r\n\r\n'));
  t.same(head.split('\r\n'), [
    'From: <sip:alice@example.net>',
    'To: <sip:bob@example.net>',
    'Date: Tue, 24 Nov 2026 01:00:00 +0000',
    'Conversation-ID: conv X-Evil: 1',
    'Contribution-ID: c1',
    'IMDN-Message-ID: imdn-7',
    'Message-Direction: sent',
    'Message-ID: <k1@cpm-pf>',
    'MIME-Version: 1.0',
    'Content-Type: message/cpim',
    'Content-Transfer-Encoding: 7bit',
  ], 'CPIM facts win; CR LF in an id cannot start a header');
  const cases: [string, string, Buffer][] = [
    ['text', 'message/cpim', cpim('hi')],
    ['8bit', 'message/cpim', cpim('✓')],
    ['binary', 'message/cpim', Buffer.from([0, 1, 2, 0x0a, 0xff])],
    ['group state', GROUP_STATE_TYPE, Buffer.from('<groupstate/>\r\n')],
    ['empty', 'message/cpim', Buffer.alloc(0)],
  ];
  for (const [name, ct, data] of cases) {
    const p = parseObject(buildObject({ conversationId: 'a', contributionId: 'b' }, ct, data, { key: 'k' }));
    t.equal(p?.contentType, ct, `${name}: type`);
    t.ok(p?.data.equals(data), `${name}: bytes`);
    t.equal(p?.key, 'k');
  }
  t.equal(rfc5322Date(at), 'Sat, 05 Dec 2026 10:00:00 +0000');
  t.equal(parseObject(Buffer.from('no header end')), undefined);
  t.equal(parseObject(Buffer.from('X: 1\r\n\r\nbody')), undefined, 'no Content-Type');
  t.equal(parseObject(Buffer.from('bad line\r\n\r\n')), undefined);
  t.equal(parseObject(Buffer.from('Content-Type: x\r\nContent-Transfer-Encoding: base64\r\n\r\nab$c\r\n')), undefined, 'bad base64');
  t.equal(parseObject(Buffer.from('Content-Type: a;\r\n b=1\r\n\r\nz'))?.contentType, 'a; b=1', 'folded header');
});

t.test('an invalid date falls back to now', async t => {
  const raw = buildObject({ conversationId: 'a', contributionId: 'b' }, 'Application/X-CPM-Session', Buffer.from('x\r\n'), { date: new Date('nonsense') });
  t.notMatch(raw.toString(), /Invalid Date/);
  t.match(raw.toString(), /^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\n/m);
});
