// Control protocol: JSON-RPC 2.0 over netstrings, events to subscribers; history hook.
import t from 'tap';
import net from 'node:net';
import { MsrpPeer, buildCpim } from '../../../media/client/peer.js';
import { ControlServer, RelayControl } from '../../../media/relay/control.js';
import { NetstringDecoder, encodeNetstring } from '../../../media/relay/netstring.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { LmdbMessageStore } from '../../../media/history/store.js';
import { sdpFor } from './helpers.js';

class Client {
  private readonly dec = new NetstringDecoder();
  readonly inbox: Array<Record<string, unknown>> = [];
  private waiters: Array<{ match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }> = [];
  closed = false;
  private id = 0;
  constructor(readonly sock: net.Socket) {
    sock.on('data', d => {
      for (const b of this.dec.push(d)) {
        const m = JSON.parse(b.toString()) as Record<string, unknown>;
        this.inbox.push(m);
        for (const w of [...this.waiters]) if (w.match(m)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(m); }
      }
    });
    sock.on('close', () => { this.closed = true; });
  }
  static async open(port: number): Promise<Client> {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise(r => s.once('connect', r));
    return new Client(s);
  }
  wait(match: (m: Record<string, unknown>) => boolean, ms = 5000): Promise<Record<string, unknown>> {
    const hit = this.inbox.find(match);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply')), ms);
      this.waiters.push({ match, resolve: m => { clearTimeout(timer); resolve(m); } });
    });
  }
  async call(method: string, params?: unknown): Promise<Record<string, unknown>> {
    const id = ++this.id;
    this.sock.write(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id, method, params })));
    return this.wait(m => m.id === id);
  }
}

t.test('netstring codec', async t => {
  const d = new NetstringDecoder(100);
  const enc = encodeNetstring('{"a":"é"}');
  t.equal(enc.toString(), '10:{"a":"é"},');
  const parts = [...enc].map(b => Buffer.from([b]));
  const got = parts.flatMap(p => d.push(p));
  t.same(got.map(b => b.toString()), ['{"a":"é"}'], 'byte-at-a-time');
  t.same(new NetstringDecoder().push(Buffer.from('0:,3:abc,')).map(String), ['', 'abc']);
  t.throws(() => new NetstringDecoder().push(Buffer.from('3:abcX')), { code: 'NETSTRING_BAD_TERMINATOR' });
  t.throws(() => new NetstringDecoder().push(Buffer.from('x:')), { code: 'NETSTRING_BAD_LENGTH' });
  t.throws(() => new NetstringDecoder(10).push(Buffer.from('11:')), { code: 'NETSTRING_TOO_LARGE' });
  t.throws(() => new NetstringDecoder().push(Buffer.from('12345678901')), { code: 'NETSTRING_BAD_LENGTH' });
});

t.test('in-process verbs validate params', async t => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  const c = new RelayControl(relay);
  t.match(c.call('offer', { 'call-id': 'x' }), { result: 'error', 'error-code': 'BAD_PARAMS' });
  t.match(c.call('offer', { 'call-id': 'x', sdp: 'garbage' }), { result: 'error', 'error-code': 'BAD_SDP' });
  t.match(c.call('offer', { 'call-id': 'x', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp'), policy: 'Z' }), { result: 'error', 'error-code': 'BAD_PARAMS' });
  t.match(c.call('offer', { 'call-id': 'x', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp', 'passive') }), { result: 'ok', warnings: [/passive/] });
  t.match(c.call('offer', { 'call-id': 'x', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp') }), { result: 'error', 'error-code': 'SESSION_EXISTS' });
  t.match(c.call('answer', { 'call-id': 'nope', leg: 'd', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { 'error-code': 'UNKNOWN_SESSION' });
  t.match(c.call('answer', { 'call-id': 'x', leg: 'd', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { result: 'ok' });
  t.match(c.call('answer', { 'call-id': 'x', leg: 'd', sdp: sdpFor('msrp://127.0.0.1:9/c;tcp') }), { 'error-code': 'LEG_EXISTS' });
  t.match(c.call('answer', { 'call-id': 'x', leg: 'e', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { 'error-code': 'LEG_EXISTS' }, 'same path twice');
  t.match(c.call('drop', { 'call-id': 'x', leg: 'zz' }), { 'error-code': 'UNKNOWN_LEG' });
  t.match(c.call('frobnicate', {}), { 'error-code': 'UNKNOWN_METHOD' });
  t.match(c.call('query', { 'call-id': 'x' }), { result: 'ok', policy: 'C', legs: [{ leg: 'originator', state: 'waiting' }, { leg: 'd' }] });
  t.match(c.call('delete', { 'call-id': 'x' }), { result: 'ok' });
  t.match(c.call('delete', { 'call-id': 'x' }), { 'error-code': 'UNKNOWN_SESSION' });
  await relay.close();
});

t.test('JSON-RPC over netstring TCP, events, history', async t => {
  const dir = `${t.testdir()}/h.mdb`;
  const store = new LmdbMessageStore(dir);
  const relay = new MsrpRelay({ port: 0, store });
  const port = await relay.listen();
  const server = new ControlServer(relay);
  const cport = await server.listen();
  const cli = await Client.open(cport);
  t.match(await cli.call('subscribe'), { result: { result: 'ok' } });
  t.match(await cli.call('ping', {}), { result: { result: 'ok', sessions: 0 } });
  t.match(await cli.call('nosuch', {}), { error: { code: -32601 } });
  cli.sock.write(encodeNetstring('{not json'));
  await cli.wait(m => (m.error as { code?: number } | undefined)?.code === -32700);
  cli.sock.write(encodeNetstring('[1,2]'));
  await cli.wait(m => (m.error as { code?: number } | undefined)?.code === -32600);

  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  const offer = await cli.call('offer', {
    'call-id': 'c1', sdp: sdpFor(origin.localUri), policy: 'B', record: true,
    'conversation-id': 'conv-9', 'contribution-id': 'contrib-9', 'served-user': 'sip:bob@example.net',
  });
  const r = offer.result as Record<string, string>;
  t.equal(r.result, 'ok');
  t.match(r.sdp, /a=path:msrp:\/\/127\.0\.0\.1:\d+\/[\w-]+;tcp\r\n/);
  t.match(r.sdp, /a=setup:passive/);
  t.match(r.sdp, /a=accept-types:message\/cpim application\/im-iscomposing\+xml/);
  t.match(r.sdp, /a=accept-wrapped-types:text\/plain message\/imdn\+xml/);
  t.match(r.sdp, new RegExp(`m=message ${port} TCP/MSRP`));
  t.match(r['device-sdp'], r['device-relay-uri']!);
  origin.remotePath = r['relay-uri']!;
  await origin.bind();
  await cli.wait(m => m.method === 'event' && (m.params as Record<string, string>).leg === 'originator');

  const dev = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: r['device-relay-uri']! });
  t.match(await cli.call('answer', { 'call-id': 'c1', leg: 'tag-1', sdp: sdpFor(dev.localUri) }), { result: { result: 'ok', leg: 'tag-1' } });
  await dev.bind();
  t.match(await cli.wait(m => m.method === 'event' && (m.params as Record<string, string>).event === 'leg-connected' && (m.params as Record<string, string>).leg === 'tag-1'),
    { jsonrpc: '2.0', params: { 'call-id': 'c1' } });
  t.notOk('id' in (cli.inbox.find(m => m.method === 'event') ?? {}), 'events are notifications');

  const chat = buildCpim({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', body: 'hello 😀' });
  const s1 = await origin.sendMessage(chat, { chunkSize: 10 });
  await dev.waitForMessage(m => m.messageId === s1.messageId);
  const imdn = buildCpim({ from: 'sip:bob@example.net', to: 'sip:alice@example.net', body: '<imdn/>', contentType: 'message/imdn+xml' });
  const s2 = await dev.sendMessage(imdn);
  await origin.waitForMessage(m => m.messageId === s2.messageId);
  const ic = buildCpim({ from: 'sip:bob@example.net', to: 'sip:alice@example.net', body: '<c/>', contentType: 'application/im-iscomposing+xml' });
  const s3 = await dev.sendMessage(ic);
  await origin.waitForMessage(m => m.messageId === s3.messageId);
  await cli.wait(m => m.method === 'event' && (m.params as Record<string, string>).event === 'first-active');

  const q = await cli.call('query', { 'call-id': 'c1' });
  t.match(q, { result: { result: 'ok', 'first-active': 'tag-1', legs: [{ leg: 'originator', 'frames-in': Number }, { leg: 'tag-1' }] } });
  t.match(await cli.call('delete', { 'call-id': 'c1' }), { result: { result: 'ok' } });
  await cli.wait(m => m.method === 'event' && (m.params as Record<string, string>).event === 'leg-closed');
  await relay.flushHistory();
  // History: session info + chat + IMDN (isComposing is not recorded), as message/cpim.
  const objs = await store.list({ conversationId: 'conv-9', contributionId: 'contrib-9' });
  t.same(objs.map(o => o.contentType), ['Application/X-CPM-Session', 'message/cpim', 'message/cpim']);
  t.ok(objs[1]!.data.equals(chat), 'chat stored byte for byte (reassembled from 10-byte chunks)');
  t.ok(objs[2]!.data.equals(imdn), 'IMDN stored');
  // A broken netstring closes only that control connection.
  cli.sock.write('zz:');
  await new Promise<void>(resolve => (cli.closed ? resolve() : cli.sock.once('close', () => resolve())));
  const cli2 = await Client.open(cport);
  t.match(await cli2.call('ping', {}), { result: { result: 'ok' } });
  cli2.sock.destroy();
  await origin.close();
  await dev.close();
  await server.close();
  await relay.close();
  await store.close();
});
