// Control-port allowlists (wire/server.ts, docs/deployment.md "Threat model"): a JSON-RPC
// connection from a peer that is not allowed is closed before it is read, and counted;
// the service's RPC server and the relay's control port both use it. 127.0.0.2 is a
// loopback alias that needs no setup: the client binds its socket to it.
import t from 'tap';
import net from 'node:net';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { method } from '../../../wire/dispatcher.js';
import { netstringText } from '../../../wire/netstring.js';
import { JsonRpcServer, LOOPBACK_PEERS, peerAllowed, peerList, type RefusedReason } from '../../../wire/server.js';
import { RpcServer } from '../../../plugin/rpc/server.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { ControlServer } from '../../../media/relay/control.js';
import { readConfig } from '../../../media/config/load.js';
import { parseConfig } from '../../../plugin/config/load.js';

const log = pino({ level: 'silent' });
const PING = netstringText(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: {} }));

/** Connect from `from`, send one ping, and resolve with what came back before the close. */
function pingFrom(port: number, from: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    let got = '';
    s.on('connect', () => s.write(PING));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.endsWith(',')) s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
}

t.test('peerList and peerAllowed', async (t) => {
  const cases: ReadonlyArray<readonly [entries: readonly string[], address: string | undefined, allowed: boolean]> = [
    [LOOPBACK_PEERS, '127.0.0.1', true],
    [LOOPBACK_PEERS, '::1', true],
    [LOOPBACK_PEERS, '::ffff:127.0.0.1', true],
    [LOOPBACK_PEERS, '127.0.0.2', false],
    [LOOPBACK_PEERS, '10.0.0.1', false],
    [LOOPBACK_PEERS, undefined, false],
    [['10.1.0.0/16'], '10.1.200.3', true],
    [['10.1.0.0/16'], '10.2.0.1', false],
    [['10.1.0.0/16'], '::ffff:10.1.0.9', true],
    [['fd00::/8'], 'fd12::1', true],
    [['fd00::/8'], 'fe80::1', false],
    [['192.0.2.7'], '192.0.2.7', true],
  ];
  for (const [entries, address, allowed] of cases) {
    t.equal(peerAllowed(peerList(entries), address), allowed, `${entries.join(',')} ${String(address)}`);
  }
  for (const bad of ['localhost', '10.0.0.0/33', '::1/129', '1.2.3.4/8/1', '10.0.0.0/x', '']) {
    t.throws(() => peerList([bad]), /not an address/, bad);
  }
});

t.test('JSON-RPC from 127.0.0.2 when only 127.0.0.1 is allowed: closed unread, counted', async (t) => {
  const refused: RefusedReason[] = [];
  let called = 0;
  const server = new JsonRpcServer({
    methods: { ping: method(Type.Object({}), () => ++called) },
    log,
    maxFrameBytes: 1024,
    allowedPeers: ['127.0.0.1'],
    hooks: { connectionRefused: (r) => refused.push(r) },
  });
  const port = await server.listen(0, '0.0.0.0');
  t.teardown(() => server.close());
  t.equal(await pingFrom(port, '127.0.0.2'), '', 'no answer');
  t.equal(called, 0, 'the request never reached its method');
  t.same(refused, ['peer']);
  t.equal(server.refused, 1);
  t.match(await pingFrom(port, '127.0.0.1'), /"result":1/, 'an allowed peer is answered');
  t.equal(server.refused, 1);
});

t.test('default: loopback 127.0.0.1 only, 127.0.0.2 refused', async (t) => {
  const server = new JsonRpcServer({ methods: { ping: method(Type.Object({}), () => 'pong') }, log, maxFrameBytes: 1024 });
  const port = await server.listen(0, '0.0.0.0');
  t.teardown(() => server.close());
  t.equal(await pingFrom(port, '127.0.0.2'), '');
  t.match(await pingFrom(port, '127.0.0.1'), /pong/);
  t.equal(server.refused, 1);
});

t.test('maxConnections: one more is closed at once, counted as limit', async (t) => {
  const refused: RefusedReason[] = [];
  const server = new JsonRpcServer({
    methods: { ping: method(Type.Object({}), () => 'pong') }, log, maxFrameBytes: 1024, maxConnections: 1,
    hooks: { connectionRefused: (r) => refused.push(r) },
  });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const first = net.connect({ host: '127.0.0.1', port });
  t.teardown(() => first.destroy());
  await new Promise((r) => first.once('connect', r));
  // the server has the first once it answers on it
  first.write(PING);
  await new Promise((r) => first.once('data', r));
  t.equal(await pingFrom(port, '127.0.0.1'), '', 'second connection closed unanswered');
  t.same(refused, ['limit']);
  first.destroy();
  await new Promise((r) => first.once('close', r));
  // the server sees the close after the client does: wait until it has room again
  while (server.connections > 0) await new Promise((r) => setImmediate(r));
  t.match(await pingFrom(port, '127.0.0.1'), /pong/, 'room again once the first has gone');
});

t.test('the service: pf_rpc_connections_refused_total; config rpc.allowedPeers', async (t) => {
  const metrics = new ServiceMetrics();
  const rpc = new RpcServer({
    methods: { ping: method(Type.Object({}), () => 'pong') }, log, metrics, maxFrameBytes: 1024, allowedPeers: ['127.0.0.1'],
  });
  const port = await rpc.listen(0, '0.0.0.0');
  t.teardown(() => rpc.close());
  t.equal(await pingFrom(port, '127.0.0.2'), '');
  t.match(metrics.registry.render(), /^pf_rpc_connections_refused_total\{reason="peer"\} 1$/m);
  t.same(parseConfig({}).rpc.allowedPeers, ['127.0.0.1', '::1'], 'loopback by default');
  t.same(parseConfig({ rpc: { allowedPeers: ['10.0.0.5', '10.1.0.0/24'] } }).rpc.allowedPeers, ['10.0.0.5', '10.1.0.0/24']);
  t.throws(() => parseConfig({ rpc: { allowedPeers: ['kamailio.local'] } }), /\/rpc\/allowedPeers: not an address/);
});

t.test('the relay control port: 127.0.0.2 refused, counted in ping; config control-allowed-peers', async (t) => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  t.teardown(() => relay.close());
  const control = new ControlServer(relay, { host: '0.0.0.0', port: 0, allowedPeers: ['127.0.0.1'] });
  const port = await control.listen();
  t.teardown(() => control.close());
  t.equal(await pingFrom(port, '127.0.0.2'), '');
  t.equal(control.refusedConnections, 1);
  t.match(await pingFrom(port, '127.0.0.1'), /"refused-connections":1/);
  t.notOk('controlAllowedPeers' in readConfig([], {}), 'loopback by default');
  t.same(readConfig([], { RELAY_CONTROL_ALLOWED_PEERS: '10.0.0.5, 10.0.1.0/24' }).controlAllowedPeers, ['10.0.0.5', '10.0.1.0/24']);
  t.same(readConfig(['--control-allowed-peers', '::1'], {}).controlAllowedPeers, ['::1']);
  t.throws(() => readConfig(['--control-allowed-peers', 'b2bua.local'], {}), /control-allowed-peers: not an address/);
});

t.test('maxInflight: one request more than the limit is answered -32002 at once, with its id', async (t) => {
  const outcomes: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const server = new JsonRpcServer({
    methods: {
      wait: method(Type.Object({}), async () => {
        await gate;
        return 'done';
      }),
    },
    log, maxFrameBytes: 1024, maxInflight: 2,
    hooks: { outcome: (m, o) => outcomes.push(`${m}:${String(o)}`) },
  });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const s = net.connect({ host: '127.0.0.1', port });
  t.teardown(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  let got = '';
  const answers = (n: number): Promise<Array<{ id: unknown; result?: unknown; error?: { code: number; message: string } }>> =>
    new Promise((resolve) => {
      const check = (): void => {
        const frames = [...got.matchAll(/\d+:(\{.*?\}),(?=\d|$)/g)].map((m) => JSON.parse(m[1]!) as { id: unknown });
        if (frames.length >= n) {
          s.off('data', onData);
          resolve(frames as Array<{ id: unknown; result?: unknown; error?: { code: number; message: string } }>);
        }
      };
      const onData = (d: Buffer): void => {
        got += d.toString();
        check();
      };
      s.on('data', onData);
      check();
    });
  const req = (id: number | null): string =>
    netstringText(JSON.stringify(id === null ? { jsonrpc: '2.0', method: 'wait', params: {} } : { jsonrpc: '2.0', id, method: 'wait', params: {} }));
  // two in flight, then a notification and a request over the limit
  s.write(req(1) + req(2) + req(null) + req(3));
  const [busy] = await answers(1);
  t.match(busy, { id: 3, error: { code: -32002, message: /busy: 2 requests in flight/ } }, 'the third request is refused at once');
  release();
  const all = await answers(3);
  t.same(all.slice(1).map((a) => [a.id, a.result]).sort(), [[1, 'done'], [2, 'done']], 'the two in flight are answered');
  t.same(outcomes.filter((o) => o.endsWith('-32002')), ['-:-32002', '-:-32002'], 'both refusals counted (the notification unanswered)');
});
