/** lab/sip-ua.ts: the lab UA's message parsing helpers, as case tables. */
import t from 'tap';
import { hdr, hdrs, hostPort, param, parseSip, uriOf } from '../../../lab/sip-ua.js';

t.test('parseSip: requests, responses, compact and comma-joined headers', async (t) => {
  const req = parseSip('INVITE sip:bob@example.net SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\ni: c1\r\nl: 2\r\n\r\nhi')!;
  t.equal(req.kind, 'request');
  t.equal(req.method, 'INVITE');
  t.equal(req.ruri, 'sip:bob@example.net');
  t.same(hdrs(req, 'via'), ['SIP/2.0/UDP a;branch=z9hG4bK1', 'SIP/2.0/UDP b;branch=z9hG4bK2']);
  t.same(hdrs(req, 'record-route'), ['<sip:p1;lr>', '<sip:p2;lr>']);
  t.equal(hdr(req, 'Call-ID'), 'c1');
  t.equal(req.body, 'hi');
  const resp = parseSip('SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\n\r\n')!;
  t.same([resp.kind, resp.status, resp.reason, resp.method], ['response', 180, 'Ringing', 'INVITE']);
  t.equal(parseSip('\r\n\r\n'), null, 'a keepalive is not a message');
});

t.test('param, uriOf, hostPort', async (t) => {
  const params: [string | undefined, string, string | undefined][] = [
    ['<sip:bob@x;tag=no>;tag=abc', 'tag', 'abc'],
    ['<sip:bob@x>', 'tag', undefined],
    ['SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport', 'branch', 'z9hG4bKx'],
    [undefined, 'tag', undefined],
  ];
  for (const [v, name, want] of params) t.equal(param(v, name), want, `${String(v)} ${name}`);
  const uris: [string, string][] = [
    ['"Bob" <sip:bob@x;gr>;tag=1', 'sip:bob@x;gr'],
    ['sip:bob@x;tag=1', 'sip:bob@x'],
  ];
  for (const [v, want] of uris) t.equal(uriOf(v), want);
  const hps: [string, { host: string; port: number }][] = [
    ['sip:127.0.0.1:5070;lr', { host: '127.0.0.1', port: 5070 }],
    ['sip:bob@example.net', { host: 'example.net', port: 5060 }],
    ['sip:[::1]:5080', { host: '::1', port: 5080 }],
  ];
  for (const [u, want] of hps) t.same(hostPort(u), want, u);
  t.throws(() => hostPort('tel:+1555'), /not a SIP URI/);
});
