// msrps through the relay (RFC 4975 §6, TCP/TLS/MSRP): each leg on TLS or TCP on its own,
// real TLS connections with a certificate generated for this test.
import t from 'tap';
import { spawn } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { MsrpPeer } from '../../../media/client/peer.js';
import { readConfig } from '../../../media/main.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { makeCert, sdpFor, startRelayProcess } from './helpers.js';

function tlsSdp(path: string): string {
  return sdpFor(path).replace('TCP/MSRP', 'TCP/TLS/MSRP');
}

function pathOf(sdp: string): string {
  return /^a=path:(\S+)\r$/m.exec(sdp)![1]!;
}

t.test('msrps relay: TLS originator, one TLS and one TCP device, chunked both ways', async t => {
  const { key, cert } = makeCert(t.testdir(), 'relay');
  const relay = new MsrpRelay({ port: 0, tls: { key, cert } });
  const port = await relay.listen();
  t.teardown(() => relay.close());
  const tlsPort = relay.tlsListenPort;
  t.ok(tlsPort > 0 && tlsPort !== port, 'a separate TLS listener');

  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: tlsPort, tls: { ca: cert }, remotePath: 'msrps://127.0.0.1:1/x;tcp' });
  t.teardown(() => origin.close());
  t.match(origin.localUri, /^msrps:/);
  const o = relay.offer({ 'call-id': 'tls-1', sdp: tlsSdp(origin.localUri) });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.notOk(o.warnings, 'no warning when TLS is served');
  // RFC 4975 §8.1 / §6: TCP/TLS/MSRP with an msrps URI on the TLS port; RFC 4572 fingerprint.
  t.match(o.sdp, new RegExp(`^m=message ${tlsPort} TCP/TLS/MSRP \\*\\r$`, 'm'));
  t.match(o['relay-uri'], new RegExp(`^msrps://127\\.0\\.0\\.1:${tlsPort}/[^;]+;tcp$`));
  t.equal(pathOf(o.sdp), o['relay-uri']);
  t.match(o.sdp, `a=fingerprint:sha-256 ${new X509Certificate(cert).fingerprint256}\r\n`);
  t.match(o.sdp, /a=setup:passive/);
  // Devices are offered the originator's transport by default; both variants are given.
  t.equal(o['device-sdp'], o['device-sdp-tls']);
  t.equal(o['device-relay-uri'], o['device-relay-uri-tls']);
  t.match(o['device-sdp-tcp'], new RegExp(`^m=message ${port} TCP/MSRP \\*\\r$`, 'm'));
  t.notMatch(o['device-sdp-tcp'], /fingerprint/);
  t.match(o['device-relay-uri-tcp'], new RegExp(`^msrp://127\\.0\\.0\\.1:${port}/[^;]+;tcp$`));
  t.equal(pathOf(o['device-sdp-tcp']!), o['device-relay-uri-tcp']);

  origin.remotePath = o['relay-uri'];
  t.equal(await origin.bind(), 200);

  const d1 = await MsrpPeer.connect({ host: '127.0.0.1', port: tlsPort, tls: { ca: cert }, remotePath: o['device-relay-uri-tls']! });
  t.teardown(() => d1.close());
  const d2 = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: o['device-relay-uri-tcp']! });
  t.teardown(() => d2.close());
  const a1 = relay.answer({ 'call-id': 'tls-1', leg: 'd1', sdp: tlsSdp(d1.localUri) });
  const a2 = relay.answer({ 'call-id': 'tls-1', leg: 'd2', sdp: sdpFor(d2.localUri) });
  t.same([a1, a2], [{ result: 'ok', leg: 'd1' }, { result: 'ok', leg: 'd2' }]);
  t.equal(await d1.bind(), 200);
  t.equal(await d2.bind(), 200);

  // Originator (TLS) -> both devices, one message in 7 chunks, byte-exact.
  const body = randomBytes(6500);
  const sent = await origin.sendMessage(body, { contentType: 'application/octet-stream', chunkSize: 1000 });
  t.same(sent.statuses, [200, 200, 200, 200, 200, 200, 200]);
  const [m1, m2] = await Promise.all([d1.waitForMessage(), d2.waitForMessage()]);
  t.ok(m1.body.equals(body), 'TLS device got the bytes');
  t.ok(m2.body.equals(body), 'TCP device got the bytes');
  // Each leg sees the relay URI of its own transport as From-Path.
  t.equal(m1.fromPath, o['device-relay-uri-tls']);
  t.equal(m2.fromPath, o['device-relay-uri-tcp']);

  // TCP device -> TLS originator, chunked.
  const back = randomBytes(3000);
  const r = await d2.sendMessage(back, { contentType: 'application/octet-stream', chunkSize: 1024 });
  t.same(r.statuses, [200, 200, 200]);
  const mo = await origin.waitForMessage();
  t.ok(mo.body.equals(back), 'originator got the bytes');
  t.equal(mo.fromPath, o['relay-uri']);

  const q = relay.query({ 'call-id': 'tls-1' });
  t.same(q.result === 'ok' && q.legs.map(l => [l.leg, l.transport, l.state]), [
    ['originator', 'tls', 'connected'], ['d1', 'tls', 'connected'], ['d2', 'tcp', 'connected'],
  ]);

  // §6.1: msrp and msrps URIs differ. The TLS originator's session over plain TCP is refused,
  // and so is a TLS device's session-id reached over TCP by a device answered on TLS.
  const sid = /\/([^/;]+);tcp$/.exec(o['relay-uri'])![1]!;
  const plain = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: `msrp://127.0.0.1:${port}/${sid};tcp` });
  t.teardown(() => plain.close());
  t.equal(await plain.bind(), 481, 'TLS leg not reachable over TCP');
  const d3 = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: o['device-relay-uri-tcp']! });
  t.teardown(() => d3.close());
  t.same(relay.answer({ 'call-id': 'tls-1', leg: 'd3', sdp: tlsSdp(d3.localUri) }), { result: 'ok', leg: 'd3' });
  const r3 = await d3.sendMessage('x', { contentType: 'text/plain' });
  t.same(r3.statuses, [481], 'a TLS device leg does not take frames over TCP');
});

t.test('TLS offer without TLS configured: TCP answer with a warning', async t => {
  const relay = new MsrpRelay({ port: 0 });
  const port = await relay.listen();
  t.teardown(() => relay.close());
  t.equal(relay.tlsListenPort, 0);
  const o = relay.offer({ 'call-id': 'tls-2', sdp: tlsSdp('msrps://127.0.0.1:40000/abc;tcp') });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.match(o.warnings, [/TCP\/TLS\/MSRP.*no TLS configured/]);
  t.match(o.sdp, new RegExp(`^m=message ${port} TCP/MSRP \\*\\r$`, 'm'));
  t.match(o['relay-uri'], /^msrp:\/\//);
  t.notMatch(o.sdp, /fingerprint/);
  t.notOk('device-sdp-tls' in o, 'no TLS variant');
  const a = relay.answer({ 'call-id': 'tls-2', leg: 'd1', sdp: tlsSdp('msrps://127.0.0.1:40001/def;tcp') });
  t.match(a, { result: 'ok', leg: 'd1', warnings: [/no TLS configured/] });
  // A TCP offer gets no warning.
  const plain = relay.offer({ 'call-id': 'tls-3', sdp: sdpFor('msrp://127.0.0.1:40002/ghi;tcp') });
  t.equal(plain.result, 'ok');
  t.notOk('warnings' in plain);
});

t.test('TCP offer on a TLS relay stays TCP', async t => {
  const { key, cert } = makeCert(t.testdir(), 'relay');
  const relay = new MsrpRelay({ port: 0, tls: { key, cert } });
  const port = await relay.listen();
  t.teardown(() => relay.close());
  const o = relay.offer({ 'call-id': 'tls-4', sdp: sdpFor('msrp://127.0.0.1:40003/jkl;tcp') });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  t.match(o.sdp, new RegExp(`^m=message ${port} TCP/MSRP \\*\\r$`, 'm'));
  t.equal(o['device-sdp'], o['device-sdp-tcp'], 'devices offered TCP by default');
  t.match(o['device-sdp-tls'], /TCP\/TLS\/MSRP[\s\S]*a=fingerprint:sha-256 /);
});

t.test('readConfig: TLS flags and environment', async t => {
  t.notOk('tls' in readConfig([], {}), 'TLS off by default');
  t.same(readConfig(['--msrp-tls-cert', 'c.pem', '--msrp-tls-key', 'k.pem'], {}).tls, { cert: 'c.pem', key: 'k.pem', port: 2857 });
  t.same(readConfig([], { MSRP_TLS_CERT: 'c', MSRP_TLS_KEY: 'k', MSRP_TLS_PORT: '0' }).tls, { cert: 'c', key: 'k', port: 0 });
  t.same(readConfig(['--msrp-tls-port', '5061'], { MSRP_TLS_CERT: 'c', MSRP_TLS_KEY: 'k', MSRP_TLS_PORT: '0' }).tls, { cert: 'c', key: 'k', port: 5061 });
  t.throws(() => readConfig(['--msrp-tls-cert', 'c.pem'], {}), /go together/);
  t.throws(() => readConfig([], { MSRP_TLS_KEY: 'k' }), /go together/);
  t.throws(() => readConfig([], { MSRP_TLS_PORT: '2857' }), /needs msrp-tls-cert/);
  t.throws(() => readConfig([], { MSRP_TLS_CERT: 'c', MSRP_TLS_KEY: 'k', MSRP_TLS_PORT: 'x' }), /msrp-tls-port must be a port/);
});

t.test('bad certificate or key: refused at construction', async t => {
  const dir = t.testdir();
  const a = makeCert(dir, 'a');
  const b = makeCert(dir, 'b');
  t.throws(() => new MsrpRelay({ port: 0, tls: { key: b.key, cert: a.cert } }), /key values mismatch/);
  t.throws(() => new MsrpRelay({ port: 0, tls: { key: a.key, cert: Buffer.from('junk') } }));
});

t.test('process: TLS listener from the environment, refuses a mismatched key', async t => {
  const dir = t.testdir();
  const a = makeCert(dir, 'a');
  const b = makeCert(dir, 'b');
  const { child, ready } = await startRelayProcess<{ msrpPort: number; msrpTlsPort: number }>(
    ['--msrp-port', '0', '--control-port', '0', '--history', 'off'],
    { ...process.env, MSRP_TLS_CERT: a.certFile, MSRP_TLS_KEY: a.keyFile, MSRP_TLS_PORT: '0' },
  );
  t.ok(ready.msrpTlsPort > 0 && ready.msrpTlsPort !== ready.msrpPort);
  // A real handshake against the configured certificate.
  const peer = await new Promise<string | undefined>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: ready.msrpTlsPort, ca: a.cert }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
  t.equal(peer, new X509Certificate(a.cert).fingerprint256);
  t.equal(await new Promise<number | null>(resolve => {
    child.once('exit', c => resolve(c));
    child.kill('SIGTERM');
  }), 0, 'clean exit');

  const main = fileURLToPath(new URL('../../../media/main.ts', import.meta.url));
  const args = ['--import', 'tsx', main, '--msrp-port', '0', '--control-port', '0', '--history', 'off'];
  const bad = spawn(process.execPath, [...args, '--msrp-tls-cert', a.certFile, '--msrp-tls-key', b.keyFile, '--msrp-tls-port', '0'], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  t.equal(await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no exit')), 20000);
    bad.once('exit', c => { clearTimeout(timer); resolve(c); });
  }), 2, 'exit 2 on a key that does not match the certificate');
});
