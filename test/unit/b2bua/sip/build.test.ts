/** Message building (RFC 3261 §8.2.6, §9.1, §17.1.1.3) and the fields the layer matches on. */
import t from 'tap';
import {
  ackForNon2xx, BuildError, cancelFor, cseqOf, newBranch, parseVia, printRequest, printResponse, responseTo, tagOf,
} from '../../../../plugin/b2bua/sip/build.js';
import { answer, incoming, req, res } from './helpers.js';

t.test('§8.2.6.2 responses copy Via, From, To, Call-ID, CSeq; To-tag except on 100', async (t) => {
  const inv = req(incoming());
  const cases: [number, string | undefined, string | undefined, string][] = [
    [100, 'x1', undefined, '100 Trying carries no To-tag'],
    [180, 'x1', 'x1', '180 gets our tag'],
    [200, 'x1', 'x1', '200 gets our tag'],
    [486, 'x1', 'x1', 'a final gets our tag'],
    [200, undefined, undefined, 'no tag given, none added'],
  ];
  for (const [status, toTag, want, name] of cases) {
    const r = responseTo(inv, status, toTag === undefined ? {} : { toTag }).msg;
    t.equal(r.status, status, name);
    t.equal(tagOf(r.get('To')) ?? undefined, want, `${name}: To-tag`);
    t.same(r.getAll('Via'), inv.getAll('Via'), `${name}: every Via, in order`);
    for (const h of ['From', 'Call-ID', 'CSeq']) t.equal(r.get(h), inv.get(h), `${name}: ${h}`);
  }
  const tagged = req(incoming({ toTag: 'mine' }));
  t.equal(tagOf(responseTo(tagged, 200, { toTag: 'other' }).msg.get('To')), 'mine', 'an existing To-tag is kept');
});

t.test('Content-Length counts bytes; a given Content-Length is replaced', async (t) => {
  const body = 'v=0\r\ns=Ünïcødé ✓\r\n';
  const b = printResponse(200, 'OK', [['Content-Length', '3'], ['Content-Type', 'application/sdp']], body);
  t.equal(b.msg.get('Content-Length'), String(Buffer.byteLength(body)));
  t.equal(b.msg.getAll('Content-Length').length, 1);
  t.equal(b.msg.body, body);
  t.ok(b.text.endsWith(`\r\n\r\n${body}`));
});

t.test('nothing unparseable is built', async (t) => {
  const bad: [string, () => unknown][] = [
    ['CRLF in a header value', () => printRequest('BYE', 'sip:a@b', [['X', 'a\r\nInjected: 1']])],
    ['LF in a header name', () => printRequest('BYE', 'sip:a@b', [['X\nY', 'a']])],
    ['space in the Request-URI', () => printRequest('BYE', 'sip:a@b c', [])],
    ['empty Request-URI', () => printRequest('BYE', '', [])],
    ['bad status', () => printResponse(99, 'X', [])],
    ['bad method', () => printRequest('BY E', 'sip:a@b', [])],
  ];
  for (const [name, f] of bad) t.throws(f, BuildError, name);
});

t.test('§17.1.1.3 ACK of a non-2xx: same branch and Request-URI, top Via only, To from the response', async (t) => {
  const inv = req(incoming({ rr: [], extra: ['Route: <sip:127.0.0.1:5060;lr>'] }));
  const r486 = res(answer(inv, { status: 486, toTag: 'd9' }));
  const ack = ackForNon2xx(inv, r486).msg;
  t.equal(ack.method, 'ACK');
  t.equal(ack.ruri, inv.ruri);
  t.same(ack.getAll('Via'), [inv.getValues('Via')[0]]);
  t.equal(ack.get('To'), r486.get('To'));
  t.equal(ack.get('From'), inv.get('From'));
  t.equal(ack.get('CSeq'), '1 ACK');
  t.same(ack.getAll('Route'), ['<sip:127.0.0.1:5060;lr>']);
  t.equal(ack.get('Max-Forwards'), '70');
});

t.test('§9.1 CANCEL: same Request-URI, Call-ID, From, To, CSeq number, top Via, Route', async (t) => {
  const inv = req(incoming({ cseq: 7, extra: ['Route: <sip:127.0.0.1:5060;lr>'] }));
  const c = cancelFor(inv).msg;
  t.equal(c.method, 'CANCEL');
  t.equal(c.ruri, inv.ruri);
  t.same(c.getAll('Via'), [inv.getValues('Via')[0]]);
  for (const h of ['From', 'To', 'Call-ID']) t.equal(c.get(h), inv.get(h), h);
  t.equal(c.get('CSeq'), '7 CANCEL');
  t.same(c.getAll('Route'), inv.getAll('Route'));
  t.equal(c.get('Content-Length'), '0');
});

t.test('CANCEL with a Reason (RFC 3326 §2), after the Route lines', async (t) => {
  const inv = req(incoming({ cseq: 7, extra: ['Route: <sip:127.0.0.1:5060;lr>'] }));
  const c = cancelFor(inv, [['Reason', 'SIP;cause=200;text="Call completed elsewhere"']]).msg;
  t.same(c.getAll('Reason'), ['SIP;cause=200;text="Call completed elsewhere"']);
  t.same(cancelFor(inv).msg.getAll('Reason'), [], 'none unless asked');
});

t.test('Via, CSeq and tag readers', async (t) => {
  const vias: [string, string | null, string | null][] = [
    ['SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1', '127.0.0.1:5060', 'z9hG4bK1'],
    ['SIP / 2.0 / tcp Host.Example:5060 ;branch=z9hG4bK2;rport', 'host.example:5060', 'z9hG4bK2'],
    ['SIP/2.0/TCP 127.0.0.1;received=1.2.3.4', '127.0.0.1', null],
    ['SIP/2.0/TCP 127.0.0.1;branch=', '127.0.0.1', null],
    ['HTTP/1.1 x', null, null],
    ['SIP/2.0/TCP 1.2.3.4;branch="unterminated', null, null],
  ];
  for (const [v, sentBy, branch] of vias) {
    const p = parseVia(v);
    t.equal(p?.sentBy ?? null, sentBy, `sent-by of ${v}`);
    t.equal(p?.branch ?? null, branch, `branch of ${v}`);
  }
  const cseqs: [string, { seq: number; method: string } | null][] = [
    ['1 INVITE', { seq: 1, method: 'INVITE' }],
    ['4294967295 bye', { seq: 4294967295, method: 'BYE' }],
    ['4294967296 BYE', null],
    ['x INVITE', null],
    ['1', null],
  ];
  for (const [v, want] of cseqs) t.same(cseqOf(res(`SIP/2.0 200 OK\r\nCSeq: ${v}\r\n\r\n`)), want, `CSeq ${v}`);
  t.equal(tagOf('<sip:a@b>;tag=x'), 'x');
  t.equal(tagOf('<sip:a@b;tag=uri-param>'), null, 'a URI parameter is not the tag');
  t.equal(tagOf(undefined), null);
  t.match(newBranch(), /^z9hG4bK[0-9a-f]{16}$/);
  t.not(newBranch(), newBranch());
});
