// Control protocol: JSON-RPC 2.0 over netstrings (wire/), the typed client, events to
// subscribers, history hook; the same refusal in process and over TCP.
import t from 'tap';
import net from 'node:net';
import { MsrpPeer, buildCpim } from '../../../media/client/peer.js';
import { ControlServer, RelayControl } from '../../../media/relay/control.js';
import { RelayControlClient } from '../../../media/relay/control-client.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import type { RelayEvent } from '../../../media/relay/types.js';
import { LmdbMessageStore } from '../../../media/history/store.js';
import { JsonRpcClient } from '../../../wire/client.js';
import { RpcError } from '../../../wire/errors.js';
import { NetstringDecoder, encodeNetstring } from '../../../wire/netstring.js';
import { sdpFor } from './helpers.js';

/** A raw netstring connection, for what a well-behaved client never sends. */
class RawPeer {
  private readonly dec = new NetstringDecoder(1 << 20);
  readonly inbox: Array<Record<string, unknown>> = [];
  private waiters: Array<{ match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }> = [];
  readonly closed: Promise<void>;
  constructor(readonly sock: net.Socket) {
    sock.on('data', d => {
      for (const b of this.dec.push(d)) {
        const m = JSON.parse(b.toString()) as Record<string, unknown>;
        this.inbox.push(m);
        for (const w of [...this.waiters]) if (w.match(m)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(m); }
      }
    });
    this.closed = new Promise(resolve => sock.once('close', () => resolve()));
  }
  static async open(port: number): Promise<RawPeer> {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise(r => s.once('connect', r));
    return new RawPeer(s);
  }
  wait(match: (m: Record<string, unknown>) => boolean, ms = 5000): Promise<Record<string, unknown>> {
    const hit = this.inbox.find(match);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply')), ms);
      this.waiters.push({ match, resolve: m => { clearTimeout(timer); resolve(m); } });
    });
  }
}

const errorCode = (m: Record<string, unknown> | undefined): number | undefined => (m?.error as { code?: number } | undefined)?.code;

/** Events collected from a subscription, awaited by predicate. */
function eventLog(): { seen: RelayEvent[]; push(e: RelayEvent): void; wait(match: (e: RelayEvent) => boolean, ms?: number): Promise<RelayEvent> } {
  const seen: RelayEvent[] = [];
  const waiters: Array<{ match: (e: RelayEvent) => boolean; resolve: (e: RelayEvent) => void }> = [];
  return {
    seen,
    push(e) {
      seen.push(e);
      for (const w of [...waiters]) if (w.match(e)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(e); }
    },
    wait(match, ms = 5000) {
      const hit = seen.find(match);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no event')), ms);
        waiters.push({ match, resolve: e => { clearTimeout(timer); resolve(e); } });
      });
    },
  };
}

// The relay's netstring codec cases (formerly here) are in test/unit/wire/netstring.test.ts.

t.test('in-process verbs validate params', async t => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  const c = new RelayControl(relay);
  t.throws(() => c.call('offer', { 'call-id': 'x' }), { name: 'RpcError', code: -32602, data: /sdp/ });
  t.match(c.call('offer', { 'call-id': 'x', sdp: 'garbage' }), { result: 'error', 'error-code': 'BAD_SDP' });
  t.throws(() => c.call('offer', { 'call-id': 'x', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp'), policy: 'Z' }), { code: -32602, data: /^\/policy/ });
  // A passive offer is answered active and dialed (RFC 4145 §4.1); no warning any more.
  t.match(c.call('offer', { 'call-id': 'x', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp', 'passive') }), { result: 'ok', sdp: /a=setup:active/, warnings: undefined });
  t.match(c.call('offer', { 'call-id': 'x', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp') }), { result: 'error', 'error-code': 'SESSION_EXISTS' });
  t.match(c.call('answer', { 'call-id': 'nope', leg: 'd', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { 'error-code': 'UNKNOWN_SESSION' });
  t.match(c.call('answer', { 'call-id': 'x', leg: 'd', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { result: 'ok' });
  t.match(c.call('answer', { 'call-id': 'x', leg: 'd', sdp: sdpFor('msrp://127.0.0.1:9/c;tcp') }), { 'error-code': 'LEG_EXISTS' });
  t.match(c.call('answer', { 'call-id': 'x', leg: 'e', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { 'error-code': 'LEG_EXISTS' }, 'same path twice');
  t.match(c.call('drop', { 'call-id': 'x', leg: 'zz' }), { 'error-code': 'UNKNOWN_LEG' });
  t.throws(() => c.call('frobnicate', {}), { name: 'RpcError', code: -32601, message: 'Method not found' });
  t.throws(() => c.call('subscribe', {}), { code: -32601 }, "subscribe is the network transport's own");
  t.match(c.call('query', { 'call-id': 'x' }), { result: 'ok', policy: 'C', legs: [{ leg: 'originator', state: 'waiting' }, { leg: 'd' }] });
  t.match(c.call('ping'), { result: 'ok', sessions: 1 });
  t.match(c.call('delete', { 'call-id': 'x' }), { result: 'ok' });
  t.match(c.call('delete', { 'call-id': 'x' }), { 'error-code': 'UNKNOWN_SESSION' });
  await relay.close();
});

/** Requests refused before their verb runs: [name, verb, params, JSON-RPC code]. */
const refused: ReadonlyArray<readonly [string, string, unknown, number]> = [
  ['unknown verb', 'frobnicate', {}, -32601],
  ['unknown verb, no params', 'nosuch', undefined, -32601],
  ['subscribe is no verb in process', 'subscribe', {}, -32601],
  ['offer without sdp', 'offer', { 'call-id': 'x' }, -32602],
  ['offer with a bad policy', 'offer', { 'call-id': 'x', sdp: 'v=0', policy: 'Z' }, -32602],
  ['answer without leg', 'answer', { 'call-id': 'x', sdp: 'v=0' }, -32602],
  ['drop with an empty call-id', 'drop', { 'call-id': '', leg: 'a' }, -32602],
  ['delete with a numeric call-id', 'delete', { 'call-id': 7 }, -32602],
  ['query with params as array', 'query', ['x'], -32602],
  ['params a string', 'query', 'x', -32600],
  ['params a number', 'ping', 5, -32600],
];

t.test('unknown verbs and bad params: the same error in process and over TCP', async t => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  const server = new ControlServer(relay);
  const cport = await server.listen();
  const inProcess = new RelayControl(relay);
  const raw = await RawPeer.open(cport);
  let id = 0;
  for (const [name, verb, params, code] of refused) {
    let local: RpcError | undefined;
    try {
      inProcess.call(verb, params);
    } catch (err) {
      if (err instanceof RpcError) local = err;
    }
    t.equal(local?.code, code, `${name}: in process`);
    const rid = ++id;
    raw.sock.write(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: rid, method: verb, ...(params === undefined ? {} : { params }) })));
    const m = await raw.wait(x => x.id === rid);
    // subscribe exists over TCP: the one verb that differs, by design
    if (verb === 'subscribe') {
      t.match(m, { result: { result: 'ok' } }, `${name}: over TCP it subscribes`);
      continue;
    }
    t.same(m.error, { code: local?.code, message: local?.message, ...(local?.data === undefined ? {} : { data: local.data }) }, `${name}: same over TCP`);
  }
  const rpc = await JsonRpcClient.connect({ host: '127.0.0.1', port: cport });
  await t.rejects(rpc.request('frobnicate', {}), { name: 'RpcError', code: -32601 }, 'wire client: unknown verb');
  await t.rejects(rpc.request('offer', { 'call-id': 'x' }), { name: 'RpcError', code: -32602 }, 'wire client: bad params');
  const typed = await RelayControlClient.connect('127.0.0.1', cport);
  // a caller that gets around the types is refused the same way
  await t.rejects(typed.offer({ 'call-id': 'x' } as unknown as Parameters<RelayControlClient['offer']>[0]), { code: -32602 }, 'typed client: bad params');
  t.equal(relay.sessionCount, 0, 'nothing was created');
  raw.sock.destroy();
  await rpc.close();
  await typed.close();
  await server.close();
  await relay.close();
});

t.test('bad input never crashes the control server', async t => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  const server = new ControlServer(relay, { maxMessage: 4096 });
  const cport = await server.listen();
  // bad payloads inside good frames: answered, the connection stays
  const p = await RawPeer.open(cport);
  const frames: ReadonlyArray<readonly [string, number]> = [
    ['{not json', -32700],
    ['', -32700],
    ['[1,2]', -32600],
    ['[{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}]', -32600],
    ['"just a string"', -32600],
    ['{"jsonrpc":"2.0","id":{},"method":"ping"}', -32600],
    ['{"jsonrpc":"1.0","id":2,"method":"ping"}', -32600],
    ['{"jsonrpc":"2.0","id":3,"method":"query","params":"x"}', -32600],
  ];
  for (const [payload] of frames) p.sock.write(encodeNetstring(payload));
  p.sock.write(encodeNetstring(Buffer.from([0xff, 0xfe, 0x00])));
  p.sock.write(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping', params: {} })));
  await p.wait(m => m.id === 99);
  t.same(p.inbox.slice(0, frames.length + 1).map(errorCode), [...frames.map(([, code]) => code), -32700]);
  t.match(p.inbox[frames.length + 1], { id: 99, result: { result: 'ok' } }, 'still served');
  // framing errors: earlier requests answered, one error with id null, then closed
  for (const [name, wire, code] of [
    ['garbage', 'GET / HTTP/1.1\r\n\r\n', 'NETSTRING_BAD_LENGTH'],
    ['leading zero', '01:x,', 'NETSTRING_LEADING_ZERO'],
    ['oversize', '4097:', 'NETSTRING_TOO_LONG'],
    ['missing comma', '2:{}}', 'NETSTRING_NO_COMMA'],
  ] as const) {
    const bad = await RawPeer.open(cport);
    bad.sock.write(Buffer.concat([encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: {} })), Buffer.from(wire)]));
    await bad.closed;
    t.match(bad.inbox, [
      { id: 1, result: { result: 'ok' } },
      { id: null, error: { code: -32600, message: 'Invalid Request: malformed netstring', data: code } },
    ], name);
    t.equal(bad.inbox.length, 2, `${name}: nothing more`);
  }
  const after = await RelayControlClient.connect('127.0.0.1', cport);
  t.match(await after.ping(), { result: 'ok', sessions: 0 }, 'the server is still up');
  await after.close();
  p.sock.destroy();
  await server.close();
  await relay.close();
});

t.test('JSON-RPC over netstring TCP, events, history', async t => {
  const dir = `${t.testdir()}/h.mdb`;
  const store = new LmdbMessageStore(dir);
  const relay = new MsrpRelay({ port: 0, store });
  const port = await relay.listen();
  const server = new ControlServer(relay);
  const cport = await server.listen();
  const cli = await RelayControlClient.connect('127.0.0.1', cport);
  const events = eventLog();
  await cli.subscribe(e => events.push(e));
  t.match(await cli.ping(), { result: 'ok', sessions: 0 });
  // the raw protocol: events are notifications (no id), malformed payloads get errors
  const raw = await RawPeer.open(cport);
  raw.sock.write(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscribe' })));
  t.match(await raw.wait(m => m.id === 1), { result: { result: 'ok' } });
  raw.sock.write(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'nosuch', params: {} })));
  t.match(await raw.wait(m => m.id === 2), { error: { code: -32601 } });
  raw.sock.write(encodeNetstring('{not json'));
  await raw.wait(m => errorCode(m) === -32700);
  raw.sock.write(encodeNetstring('[1,2]'));
  await raw.wait(m => errorCode(m) === -32600);

  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  const r = await cli.offer({
    'call-id': 'c1', sdp: sdpFor(origin.localUri), policy: 'B', record: true,
    'conversation-id': 'conv-9', 'contribution-id': 'contrib-9', 'served-user': 'sip:bob@example.net',
  });
  if (r.result !== 'ok') throw new Error(r['error-reason']);
  t.match(r.sdp, /a=path:msrp:\/\/127\.0\.0\.1:\d+\/[\w-]+;tcp\r\n/);
  t.match(r.sdp, /a=setup:passive/);
  t.match(r.sdp, /a=accept-types:message\/cpim application\/im-iscomposing\+xml/);
  t.match(r.sdp, /a=accept-wrapped-types:text\/plain message\/imdn\+xml/);
  t.match(r.sdp, new RegExp(`m=message ${port} TCP/MSRP`));
  t.match(r['device-sdp'], r['device-relay-uri']);
  origin.remotePath = r['relay-uri'];
  await origin.bind();
  await events.wait(e => 'leg' in e && e.leg === 'originator');

  const dev = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: r['device-relay-uri'] });
  t.match(await cli.answer({ 'call-id': 'c1', leg: 'tag-1', sdp: sdpFor(dev.localUri) }), { result: 'ok', leg: 'tag-1' });
  await dev.bind();
  t.match(await events.wait(e => e.event === 'leg-connected' && e.leg === 'tag-1'), { 'call-id': 'c1' });
  const note = await raw.wait(m => m.method === 'event');
  t.match(note, { jsonrpc: '2.0', method: 'event', params: { event: 'leg-connected' } });
  t.notOk('id' in note, 'events are notifications');

  const chat = buildCpim({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', body: 'hello 😀' });
  const s1 = await origin.sendMessage(chat, { chunkSize: 10 });
  await dev.waitForMessage(m => m.messageId === s1.messageId);
  const imdn = buildCpim({ from: 'sip:bob@example.net', to: 'sip:alice@example.net', body: '<imdn/>', contentType: 'message/imdn+xml' });
  const s2 = await dev.sendMessage(imdn);
  await origin.waitForMessage(m => m.messageId === s2.messageId);
  const ic = buildCpim({ from: 'sip:bob@example.net', to: 'sip:alice@example.net', body: '<c/>', contentType: 'application/im-iscomposing+xml' });
  const s3 = await dev.sendMessage(ic);
  await origin.waitForMessage(m => m.messageId === s3.messageId);
  await events.wait(e => e.event === 'first-active');

  t.match(await cli.query({ 'call-id': 'c1' }), { result: 'ok', 'first-active': 'tag-1', legs: [{ leg: 'originator', 'frames-in': Number }, { leg: 'tag-1' }] });
  t.match(await cli.delete({ 'call-id': 'c1' }), { result: 'ok' });
  await events.wait(e => e.event === 'leg-closed');
  await relay.flushHistory();
  // History: session info + chat + IMDN (isComposing is not recorded), as message/cpim.
  const objs = await store.list({ conversationId: 'conv-9', contributionId: 'contrib-9' });
  t.same(objs.map(o => o.contentType), ['Application/X-CPM-Session', 'message/cpim', 'message/cpim']);
  t.ok(objs[1]!.data.equals(chat), 'chat stored byte for byte (reassembled from 10-byte chunks)');
  t.ok(objs[2]!.data.equals(imdn), 'IMDN stored');
  // A broken netstring closes only that control connection.
  raw.sock.write('zz:');
  await raw.closed;
  t.match(await cli.ping(), { result: 'ok' }, 'the other connection is unaffected');
  const cli2 = await RelayControlClient.connect('127.0.0.1', cport);
  t.match(await cli2.ping(), { result: 'ok' });
  await cli2.close();
  await cli.close();
  await t.rejects(cli.ping(), { name: 'WireError', code: 'RPC_CLOSED' }, 'a closed client refuses');
  await origin.close();
  await dev.close();
  await server.close();
  await relay.close();
  await store.close();
});

t.test('typed client drop: the device leg is released (CR 8.3.2.1.4 4.A.i.2), refusals are replies', async t => {
  const relay = new MsrpRelay({ port: 0 });
  const port = await relay.listen();
  const server = new ControlServer(relay);
  const cli = await RelayControlClient.connect('127.0.0.1', await server.listen());
  t.teardown(async () => {
    await cli.close();
    await server.close();
    await relay.close();
  });
  const events = eventLog();
  await cli.subscribe(e => events.push(e));
  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  t.teardown(() => origin.close());
  const r = await cli.offer({ 'call-id': 'd1', sdp: sdpFor(origin.localUri), policy: 'B' });
  if (r.result !== 'ok') throw new Error(r['error-reason']);
  origin.remotePath = r['relay-uri'];
  await origin.bind();
  const dev = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: r['device-relay-uri'] });
  t.teardown(() => dev.close());
  t.match(await cli.answer({ 'call-id': 'd1', leg: 'tag-1', sdp: sdpFor(dev.localUri) }), { result: 'ok' });
  await dev.bind();
  await events.wait(e => e.event === 'leg-connected' && e.leg === 'tag-1');

  const devClosed = new Promise<void>(resolve => dev.once('close', () => resolve()));
  t.same(await cli.drop({ 'call-id': 'd1', leg: 'tag-1' }), { result: 'ok' });
  await devClosed; // the relay closed the device's connection
  t.match(await events.wait(e => e.event === 'leg-closed' && e.leg === 'tag-1'), { 'call-id': 'd1', reason: 'dropped' });
  t.match(await cli.query({ 'call-id': 'd1' }), { result: 'ok', legs: [{ leg: 'originator' }] }, 'only the originator left');
  const cases: ReadonlyArray<readonly [string, { 'call-id': string; leg: string }, string]> = [
    ['the same leg again', { 'call-id': 'd1', leg: 'tag-1' }, 'UNKNOWN_LEG'],
    ['a leg never answered', { 'call-id': 'd1', leg: 'tag-9' }, 'UNKNOWN_LEG'],
    ['an unknown call-id', { 'call-id': 'nope', leg: 'tag-1' }, 'UNKNOWN_SESSION'],
  ];
  for (const [name, params, code] of cases) t.match(await cli.drop(params), { result: 'error', 'error-code': code }, name);
  await t.rejects(cli.drop({ 'call-id': '', leg: 'tag-1' }), { name: 'RpcError', code: -32602 }, 'bad params: RpcError');
});

t.test('group-state (CR 8.3.2.4): the Group State Object goes to the session folder; without a store the reply warns', async t => {
  const store = new LmdbMessageStore(`${t.testdir()}/g.mdb`);
  const relay = new MsrpRelay({ port: 0, store });
  const server = new ControlServer(relay);
  const cli = await RelayControlClient.connect('127.0.0.1', await server.listen());
  const params = {
    'call-id': 'gone-already', 'conversation-id': 'conv-g', 'contribution-id': 'contrib-g', focus: 'sip:conf@cf.example.net',
    participants: [{ uri: 'sip:alice@example.net', name: 'Alice <&>' }],
  };
  t.same(await cli.groupState(params), { result: 'ok' }, 'no relay session needed: the folder is named');
  await relay.flushHistory();
  const objs = await store.list({ conversationId: 'conv-g', contributionId: 'contrib-g' });
  t.same(objs.map(o => o.contentType), ['application/group-state-object+xml']);
  const xml = objs[0]!.data.toString('utf8');
  t.match(xml, /lastfocussessionid="sip:conf@cf.example.net" contributionid="contrib-g"/);
  t.match(xml, /<participant name="Alice &lt;&amp;&gt;" comm-addr="sip:alice@example.net"\/>/, 'participants escaped');
  await t.rejects(cli.groupState({ ...params, 'conversation-id': '' }), { name: 'RpcError', code: -32602 }, 'an empty folder name is refused');
  await cli.close();
  await server.close();
  await relay.close();
  await store.close();

  const bare = new MsrpRelay({ port: 0 });
  const control = new RelayControl(bare);
  t.match(control.call('group-state', params), { result: 'ok', warnings: [/no history store/] });
  await bare.close();
});
