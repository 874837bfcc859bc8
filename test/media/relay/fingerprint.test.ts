// msrps peers authenticated by their SDP fingerprint (RFC 4975 §14.1, RFC 8122 §5;
// media/relay/fingerprint.ts, binding.ts): over real TLS connections with certificates made
// for the test, a peer whose certificate matches its a=fingerprint is bound; one whose
// certificate does not, or that presents none, is closed and the relay logs the session
// and the reason; the leg still takes its real peer afterwards. The relay's own
// a=fingerprint is the certificate it serves.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MsrpPeer } from '../../../media/client/peer.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { certificateFingerprint, fingerprintMismatch, parseFingerprint } from '../../../media/relay/fingerprint.js';
import { makeCert, sdpFor } from './helpers.js';

const tlsSdp = (path: string, fingerprint?: string): string =>
  sdpFor(path).replace('TCP/MSRP', 'TCP/TLS/MSRP').replace('a=setup:', `${fingerprint ? `a=fingerprint:${fingerprint}\r\n` : ''}a=setup:`);
const sha256 = (pem: Buffer): string => `sha-256 ${new X509Certificate(pem).fingerprint256}`;

t.test('fingerprints: parse, compute, compare', async (t) => {
  const a = new X509Certificate(makeCert(t.testdir(), 'a').cert);
  const b = new X509Certificate(makeCert(t.testdir(), 'b').cert);
  t.equal(certificateFingerprint(a, 'sha-256'), a.fingerprint256);
  t.equal(certificateFingerprint(a, 'sha-1'), a.fingerprint);
  t.equal(certificateFingerprint(a, 'md5'), undefined, 'md5 is not accepted (RFC 8122 §5)');
  const cases: ReadonlyArray<readonly [string, string | undefined]> = [
    [`sha-256 ${a.fingerprint256}`, `sha-256 ${a.fingerprint256}`],
    [`SHA-256 ${a.fingerprint256.toLowerCase()}`, `sha-256 ${a.fingerprint256}`],
    ['sha-1 AB', 'sha-1 AB'],
    ['sha-256', undefined],
    ['sha-256 ABC', undefined],
    ['sha-256 AB::CD', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) {
    const f = parseFingerprint(text);
    t.equal(f ? `${f.hash} ${f.value}` : undefined, want, JSON.stringify(text));
  }
  const fa = parseFingerprint(`sha-256 ${a.fingerprint256}`)!;
  t.equal(fingerprintMismatch(fa, a), undefined, 'the same certificate');
  t.match(fingerprintMismatch(fa, b), /does not match/, 'another certificate');
  t.match(fingerprintMismatch(fa, undefined), /no certificate/, 'no certificate');
  t.match(fingerprintMismatch(parseFingerprint(`sha-1 ${a.fingerprint}`)!, a), undefined, 'sha-1 too');
  t.match(fingerprintMismatch(parseFingerprint('md5 AB:CD')!, a), /not supported/);
});

t.test('an msrps leg whose certificate does not match its fingerprint is closed and logged', async (t) => {
  const dir = t.testdir();
  const relayCert = makeCert(dir, 'relay');
  const alice = makeCert(dir, 'alice');
  const bob = makeCert(dir, 'bob');
  const mallory = makeCert(dir, 'mallory');
  const lines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => { lines.push(c.toString()); cb(); } }));
  const relay = new MsrpRelay({ port: 0, tls: relayCert, log });
  await relay.listen();
  t.teardown(() => relay.close());
  const tlsPort = relay.tlsListenPort;
  const connect = (who: { cert: Buffer; key: Buffer } | null, remotePath: string): Promise<MsrpPeer> =>
    MsrpPeer.connect({ host: '127.0.0.1', port: tlsPort, tls: { ca: relayCert.cert, ...(who ? { cert: who.cert, key: who.key } : {}) }, remotePath });
  const closed = (p: MsrpPeer): Promise<string> => p.bind(3000).then((s) => `status ${s}`, () => 'closed');

  // the originator presents the certificate its SDP names
  const origin = await connect(alice, 'msrps://127.0.0.1:1/x;tcp');
  t.teardown(() => origin.close());
  const o = relay.offer({ 'call-id': 'fp-1', sdp: tlsSdp(origin.localUri, sha256(alice.cert)) });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.match(o.sdp, `a=fingerprint:${sha256(relayCert.cert)}\r\n`, "the relay's own a=fingerprint is the certificate it serves");
  origin.remotePath = o['relay-uri'];
  t.equal(await origin.bind(), 200, 'a matching certificate is bound');

  // bob's answer names bob's certificate: mallory's connection, then one with no certificate, are refused
  // bob connects first (his a=path is his connection's URI) and binds last
  const real = await connect(bob, o['device-relay-uri-tls']!);
  t.teardown(() => real.close());
  const bobPath = real.localUri;
  t.same(relay.answer({ 'call-id': 'fp-1', leg: 'bob', sdp: tlsSdp(bobPath, sha256(bob.cert)) }), { result: 'ok', leg: 'bob' });
  // each claims bob's a=path as its From-Path
  const fake = await connect(mallory, o['device-relay-uri-tls']!);
  t.teardown(() => fake.close());
  fake.localUri = bobPath;
  t.equal(await closed(fake), 'closed', 'a certificate that does not match: the connection is closed');
  const bare = await connect(null, o['device-relay-uri-tls']!);
  t.teardown(() => bare.close());
  bare.localUri = bobPath;
  t.equal(await closed(bare), 'closed', 'no certificate: closed too');
  const refusals = lines.map((l) => JSON.parse(l) as { msg: string; 'call-id'?: string; leg?: string; reason?: string }).filter((l) => l.msg === 'msrps connection refused');
  t.match(refusals, [
    { 'call-id': 'fp-1', leg: 'bob', reason: /does not match its a=fingerprint/ },
    { 'call-id': 'fp-1', leg: 'bob', reason: /no certificate/ },
  ], 'the relay logs the session, the leg and the reason');
  const q = relay.query({ 'call-id': 'fp-1' });
  t.same(q.result === 'ok' && q.legs.map((l) => [l.leg, l.state]), [['originator', 'connected'], ['bob', 'waiting']], 'the leg waits for its real peer');

  // the real bob is bound and gets the originator's message
  t.equal(await real.bind(), 200, "bob's own certificate is bound");
  await origin.sendMessage('hello bob', { contentType: 'text/plain' });
  t.equal((await real.waitForMessage()).body.toString(), 'hello bob');
});
