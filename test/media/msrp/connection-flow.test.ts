// The connection's own flow control, used by the relay's flow.ts: pause()/resume() of
// reading, cork()/uncork() of writing, and 'drain' below the high-water mark.
import net from 'node:net';
import t from 'tap';
import { MsrpConnection } from '../../../media/msrp/connection.js';
import { buildRequest, serializeFrame } from '../../../media/msrp/serializer.js';
import type { FrameHead } from '../../../media/msrp/types.js';

async function pair(): Promise<{ server: MsrpConnection; client: net.Socket; close(): void }> {
  let accepted!: (s: net.Socket) => void;
  const got = new Promise<net.Socket>(r => { accepted = r; });
  const srv = net.createServer(s => accepted(s));
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address() as net.AddressInfo;
  const client = net.connect({ host: '127.0.0.1', port: addr.port });
  const server = new MsrpConnection(await got);
  return { server, client, close: () => { client.destroy(); server.close(); srv.close(); } };
}

const frame = (tid: string): Buffer => serializeFrame(buildRequest({
  method: 'SEND', toPath: 'msrp://127.0.0.1:1/a;tcp', fromPath: 'msrp://127.0.0.1:2/b;tcp', transactionId: tid,
  headers: [{ name: 'Message-ID', value: tid }],
}));

t.test('pause() stops reading until resume()', async t => {
  const p = await pair();
  t.teardown(() => p.close());
  const seen: FrameHead[] = [];
  p.server.on('frameStart', h => seen.push(h));
  p.server.pause();
  t.ok(p.server.socket.isPaused(), 'paused');
  p.client.write(frame('tid00001'));
  p.server.resume();
  t.notOk(p.server.socket.isPaused(), 'reading again');
  await new Promise<void>(r => p.server.once('frameStart', () => r()));
  t.equal(seen.length, 1, 'the frame written while paused arrives after resume');
});

t.test('cork() holds writes until uncork(); refused once the socket is gone', async t => {
  const p = await pair();
  t.teardown(() => p.close());
  t.equal(p.server.cork(), true);
  t.equal(p.server.socket.writableCorked, 1, 'corked');
  p.server.write(Buffer.from('x'));
  t.equal(p.server.socket.writableLength, 1, 'held in the socket');
  p.server.uncork();
  t.equal(p.server.socket.writableCorked, 0, 'uncorked');
  p.server.socket.destroy();
  t.equal(p.server.cork(), false, 'no cork on a destroyed socket');
});

t.test("'drain' once the queue falls below the high-water mark", async t => {
  let accepted!: (s: net.Socket) => void;
  const got = new Promise<net.Socket>(r => { accepted = r; });
  const srv = net.createServer(s => accepted(s));
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', () => r()));
  const client = net.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });
  const server = new MsrpConnection(await got, { highWaterMark: 1024, maxQueuedBytes: 64 * 1024 * 1024 });
  t.teardown(() => { client.destroy(); server.close(); srv.close(); });
  client.pause();
  let ok = true;
  for (let i = 0; i < 4096 && ok; i++) ok = server.write(Buffer.alloc(16 * 1024));
  t.equal(ok, false, 'write() says wait above the mark');
  const drained = new Promise<void>(r => server.once('drain', () => r()));
  client.resume();
  await drained;
  t.pass('drain emitted once the peer read');
});
