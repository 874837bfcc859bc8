// Deferred delivery in the relay (docs/deferred.md "In the relay", docs/media-control.md
// "Deferred delivery"): real MSRP over TCP on loopback, the relay's deferred store in
// LMDB in the test's folder.
import t, { type Test } from 'tap';
import { buildCpim, MsrpPeer } from '../../../media/client/peer.js';
import { EventEmitter } from 'node:events';
import {
  MsrpEndpoint, buildRequest, getHeader, newMessageId, responseFor, type MsrpConnection, type RequestHead,
} from '../../../media/msrp/index.js';
import { LmdbDeferredStore } from '../../../media/deferred/lmdb.js';
import { LmdbMessageStore } from '../../../media/history/store.js';
import type { AppendItem, AppendOptions, Direction, FolderRef } from '../../../media/history/mss.js';
import type { AppendResult, DeferredBounds, DeferredStore } from '../../../media/deferred/store.js';
import { RelayControl } from '../../../media/relay/control.js';
import { RelayControlClient } from '../../../media/relay/control-client.js';
import { RpcError } from '../../../wire/errors.js';
import { listenWithEvents, sdpFor, startRelayProcess, type RelayWithEvents } from './helpers.js';

const ALICE = 'sip:alice@example.net';
const BOB = 'sip:bob@example.net';
let n = 0;
const newDeferredId = (): string => (++n).toString(16).padStart(8, '0') + process.pid.toString(16).padStart(24, '0');

interface Rig extends RelayWithEvents {
  store: LmdbDeferredStore;
  close(): Promise<void>;
}

async function rig(t: Test, bounds: Partial<DeferredBounds> = {}, path = `${t.testdir()}/deferred.mdb`): Promise<Rig> {
  const store = new LmdbDeferredStore({ path, bounds });
  const r = await listenWithEvents({ deferred: { store } });
  return {
    ...r, store,
    async close() {
      await r.relay.close();
      await store.close();
    },
  };
}

/** An originator with a session on the relay, deferred under a new deferred-id. */
async function deferredCall(r: Rig, callId: string, expiresAt = Date.now() + 3_600_000): Promise<{ origin: MsrpPeer; id: string; deviceUri: string }> {
  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  const o = r.relay.offer({ 'call-id': callId, sdp: sdpFor(origin.localUri), 'served-user': BOB });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  origin.remotePath = o['relay-uri'];
  if ((await origin.bind()) !== 200) throw new Error('bind failed');
  const id = newDeferredId();
  const d = r.relay.defer({ 'call-id': callId, 'deferred-id': id, 'served-user': BOB, 'expires-at': expiresAt });
  if (d.result !== 'ok') throw new Error(d['error-reason']);
  return { origin, id, deviceUri: o['device-relay-uri'] };
}

/** A peer that takes a delivery session's offer, answered and bound. */
async function peerFor(r: Rig, callId: string, remotePath: string, leg = 'peer'): Promise<MsrpPeer> {
  const p = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath });
  const a = r.relay.answer({ 'call-id': callId, leg, sdp: sdpFor(p.localUri) });
  if (a.result !== 'ok') throw new Error(a['error-reason']);
  if ((await p.bind()) !== 200) throw new Error('bind failed');
  return p;
}

/**
 * A device that answers the relay's SENDs only when told (an endpoint without automatic
 * 200s): the test decides when an item is in flight and when it is done.
 */
class ManualDevice extends EventEmitter<{ send: [] }> {
  readonly sends: { head: RequestHead; body: Buffer }[] = [];
  localUri = '';
  private conn!: MsrpConnection;
  private readonly ep = new MsrpEndpoint({ autoRespond: false });

  static async connect(port: number, remotePath: string): Promise<ManualDevice> {
    const d = new ManualDevice();
    const sid = `manual${++n}`;
    let parts: Buffer[] = [];
    d.ep.addSession(sid, {
      frameStart: () => {
        parts = [];
        return undefined;
      },
      body: (_c, piece) => parts.push(Buffer.from(piece)),
      frameEnd: (_c, head) => {
        if (head.kind !== 'request' || head.method !== 'SEND') return;
        d.sends.push({ head, body: Buffer.concat(parts) });
        d.emit('send');
      },
    });
    d.conn = await d.ep.connect({ host: '127.0.0.1', port });
    d.ep.bind(sid, d.conn);
    d.localUri = `msrp://127.0.0.1:${d.conn.socket.localPort ?? 0}/${sid};tcp`;
    d.remotePath = remotePath;
    return d;
  }

  remotePath = '';

  /** The binding empty SEND (RFC 4975 §5.4); its 200 is not awaited. */
  bind(): void {
    this.conn.sendFrame(buildRequest({
      method: 'SEND', toPath: this.remotePath, fromPath: this.localUri,
      headers: [{ name: 'Message-ID', value: newMessageId() }, { name: 'Byte-Range', value: '1-0/0' }],
    }));
  }

  answer(i: number, status = 200): void {
    const r = responseFor(this.sends[i]!.head, status);
    if (r) this.conn.sendFrame(r);
  }

  /** Resolves once `count` SENDs arrived. */
  async received(count: number, ms = 5000): Promise<void> {
    if (this.sends.length >= count) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.sends.length} SENDs, not ${count}`)), ms);
      const check = (): void => {
        if (this.sends.length < count) return;
        clearTimeout(timer);
        this.off('send', check);
        resolve();
      };
      this.on('send', check);
    });
  }

  async close(): Promise<void> {
    await this.ep.close();
  }
}

const imdnFor = (imdnId: string, from = BOB, to = ALICE): Buffer => buildCpim({
  from, to, contentType: 'message/imdn+xml',
  body: `<?xml version="1.0" encoding="UTF-8"?>\r\n<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>${imdnId}</message-id>` +
    '<datetime>2026-12-06T00:00:00Z</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>',
});
const isComposing = '<?xml version="1.0" encoding="UTF-8"?>\r\n<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>';

t.test('store, then deliver in order with the original CPIM bytes; IMDN back to the live original', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id } = await deferredCall(r, 'orig-1');
  const msgs = [
    buildCpim({ from: ALICE, to: BOB, body: 'first', imdnMessageId: 'im-1', dispositionNotification: ['positive-delivery', 'negative-delivery'] }),
    buildCpim({ from: ALICE, to: BOB, body: Buffer.alloc(5000, 0x61), imdnMessageId: 'im-2', extraHeaders: [['Subject', 'é ✓']] }),
    buildCpim({ from: ALICE, to: BOB, body: 'third', imdnMessageId: 'im-3' }),
  ];
  const sent = [];
  sent.push(await origin.sendMessage(msgs[0]!, { successReport: true }));
  sent.push(await origin.sendMessage(msgs[1]!, { chunkSize: 2000 }));
  const typing = await origin.sendMessage(isComposing, { contentType: 'application/im-iscomposing+xml' });
  sent.push(await origin.sendMessage(msgs[2]!));
  t.ok(sent.every(s => s.statuses.every(x => x === 200)), 'every SEND 200 (once durable)');
  t.same(sent[1]!.statuses, [200, 200, 200], 'each chunk 200');
  t.same(typing.statuses, [200], 'isComposing 200');
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 3, notifications: 0, oldest: (await r.store.counts(id)).oldest });

  const reply = await r.relay.deliver({ 'call-id': 'dlv-1', 'deferred-id': id, what: 'messages' });
  if (reply.result !== 'ok') throw new Error(reply['error-reason']);
  t.match(reply['device-sdp'], /a=accept-types:message\/cpim/);
  t.match(reply['device-sdp'], new RegExp(`a=path:${reply['device-relay-uri']}`));
  const dev = await peerFor(r, 'dlv-1', reply['device-relay-uri']);
  const ev = await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'dlv-1');
  t.same(ev, { event: 'delivered', 'call-id': 'dlv-1', leg: 'peer', 'deferred-id': id, what: 'messages', sent: 3, remaining: 0 });
  t.equal(dev.messages.length, 3, 'isComposing was not stored');
  for (const [i, m] of dev.messages.entries()) {
    t.ok(m.body.equals(msgs[i]!), `message ${i + 1} byte for byte, in order`);
    t.equal(getHeader(m.head, 'Success-Report'), 'no');
    t.equal(getHeader(m.head, 'Failure-Report'), 'yes');
    t.not(m.messageId, sent[i]!.messageId, 'a new MSRP Message-ID');
  }
  t.equal(origin.reports.length, 0, 'no success REPORT for a stored message');
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });

  // the served user's device reads the first message: its IMDN reaches the original sender at once
  const imdn = imdnFor('im-1');
  const back = await dev.sendMessage(imdn);
  t.same(back.statuses, [200]);
  const got = await origin.waitForMessage(m => m.body.equals(imdn));
  t.equal(got.contentType, 'message/cpim');
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 }, 'nothing stored');
  // anything else from the device is answered and dropped
  t.same((await dev.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'hi' }))).statuses, [200]);
  t.same(await r.relay.deliver({ 'call-id': 'dlv-2', 'deferred-id': id, what: 'messages' }), { result: 'error', 'error-code': 'UNKNOWN_SESSION', 'error-reason': 'no messages stored for this deferred-id' }, 'nothing left to deliver');
  await dev.close();
  await origin.close();
});

t.test('IMDN stored when the original is gone, then a notifications delivery to the sender', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id } = await deferredCall(r, 'orig-2');
  const msg = buildCpim({ from: ALICE, to: BOB, body: 'are you there?', imdnMessageId: 'im-21', dispositionNotification: ['positive-delivery'] });
  t.same((await origin.sendMessage(msg)).statuses, [200]);
  await origin.close();
  t.same(r.relay.delete({ 'call-id': 'orig-2' }), { result: 'ok' }, "the caller's BYE");
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 1, notifications: 0, oldest: (await r.store.counts(id)).oldest }, 'messages stay');

  const reply = await r.relay.deliver({ 'call-id': 'dlv-21', 'deferred-id': id, what: 'messages', 'served-user': BOB });
  if (reply.result !== 'ok') throw new Error(reply['error-reason']);
  const dev = await peerFor(r, 'dlv-21', reply['device-relay-uri']);
  await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'dlv-21');
  const imdn = imdnFor('im-21');
  t.same((await dev.sendMessage(imdn, { chunkSize: 100 })).statuses.every(s => s === 200), true, 'a chunked IMDN, each chunk 200');
  t.match(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 1 }, 'stored for the sender');
  await dev.close();
  r.relay.delete({ 'call-id': 'dlv-21' });

  const n = await r.relay.deliver({ 'call-id': 'ntf-21', 'deferred-id': id, what: 'notifications' });
  if (n.result !== 'ok') throw new Error(n['error-reason']);
  const sender = await peerFor(r, 'ntf-21', n['device-relay-uri'], 'alice');
  t.same(await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'ntf-21'),
    { event: 'delivered', 'call-id': 'ntf-21', leg: 'alice', 'deferred-id': id, what: 'notifications', sent: 1, remaining: 0 });
  t.equal(sender.messages.length, 1);
  t.ok(sender.messages[0]!.body.equals(imdn), 'the IMDN as the device sent it');
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });
  await sender.close();
});

t.test('history (CR 8.5): a recorded messages delivery records each notification from its peer once; nothing else', async t => {
  // the embedded history store, each append's direction noted (LMDB keeps none)
  const history = new LmdbMessageStore(`${t.testdir()}/history.mdb`);
  const directions: (Direction | undefined)[] = [];
  const writer = {
    ensureSessionFolder: history.ensureSessionFolder.bind(history),
    append: (ref: FolderRef, type: string, data: Buffer, opts?: AppendOptions) => {
      directions.push(opts?.direction);
      return history.append(ref, type, data, opts);
    },
    appendMany: (items: readonly AppendItem[]) => {
      for (const it of items) directions.push(it.opts?.direction);
      return history.appendMany(items);
    },
    close: () => Promise.resolve(),
  };
  const store = new LmdbDeferredStore({ path: `${t.testdir()}/deferred.mdb` });
  const events = await listenWithEvents({ deferred: { store }, store: writer });
  const r: Rig = {
    ...events, store,
    async close() {
      await events.relay.close();
      await store.close();
      await history.close();
    },
  };
  t.teardown(() => r.close());
  const cases = [
    { name: 'record on, caller left', record: true, callerStays: false, n: 1, directions: ['received', 'sent'] },
    { name: 'record on, caller stays', record: true, callerStays: true, n: 2, directions: ['received', 'sent'] },
    { name: 'record off', record: false, callerStays: false, n: 3, directions: ['received'] },
  ];
  for (const c of cases) {
    const callId = `orig-h${c.n}`;
    const ref = { conversationId: `conv-h${c.n}`, contributionId: `contrib-h${c.n}` };
    const ids = { 'conversation-id': ref.conversationId, 'contribution-id': ref.contributionId };
    directions.length = 0;
    // the original session is recorded either way: its stored message is recorded when it arrives
    const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
    const o = r.relay.offer({ 'call-id': callId, sdp: sdpFor(origin.localUri), 'served-user': BOB, record: true, ...ids });
    if (o.result !== 'ok') throw new Error(o['error-reason']);
    origin.remotePath = o['relay-uri'];
    t.equal(await origin.bind(), 200);
    const id = newDeferredId();
    t.same(r.relay.defer({ 'call-id': callId, 'deferred-id': id, 'served-user': BOB, 'expires-at': Date.now() + 3_600_000 }), { result: 'ok' });
    const msg = buildCpim({ from: ALICE, to: BOB, body: `for later (${c.name})`, imdnMessageId: `im-h${c.n}`, dispositionNotification: ['positive-delivery'] });
    t.same((await origin.sendMessage(msg)).statuses, [200]);
    if (!c.callerStays) {
      await origin.close();
      r.relay.delete({ 'call-id': callId });
    }

    const dlv = `dlv-${callId}`;
    const reply = await r.relay.deliver({ 'call-id': dlv, 'deferred-id': id, what: 'messages', 'served-user': BOB, ...(c.record ? { record: true, ...ids } : {}) });
    if (reply.result !== 'ok') throw new Error(reply['error-reason']);
    t.equal(reply.warnings, undefined, `${c.name}: no warning`);
    t.match(await r.relay.query({ 'call-id': dlv }), { result: 'ok', record: c.record }, `${c.name}: query tells`);
    const dev = await peerFor(r, dlv, reply['device-relay-uri']);
    await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === dlv);
    t.ok(dev.messages[0]!.body.equals(msg), `${c.name}: the stored message delivered`);
    const imdn = imdnFor(`im-h${c.n}`);
    t.ok((await dev.sendMessage(imdn, { chunkSize: 100 })).statuses.every(x => x === 200), `${c.name}: the device's notification taken`);
    t.same((await dev.sendMessage(buildCpim({ from: BOB, to: ALICE, body: 'not a notification' }))).statuses, [200], `${c.name}: a chat from the peer is dropped`);
    await dev.close();
    r.relay.delete({ 'call-id': dlv });

    if (c.callerStays) {
      await origin.waitForMessage(m => m.body.equals(imdn));
      t.pass(`${c.name}: the notification relayed to the originator`);
      await origin.close();
      r.relay.delete({ 'call-id': callId });
    } else {
      // the sender's notifications delivery: record asked for, nothing recorded (the sender's history is not ours)
      const ntf = `ntf-${callId}`;
      const n = await r.relay.deliver({ 'call-id': ntf, 'deferred-id': id, what: 'notifications', record: true, ...ids });
      if (n.result !== 'ok') throw new Error(n['error-reason']);
      t.match(await r.relay.query({ 'call-id': ntf }), { record: false }, `${c.name}: a notifications delivery does not record`);
      const sender = await peerFor(r, ntf, n['device-relay-uri'], 'alice');
      await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === ntf);
      t.ok(sender.messages[0]!.body.equals(imdn), `${c.name}: the notification at the sender`);
      t.same((await sender.sendMessage(imdnFor('im-back', ALICE, BOB))).statuses, [200], `${c.name}: the sender's own notification dropped`);
      await sender.close();
      r.relay.delete({ 'call-id': ntf });
    }

    await r.relay.flushHistory();
    const objs = await history.list(ref);
    t.equal(objs.filter(x => x.contentType !== 'message/cpim').length, 1, `${c.name}: one session info object`);
    t.same(objs.filter(x => x.contentType === 'message/cpim').map(x => x.data), c.record ? [msg, imdn] : [msg],
      `${c.name}: the stored message once (when it arrived)${c.record ? ', the notification once' : ', nothing by the delivery'}`);
    t.same(directions, c.directions, `${c.name}: directions as a live session records them (from the originator received, from the device sent)`);
  }

  // record without the ids: history off, as for offer
  const { origin, id } = await deferredCall(r, 'orig-h4');
  t.same((await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'x', imdnMessageId: 'im-h4' }))).statuses, [200]);
  const w = await r.relay.deliver({ 'call-id': 'dlv-h4', 'deferred-id': id, what: 'messages', record: true });
  t.match(w, { result: 'ok', warnings: ['record without conversation-id/contribution-id: history off'] }, 'record without ids: a warning');
  r.relay.delete({ 'call-id': 'dlv-h4' });
  await origin.close();
});

t.test('answer on a deferred session: the backlog first, then live; IMDNs to the originator', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id, deviceUri } = await deferredCall(r, 'orig-3');
  const stored = [1, 2].map(i => buildCpim({ from: ALICE, to: BOB, body: `stored ${i}`, imdnMessageId: `im-3${i}` }));
  for (const m of stored) t.same((await origin.sendMessage(m)).statuses, [200]);
  const dev = await peerFor(r, 'orig-3', deviceUri, 'dev1');
  const ev = await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'orig-3');
  t.match(ev, { leg: 'dev1', 'deferred-id': id, what: 'messages', sent: 2 });
  const live = buildCpim({ from: ALICE, to: BOB, body: 'live now', imdnMessageId: 'im-33' });
  const liveSent = await origin.sendMessage(live, { successReport: true });
  await dev.waitForMessage(m => m.body.equals(live));
  t.same(dev.messages.map(m => m.body.toString('utf8').split('\r\n\r\n').pop()), ['stored 1', 'stored 2', 'live now'], 'in order');
  t.equal(dev.messages[2]!.messageId, liveSent.messageId, 'live messages are relayed as before');
  await origin.waitForReport(liveSent.messageId);
  const imdn = imdnFor('im-31');
  await dev.sendMessage(imdn);
  await origin.waitForMessage(m => m.body.equals(imdn));
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });
  await dev.close();
  await origin.close();
});

t.test('discard: the stored messages go; idempotent', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id } = await deferredCall(r, 'orig-4');
  for (const i of [1, 2]) await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: `x${i}` }));
  t.same(await r.relay.discard({ 'deferred-id': id }), { result: 'ok', discarded: 2 });
  t.same(await r.relay.discard({ 'deferred-id': id }), { result: 'ok', discarded: 0 });
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });
  t.match(await r.relay.deliver({ 'call-id': 'dlv-4', 'deferred-id': id, what: 'messages' }), { 'error-code': 'UNKNOWN_SESSION' });
  await origin.close();
});

t.test('expiry: messages removed, failed IMDNs for those that asked negative-delivery', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const expiresAt = Date.now() + 60_000;
  const { origin, id } = await deferredCall(r, 'orig-5', expiresAt);
  const asked = buildCpim({ from: ALICE, to: BOB, body: 'tell me', imdnMessageId: 'im-51', dateTime: '2026-12-06T00:00:00.000Z', dispositionNotification: ['negative-delivery'] });
  await origin.sendMessage(asked);
  await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'do not tell', imdnMessageId: 'im-52' }));
  await r.relay.sweepDeferred(expiresAt - 1);
  t.match(await r.relay.deferredState({ 'deferred-id': id }), { messages: 2 }, 'not yet');
  await r.relay.sweepDeferred(expiresAt);
  t.same(await r.waitEvent(e => e.event === 'deferred-expired'),
    { event: 'deferred-expired', 'call-id': 'orig-5', 'deferred-id': id, expired: 2, notifications: 1 });
  t.match(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 1 });
  await origin.close();
  r.relay.delete({ 'call-id': 'orig-5' });
  const n = await r.relay.deliver({ 'call-id': 'ntf-5', 'deferred-id': id, what: 'notifications' });
  if (n.result !== 'ok') throw new Error(n['error-reason']);
  const sender = await peerFor(r, 'ntf-5', n['device-relay-uri'], 'alice');
  await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'ntf-5');
  const body = sender.messages[0]!.body.toString('utf8');
  t.match(body, /^From: <sip:bob@example\.net>\r\nTo: <sip:alice@example\.net>\r\n/, 'from the served user to the sender');
  t.match(body, /Content-Type: message\/imdn\+xml\r\nContent-Disposition: notification\r\n/);
  t.match(body, /<message-id>im-51<\/message-id>/, 'the expired message');
  t.match(body, /<datetime>2026-12-06T00:00:00.000Z<\/datetime>/, 'its DateTime (RFC 5438 §7.2.1.1)');
  t.match(body, /<delivery-notification><status><failed\/><\/status><\/delivery-notification>/);
  await sender.close();
});

t.test('bounds: store full -> 500, too big -> 413; nothing silently lost', async t => {
  const r = await rig(t, { maxItemsPerId: 2, maxItemBytes: 3000 });
  t.teardown(() => r.close());
  const { origin, id } = await deferredCall(r, 'orig-6');
  t.same((await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: Buffer.alloc(4000, 0x62) }), { chunkSize: 1500 })).statuses,
    [200, 200, 413], 'too big: 413 on its last chunk');
  for (const i of [1, 2]) t.same((await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: `ok ${i}` }))).statuses, [200]);
  t.same((await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'one too many' }))).statuses, [500], 'full: 500');
  t.match(await r.relay.deferredState({ 'deferred-id': id }), { messages: 2 }, 'what was answered 200 is stored');
  await origin.close();
});

t.test('params: schema errors (-32602) in process, BAD_PARAMS from the methods, SESSION_EXISTS, no store', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const c = new RelayControl(r.relay);
  const id = newDeferredId();
  const bad: Array<[string, unknown]> = [
    ['defer', { 'call-id': 'x', 'deferred-id': 'nothex', 'served-user': BOB, 'expires-at': 1 }],
    ['defer', { 'call-id': 'x', 'deferred-id': 'A'.repeat(32), 'served-user': BOB, 'expires-at': 1 }],
    ['defer', { 'call-id': 'x', 'deferred-id': id, 'served-user': BOB, 'expires-at': -1 }],
    ['defer', { 'call-id': 'x', 'deferred-id': id, 'served-user': '', 'expires-at': 1 }],
    ['defer', { 'call-id': 'x', 'deferred-id': id, 'expires-at': 1.5 }],
    ['deliver', { 'call-id': 'x', 'deferred-id': id, what: 'everything' }],
    ['deliver', { 'call-id': '', 'deferred-id': id, what: 'messages' }],
    ['deliver', { 'call-id': 'x', 'deferred-id': id, what: 'messages', record: 'yes' }],
    ['deliver', { 'call-id': 'x', 'deferred-id': id, what: 'messages', record: true, 'conversation-id': 'c'.repeat(257) }],
    ['deliver', { 'call-id': 'x', 'deferred-id': id, what: 'messages', record: true, 'contribution-id': 7 }],
    ['discard', { 'deferred-id': `${id}0` }],
    ['deferred-state', {}],
  ];
  for (const [verb, p] of bad) t.throws(() => c.call(verb, p), { name: 'RpcError', code: -32602 }, `${verb} ${JSON.stringify(p)}`);
  t.match(r.relay.defer({ 'call-id': 'x', 'deferred-id': 'zz', 'served-user': BOB, 'expires-at': 1 }), { 'error-code': 'BAD_PARAMS' });
  t.match(await r.relay.deliver({ 'call-id': 'x', 'deferred-id': id, what: 'all' as 'messages' }), { 'error-code': 'BAD_PARAMS' });
  t.match(await r.relay.discard({ 'deferred-id': 'x' }), { 'error-code': 'BAD_PARAMS' });
  t.match(await r.relay.deferredState({ 'deferred-id': '' }), { 'error-code': 'BAD_PARAMS' });
  t.match(c.call('defer', { 'call-id': 'nope', 'deferred-id': id, 'served-user': BOB, 'expires-at': 1 }), { 'error-code': 'UNKNOWN_SESSION' });
  t.same(await c.call('deferred-state', { 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 }, 'unknown id: zeros');
  t.same(await c.call('discard', { 'deferred-id': id }), { result: 'ok', discarded: 0 });

  const { origin, id: used } = await deferredCall(r, 'orig-7');
  t.same(r.relay.defer({ 'call-id': 'orig-7', 'deferred-id': used, 'served-user': BOB, 'expires-at': 1 }), { result: 'ok' }, 'again: idempotent');
  t.match(r.relay.defer({ 'call-id': 'orig-7', 'deferred-id': id, 'served-user': BOB, 'expires-at': 1 }), { 'error-code': 'SESSION_EXISTS' }, 'another id');
  const other = r.relay.offer({ 'call-id': 'orig-8', sdp: sdpFor('msrp://127.0.0.1:9/o8;tcp') });
  t.equal(other.result, 'ok');
  t.match(r.relay.defer({ 'call-id': 'orig-8', 'deferred-id': used, 'served-user': BOB, 'expires-at': 1 }), { 'error-code': 'SESSION_EXISTS' }, 'id of another call');
  await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'one' }));
  t.match(await r.relay.deliver({ 'call-id': 'orig-8', 'deferred-id': used, what: 'messages' }), { 'error-code': 'SESSION_EXISTS' }, 'call-id in use');
  t.match(await r.relay.deliver({ 'call-id': 'dlv-7', 'deferred-id': used, what: 'messages' }), { result: 'ok' });
  t.match(await r.relay.deliver({ 'call-id': 'dlv-7b', 'deferred-id': used, what: 'messages' }), { 'error-code': 'SESSION_EXISTS' }, 'one delivery at a time');
  const dlv = r.relay.query({ 'call-id': 'dlv-7' });
  t.match(dlv, { result: 'ok', legs: [{ leg: 'originator', state: 'closed' }] }, 'a delivery session has no originator');
  t.match(r.relay.answer({ 'call-id': 'dlv-7', leg: 'a', sdp: sdpFor('msrp://127.0.0.1:9/a;tcp') }), { result: 'ok' });
  t.match(r.relay.answer({ 'call-id': 'dlv-7', leg: 'b', sdp: sdpFor('msrp://127.0.0.1:9/b;tcp') }), { 'error-code': 'POLICY_REJECTED' }, 'one peer');
  await origin.close();

  const bare = await listenWithEvents();
  t.teardown(() => bare.relay.close());
  t.match(bare.relay.defer({ 'call-id': 'x', 'deferred-id': id, 'served-user': BOB, 'expires-at': 1 }), { 'error-code': 'STORE_UNAVAILABLE' });
  t.match(await bare.relay.deliver({ 'call-id': 'x', 'deferred-id': id, what: 'messages' }), { 'error-code': 'STORE_UNAVAILABLE' });
  t.match(await bare.relay.discard({ 'deferred-id': id }), { 'error-code': 'STORE_UNAVAILABLE' });
  t.match(await bare.relay.deferredState({ 'deferred-id': id }), { 'error-code': 'STORE_UNAVAILABLE' });
});

t.test('bad input to the deferred verbs: refused or answered, never thrown otherwise', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const c = new RelayControl(r.relay);
  // a small deterministic generator (no Math.random: the run can be repeated)
  let seed = 0x2545f491;
  const rnd = (k: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % k;
  };
  const values: unknown[] = [
    '', 'x', '0'.repeat(32), 'f'.repeat(32), 'F'.repeat(32), '0'.repeat(33), 'messages', 'notifications', 'A', -1, 0, 1.5, 2 ** 60, Number.MAX_SAFE_INTEGER,
    null, true, [], {}, ['messages'], { a: 1 }, 'é'.repeat(300), 'a'.repeat(5000),
  ];
  const keys = ['call-id', 'deferred-id', 'served-user', 'expires-at', 'what', 'extra'];
  const verbs = ['defer', 'deliver', 'discard', 'deferred-state'];
  let refused = 0;
  let answered = 0;
  for (let i = 0; i < 400; i++) {
    const p: Record<string, unknown> = {};
    for (const k of keys) if (rnd(2) === 0) p[k] = values[rnd(values.length)];
    const verb = verbs[rnd(verbs.length)]!;
    try {
      const reply = await c.call(verb, p);
      t.ok(reply.result === 'ok' || reply.result === 'error', `${verb}: a reply`);
      answered += 1;
    } catch (err) {
      if (!(err instanceof RpcError) || (err.code !== -32602 && err.code !== -32600)) throw err;
      refused += 1;
    }
  }
  t.ok(refused > 0 && answered > 0, `refused ${refused}, answered ${answered}`);
  t.equal(r.relay.sessionCount, 0, 'no session left over (no peer answered)');
});

t.test('relay restart mid-delivery: nothing lost, nothing done sent again', async t => {
  const dir = t.testdir();
  const start = (): ReturnType<typeof startRelayProcess<{ msrpPort: number; controlPort: number }>> => startRelayProcess(
    ['--msrp-port', '0', '--control-port', '0', '--history', 'off', '--deferred', `${dir}/deferred.mdb`]);
  let { child, ready } = await start();
  t.teardown(() => child.kill('SIGKILL'));
  let cli = await RelayControlClient.connect('127.0.0.1', ready.controlPort);
  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: ready.msrpPort, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  const o = await cli.offer({ 'call-id': 'orig-r', sdp: sdpFor(origin.localUri), 'served-user': BOB });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  origin.remotePath = o['relay-uri'];
  await origin.bind();
  const id = newDeferredId();
  t.same(await cli.defer({ 'call-id': 'orig-r', 'deferred-id': id, 'served-user': BOB, 'expires-at': Date.now() + 3_600_000 }), { result: 'ok' });
  const msgs = [1, 2, 3, 4].map(i => buildCpim({ from: ALICE, to: BOB, body: `m${i}`, imdnMessageId: `im-r${i}` }));
  for (const m of msgs) t.same((await origin.sendMessage(m)).statuses, [200]);
  await origin.close();

  const d1 = await cli.deliver({ 'call-id': 'dlv-r1', 'deferred-id': id, what: 'messages' });
  if (d1.result !== 'ok') throw new Error(d1['error-reason']);
  const dev1 = await ManualDevice.connect(ready.msrpPort, d1['device-relay-uri']);
  t.match(await cli.answer({ 'call-id': 'dlv-r1', leg: 'dev', sdp: sdpFor(dev1.localUri) }), { result: 'ok' });
  dev1.bind();
  await dev1.received(1);
  // the device takes the first message; the relay marks it done, then sends the second, which the device never answers
  dev1.answer(0);
  await dev1.received(2);
  child.kill('SIGKILL');
  await new Promise(resolve => child.once('exit', resolve));
  await cli.close().catch(() => undefined);
  await dev1.close();
  t.same(dev1.sends.map(m => m.body.toString('utf8').split('\r\n\r\n').pop()), ['m1', 'm2'], 'the first done, the second in flight');

  ({ child, ready } = await start());
  cli = await RelayControlClient.connect('127.0.0.1', ready.controlPort);
  t.match(await cli.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 3, notifications: 0 }, 'the store survived; the first is done');
  const d2 = await cli.deliver({ 'call-id': 'dlv-r2', 'deferred-id': id, what: 'messages' });
  if (d2.result !== 'ok') throw new Error(d2['error-reason']);
  const dev2 = await MsrpPeer.connect({ host: '127.0.0.1', port: ready.msrpPort, remotePath: d2['device-relay-uri'] });
  const delivered = new Promise<void>(resolve => {
    void cli.subscribe(e => {
      if (e.event === 'delivered' && e['call-id'] === 'dlv-r2') resolve();
    });
  });
  t.match(await cli.answer({ 'call-id': 'dlv-r2', leg: 'dev', sdp: sdpFor(dev2.localUri) }), { result: 'ok' });
  await dev2.bind();
  await delivered;
  t.same(dev2.messages.map(m => m.body.toString('utf8').split('\r\n\r\n').pop()), ['m2', 'm3', 'm4'],
    'the one in flight again (same bytes, same imdn.Message-ID), then the rest; the done one never again');
  t.ok(dev2.messages[0]!.body.equals(msgs[1]!));
  t.match(await cli.deferredState({ 'deferred-id': id }), { messages: 0 });
  await dev2.close();
  await cli.close();
});

t.test('a large item goes in 64 KiB chunks; a refused item stops the backlog and stays stored', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id, deviceUri } = await deferredCall(r, 'orig-9');
  const big = buildCpim({ from: ALICE, to: BOB, body: Buffer.alloc(150_000, 0x63), imdnMessageId: 'im-91' });
  const small = buildCpim({ from: ALICE, to: BOB, body: 'after', imdnMessageId: 'im-92' });
  t.same((await origin.sendMessage(big, { chunkSize: 50_000 })).statuses, [200, 200, 200, 200]);
  t.same((await origin.sendMessage(small)).statuses, [200]);
  // a device that takes text only: 415 to the stored CPIM (RFC 4975 §7.3.1)
  const picky = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath: deviceUri, acceptTypes: ['text/plain'] });
  t.match(r.relay.answer({ 'call-id': 'orig-9', leg: 'picky', sdp: sdpFor(picky.localUri) }), { result: 'ok' });
  await picky.bind();
  const closed = await r.waitEvent(e => e.event === 'leg-closed' && e.leg === 'picky');
  t.match(closed, { reason: /deferred backlog: the peer answered 415/ });
  t.match(await r.relay.deferredState({ 'deferred-id': id }), { messages: 2 }, 'nothing done');
  // the call is storing again: what the caller sends now waits too, and the next device gets it all
  const later = buildCpim({ from: ALICE, to: BOB, body: 'later', imdnMessageId: 'im-93' });
  t.same((await origin.sendMessage(later)).statuses, [200]);
  const dev = await peerFor(r, 'orig-9', deviceUri, 'dev');
  t.match(await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'orig-9'), { leg: 'dev', sent: 3 });
  t.same(dev.messages.map(m => m.chunks), [3, 1, 1], '150 000 bytes in three chunks');
  t.ok(dev.messages[0]!.body.equals(big) && dev.messages[1]!.body.equals(small) && dev.messages[2]!.body.equals(later), 'in order, byte for byte');
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });
  await Promise.all([picky, dev, origin].map(p => p.close()));
});

t.test('a chunked message begun while the backlog runs and ended after it: relayed whole', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id, deviceUri } = await deferredCall(r, 'orig-10');
  const stored = buildCpim({ from: ALICE, to: BOB, body: 'stored', imdnMessageId: 'im-101' });
  t.same((await origin.sendMessage(stored)).statuses, [200]);
  const dev = await ManualDevice.connect(r.port, deviceUri);
  t.match(r.relay.answer({ 'call-id': 'orig-10', leg: 'dev', sdp: sdpFor(dev.localUri) }), { result: 'ok' });
  dev.bind();
  await dev.received(1);
  t.ok(dev.sends[0]!.body.equals(stored), 'the backlog item, in flight');
  // the caller starts a chunked message while the item waits for its 200
  const msg = buildCpim({ from: ALICE, to: BOB, body: 'x'.repeat(300), imdnMessageId: 'im-102' });
  const mid = newMessageId();
  const chunk = (start: number, end: number, flag: '+' | '$'): Promise<{ status: number }> => origin.request(buildRequest({
    method: 'SEND', toPath: origin.remotePath!, fromPath: origin.localUri, contentType: 'message/cpim', flag,
    headers: [{ name: 'Message-ID', value: mid }, { name: 'Byte-Range', value: `${start + 1}-${end}/${msg.length}` }],
    body: msg.subarray(start, end),
  }));
  t.equal((await chunk(0, 100, '+')).status, 200);
  dev.answer(0);
  const ev = await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'orig-10');
  t.match(ev, { sent: 1, remaining: 0 }, 'the backlog is empty: live from now on');
  t.equal((await chunk(100, msg.length, '$')).status, 200);
  await dev.received(2);
  t.ok(dev.sends[1]!.body.equals(msg), 'relayed whole, byte for byte');
  t.equal(getHeader(dev.sends[1]!.head, 'Byte-Range'), `1-${msg.length}/${msg.length}`);
  t.equal(getHeader(dev.sends[1]!.head, 'Message-ID'), mid, 'as a live message: its own Message-ID');
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 }, 'not left in the store');
  await dev.close();
  await origin.close();
});

t.test('the 200 waits until the store has the message; a failing store gives 500', async t => {
  const lmdb = new LmdbDeferredStore({ path: `${t.testdir()}/gated.mdb` });
  let called!: () => void;
  let release!: () => void;
  let fail = false;
  const appendCalled = new Promise<void>(resolve => { called = resolve; });
  const released = new Promise<void>(resolve => { release = resolve; });
  // every method as LMDB's, append held until the test releases it (or failing)
  const gated: DeferredStore = Object.assign(Object.create(lmdb) as DeferredStore, {
    async append(...args: Parameters<DeferredStore['append']>): Promise<AppendResult> {
      if (fail) throw new Error('disk on fire');
      called();
      await released;
      return lmdb.append(...args);
    },
  });
  const base = await listenWithEvents({ deferred: { store: gated } });
  const r: Rig = { ...base, store: lmdb, async close() { await base.relay.close(); await lmdb.close(); } };
  t.teardown(() => r.close());
  const { origin, id } = await deferredCall(r, 'orig-11');
  const msg = buildCpim({ from: ALICE, to: BOB, body: 'hold on' });
  const send = origin.sendMessage(msg);
  await appendCalled;
  t.equal(origin.responses.length, 1, 'only the bind was answered so far');
  t.same(await r.store.counts(id), { messages: 0, notifications: 0 }, 'not stored yet');
  release();
  t.same((await send).statuses, [200], 'answered once stored');
  t.match(await r.store.counts(id), { messages: 1 });
  fail = true;
  t.same((await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'lost?' }))).statuses, [500], 'the store failed: 500, not 200');
  t.match(await r.store.counts(id), { messages: 1 });
  await origin.close();
});

/** LMDB with pending / markDone made to reject while `fail` says so (an engine time-out, say). */
async function failingRig(t: Test): Promise<Rig & { fail: { pending: boolean; markDone: boolean } }> {
  const lmdb = new LmdbDeferredStore({ path: `${t.testdir()}/failing.mdb` });
  const fail = { pending: false, markDone: false };
  const store: DeferredStore = Object.assign(Object.create(lmdb) as DeferredStore, {
    async pending(...args: Parameters<DeferredStore['pending']>) {
      if (fail.pending) throw new Error('engine time-out');
      return lmdb.pending(...args);
    },
    async markDone(...args: Parameters<DeferredStore['markDone']>) {
      if (fail.markDone) throw new Error('engine time-out');
      return lmdb.markDone(...args);
    },
  });
  const base = await listenWithEvents({ deferred: { store } });
  const r = { ...base, store: lmdb, fail, async close() { await base.relay.close(); await lmdb.close(); } };
  t.teardown(() => r.close());
  return r;
}

t.test('a store failure during the backlog closes the leg and stores again; nothing stays stuck', async t => {
  const r = await failingRig(t);
  const { origin, id, deviceUri } = await deferredCall(r, 'orig-12');
  const first = buildCpim({ from: ALICE, to: BOB, body: 'first', imdnMessageId: 'im-121' });
  t.same((await origin.sendMessage(first)).statuses, [200]);

  r.fail.pending = true;
  const a = await peerFor(r, 'orig-12', deviceUri, 'a');
  t.match(await r.waitEvent(e => e.event === 'leg-closed' && e.leg === 'a'), { reason: /^deferred backlog: store failed: engine time-out/ }, 'pending failed');
  r.fail.pending = false;

  r.fail.markDone = true;
  const b = await peerFor(r, 'orig-12', deviceUri, 'b');
  t.match(await r.waitEvent(e => e.event === 'leg-closed' && e.leg === 'b'), { reason: /^deferred backlog: store failed: engine time-out/ }, 'markDone failed');
  t.ok(b.messages[0]?.body.equals(first), 'b had the item; not marked done, so it stays stored');
  r.fail.markDone = false;

  // storing again: the caller's next message waits too, and the next device gets it all
  const second = buildCpim({ from: ALICE, to: BOB, body: 'second', imdnMessageId: 'im-122' });
  t.same((await origin.sendMessage(second)).statuses, [200]);
  const c = await peerFor(r, 'orig-12', deviceUri, 'c');
  t.match(await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'orig-12'), { leg: 'c', sent: 2 });
  t.ok(c.messages[0]!.body.equals(first) && c.messages[1]!.body.equals(second), 'in order, the first again (at least once)');
  const live = buildCpim({ from: ALICE, to: BOB, body: 'live', imdnMessageId: 'im-123' });
  await origin.sendMessage(live);
  await c.waitForMessage(m => m.body.equals(live));
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });
  await Promise.all([a, b, c, origin].map(p => p.close()));
});

t.test('a store failure during a delivery closes its peer (the B2BUA sees leg-closed)', async t => {
  const r = await failingRig(t);
  const { origin, id } = await deferredCall(r, 'orig-13');
  t.same((await origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: 'm', imdnMessageId: 'im-131' }))).statuses, [200]);
  await origin.close();
  r.relay.delete({ 'call-id': 'orig-13' });
  r.fail.pending = true;
  const reply = await r.relay.deliver({ 'call-id': 'dlv-13', 'deferred-id': id, what: 'messages' });
  if (reply.result !== 'ok') throw new Error(reply['error-reason']);
  const dev = await peerFor(r, 'dlv-13', reply['device-relay-uri']);
  t.match(await r.waitEvent(e => e.event === 'leg-closed' && e['call-id'] === 'dlv-13'), { leg: 'peer', reason: /^deferred backlog: store failed/ });
  r.fail.pending = false;
  r.relay.delete({ 'call-id': 'dlv-13' });
  const again = await r.relay.deliver({ 'call-id': 'dlv-13b', 'deferred-id': id, what: 'messages' });
  t.match(again, { result: 'ok' }, 'the deferred-id is free for the next delivery');
  t.match(await r.relay.deferredState({ 'deferred-id': id }), { messages: 1 }, 'still stored');
  r.relay.delete({ 'call-id': 'dlv-13b' });
  await dev.close();
});

t.test('a backlog refused on one device leg goes to another still connected (policy B/C)', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id, deviceUri } = await deferredCall(r, 'orig-14');
  const stored = [1, 2].map(i => buildCpim({ from: ALICE, to: BOB, body: `stored ${i}`, imdnMessageId: `im-14${i}` }));
  for (const m of stored) t.same((await origin.sendMessage(m)).statuses, [200]);
  const a = await ManualDevice.connect(r.port, deviceUri);
  t.match(r.relay.answer({ 'call-id': 'orig-14', leg: 'a', sdp: sdpFor(a.localUri) }), { result: 'ok' });
  a.bind();
  await a.received(1);
  const b = await peerFor(r, 'orig-14', deviceUri, 'b');
  await r.waitEvent(e => e.event === 'leg-connected' && e.leg === 'b');
  // a message while a's item is in flight: stored, part of the backlog
  const during = buildCpim({ from: ALICE, to: BOB, body: 'during', imdnMessageId: 'im-143' });
  t.same((await origin.sendMessage(during)).statuses, [200]);
  t.equal(b.messages.length, 0, 'b gets nothing while a has the backlog');
  a.answer(0, 415);
  t.match(await r.waitEvent(e => e.event === 'leg-closed' && e.leg === 'a'), { reason: /deferred backlog: the peer answered 415/ });
  t.match(await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'orig-14'), { leg: 'b', 'deferred-id': id, sent: 3 }, 'the backlog restarted on b');
  t.same(b.messages.map(m => m.body.toString('utf8').split('\r\n\r\n').pop()), ['stored 1', 'stored 2', 'during']);
  const live = buildCpim({ from: ALICE, to: BOB, body: 'live', imdnMessageId: 'im-144' });
  await origin.sendMessage(live);
  await b.waitForMessage(m => m.body.equals(live));
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 });
  await Promise.all([a, b, origin].map(p => p.close()));
});

t.test('expiry sweep during a delivery: the item in flight is left to it (done, no failed notice)', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const expiresAt = Date.now() + 60_000;
  const { origin, id, deviceUri } = await deferredCall(r, 'orig-16', expiresAt);
  const msg = buildCpim({ from: ALICE, to: BOB, body: 'just in time', imdnMessageId: 'im-161', dispositionNotification: ['negative-delivery'] });
  t.same((await origin.sendMessage(msg)).statuses, [200]);
  const dev = await ManualDevice.connect(r.port, deviceUri);
  t.match(r.relay.answer({ 'call-id': 'orig-16', leg: 'dev', sdp: sdpFor(dev.localUri) }), { result: 'ok' });
  dev.bind();
  await dev.received(1);
  await r.relay.sweepDeferred(expiresAt); // past its expiry, while in flight
  t.notOk(r.events.some(e => e.event === 'deferred-expired'), 'not swept while its delivery runs');
  dev.answer(0);
  t.match(await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'orig-16'), { sent: 1 });
  t.same(await r.relay.deferredState({ 'deferred-id': id }), { result: 'ok', messages: 0, notifications: 0 }, 'done, and no failed notice for the sender');
  await dev.close();
  await origin.close();
});

t.test('chunks: a message whose first chunks were evicted, or with a gap, gets 400 on its last chunk and is not stored', async t => {
  const r = await rig(t);
  t.teardown(() => r.close());
  const { origin, id } = await deferredCall(r, 'orig-15');
  const msg = buildCpim({ from: ALICE, to: BOB, body: 'y'.repeat(300), imdnMessageId: 'im-151' });
  const chunk = (mid: string, start: number, end: number, flag: '+' | '$'): Promise<{ status: number }> => origin.request(buildRequest({
    method: 'SEND', toPath: origin.remotePath!, fromPath: origin.localUri, contentType: 'message/cpim', flag,
    headers: [{ name: 'Message-ID', value: mid }, { name: 'Byte-Range', value: `${start + 1}-${end}/${msg.length}` }],
    body: msg.subarray(start, end),
  }));
  // the first chunk of `evicted`, then 32 other messages begun: the relay forgets `evicted`
  const evicted = newMessageId();
  t.equal((await chunk(evicted, 0, 100, '+')).status, 200);
  for (let i = 0; i < 32; i++) t.equal((await chunk(newMessageId(), 0, 100, '+')).status, 200);
  t.equal((await chunk(evicted, 100, 200, '+')).status, 200, 'a middle chunk: taken, as chunks are');
  t.equal((await chunk(evicted, 200, msg.length, '$')).status, 400, 'the last chunk: the message was not taken');
  // a gap: bytes 101-200 never sent
  const gap = newMessageId();
  t.equal((await chunk(gap, 0, 100, '+')).status, 200);
  t.equal((await chunk(gap, 200, msg.length, '$')).status, 400);
  t.same(await r.store.counts(id), { messages: 0, notifications: 0 }, 'nothing stored in part');
  // whole, contiguous: stored
  const whole = newMessageId();
  t.equal((await chunk(whole, 0, 100, '+')).status, 200);
  t.equal((await chunk(whole, 100, msg.length, '$')).status, 200);
  t.ok((await r.store.pending(id, 'messages'))[0]?.payload.equals(msg), 'the whole message, byte for byte');
  await origin.close();
});
