// Endpoint on real loopback sockets: binding (§5.4), shared connections, automatic
// responses and Failure-Report (§7.2), 481/400/413/501, REPORT routing, TLS.
import { Buffer } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { MsrpEndpoint } from '../../../media/msrp/endpoint.js';
import { getHeader } from '../../../media/msrp/headers.js';
import type { ContinuationFlag, FrameHead, MsrpConnectionLike, SessionSink } from '../../../media/msrp/types.js';
import { MsrpPeer } from '../../../media/client/peer.js';
import { rawClient, sendFrame } from '../../fixtures/msrp/helpers.js';

interface Rec {
  sink: SessionSink;
  starts: Array<{ conn: MsrpConnectionLike; head: FrameHead }>;
  bodies: Buffer[];
  ends: ContinuationFlag[];
}

function recorder(refuse?: (h: FrameHead) => number | undefined): Rec {
  const r: Rec = {
    starts: [],
    bodies: [],
    ends: [],
    sink: {
      frameStart: (conn, head) => {
        r.starts.push({ conn, head });
        return refuse?.(head);
      },
      body: (_c, p) => {
        r.bodies.push(Buffer.from(p));
      },
      frameEnd: (_c, _h, flag) => {
        r.ends.push(flag);
      },
    },
  };
  return r;
}

async function setup(t: Test, opts: ConstructorParameters<typeof MsrpEndpoint>[0] = {}): Promise<{ ep: MsrpEndpoint; port: number }> {
  const ep = new MsrpEndpoint(opts);
  const port = await ep.listen();
  t.teardown(() => ep.close());
  return { ep, port };
}

t.test('empty SEND binds the connection and gets 200 (§5.4, §7.2)', async (t) => {
  const { ep, port } = await setup(t);
  const a = recorder();
  ep.addSession('sessA', a.sink);
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('bind0001', 'sessA', port));
  const resp = await c.nextFrame();
  t.equal(resp.head.kind === 'response' && resp.head.status, 200);
  t.equal(resp.head.transactionId, 'bind0001');
  t.equal(getHeader(resp.head, 'To-Path'), 'msrp://127.0.0.1:1/peerbind0001;tcp');
  t.equal(getHeader(resp.head, 'From-Path'), `msrp://127.0.0.1:${port}/sessA;tcp`);
  t.equal(a.starts.length, 1);
  t.same([...a.starts[0]!.conn.sessions], ['sessA']);
  t.equal(ep.connectionsFor('sessA').length, 1);
  t.equal(ep.uriFor('sessA'), `msrp://127.0.0.1:${port}/sessA;tcp`);
});

t.test('unknown session gets 481; REPORT to it is dropped silently', async (t) => {
  const { ep, port } = await setup(t);
  let unknown = 0;
  ep.on('unknownSession', () => unknown++);
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('rep00001', 'nope', port).replace(' SEND', ' REPORT'));
  c.send(sendFrame('miss0001', 'nope', port, '', 'hello'));
  const resp = await c.nextFrame();
  t.equal(resp.head.transactionId, 'miss0001', 'REPORT was not answered');
  t.equal(resp.head.kind === 'response' && resp.head.status, 481);
  t.equal(unknown, 2);
});

t.test('several sessions share one connection', async (t) => {
  const { ep, port } = await setup(t);
  const a = recorder();
  const b = recorder();
  ep.addSession('sessA', a.sink);
  ep.addSession('sessB', b.sink);
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('shar0001', 'sessA', port, '', 'for A') + sendFrame('shar0002', 'sessB', port, '', 'for B ü'));
  const r1 = await c.nextFrame();
  const r2 = await c.nextFrame();
  t.same([r1.head.transactionId, r2.head.transactionId], ['shar0001', 'shar0002']);
  t.equal(Buffer.concat(a.bodies).toString(), 'for A');
  t.equal(Buffer.concat(b.bodies).toString(), 'for B ü');
  t.equal(a.starts[0]!.conn, b.starts[0]!.conn, 'same connection object');
  t.same([...a.starts[0]!.conn.sessions].sort(), ['sessA', 'sessB']);
});

t.test('Failure-Report: no -> no response at all; partial -> only errors', async (t) => {
  const { ep, port } = await setup(t);
  ep.addSession('sessA', recorder((h) => (getHeader(h, 'Content-Type') === 'image/x-bad' ? 415 : undefined)).sink);
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('frno0001', 'sessA', port, 'Failure-Report: no\r\n', 'x'));
  c.send(sendFrame('frpa0002', 'sessA', port, 'Failure-Report: partial\r\n', 'y'));
  c.send(sendFrame('frpa0003', 'sessA', port, 'Failure-Report: partial\r\n', 'z').replace('text/plain', 'image/x-bad'));
  c.send(sendFrame('frye0004', 'sessA', port, 'Failure-Report: yes\r\n', 'w'));
  // TCP keeps order: the responses that exist arrive in request order.
  const got = [await c.nextFrame(), await c.nextFrame()].map((f) => `${f.head.transactionId}:${f.head.kind === 'response' ? f.head.status : '?'}`);
  t.same(got, ['frpa0003:415', 'frye0004:200']);
});

t.test('sink refusal (413) drops the body; unknown method 501; malformed paths 400', async (t) => {
  const { ep, port } = await setup(t);
  const a = recorder((h) => (getHeader(h, 'Byte-Range')?.endsWith('/999999') ? 413 : undefined));
  ep.addSession('sessA', a.sink);
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('big00001', 'sessA', port, '', 'zzz').replace(/Byte-Range: [^\r]+/, 'Byte-Range: 1-3/999999'));
  c.send(sendFrame('meth0001', 'sessA', port).replace(' SEND', ' NICKNAME'));
  c.send(sendFrame('path0001', 'sessA', port).replace(/From-Path: [^\r]+/, 'From-Path: msrp://127.0.0.1:1/x;tcp').replace(/To-Path: [^\r]+/, 'To-Path: sip:bad'));
  c.send(sendFrame('brng0001', 'sessA', port, '', 'q').replace(/Byte-Range: [^\r]+/, 'Byte-Range: 9-1/2'));
  const st = [];
  for (let i = 0; i < 4; i++) {
    const f = await c.nextFrame();
    st.push(`${f.head.transactionId}:${f.head.kind === 'response' ? f.head.status : '?'}`);
  }
  t.same(st, ['big00001:413', 'meth0001:501', 'path0001:400', 'brng0001:400']);
  t.equal(a.bodies.length, 0, 'refused body not delivered');
  t.equal(a.ends.length, 0);
});

t.test('framing error with readable transaction id -> 400, then close', async (t) => {
  const { ep, port } = await setup(t);
  ep.addSession('sessA', recorder().sink);
  let protoErr = '';
  ep.on('protocolError', (_c, err) => (protoErr = err.code));
  const c = await rawClient(port);
  c.send(`MSRP bad00001 SEND\r\nTo-Path: msrp://127.0.0.1:${port}/sessA;tcp\r\nFrom-Path: msrp://127.0.0.1:1/p;tcp\r\nthis is not a header\r\n`);
  const f = await c.nextFrame();
  t.equal(f.head.kind === 'response' && f.head.status, 400);
  t.equal(f.head.transactionId, 'bad00001');
  await c.closed();
  t.equal(protoErr, 'MSRP_BAD_HEADER');
});

t.test('REPORT and responses are routed to the sink, never answered', async (t) => {
  const { ep, port } = await setup(t);
  const a = recorder();
  ep.addSession('sessA', a.sink);
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('rprt0001', 'sessA', port, 'Status: 000 200 OK\r\n').replace(' SEND', ' REPORT'));
  c.send(`MSRP resp0001 200 OK\r\nTo-Path: msrp://127.0.0.1:${port}/sessA;tcp\r\nFrom-Path: msrp://127.0.0.1:1/p;tcp\r\n-------resp0001$\r\n`);
  c.send(sendFrame('last0001', 'sessA', port));
  const f = await c.nextFrame();
  t.equal(f.head.transactionId, 'last0001', 'only the SEND was answered');
  t.same(a.starts.map((s) => (s.head.kind === 'request' ? s.head.method : s.head.status)), ['REPORT', 200, 'SEND']);
});

t.test('msrps: TLS endpoint with a certificate generated for this test', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'msrp-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  const key = readFileSync(join(dir, 'key.pem'));
  const cert = readFileSync(join(dir, 'cert.pem'));
  const dev = await MsrpPeer.listen({ tls: { key, cert } });
  t.teardown(() => dev.close());
  t.match(dev.localUri, /^msrps:\/\/127\.0\.0\.1:\d+\/[^;]+;tcp$/);
  const orig = await MsrpPeer.connect({ host: '127.0.0.1', port: dev.endpoint.port, tls: { ca: cert }, remotePath: dev.localUri });
  t.teardown(() => orig.close());
  t.equal(await orig.bind(), 200);
  const r = await orig.sendMessage('secret 🙂', { contentType: 'text/plain', chunkSize: 4 });
  t.same(r.statuses, [200, 200, 200]);
  t.equal((await dev.waitForMessage()).body.toString(), 'secret 🙂');
  // A client that opens TCP and never starts the TLS handshake is dropped.
  const strict = new MsrpEndpoint({ tls: { key, cert }, connection: { headerTimeoutMs: 300 } });
  const sport = await strict.listen();
  t.teardown(() => strict.close());
  const silent = await rawClient(sport);
  await silent.closed(5000);
  t.pass('silent TLS client closed by the handshake timeout');
});
