// wire/: the JSON-RPC 2.0 dispatcher, server and client together, as a service uses them:
// id matching, timeouts, notifications both ways, close, in-process invoke, hooks.
import t from 'tap';
import net from 'node:net';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { JsonRpcClient } from '../../../wire/client.js';
import { JsonRpcDispatcher, method } from '../../../wire/dispatcher.js';
import { RpcError, WireError } from '../../../wire/errors.js';
import { JsonRpcServer, type RpcConnection, type ServerContext } from '../../../wire/server.js';

const log = pino({ level: 'silent' });

async function start(t: { teardown(fn: () => unknown): void }) {
  const watchers = new Set<RpcConnection>();
  const outcomes: string[] = [];
  const server = new JsonRpcServer({
    methods: {
      echo: method(Type.Object({ text: Type.String() }), (p) => ({ text: p.text })),
      slow: method(Type.Object({ ms: Type.Integer({ maximum: 1000 }) }), async (p) => {
        await new Promise((r) => setTimeout(r, p.ms));
        return { slept: p.ms };
      }),
      never: method(Type.Object({}), () => new Promise(() => undefined)),
      watch: method(Type.Object({}), (_p, conn: ServerContext) => {
        if (!conn) throw new RpcError(-32601, 'Method not found');
        watchers.add(conn);
        return true;
      }),
      shout: method(Type.Object({ text: Type.String() }), (p) => {
        server.notifyEach(watchers, 'heard', { text: p.text });
        return watchers.size;
      }),
      boom: method(Type.Object({}), () => {
        throw new Error('hidden');
      }),
    },
    log,
    maxFrameBytes: 1024,
    hooks: { outcome: (m, o) => outcomes.push(`${m}:${String(o)}`) },
    onClose: (conn) => watchers.delete(conn),
  });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { server, port, watchers, outcomes };
}

t.test('client: answers matched by id in any order, errors as RpcError', async (t) => {
  const { port, outcomes } = await start(t);
  const c = await JsonRpcClient.connect({ host: '127.0.0.1', port });
  t.teardown(() => c.close());
  const order: string[] = [];
  await Promise.all([
    c.request('slow', { ms: 30 }).then((r) => order.push(`slow ${JSON.stringify(r)}`)),
    c.request('echo', { text: 'é😀' }).then((r) => order.push(`echo ${JSON.stringify(r)}`)),
  ]);
  t.same(order, ['echo {"text":"é😀"}', 'slow {"slept":30}']);
  await t.rejects(c.request('nope', {}), { name: 'RpcError', code: -32601, message: 'Method not found' });
  await t.rejects(c.request('echo', { text: 5 }), { code: -32602, data: /^\/text/ });
  await t.rejects(c.request('boom', {}), { code: -32603, message: 'Internal error' });
  t.same(outcomes, ['echo:ok', 'slow:ok', '-:-32601', 'echo:-32602', 'boom:-32603']);
});

t.test('client: timeout, then the connection still works', async (t) => {
  const { port } = await start(t);
  const c = await JsonRpcClient.connect({ host: '127.0.0.1', port, timeoutMs: 50 });
  t.teardown(() => c.close());
  await t.rejects(c.request('never', {}), { name: 'WireError', code: 'RPC_TIMEOUT' });
  t.same(await c.request('echo', { text: 'after' }), { text: 'after' });
});

t.test('server-initiated notifications reach the connections that asked', async (t) => {
  const { port, watchers } = await start(t);
  const a = await JsonRpcClient.connect({ host: '127.0.0.1', port });
  const b = await JsonRpcClient.connect({ host: '127.0.0.1', port });
  const heardA: unknown[] = [];
  const heardB: unknown[] = [];
  a.onNotification((m, p) => heardA.push([m, p]));
  b.onNotification((m, p) => heardB.push([m, p]));
  t.equal(await a.request('watch', {}), true);
  t.equal(await b.request('shout', { text: 'hi' }), 1);
  // a's notification was written before b's answer; one more round trip on a orders it
  await a.request('echo', { text: 'sync' });
  t.same(heardA, [['heard', { text: 'hi' }]]);
  t.same(heardB, []);
  await a.close();
  await b.request('echo', { text: 'sync' });
  t.equal(watchers.size, 0, 'forgotten on close');
  await b.close();
});

t.test('client notifications get no answer; close rejects what is pending', async (t) => {
  const { port, outcomes } = await start(t);
  const c = await JsonRpcClient.connect({ host: '127.0.0.1', port });
  c.notify('echo', { text: 'n' });
  t.same(await c.request('echo', { text: 'r' }), { text: 'r' }, 'the notification got no answer in between');
  t.ok(outcomes.includes('echo:ok'));
  const pending = c.request('never', {});
  await c.close();
  await t.rejects(pending, { code: 'RPC_CLOSED' });
  await t.rejects(c.request('echo', { text: 'x' }), { code: 'RPC_CLOSED' });
});

t.test('client: nothing listening, and a peer that breaks framing', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const addr = probe.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => probe.close(() => r()));
  await t.rejects(JsonRpcClient.connect({ host: '127.0.0.1', port }), { name: 'WireError', code: 'RPC_CLOSED' });

  for (const [name, reply, code] of [
    ['bad netstring', '01:x,', 'NETSTRING_LEADING_ZERO'],
    ['not JSON', '3:{x},', 'RPC_BAD_MESSAGE'],
    ['not JSON-RPC', '7:{"a":1},', 'RPC_BAD_MESSAGE'],
  ] as const) {
    const rogue = net.createServer((s) => s.once('data', () => s.write(reply)));
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', () => r()));
    const ra = rogue.address();
    const c = await JsonRpcClient.connect({ host: '127.0.0.1', port: typeof ra === 'object' && ra ? ra.port : 0 });
    await t.rejects(c.request('echo', {}), { code }, name);
    await c.close();
    await new Promise<void>((r) => rogue.close(() => r()));
  }
});

t.test('dispatcher.invoke: the checks of the wire, in process', async (t) => {
  const d = new JsonRpcDispatcher({
    add: method(Type.Object({ a: Type.Number(), b: Type.Number() }), (p) => p.a + p.b),
  });
  t.equal(d.invoke('add', { a: 1, b: 2 }), 3);
  const cases: ReadonlyArray<readonly [string, string, unknown, number]> = [
    ['unknown method', 'sub', {}, -32601],
    ['missing param', 'add', { a: 1 }, -32602],
    ['wrong type', 'add', { a: 1, b: '2' }, -32602],
    ['no params', 'add', undefined, -32602],
    ['params a string', 'add', 'x', -32600],
    ['params null', 'add', null, -32600],
  ];
  for (const [name, m, params, code] of cases) {
    t.throws(() => d.invoke(m, params), { code }, name);
    const res = await d.dispatch(JSON.stringify({ jsonrpc: '2.0', id: 1, method: m, ...(params === undefined ? {} : { params }) }));
    t.equal(res?.error?.code, code, `${name}: same code through dispatch`);
  }
  t.ok(new RpcError(-32000, 'x') instanceof Error);
  t.ok(new WireError('RPC_TIMEOUT', 'x') instanceof Error);
});
