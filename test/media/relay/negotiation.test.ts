// The relay's SDP choices as case tables (media/relay/negotiation.ts, sdp.ts): a=setup
// roles (RFC 4145 §4.1, RFC 6135), a=msrp-cema and c= checks (RFC 6714), and the
// offer/answer verbs' replies for them.
import t from 'tap';
import { parseMsrpUri } from '../../../media/msrp/index.js';
import { answerSetup, cemaAddress, checkDeviceSetup, dialTarget } from '../../../media/relay/negotiation.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { readMsrpMedia } from '../../../media/relay/sdp.js';
import { sdpFor } from './helpers.js';

/** A peer SDP: setup (none when undefined), CEMA, c= value, m= port. */
function peerSdp(o: { setup?: string; cema?: boolean; c?: string | null; port?: number; path?: string } = {}): string {
  let sdp = sdpFor(o.path ?? 'msrp://192.0.2.10:7777/abc;tcp', o.setup ?? 'active');
  if (o.setup === undefined) sdp = sdp.replace(/a=setup:[^\r]*\r\n/, '');
  if (o.port !== undefined) sdp = sdp.replace('m=message 9 ', `m=message ${o.port} `);
  if (o.c === null) sdp = sdp.replace(/c=[^\r]*\r\n/, '');
  else if (o.c !== undefined) sdp = sdp.replace('c=IN IP4 127.0.0.1', `c=${o.c}`);
  if (o.cema) sdp = sdp.replace('a=accept-types', 'a=msrp-cema\r\na=accept-types');
  return sdp;
}

const line = (sdp: string, name: string): string[] => sdp.split('\r\n').filter(l => l.startsWith(`a=${name}`));

t.test('answerSetup: the relay role for each offered a=setup', async t => {
  const cases: Array<[string | undefined, 'active' | 'passive', RegExp | undefined]> = [
    [undefined, 'passive', undefined], // RFC 4975 §5.4 default: the offerer connects
    ['active', 'passive', undefined],
    ['ACTIVE', 'passive', undefined],
    ['actpass', 'passive', undefined], // RFC 4145 §4.1: the answerer picks; we listen
    ['passive', 'active', undefined], // RFC 4145 §4.1: the answer must be active
    [' Passive ', 'active', undefined],
    ['holdconn', 'passive', /holdconn/],
    ['sideways', 'passive', /unknown a=setup value "sideways"/],
  ];
  for (const [offered, role, warning] of cases) {
    const r = answerSetup(offered);
    t.equal(r.role, role, `${offered ?? '(none)'} -> ${role}`);
    if (warning) t.match(r.warning, warning);
    else t.equal(r.warning, undefined);
  }
});

t.test('checkDeviceSetup: a device answer to the relay passive offer', async t => {
  const cases: Array<[string | undefined, 'ok' | 'warning' | 'error']> = [
    [undefined, 'ok'],
    ['active', 'ok'],
    ['passive', 'error'],
    ['PASSIVE', 'error'],
    ['actpass', 'warning'],
    ['holdconn', 'warning'],
  ];
  for (const [answered, expect] of cases) {
    const r = checkDeviceSetup(answered);
    const got = 'error' in r ? 'error' : r.warning ? 'warning' : 'ok';
    t.equal(got, expect, `${answered ?? '(none)'}: ${expect}`);
  }
  t.match(checkDeviceSetup('passive'), { error: /must be active \(RFC 4145 §4\.1\)/ });
});

t.test('cemaAddress: c= values', async t => {
  const cases: Array<[string | undefined, boolean, { host: string; family: 4 | 6 } | RegExp | undefined]> = [
    ['IN IP4 192.0.2.1', true, { host: '192.0.2.1', family: 4 }],
    ['IN IP6 2001:db8::1', true, { host: '2001:db8::1', family: 6 }],
    ['IN IP4 media.example.net', true, { host: 'media.example.net', family: 4 }],
    ['IN IP4 224.2.1.1/127', false, { host: '224.2.1.1', family: 4 }],
    ['IN IP4 0.0.0.0', false, { host: '0.0.0.0', family: 4 }], // fine while we do not connect
    ['IN IP4 0.0.0.0', true, /unspecified address/],
    ['IN IP6 ::', true, /unspecified address/],
    ['IN IP6 0:0:0:0:0:0:0:0', true, /unspecified address/],
    ['IN IP4 2001:db8::1', true, /not IP4/],
    ['IN IP6 192.0.2.1', true, /not IP6/],
    ['IN IP5 192.0.2.1', true, /expected "IN IP4/],
    ['ATM NSAP 47.0091.8100', true, /expected "IN IP4/],
    ['IN IP4', true, /expected "IN IP4/],
    ['IN IP4 192.0.2.1 extra', true, /expected "IN IP4/],
    ['IN IP4 bad_host!', true, /not an address or host name/],
    [undefined, true, /without a c= line/],
    [undefined, false, undefined],
  ];
  for (const [value, mustConnect, expect] of cases) {
    const r = cemaAddress(value, mustConnect);
    const name = `${value ?? '(no c=)'}${mustConnect ? ', must connect' : ''}`;
    if (expect instanceof RegExp) t.match(r, { error: expect }, name);
    else t.same(r, expect, name);
  }
});

t.test('dialTarget: a=path first URI, or c=/m= for a CEMA peer', async t => {
  const cases: Array<[string, string, boolean, object]> = [
    ['plain: first URI', peerSdp({ path: 'msrp://relay.example:2900/r1;tcp msrp://192.0.2.10:7777/abc;tcp' }), false, { host: 'relay.example', port: 2900, tls: false }],
    ['plain: no port is 2855', peerSdp({ path: 'msrp://192.0.2.10/abc;tcp' }), false, { host: '192.0.2.10', port: 2855 }],
    ['plain: IPv6 URI', peerSdp({ path: 'msrp://[2001:db8::5]:7000/abc;tcp' }), false, { host: '2001:db8::5', port: 7000 }],
    ['plain: msrps', peerSdp({ path: 'msrps://192.0.2.10:7777/abc;tcp' }), true, { host: '192.0.2.10', port: 7777, tls: true }],
    ['cema: c=/m=', peerSdp({ cema: true, c: 'IN IP4 198.51.100.1', port: 40000 }), false, { host: '198.51.100.1', port: 40000 }],
    ['cema: session-level c=', peerSdp({ cema: true, port: 40000 }), false, { host: '127.0.0.1', port: 40000 }],
    ['cema: no c=', peerSdp({ cema: true, c: null, port: 40000 }), false, { error: /without a c= line/ }],
    ['cema: 0.0.0.0', peerSdp({ cema: true, c: 'IN IP4 0.0.0.0', port: 40000 }), false, { error: /unspecified/ }],
  ];
  for (const [name, sdp, tls, expect] of cases) {
    const media = readMsrpMedia(sdp);
    t.match(dialTarget(media, media.path.map(u => parseMsrpUri(u)), tls), expect, name);
  }
  // A media-level c= wins over the session-level one (RFC 4566 §5.7).
  const both = peerSdp({ cema: true, port: 40000 }).replace('m=message 40000 TCP/MSRP *\r\n', 'm=message 40000 TCP/MSRP *\r\nc=IN IP4 203.0.113.9\r\n');
  t.equal(readMsrpMedia(both).connection, 'IN IP4 203.0.113.9');
  t.equal(readMsrpMedia(peerSdp()).cema, false);
  t.equal(readMsrpMedia(peerSdp({ cema: true })).cema, true);
});

t.test('offer reply: a=setup and a=msrp-cema lines, and refusals', async t => {
  const relay = new MsrpRelay({ port: 0, dial: { attempts: 1 } });
  await relay.listen();
  t.teardown(() => relay.close());
  let n = 0;
  // Passive offers get dialed: at loopback port 9, where nobody listens; closing the
  // relay at the end cancels any attempt still running.
  const cases: Array<[string, Parameters<typeof peerSdp>[0], 'active' | 'passive' | RegExp]> = [
    ['no a=setup', {}, 'passive'],
    ['active', { setup: 'active' }, 'passive'],
    ['actpass', { setup: 'actpass' }, 'passive'],
    ['passive', { setup: 'passive' }, 'active'],
    ['passive, CEMA', { setup: 'passive', cema: true, port: 9, c: 'IN IP4 127.0.0.1' }, 'active'],
    ['active, CEMA, c= 0.0.0.0: nobody connects to it', { setup: 'active', cema: true, c: 'IN IP4 0.0.0.0' }, 'passive'],
    ['passive, CEMA, c= 0.0.0.0', { setup: 'passive', cema: true, c: 'IN IP4 0.0.0.0' }, /c=IN IP4 0\.0\.0\.0: the unspecified address/],
    ['passive, CEMA, c= IN IP6 with an IPv4 address', { setup: 'passive', cema: true, c: 'IN IP6 192.0.2.1' }, /not IP6/],
    ['passive, CEMA, no c=', { setup: 'passive', cema: true, c: null }, /without a c= line/],
    ['active, CEMA, c= garbage', { setup: 'active', cema: true, c: 'IN IP9 x' }, /expected "IN IP4/],
  ];
  for (const [name, o, expect] of cases) {
    const r = relay.offer({ 'call-id': `o${++n}`, sdp: peerSdp({ path: 'msrp://127.0.0.1:9/abc;tcp', ...o }) });
    if (expect instanceof RegExp) {
      t.match(r, { result: 'error', 'error-code': 'BAD_SDP', 'error-reason': expect }, name);
      continue;
    }
    if (r.result !== 'ok') {
      t.fail(`${name}: ${r['error-reason']}`);
      continue;
    }
    t.same(line(r.sdp, 'setup'), [`a=setup:${expect}`], `${name}: answer a=setup:${expect}`);
    t.same(line(r.sdp, 'msrp-cema'), ['a=msrp-cema'], `${name}: answer has a=msrp-cema`);
    t.same(line(r['device-sdp'], 'setup'), ['a=setup:passive'], `${name}: device offer passive`);
    t.same(line(r['device-sdp'], 'msrp-cema'), ['a=msrp-cema'], `${name}: device offer has a=msrp-cema`);
    t.notOk(r.warnings, `${name}: no warning`);
  }
  t.equal(relay.sessionCount, n - 4, 'refused offers leave no session');
});

t.test('answer: a device that answers passive is refused', async t => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  t.teardown(() => relay.close());
  t.match(relay.offer({ 'call-id': 'a1', sdp: peerSdp() }), { result: 'ok' });
  const cases: Array<[string, Parameters<typeof peerSdp>[0], RegExp | 'ok' | 'warning']> = [
    ['active', { setup: 'active', path: 'msrp://192.0.2.20:1/d1;tcp' }, 'ok'],
    ['no a=setup', { path: 'msrp://192.0.2.20:1/d2;tcp' }, 'ok'],
    ['actpass', { setup: 'actpass', path: 'msrp://192.0.2.20:1/d3;tcp' }, 'warning'],
    ['passive', { setup: 'passive', path: 'msrp://192.0.2.20:1/d4;tcp' }, /a=setup:passive.*must be active/],
    ['CEMA, bad c=', { cema: true, c: 'IN IP4 300.1.1.1 x', path: 'msrp://192.0.2.20:1/d5;tcp' }, /expected "IN IP4/],
    ['CEMA, c= 0.0.0.0 (the relay does not connect to devices)', { cema: true, c: 'IN IP4 0.0.0.0', path: 'msrp://192.0.2.20:1/d6;tcp' }, 'ok'],
  ];
  let n = 0;
  for (const [name, o, expect] of cases) {
    const r = relay.answer({ 'call-id': 'a1', leg: `d${++n}`, sdp: peerSdp(o) });
    if (expect instanceof RegExp) t.match(r, { result: 'error', 'error-code': 'BAD_SDP', 'error-reason': expect }, name);
    else if (expect === 'warning') t.match(r, { result: 'ok', warnings: [/actpass/] }, name);
    else t.match(r, { result: 'ok', warnings: undefined }, name);
  }
  t.match(relay.query({ 'call-id': 'a1' }), { legs: [{ leg: 'originator' }, { leg: 'd1' }, { leg: 'd2' }, { leg: 'd3' }, { leg: 'd6' }] });
});
