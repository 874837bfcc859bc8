import t from 'tap';
import { dispositionType, parseMediaType, parseMultipart, partHeader, printMultipart, MAX_PARTS, type BodyPart } from '../../../plugin/sip/multipart.js';

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=message 7654 TCP/MSRP *\r\n';
const XML = '<?xml version="1.0"?>\r\n<resource-lists/>';

/** Parts as `[headers, body]` pairs, for compact expectations. */
function shape(r: ReturnType<typeof parseMultipart>): unknown {
  return r.kind === 'ok' ? r.parts.map((p) => [p.headers.map(([n, v]) => `${n}: ${v}`), p.body]) : r.code;
}

t.test('RFC 2046 §5.1.1: parts between delimiters', async (t) => {
  const cases: { name: string; ct: string; body: string; want: unknown }[] = [
    {
      name: 'two parts, CRLF, preamble and epilogue ignored',
      ct: 'multipart/mixed;boundary=b1',
      body: `preamble\r\n--b1\r\nContent-Type: application/sdp\r\n\r\n${SDP}\r\n--b1\r\nContent-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n\r\n${XML}\r\n--b1--\r\nepilogue`,
      want: [
        [['Content-Type: application/sdp'], SDP],
        [['Content-Type: application/resource-lists+xml', 'Content-Disposition: recipient-list'], XML],
      ],
    },
    {
      name: 'quoted boundary with a space and RFC 2046 punctuation',
      ct: 'multipart/mixed; boundary="a b\'()+_,-./:=?"',
      body: `--a b'()+_,-./:=?\r\nContent-Type: text/plain\r\n\r\nhi\r\n--a b'()+_,-./:=?--\r\n`,
      want: [[['Content-Type: text/plain'], 'hi']],
    },
    {
      name: 'bare LF line ends, delimiter at the very start',
      ct: 'Multipart/Mixed;Boundary=x',
      body: '--x\nContent-Type: text/plain\n\nhi\n--x--',
      want: [[['Content-Type: text/plain'], 'hi']],
    },
    {
      name: 'transport padding after the delimiters',
      ct: 'multipart/mixed;boundary=x',
      body: '--x \t\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x-- \r\n',
      want: [[['Content-Type: text/plain'], 'hi']],
    },
    {
      name: 'a longer boundary inside the content is content',
      ct: 'multipart/mixed;boundary=x',
      body: '--x\r\nContent-Type: text/plain\r\n\r\n--xy\r\n--x--z\r\n--x--\r\n',
      want: [[['Content-Type: text/plain'], '--xy\r\n--x--z']],
    },
    {
      name: 'the boundary in the middle of a line is content',
      ct: 'multipart/mixed;boundary=x',
      body: '--x\r\nContent-Type: text/plain\r\n\r\na--x\r\n--x--\r\n',
      want: [[['Content-Type: text/plain'], 'a--x']],
    },
    {
      name: 'headers only, no body; a folded header',
      ct: 'multipart/mixed;boundary=x',
      body: '--x\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n--x--\r\n',
      want: [[['Content-Type: text/plain; charset=utf-8'], '']],
    },
    {
      name: 'an empty body keeps its blank line apart from the delimiter',
      ct: 'multipart/mixed;boundary=x',
      body: '--x\r\nContent-Type: text/plain\r\n\r\n\r\n--x--',
      want: [[['Content-Type: text/plain'], '']],
    },
  ];
  for (const c of cases) t.same(shape(parseMultipart(c.ct, c.body)), c.want, c.name);
});

t.test('bad input: an error value, never a throw', async (t) => {
  const ok = '--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n';
  const cases: { name: string; ct: string; body: string; code: string }[] = [
    { name: 'not multipart', ct: 'application/sdp', body: SDP, code: 'not-multipart' },
    { name: 'unreadable Content-Type', ct: 'multipart', body: ok, code: 'not-multipart' },
    { name: 'no boundary', ct: 'multipart/mixed', body: ok, code: 'no-boundary' },
    { name: 'empty boundary', ct: 'multipart/mixed;boundary=""', body: ok, code: 'no-boundary' },
    { name: 'unterminated quoted boundary', ct: 'multipart/mixed;boundary="x', body: ok, code: 'not-multipart' },
    { name: 'boundary of 71 characters', ct: `multipart/mixed;boundary=${'b'.repeat(71)}`, body: ok, code: 'bad-boundary' },
    { name: 'boundary ending in a space', ct: 'multipart/mixed;boundary="x "', body: ok, code: 'bad-boundary' },
    { name: 'boundary with a character outside bchars', ct: 'multipart/mixed;boundary="x@y"', body: ok, code: 'bad-boundary' },
    { name: 'boundary not in the body', ct: 'multipart/mixed;boundary=y', body: ok, code: 'no-delimiter' },
    { name: 'only a close delimiter', ct: 'multipart/mixed;boundary=x', body: '--x--\r\n', code: 'no-delimiter' },
    { name: 'missing close delimiter', ct: 'multipart/mixed;boundary=x', body: ok, code: 'no-close-delimiter' },
    { name: 'missing close delimiter after two parts', ct: 'multipart/mixed;boundary=x', body: `${ok}${ok}`, code: 'no-close-delimiter' },
    { name: 'a part without headers', ct: 'multipart/mixed;boundary=x', body: '--x\r\n\r\nhi\r\n--x--\r\n', code: 'part-without-headers' },
    { name: 'an empty part', ct: 'multipart/mixed;boundary=x', body: '--x\r\n--x--\r\n', code: 'part-without-headers' },
    { name: 'a part of text only', ct: 'multipart/mixed;boundary=x', body: '--x\r\nhello\r\n\r\nhi\r\n--x--\r\n', code: 'bad-part-header' },
    { name: 'a part starting with a continuation line', ct: 'multipart/mixed;boundary=x', body: '--x\r\n folded: x\r\n\r\nhi\r\n--x--\r\n', code: 'bad-part-header' },
    { name: 'too many parts', ct: 'multipart/mixed;boundary=x', body: `${ok.repeat(MAX_PARTS + 1)}--x--\r\n`, code: 'too-many-parts' },
  ];
  for (const c of cases) {
    const r = parseMultipart(c.ct, c.body);
    t.equal(r.kind === 'error' ? r.code : 'ok', c.code, c.name);
    if (r.kind === 'error') t.ok(r.why.length > 0, `${c.name}: says why`);
  }
  t.equal(parseMultipart('multipart/mixed;boundary=x', `${ok.repeat(MAX_PARTS)}--x--\r\n`).kind, 'ok', `${MAX_PARTS} parts are fine`);
});

t.test('printMultipart: CRLF, a boundary in no part, parsed back the same', async (t) => {
  const cases: { name: string; parts: BodyPart[]; boundary: string }[] = [
    { name: 'SDP and a list', parts: [{ headers: [['Content-Type', 'application/sdp']], body: SDP }, { headers: [['Content-Type', 'application/resource-lists+xml'], ['Content-Disposition', 'recipient-list-history; handling=optional']], body: XML }], boundary: 'pf-part-boundary' },
    { name: 'a part holding the default boundary', parts: [{ headers: [['Content-Type', 'text/plain']], body: '--pf-part-boundary\r\n' }], boundary: 'pf-part-boundary-1' },
    { name: 'the first two boundaries taken', parts: [{ headers: [['Content-Type', 'text/plain']], body: 'pf-part-boundary pf-part-boundary-1' }], boundary: 'pf-part-boundary-2' },
    { name: 'an empty body', parts: [{ headers: [['Content-Type', 'text/plain']], body: '' }], boundary: 'pf-part-boundary' },
  ];
  for (const c of cases) {
    const printed = printMultipart(c.parts);
    t.equal(printed.contentType, `multipart/mixed;boundary=${c.boundary}`, `${c.name}: boundary`);
    t.notMatch(printed.body, /(^|[^\r])\n/, `${c.name}: CRLF only`);
    t.match(printed.body, new RegExp(`\\r\\n--${c.boundary}--\\r\\n$`), `${c.name}: close delimiter`);
    const back = parseMultipart(printed.contentType, printed.body);
    t.same(back.kind === 'ok' ? back.parts : back, c.parts, `${c.name}: round trip`);
  }
});

t.test('media type, part header and disposition readers', async (t) => {
  t.same(parseMediaType('Multipart/Mixed ; boundary="a;b"; x=1'), { type: 'multipart', subtype: 'mixed', params: { boundary: 'a;b', x: '1' } });
  for (const bad of ['', 'text', '/plain', 'text/', 'te xt/plain', 'text/pl<ain']) t.equal(parseMediaType(bad), null, JSON.stringify(bad));
  const part: BodyPart = { headers: [['content-disposition', 'Recipient-List; handling=required']], body: '' };
  t.equal(partHeader(part, 'Content-Disposition'), 'Recipient-List; handling=required');
  t.equal(partHeader(part, 'Content-Type'), undefined);
  t.equal(dispositionType(partHeader(part, 'Content-Disposition')), 'recipient-list');
  t.equal(dispositionType(undefined), null);
  t.equal(dispositionType(' ; x'), null);
});
