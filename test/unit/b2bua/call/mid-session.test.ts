/**
 * Mid-session requests (plugin/b2bua/call/mid-session.ts): the verdict per method and
 * the MSRP media check of a refresh offer, as tables.
 */
import t from 'tap';
import { ALLOW_METHODS, hasSdp, inDialogVerdict, movesMedia, msrpMediaOf, outOfDialogStatus, type InDialogVerdict } from '../../../../plugin/b2bua/call/mid-session.js';

const allow = ['Allow', ALLOW_METHODS] as const;

t.test('inDialogVerdict', async (t) => {
  const rows: [string, string | undefined, InDialogVerdict][] = [
    ['INVITE', undefined, { kind: 'refresh' }],
    ['UPDATE', undefined, { kind: 'refresh' }],
    ['BYE', undefined, { kind: 'bye' }],
    ['OPTIONS', undefined, { kind: 'respond', status: 200, headers: [allow, ['Accept', 'application/sdp'], ['Supported', 'timer']] }],
    ['INFO', undefined, { kind: 'respond', status: 200, headers: [] }],
    ['INFO', '  ', { kind: 'respond', status: 200, headers: [] }],
    ['INFO', 'dtmf', { kind: 'respond', status: 469, headers: [['Recv-Info', '']] }],
    ['MESSAGE', undefined, { kind: 'respond', status: 405, headers: [allow] }],
    ['REFER', undefined, { kind: 'respond', status: 405, headers: [allow] }],
    ['PRACK', undefined, { kind: 'respond', status: 405, headers: [allow] }],
    ['FOO', undefined, { kind: 'respond', status: 501, headers: [allow] }],
  ];
  for (const [method, pkg, want] of rows) t.same(inDialogVerdict(method, pkg), want, `${method} ${pkg ?? ''}`);
});

const sdp = (o: { path?: string; port?: number; c?: string; extra?: string } = {}): string =>
  [
    'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', `c=${o.c ?? 'IN IP4 127.0.0.1'}`, 't=0 0', `m=message ${o.port ?? 7654} TCP/MSRP *`,
    `a=path:${o.path ?? 'msrp://127.0.0.1:7654/abc;tcp'}`, 'a=accept-types:message/cpim', ...(o.extra ? [o.extra] : []),
  ].join('\r\n') + '\r\n';

t.test('movesMedia: m=, c= and a=path count; the rest does not', async (t) => {
  const base = sdp();
  const rows: [string, string, boolean][] = [
    ['the same SDP', base, false],
    ['a new o= version and an extra attribute', base.replace('o=- 1 1', 'o=- 1 2') + 'a=sendrecv\r\n', false],
    ['LF line ends', base.replace(/\r\n/g, '\n'), false],
    ['a=path moved', sdp({ path: 'msrp://10.0.0.1:7654/xyz;tcp' }), true],
    ['the port moved', sdp({ port: 9999 }), true],
    ['c= moved', sdp({ c: 'IN IP4 10.0.0.9' }), true],
    ['a second stream', sdp({ extra: 'm=message 9 TCP/MSRP *' }), true],
    ['no media at all', 'v=0\r\n', true],
  ];
  for (const [name, offer, want] of rows) t.equal(movesMedia(base, offer), want, name);
  t.same(msrpMediaOf(base), ['c=IN IP4 127.0.0.1', 'm=message 7654 TCP/MSRP *', 'a=path:msrp://127.0.0.1:7654/abc;tcp']);
});

t.test('hasSdp', async (t) => {
  const rows: [string | undefined, string, boolean][] = [
    ['application/sdp', 'v=0\r\n', true],
    ['Application/SDP; charset=utf-8', 'v=0\r\n', true],
    ['application/sdp', '  \r\n', false],
    [undefined, '', false],
    ['text/plain', 'hi', false],
    ['multipart/mixed;boundary=b', '--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--', true],
  ];
  for (const [ct, body, want] of rows) t.equal(hasSdp(ct, body), want, `${ct}: ${JSON.stringify(body).slice(0, 30)}`);
});

t.test('outOfDialogStatus (no To-tag, not an INVITE)', async (t) => {
  const rows: [string, number][] = [['OPTIONS', 200], ['UPDATE', 481], ['BYE', 481], ['INFO', 481], ['PRACK', 481], ['MESSAGE', 405], ['SUBSCRIBE', 405]];
  for (const [method, want] of rows) t.equal(outOfDialogStatus(method), want, method);
});
