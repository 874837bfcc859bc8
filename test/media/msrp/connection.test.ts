// Resource attacks and backpressure at the connection layer, on real loopback sockets.
import { Buffer } from 'node:buffer';
import t, { type Test } from 'tap';
import type { MsrpConnection } from '../../../media/msrp/connection.js';
import { MsrpEndpoint } from '../../../media/msrp/endpoint.js';
import { MsrpError } from '../../../media/msrp/errors.js';
import { buildRequest, serializeFrame } from '../../../media/msrp/serializer.js';
import type { ConnectionOptions } from '../../../media/msrp/types.js';
import { once, rawClient, sendFrame } from '../../fixtures/msrp/helpers.js';

async function setup(t: Test, connection: ConnectionOptions): Promise<{ ep: MsrpEndpoint; port: number }> {
  const ep = new MsrpEndpoint({ connection });
  const port = await ep.listen();
  t.teardown(() => ep.close());
  return { ep, port };
}

/** Server side of the next accepted connection, bound by the client's empty SEND. */
async function boundServerConn(ep: MsrpEndpoint, port: number, pauseClient: boolean) {
  const got = new Promise<MsrpConnection>((resolve) => {
    ep.addSession('sessA', {
      frameStart: (conn) => {
        resolve(conn as MsrpConnection);
        return undefined;
      },
      body: () => undefined,
      frameEnd: () => undefined,
    });
  });
  const c = await rawClient(port);
  c.send(sendFrame('bind0001', 'sessA', port));
  if (pauseClient) c.socket.pause();
  const conn = await got;
  return { c, conn };
}

function bigFrame(n: number): Buffer {
  const f = buildRequest({
    method: 'SEND',
    toPath: 'msrp://127.0.0.1:1/peer;tcp',
    fromPath: 'msrp://127.0.0.1:2/sessA;tcp',
    contentType: 'application/octet-stream',
    body: Buffer.alloc(n, 0x42),
  });
  return serializeFrame(f);
}

t.test('peer that never reads: queue bounded, then closed with MSRP_QUEUE_OVERFLOW', async (t) => {
  const maxQueuedBytes = 1024 * 1024;
  const highWaterMark = 128 * 1024;
  const { ep, port } = await setup(t, { maxQueuedBytes, highWaterMark });
  const { c, conn } = await boundServerConn(ep, port, true);
  t.teardown(() => c.socket.destroy());
  const frame = bigFrame(64 * 1024);
  global.gc?.();
  const before = process.memoryUsage();
  const closed = once<[Error | undefined]>(conn, 'close', 10_000);
  let firstFalseAt = -1;
  let written = 0;
  let overBound = 0;
  // Keep writing (ignoring false) like a broken producer would; at most 256 MiB.
  for (let i = 0; i < 4096 && !conn.closed; i++) {
    const ok = conn.write(frame);
    written += frame.length;
    if (!ok && firstFalseAt < 0) {
      firstFalseAt = i;
      t.ok(conn.queuedBytes <= highWaterMark + frame.length, `write() false once above high-water (${conn.queuedBytes})`);
    }
    if (conn.queuedBytes > maxQueuedBytes + frame.length) overBound++;
  }
  t.equal(overBound, 0, 'queue never past the bound');
  t.ok(firstFalseAt >= 0, 'write() returned false');
  t.ok(conn.closed, `connection closed after ${written} bytes offered`);
  t.ok(conn.peakQueuedBytes <= maxQueuedBytes + frame.length, `peak queue ${conn.peakQueuedBytes} <= ${maxQueuedBytes} + one frame`);
  const [err] = await closed;
  t.ok(err instanceof MsrpError && err.code === 'MSRP_QUEUE_OVERFLOW', 'closed with MSRP_QUEUE_OVERFLOW');
  t.equal(conn.write(frame), false, 'writes after close are refused');
  const after = process.memoryUsage();
  const grew = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  t.ok(grew < 32 * 1024 * 1024, `memory growth ${(grew / 1048576).toFixed(1)} MiB stays bounded`);
  t.ok(written < 256 * 1024 * 1024, 'closed well before the producer gave up');
});

t.test('slow reader: write() false, then drain once the peer reads', async (t) => {
  const { ep, port } = await setup(t, { highWaterMark: 64 * 1024, maxQueuedBytes: 64 * 1024 * 1024 });
  const { c, conn } = await boundServerConn(ep, port, true);
  t.teardown(() => c.socket.destroy());
  const frame = bigFrame(32 * 1024);
  let i = 0;
  while (conn.write(frame)) {
    if (++i > 4096) break;
  }
  t.ok(i <= 4096, 'write() returned false');
  const drained = once(conn, 'drain', 10_000);
  c.socket.resume();
  await drained;
  t.ok(conn.queuedBytes <= 64 * 1024, 'queue below high-water after drain');
  t.notOk(conn.closed);
});

t.test('slowloris: head never completes -> header timeout closes it', async (t) => {
  const { ep, port } = await setup(t, { headerTimeoutMs: 300 });
  const closed = new Promise<Error | undefined>((resolve) => ep.once('connection', (conn) => conn.once('close', resolve)));
  const c = await rawClient(port);
  // Drip one header byte at a time: data keeps flowing, the head never ends.
  const drip = `MSRP slow0001 SEND\r\nTo-Path: msrp://127.0.0.1:${port}/sessA;tcp\r\nX-Drip: ${'a'.repeat(200)}`;
  let k = 0;
  const timer = setInterval(() => {
    if (k < drip.length && !c.socket.destroyed) c.socket.write(drip[k++]!);
  }, 20);
  t.teardown(() => clearInterval(timer));
  const err = await Promise.race([closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000).unref())]);
  clearInterval(timer);
  t.ok(err instanceof MsrpError && err.code === 'MSRP_HEADER_TIMEOUT', 'closed with MSRP_HEADER_TIMEOUT');
  t.ok(k < drip.length, `closed after ${k} dripped bytes`);
  await c.closed();
});

t.test('slowloris: oversized head -> 400 (paths known) and close, memory capped by the limit', async (t) => {
  const { ep, port } = await setup(t, { limits: { maxHeaderBlock: 4096 }, headerTimeoutMs: 0 });
  let code = '';
  ep.on('protocolError', (_c, err) => (code = err.code));
  const c = await rawClient(port);
  c.send(`MSRP huge0001 SEND\r\nTo-Path: msrp://127.0.0.1:${port}/sessA;tcp\r\nFrom-Path: msrp://127.0.0.1:1/p;tcp\r\n`);
  c.send(`X-Pad: ${'p'.repeat(100_000)}`);
  const f = await c.nextFrame();
  t.equal(f.head.kind === 'response' && f.head.status, 400);
  await c.closed();
  t.equal(code, 'MSRP_HEADER_TOO_LARGE');
});

t.test('idle connection closed by idle timeout', async (t) => {
  const { ep, port } = await setup(t, { idleTimeoutMs: 200 });
  const closed = new Promise<Error | undefined>((resolve) => ep.once('connection', (conn) => conn.once('close', resolve)));
  const c = await rawClient(port);
  const err = await Promise.race([closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000).unref())]);
  t.ok(err instanceof MsrpError && err.code === 'MSRP_IDLE_TIMEOUT');
  await c.closed();
});

t.test('a complete head in time clears the header timer', async (t) => {
  const { ep, port } = await setup(t, { headerTimeoutMs: 200 });
  let gotBody: () => void = () => undefined;
  const bodyArrived = new Promise<void>((resolve) => (gotBody = resolve));
  ep.addSession('sessA', { frameStart: () => undefined, body: () => gotBody(), frameEnd: () => undefined });
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  // A body that takes long: only the head is under the header timer.
  const head = `MSRP long0001 SEND\r\nTo-Path: msrp://127.0.0.1:${port}/sessA;tcp\r\nFrom-Path: msrp://127.0.0.1:1/p;tcp\r\nContent-Type: text/plain\r\n\r\n`;
  c.send(head + 'part one '.repeat(10));
  // the body finishes after the header timeout would have fired
  await Promise.race([bodyArrived, new Promise((_r, reject) => setTimeout(() => reject(new Error('no body')), 3000).unref())]);
  setTimeout(() => c.send('part two\r\n-------long0001$\r\n'), 400).unref();
  const f = await c.nextFrame(3000);
  t.equal(f.head.kind === 'response' && f.head.status, 200);
});

t.test('silent connection (connects, sends nothing) closed by the header timeout', async (t) => {
  const { ep, port } = await setup(t, { headerTimeoutMs: 200 });
  const closed = new Promise<Error | undefined>((resolve) => ep.once('connection', (conn) => conn.once('close', resolve)));
  const c = await rawClient(port);
  const err = await Promise.race([closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000).unref())]);
  t.ok(err instanceof MsrpError && err.code === 'MSRP_HEADER_TIMEOUT');
  await c.closed();
});

t.test('maxConnections refuses connections past the cap', async (t) => {
  const ep = new MsrpEndpoint({ maxConnections: 1 });
  const port = await ep.listen();
  t.teardown(() => ep.close());
  ep.addSession('sessA', { frameStart: () => undefined, body: () => undefined, frameEnd: () => undefined });
  const a = await rawClient(port);
  t.teardown(() => a.socket.destroy());
  a.send(sendFrame('cap00001', 'sessA', port));
  await a.nextFrame();
  const b = await rawClient(port);
  await b.closed();
  t.equal(ep.connections.size, 1);
});
