import t from 'tap';
import net from 'node:net';
import { Type } from '@sinclair/typebox';
import { RpcServer, method, type RpcResponse } from '../../../plugin/rpc/server.js';
import { RpcCode } from '../../../plugin/errors.js';
import { RpcError } from '../../../wire/errors.js';
import { encodeNetstring, NetstringDecoder } from '../../../wire/netstring.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import { quietLog } from './fixtures/helpers.js';

/** Methods to exercise the dispatcher: echo, a slow one, failures. */
function methods() {
  return {
    echo: method(Type.Object({ v: Type.Literal(1), text: Type.String() }), (p) => ({ text: p.text })),
    slow: method(Type.Object({ ms: Type.Integer({ maximum: 1000 }) }), async (p) => {
      await new Promise((r) => setTimeout(r, p.ms));
      return { slept: p.ms };
    }),
    boom: method(Type.Object({}), () => {
      throw new Error('secret internal detail');
    }),
    dep: method(Type.Object({}), () => {
      throw new RpcError(RpcCode.DependencyFailed, 'XDM unavailable');
    }),
  };
}

t.test('dispatcher: JSON-RPC 2.0 errors', async (t) => {
  const metrics = new ServiceMetrics();
  // the server's own dispatcher (metrics hooked in), called in process: nothing listens
  const d = new RpcServer({ methods: methods(), log: quietLog, metrics, maxFrameBytes: 1024 }).dispatcher;
  const call = (x: unknown) => d.dispatch(typeof x === 'string' ? x : JSON.stringify(x));

  t.same(await call({ jsonrpc: '2.0', id: 1, method: 'echo', params: { v: 1, text: 'é' } }), {
    jsonrpc: '2.0',
    id: 1,
    result: { text: 'é' },
  });
  t.same(await call('{not json'), { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
  t.same(await call(''), { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
  const invalid = [
    'null',
    '42',
    '"str"',
    { id: 1, method: 'echo' },
    { jsonrpc: '1.0', id: 1, method: 'echo' },
    { jsonrpc: '2.0', id: 1, method: 5 },
    { jsonrpc: '2.0', id: 1, method: 'echo', params: 'x' },
    { jsonrpc: '2.0', id: { a: 1 }, method: 'echo' },
    [],
    [{ jsonrpc: '2.0', id: 1, method: 'echo', params: { v: 1, text: 'a' } }],
  ];
  for (const req of invalid) {
    const res = await call(req);
    t.equal(res?.error?.code, -32600, `invalid: ${JSON.stringify(req)}`);
  }
  // an invalid request keeps a valid id
  t.equal((await call({ jsonrpc: '2.0', id: 'x', method: 7 }))?.id, 'x');

  t.same(await call({ jsonrpc: '2.0', id: 2, method: 'nope' }), {
    jsonrpc: '2.0',
    id: 2,
    error: { code: -32601, message: 'Method not found' },
  });
  const wrongV = await call({ jsonrpc: '2.0', id: 3, method: 'echo', params: { v: 2, text: 'a' } });
  t.equal(wrongV?.error?.code, -32602);
  t.match(wrongV?.error?.data, /^\/v:/);
  t.equal((await call({ jsonrpc: '2.0', id: 4, method: 'echo' }))?.error?.code, -32602);
  t.equal((await call({ jsonrpc: '2.0', id: 4, method: 'echo', params: [1] }))?.error?.code, -32602);

  // an unexpected exception is -32603 without its message; RpcError keeps its code
  t.same(await call({ jsonrpc: '2.0', id: 5, method: 'boom', params: {} }), {
    jsonrpc: '2.0',
    id: 5,
    error: { code: -32603, message: 'Internal error' },
  });
  t.equal((await call({ jsonrpc: '2.0', id: 6, method: 'dep', params: {} }))?.error?.code, -32001);

  // notifications get no answer, even on error
  t.equal(await call({ jsonrpc: '2.0', method: 'echo', params: { v: 1, text: 'a' } }), null);
  t.equal(await call({ jsonrpc: '2.0', method: 'nope' }), null);
  t.equal(await call({ jsonrpc: '2.0', method: 'boom', params: {} }), null);

  t.equal(metrics.rpcRequests.get({ method: 'echo', outcome: 'ok' }), 2);
  t.equal(metrics.rpcRequests.get({ method: 'boom', outcome: '-32603' }), 2);
  t.equal(metrics.decisionSeconds.count({ method: 'echo' }), 2);
});

/** A netstring client over TCP that collects responses. */
class Client {
  readonly socket: net.Socket;
  private readonly decoder = new NetstringDecoder(1 << 20);
  readonly responses: RpcResponse[] = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) this.responses.push(JSON.parse(f.toString('utf8')) as RpcResponse);
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve()));
  }

  send(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  /** Wait until `n` responses arrived (bounded). */
  async waitFor(n: number, ms = 5000): Promise<RpcResponse[]> {
    const deadline = Date.now() + ms;
    while (this.responses.length < n) {
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${n} responses`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.waiters = [];
    }
    return this.responses;
  }
}

const req = (id: number | null, m: string, params: unknown): Buffer =>
  encodeNetstring(JSON.stringify(id === null ? { jsonrpc: '2.0', method: m, params } : { jsonrpc: '2.0', id, method: m, params }));

async function startServer(t: { teardown(fn: () => unknown): void }, maxFrameBytes = 1024) {
  const metrics = new ServiceMetrics();
  const server = new RpcServer({ methods: methods(), log: quietLog, metrics, maxFrameBytes });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { server, port, metrics };
}

t.test('TCP: pipelined requests, answered out of order, matched by id', async (t) => {
  const { port } = await startServer(t);
  const c = new Client(port);
  t.teardown(() => c.socket.destroy());
  // the slow one first: the fast one must not wait for it
  c.send(Buffer.concat([req(1, 'slow', { ms: 50 }), req(2, 'echo', { v: 1, text: 'fast' }), req(null, 'echo', { v: 1, text: 'n' })]));
  const res = await c.waitFor(2);
  t.same(
    res.map((r) => r.id),
    [2, 1],
  );
  t.same(res[1]?.result, { slept: 50 });
});

t.test('TCP: a request split into single bytes, and many frames in one write', async (t) => {
  const { port } = await startServer(t);
  const c = new Client(port);
  t.teardown(() => c.socket.destroy());
  const one = req(7, 'echo', { v: 1, text: 'é😀 split' });
  for (let i = 0; i < one.length; i++) c.send(one.subarray(i, i + 1));
  t.same((await c.waitFor(1))[0], { jsonrpc: '2.0', id: 7, result: { text: 'é😀 split' } });
  const many = Buffer.concat(Array.from({ length: 100 }, (_, i) => req(100 + i, 'echo', { v: 1, text: String(i) })));
  c.send(many);
  const all = await c.waitFor(101);
  t.same(new Set(all.slice(1).map((r) => r.id)).size, 100);
});

t.test('TCP: a bad payload inside a good frame keeps the connection', async (t) => {
  const { port } = await startServer(t);
  const c = new Client(port);
  t.teardown(() => c.socket.destroy());
  c.send(encodeNetstring('{"jsonrpc":'));
  c.send(encodeNetstring(Buffer.from([0xff, 0xfe, 0x00])));
  c.send(req(1, 'echo', { v: 1, text: 'still here' }));
  const res = await c.waitFor(3);
  t.same(
    res.map((r) => r.error?.code ?? 'ok'),
    [-32700, -32700, 'ok'],
  );
});

for (const [name, wire, code] of [
  ['garbage', 'GET / HTTP/1.1\r\n\r\n', 'NETSTRING_BAD_LENGTH'],
  ['leading zero', '007:abcdefg,', 'NETSTRING_LEADING_ZERO'],
  ['missing comma', '2:{}}', 'NETSTRING_NO_COMMA'],
  ['oversize', '99999999:', 'NETSTRING_TOO_LONG'],
] as const) {
  t.test(`TCP: malformed netstring (${name}) -> answers earlier frames, error with id null, close`, async (t) => {
    const { port, server, metrics } = await startServer(t);
    const c = new Client(port);
    t.teardown(() => c.socket.destroy());
    c.send(Buffer.concat([req(1, 'slow', { ms: 20 }), Buffer.from(wire)]));
    await c.closed;
    t.same(c.responses[0], { jsonrpc: '2.0', id: 1, result: { slept: 20 } });
    t.same(c.responses[1], {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: 'Invalid Request: malformed netstring', data: code },
    });
    t.equal(c.responses.length, 2);
    t.equal(metrics.rpcFramingErrors.get(), 1);
    // the server is still up for others
    t.ok(server.listening);
    const c2 = new Client(port);
    t.teardown(() => c2.socket.destroy());
    c2.send(req(9, 'echo', { v: 1, text: 'ok' }));
    t.equal((await c2.waitFor(1))[0]?.id, 9);
  });
}

t.test('TCP: a frame at the cap is served, one byte over is refused', async (t) => {
  const { port } = await startServer(t, 200);
  const base = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'echo', params: { v: 1, text: '' } });
  const fill = 'x'.repeat(200 - Buffer.byteLength(base));
  const c = new Client(port);
  t.teardown(() => c.socket.destroy());
  c.send(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'echo', params: { v: 1, text: fill } })));
  t.equal((await c.waitFor(1))[0]?.id, 1);
  c.send(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'echo', params: { v: 1, text: `${fill}x` } })));
  await c.closed;
  t.equal(c.responses[1]?.error?.data, 'NETSTRING_TOO_LONG');
});

t.test('TCP: a client that vanishes mid-request does not crash the server', async (t) => {
  const { port, server } = await startServer(t);
  const c = new Client(port);
  c.send(req(1, 'slow', { ms: 30 }));
  c.send('50:{"jsonrpc"');
  c.socket.destroy();
  await c.closed;
  const c2 = new Client(port);
  t.teardown(() => c2.socket.destroy());
  c2.send(req(2, 'slow', { ms: 40 }));
  t.equal((await c2.waitFor(1))[0]?.id, 2);
  t.ok(server.listening);
});
