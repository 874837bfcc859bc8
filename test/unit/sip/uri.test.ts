import t from 'tap';
import { identityKey, isAnonymousIdentity, parseNameAddr, parseParams, parseUri } from '../../../plugin/sip/uri.js';

t.test('parseNameAddr', async (t) => {
  const cases: [string, unknown][] = [
    ['<sip:alice@example.net>', { display: null, uri: 'sip:alice@example.net', params: {} }],
    ['"Alice \\"A\\"" <sip:alice@example.net>;tag=1', { display: 'Alice "A"', uri: 'sip:alice@example.net', params: { tag: '1' } }],
    ['Alice <sip:alice@example.net;transport=tcp>;+sip.instance="<urn:uuid:1>";Audio', { display: 'Alice', uri: 'sip:alice@example.net;transport=tcp', params: { '+sip.instance': '<urn:uuid:1>', audio: true } }],
    ['sip:alice@example.net;tag=1', { display: null, uri: 'sip:alice@example.net', params: { tag: '1' } }],
    ['tel:+1555', { display: null, uri: 'tel:+1555', params: {} }],
    ['', null],
    ['<sip:x', null],
    ['"unterminated <sip:x>', null],
    ['"x" sip:a@b', null],
    ['<>', null],
    ['a b c', null],
    ['<sip:x>;p="unterminated', null],
  ];
  for (const [v, want] of cases) t.same(parseNameAddr(v), want, v);
});

t.test('parseParams drops __proto__', async (t) => {
  const p = parseParams(';__proto__=x;a=1');
  t.same(p, { a: '1' });
  t.equal(Object.getPrototypeOf(p), Object.prototype);
});

t.test('parseUri', async (t) => {
  t.same(parseUri('sip:Alice@EXAMPLE.net:5061;transport=tls?subject=x'), { scheme: 'sip', user: 'Alice', host: 'example.net', port: 5061, params: { transport: 'tls' } });
  t.same(parseUri('SIPS:[::1]:5061'), { scheme: 'sips', user: null, host: '[::1]', port: 5061, params: {} });
  t.same(parseUri('tel:+1-555-(000).1;phone-context=x'), { scheme: 'tel', number: '+15550001', params: { 'phone-context': 'x' } });
  t.same(parseUri('sip:%61lice@x'), { scheme: 'sip', user: 'alice', host: 'x', port: null, params: {} });
  for (const bad of ['', 'http://x', 'sip:', 'tel:', 'tel:abc-xyz', 'sip:a@b c', 'nocolon', ':x']) t.equal(parseUri(bad), null, bad);
});

t.test('identityKey: RFC 3261 §19.1.4 comparison and tel equivalence', async (t) => {
  const same: [string, string][] = [
    ['tel:+15550001', 'sip:+15550001@example.net;user=phone'],
    ['tel:+1-555-000-1', 'sip:+1(555)0001@other.net;user=phone'],
    ['tel:+15550001', 'sip:+15550001@example.net'],
    ['sip:alice@example.net', 'sip:alice@EXAMPLE.NET'],
    ['sip:alice@example.net', 'sips:alice@example.net'],
    ['sip:alice@example.net', 'sip:alice@example.net;transport=tcp'],
    ['sip:%61lice@example.net', 'sip:alice@example.net'],
  ];
  for (const [a, b] of same) t.equal(identityKey(a), identityKey(b), `${a} == ${b}`);
  const diff: [string, string][] = [
    ['sip:alice@example.net', 'sip:Alice@example.net'],
    ['sip:alice@example.net', 'sip:alice@example.net:5070'],
    ['tel:+15550001', 'tel:+15550002'],
    ['tel:5550001', 'tel:+5550001'],
    ['sip:+15550001@example.net;user=ip', 'tel:+15550001'],
  ];
  for (const [a, b] of diff) t.not(identityKey(a), identityKey(b), `${a} != ${b}`);
  t.equal(identityKey('mailto:x@y'), null);
});

t.test('anonymous identities (RFC 3323, RFC 3325)', async (t) => {
  const cases: [string, boolean][] = [
    ['<sip:anonymous@anonymous.invalid>', true],
    ['"Anonymous" <sip:anonymous@anonymous.invalid>', true],
    ['"anonymous" <sip:thisis@example.net>', true],
    ['<sip:Anonymous@example.net>', true],
    ['<sip:x@ANONYMOUS.INVALID>', true],
    ['<sip:alice@example.net>', false],
    ['<tel:+1555>', false],
  ];
  for (const [v, want] of cases) {
    const na = parseNameAddr(v);
    if (!na) throw new Error(v);
    t.equal(isAnonymousIdentity(na), want, v);
  }
});
