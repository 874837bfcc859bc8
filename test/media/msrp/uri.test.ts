// RFC 4975 §6 URI parse/format and the §6.1 comparison table.
import t from 'tap';
import { formatMsrpUri, msrpUriEquals, parseMsrpUri } from '../../../media/msrp/uri.js';
import { parseByteRange, formatByteRange, parseStatus, parsePath, reportMode } from '../../../media/msrp/headers.js';
import { parseFrames } from '../../../media/msrp/parser.js';

t.test('parse and format round trip', async (t) => {
  const cases = [
    'msrp://alice.example.com:7777/iau39soe2843z;tcp',
    'msrps://Bob@bob.example.com:8888/9di4eae923wzd;tcp',
    'msrp://relay.example.net:2855;tcp',
    'msrp://[2001:db8::1]:2855/s1;tcp',
    'msrp://127.0.0.1:7654/s1a2b3;tcp;foo=bar;flag',
    'MSRP://Host.Example.COM:1/AbC/d+e=;TCP',
  ];
  for (const s of cases) t.equal(formatMsrpUri(parseMsrpUri(s)), s.replace(/^MSRP/, 'msrp'), s);
  t.matchSnapshot(cases.map(parseMsrpUri), 'parsed URIs');
});

t.test('bad URIs', async (t) => {
  for (const s of [
    'sip:alice@example.com',
    'msrp://host:7777/abc',
    'msrp://host:99999/abc;tcp',
    'msrp://[zz::1]:1/abc;tcp',
    'msrp:///abc;tcp',
    'msrp://host:12/a b;tcp',
    'msrp://host:12/abc;',
    '',
  ]) {
    t.throws(() => parseMsrpUri(s), { code: 'MSRP_BAD_URI' }, JSON.stringify(s));
  }
});

// [a, b, equal, why]
const table: Array<[string, string, boolean, string]> = [
  ['msrp://a.example.com:1/s1;tcp', 'msrp://a.example.com:1/s1;tcp', true, 'identical'],
  ['MSRP://a.example.com:1/s1;tcp', 'msrp://a.example.com:1/s1;tcp', true, 'scheme case-insensitive'],
  ['msrp://A.Example.COM:1/s1;tcp', 'msrp://a.example.com:1/s1;tcp', true, 'host case-insensitive'],
  ['msrp://a.example.com:1/s1;TCP', 'msrp://a.example.com:1/s1;tcp', true, 'transport case-insensitive'],
  ['msrp://alice@a.example.com:1/s1;tcp', 'msrp://bob@a.example.com:1/s1;tcp', true, 'userinfo ignored'],
  ['msrp://a.example.com:1/s1;tcp;x=1', 'msrp://a.example.com:1/s1;tcp', true, 'other parameters ignored'],
  ['msrp://[2001:db8::1]:1/s1;tcp', 'msrp://[2001:0db8:0:0::0001]:1/s1;tcp', true, 'IPv6 compared as address'],
  ['msrp://a.example.com:1/S1;tcp', 'msrp://a.example.com:1/s1;tcp', false, 'session-id case-sensitive'],
  ['msrps://a.example.com:1/s1;tcp', 'msrp://a.example.com:1/s1;tcp', false, 'scheme differs'],
  ['msrp://a.example.com:2/s1;tcp', 'msrp://a.example.com:1/s1;tcp', false, 'port differs'],
  ['msrp://a.example.com:2855/s1;tcp', 'msrp://a.example.com/s1;tcp', false, 'explicit port never equals absent port'],
  ['msrp://a.example.com:1;tcp', 'msrp://a.example.com:1/s1;tcp', false, 'absent session-id never equals present'],
  ['msrp://a.example.com:1/s1;sctp', 'msrp://a.example.com:1/s1;tcp', false, 'transport differs'],
  ['msrp://b.example.com:1/s1;tcp', 'msrp://a.example.com:1/s1;tcp', false, 'host differs'],
  ['msrp://127.0.0.1:1/s1;tcp', 'msrp://localhost:1/s1;tcp', false, 'no name resolution'],
  ['not a uri', 'msrp://a.example.com:1/s1;tcp', false, 'unparseable never equal'],
];

t.test('§6.1 comparison table', async (t) => {
  for (const [a, b, eq, why] of table) {
    t.equal(msrpUriEquals(a, b), eq, why);
    t.equal(msrpUriEquals(b, a), eq, `${why} (symmetric)`);
  }
});

t.test('header values', async (t) => {
  t.same(parseByteRange('1-25/25'), { start: 1, end: 25, total: 25 });
  t.same(parseByteRange('1-*/*'), { start: 1, end: '*', total: '*' });
  t.same(parseByteRange('30-56/*'), { start: 30, end: 56, total: '*' });
  t.same(parseByteRange('1-0/0'), { start: 1, end: 0, total: 0 });
  t.equal(formatByteRange({ start: 5, end: '*', total: 100 }), '5-*/100');
  for (const bad of ['0-5/5', '5-3/10', '1-10/5', 'a-b/c', '1-2', '1-2/3/4', '1-9999999999999999/9999999999999999']) {
    t.throws(() => parseByteRange(bad), { code: 'MSRP_BAD_BYTE_RANGE' }, bad);
  }
  t.same(parseStatus('000 200 OK'), { namespace: 0, code: 200, comment: 'OK' });
  t.same(parseStatus('000 413'), { namespace: 0, code: 413 });
  t.throws(() => parseStatus('200 OK'), { code: 'MSRP_BAD_STATUS' });
  t.equal(parsePath('msrp://r:1;tcp   msrp://b:2/s;tcp').length, 2);
});

t.test('report modes', async (t) => {
  const mk = (h: string): ReturnType<typeof parseFrames>[number]['head'] =>
    parseFrames(Buffer.from(`MSRP abcd1234 SEND\r\nTo-Path: msrp://r:1;tcp msrp://b:2/Sess1;tcp\r\nFrom-Path: msrp://a:3/x;tcp\r\n${h}-------abcd1234$\r\n`))[0]!.head;
  t.equal(reportMode(mk(''), 'Failure-Report'), 'yes', 'Failure-Report defaults to yes');
  t.equal(reportMode(mk(''), 'Success-Report'), 'no', 'Success-Report defaults to no');
  t.equal(reportMode(mk('Failure-Report: No\r\n'), 'Failure-Report'), 'no');
  t.equal(reportMode(mk('Failure-Report: partial\r\n'), 'Failure-Report'), 'partial');
  t.equal(reportMode(mk('Failure-Report: bogus\r\n'), 'Failure-Report'), 'yes');
  t.equal(reportMode(mk('Success-Report: yes\r\n'), 'Success-Report'), 'yes');
});
