/**
 * The B2BUA's SIP transport over real loopback sockets on free ports: a fake Kamailio
 * (a net.Server) on the outbound side, plain clients on the listener.
 */
import t, { type Test } from 'tap';
import { Buffer } from 'node:buffer';
import { once } from 'node:events';
import net from 'node:net';
import { guardedTransition, IllegalTransition } from '../../../../lib/fsm.js';
import { SipStreamFramer } from '../../../../plugin/b2bua/sip/framing.js';
import {
  isLoopback, OUTBOUND_NEXT, SipTcpTransport, type OutboundState, type SendFailure, type SipTcpTransportOptions,
} from '../../../../plugin/b2bua/sip/transport.js';
import { text } from './helpers.js';

const BODY = 'v=0\r\ns=Ünïcødé ✓ 😀\r\n';
const INVITE = text('INVITE sip:bob@127.0.0.1 SIP/2.0', ['Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1', 'CSeq: 1 INVITE'], BODY);
const OK = (n: number): string => text('SIP/2.0 200 OK', [`Via: SIP/2.0/TCP 127.0.0.1:5070;rport;branch=z9hG4bK${n}`, `CSeq: ${n} BYE`]);

/** A queue of values that a test awaits one by one (no sleeps). */
class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: ((v: T) => void)[] = [];
  push(v: T): void {
    const w = this.#waiters.shift();
    if (w) w(v);
    else this.#items.push(v);
  }
  next(): Promise<T> {
    const v = this.#items.shift();
    return v !== undefined ? Promise.resolve(v) : new Promise((resolve) => this.#waiters.push(resolve));
  }
  get size(): number {
    return this.#items.length;
  }
}

/** A fake Kamailio: accepts the transport's outbound connection, frames what arrives. */
class FakeKamailio {
  readonly messages = new Inbox<string>();
  readonly connections = new Inbox<net.Socket>();
  readonly sockets = new Set<net.Socket>();
  private constructor(readonly server: net.Server) {}
  static async start(): Promise<FakeKamailio> {
    const server = net.createServer();
    const k = new FakeKamailio(server);
    server.on('connection', (sock) => {
      k.sockets.add(sock);
      sock.once('close', () => k.sockets.delete(sock));
      const framer = new SipStreamFramer();
      sock.on('data', (c: Buffer) => {
        for (const m of framer.push(c).messages) k.messages.push(m);
      });
      k.connections.push(sock);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return k;
  }
  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port nobody listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function client(port: number): Promise<net.Socket> {
  const c = net.connect(port, '127.0.0.1');
  await once(c, 'connect');
  return c;
}

function stateReached(tr: SipTcpTransport, want: OutboundState): Promise<void> {
  return new Promise((resolve) => {
    if (tr.outboundState === want) return resolve();
    const on = (s: OutboundState): void => {
      if (s !== want) return;
      tr.off('outbound', on);
      resolve();
    };
    tr.on('outbound', on);
  });
}

interface Harness {
  tr: SipTcpTransport;
  kam: FakeKamailio;
  received: Inbox<string>;
  failures: Inbox<SendFailure>;
}

async function harness(t: Test, opts: Partial<SipTcpTransportOptions> = {}): Promise<Harness> {
  const kam = await FakeKamailio.start();
  const received = new Inbox<string>();
  const failures = new Inbox<SendFailure>();
  const tr = await SipTcpTransport.start(
    { proxyHost: '127.0.0.1', proxyPort: kam.port, onSendError: (f) => failures.push(f), ...opts },
    (m) => received.push(m),
  );
  t.teardown(async () => {
    await tr.close();
    await kam.close();
  });
  return { tr, kam, received, failures };
}

t.test('send: lazy connect, queued while connecting, one connection, in order', async (t) => {
  const { tr, kam } = await harness(t);
  t.equal(tr.outboundState, 'idle', 'no connection before the first send');
  t.ok(tr.port > 0, 'listening on a free port');
  tr.send(INVITE);
  tr.send(OK(1));
  t.equal(tr.outboundState, 'connecting');
  tr.send(OK(2));
  t.equal(await kam.messages.next(), INVITE, 'the UTF-8 body arrives whole');
  t.equal(await kam.messages.next(), OK(1));
  t.equal(await kam.messages.next(), OK(2));
  tr.send(OK(3));
  t.equal(await kam.messages.next(), OK(3), 'sent at once when open');
  t.equal(kam.sockets.size, 1, 'everything on one connection');
  t.equal(tr.counts.connects, 1);
  t.equal(tr.counts.reconnects, 0);
  t.equal(tr.counts.messagesOut, 4);
});

t.test('the listener: split messages, several per chunk, pings answered', async (t) => {
  const { tr, received } = await harness(t);
  const c = await client(tr.port);
  const pongs = once(c, 'data');
  const b = Buffer.from(`\r\n\r\n${INVITE}${OK(1)}`);
  for (let i = 0; i < b.length; i += 5) c.write(b.subarray(i, i + 5));
  t.equal(await received.next(), INVITE);
  t.equal(await received.next(), OK(1));
  const [pong] = (await pongs) as [Buffer];
  t.equal(pong.toString(), '\r\n', 'CRLF pong (RFC 5626 §4.4.1)');
  const d = await client(tr.port);
  d.write(OK(2) + OK(3));
  t.equal(await received.next(), OK(2), 'a second connection of Kamailio');
  t.equal(await received.next(), OK(3));
  t.equal(tr.counts.connectionsAccepted, 2);
  t.equal(tr.counts.messagesIn, 4);
  t.equal(tr.counts.pings, 1);
  c.destroy();
  d.destroy();
});

t.test('what Kamailio sends back on the outbound connection is delivered too (§18.2.2)', async (t) => {
  const { tr, kam, received } = await harness(t);
  tr.send(INVITE);
  const sock = await kam.connections.next();
  t.equal(await kam.messages.next(), INVITE);
  const pongs = once(sock, 'data');
  sock.write(`${OK(1)}\r\n\r\n`);
  t.equal(await received.next(), OK(1));
  const [pong] = (await pongs) as [Buffer];
  t.equal(pong.toString(), '\r\n', 'a ping on the outbound connection is answered there');
});

for (const how of ['end', 'destroy'] as const) {
  t.test(`reconnect after Kamailio closes the outbound connection (${how})`, async (t) => {
    const { tr, kam } = await harness(t);
    tr.send(OK(1));
    const first = await kam.connections.next();
    t.equal(await kam.messages.next(), OK(1));
    const idle = stateReached(tr, 'idle');
    first[how]();
    await idle;
    tr.send(OK(2));
    const second = await kam.connections.next();
    t.not(second, first, 'a new connection');
    t.equal(await kam.messages.next(), OK(2));
    t.equal(tr.counts.connects, 2);
    t.equal(tr.counts.reconnects, 1);
    t.equal(tr.counts.sendFailures, 0);
  });
}

t.test('connection refused: the queued sends are reported, the next send tries again after the backoff', async (t) => {
  const failures = new Inbox<SendFailure>();
  const tr = await SipTcpTransport.start(
    { proxyHost: '127.0.0.1', proxyPort: await deadPort(), backoffMs: { min: 5, max: 20 }, onSendError: (f) => failures.push(f) },
    () => {},
  );
  t.teardown(() => tr.close());
  tr.send(OK(1));
  tr.send(OK(2));
  const f1 = await failures.next();
  const f2 = await failures.next();
  t.same([f1.reason, f1.text, f2.reason, f2.text], ['connect-failed', OK(1), 'connect-failed', OK(2)]);
  t.equal(tr.outboundState, 'backoff');
  tr.send(OK(3));
  t.equal(tr.outboundState, 'backoff', 'queued during the backoff');
  const f3 = await failures.next();
  t.same([f3.reason, f3.text], ['connect-failed', OK(3)], 'tried again when the backoff ended');
  t.equal(tr.counts.connectFailures, 2);
  t.equal(tr.counts.sendFailures, 3);
});

t.test('sends that cannot be delivered are reported, never thrown', async (t) => {
  const { tr, failures } = await harness(t, { maxQueueBytes: 1000, maxMessageBytes: 600 });
  tr.send('x'.repeat(601));
  t.equal((await failures.next()).reason, 'too-large');
  tr.send('x'.repeat(600));
  tr.send('y'.repeat(500));
  const f = await failures.next();
  t.same([f.reason, f.text], ['queue-full', 'y'.repeat(500)], 'over maxQueueBytes while connecting');
  await tr.close();
  t.same((await failures.next()).reason, 'closed', 'the queued message fails when the transport closes');
  tr.send(OK(1));
  t.equal((await failures.next()).reason, 'closed', 'a send after close()');
  t.equal(tr.counts.sendFailures, 4);
});

t.test('the sends of one loop turn: one write, in order, each counted; close() still sends them', async (t) => {
  const { tr, kam } = await harness(t);
  tr.send(OK(0));
  t.equal(await kam.messages.next(), OK(0));
  const [sock] = kam.sockets;
  const chunks: Buffer[] = [];
  sock!.on('data', (c: Buffer) => chunks.push(c));
  for (let n = 1; n <= 50; n++) tr.send(OK(n));
  t.ok(tr.pendingBytes >= 50 * Buffer.byteLength(OK(1)), 'batched bytes count as pending');
  for (let n = 1; n <= 50; n++) t.equal(await kam.messages.next(), OK(n));
  t.equal(tr.counts.messagesOut, 51);
  t.ok(chunks.length < 50, `50 messages in ${chunks.length} chunk(s), not one write each`);
  tr.send(OK(51));
  tr.send(OK(52));
  await tr.close();
  t.equal(await kam.messages.next(), OK(51), 'sent in the turn of close()');
  t.equal(await kam.messages.next(), OK(52));
});

t.test("after Kamailio's FIN the next turn's sends go, in order, on a new connection", async (t) => {
  const { tr, kam } = await harness(t);
  tr.send(OK(1));
  t.equal(await kam.messages.next(), OK(1));
  const first = await kam.connections.next();
  const reconnected = stateReached(tr, 'idle');
  first.end();
  await reconnected;
  for (let n = 2; n <= 4; n++) tr.send(OK(n));
  for (let n = 2; n <= 4; n++) t.equal(await kam.messages.next(), OK(n));
  t.equal(tr.counts.reconnects, 1);
});

t.test('close() fails what is still queued', async (t) => {
  const failures = new Inbox<SendFailure>();
  // close() in the same tick as the send: the connect is still pending, the message queued.
  const tr = await SipTcpTransport.start({ proxyHost: '127.0.0.1', proxyPort: await deadPort(), onSendError: (f) => failures.push(f) }, () => {});
  tr.send(OK(1));
  const closed = tr.close();
  t.same((await failures.next()).reason, 'closed');
  await closed;
  t.equal(tr.outboundState, 'closed');
});

t.test('a garbage connection is closed; the others go on', async (t) => {
  const { tr, received } = await harness(t);
  const good = await client(tr.port);
  const bad = await client(tr.port);
  const badClosed = once(bad, 'close');
  bad.on('error', () => {});
  bad.write(`${OK(1)}GARBAGE AHEAD\r\n\r\n`);
  t.equal(await received.next(), OK(1), 'the message before the garbage is delivered');
  await badClosed;
  good.write(OK(2));
  t.equal(await received.next(), OK(2));
  const noLength = await client(tr.port);
  const noLengthClosed = once(noLength, 'close');
  noLength.on('error', () => {});
  noLength.write('OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n');
  await noLengthClosed;
  good.write(OK(3));
  t.equal(await received.next(), OK(3));
  t.equal(tr.counts.framingErrors, 2);
  t.equal(tr.counts.messagesIn, 3);
  t.equal(tr.connections, 1, 'only the good connection is left');
  good.destroy();
});

t.test('close() ends listener and connections and leaves no handles', async (t) => {
  const { tr, kam, received } = await harness(t);
  tr.send(OK(1));
  const kSock = await kam.connections.next();
  const kEnded = once(kSock, 'end');
  await kam.messages.next();
  const port = tr.port;
  const c = await client(port);
  c.write(OK(2));
  await received.next();
  const cClosed = once(c, 'close');
  await tr.close();
  await cClosed;
  await kEnded;
  t.pass('the outbound connection was ended (FIN), the inbound one closed');
  t.equal(tr.connections, 0);
  t.equal(tr.outboundState, 'closed');
  t.equal(tr.port, 0, 'not listening');
  await t.rejects(client(port), 'the listener is gone');
  t.equal(await tr.close(), undefined, 'close() again is a no-op');
  // Handles still open would keep this file's process alive: tap would time it out.
});

t.test('listenHost must be loopback', async (t) => {
  const cases: [string, boolean][] = [
    ['127.0.0.1', true], ['127.1.2.3', true], ['::1', true], ['::ffff:127.0.0.1', true], ['localhost', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.1', false], ['::ffff:10.0.0.1', false], ['example.net', false], ['', false],
  ];
  for (const [host, ok] of cases) t.equal(isLoopback(host), ok, host);
  await t.rejects(SipTcpTransport.start({ listenHost: '0.0.0.0', proxyHost: '127.0.0.1', proxyPort: 5060 }, () => {}), /loopback/);
  await t.rejects(SipTcpTransport.start({ proxyHost: '127.0.0.1', proxyPort: 0 }, () => {}), RangeError);
});

t.test('OUTBOUND_NEXT: legal and illegal moves through the one guard', async (t) => {
  const legal = new Set([
    'idle>connecting', 'idle>closed', 'connecting>open', 'connecting>backoff', 'connecting>closed',
    'open>idle', 'open>closed', 'backoff>idle', 'backoff>closed',
  ]);
  const states = Object.keys(OUTBOUND_NEXT) as OutboundState[];
  for (const from of states) {
    for (const to of states) {
      if (legal.has(`${from}>${to}`)) t.equal(guardedTransition('outbound', OUTBOUND_NEXT, from, to), to);
      else t.throws(() => guardedTransition('outbound', OUTBOUND_NEXT, from, to), IllegalTransition);
    }
  }
});
