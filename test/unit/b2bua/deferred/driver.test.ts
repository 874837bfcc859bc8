// The delivery driver (plugin/b2bua/deferred/delivery-driver.ts) on its real transaction
// layer, a fake clock, a recording relay and the in-memory pending store.
import t from 'tap';
import type { SipRequest } from '../../../../plugin/sip/message.js';
import { MemoryPendingDeliveries, newEntry } from '../../../../plugin/b2bua/deferred/pending-store.js';
import { originalOf, pickDevice } from '../../../../plugin/b2bua/deferred/delivery-driver.js';
import {
  device, fakeRelay, flush, fromPeer, record, reply, requests, responsesTo, sdp, TOKEN, USER, world, type Verb, type World,
} from './driver-world.js';

const verbsOf = (verbs: Verb[], verb: string): Record<string, unknown>[] => verbs.filter((v) => v.verb === verb).map((v) => v.p);
const DEV_SDP = sdp('msrp://127.0.0.1:7655/device;tcp');

/** Answer the last INVITE 200, report delivered, let the linger pass, answer the BYE: the whole happy call. */
async function deliverAll(w: World, inv: SipRequest, tag: string): Promise<void> {
  w.layer.receive(reply(inv, 200, { toTag: tag, body: DEV_SDP }));
  await flush();
  const callId = inv.get('Call-ID')!;
  w.driver.relayEvent({ event: 'delivered', 'call-id': `delivery;${callId}`, leg: tag, 'deferred-id': 'x', what: 'messages', sent: 2, remaining: 0 });
  await flush();
  w.clock.advance(2000);
  await flush();
  const bye = requests(w, 'BYE').find((b) => b.get('Call-ID') === callId)!;
  w.layer.receive(reply(bye, 200));
  await flush();
}

t.test('register: the pending messages are delivered to the device, then the entry goes', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record();
  await w.driver.callerLeft(rec);
  t.ok(await w.store.get(rec.deferredId), 'kept while no device');
  w.driver.registered(USER, [device(1)]);
  await flush();
  t.same(w.offered, ['sip:bob@127.0.0.1:501'], 'the live deferred calls were offered the device first');
  const [inv] = requests(w, 'INVITE');
  t.ok(inv);
  const d = verbsOf(verbs, 'deliver')[0]!;
  t.equal(d['deferred-id'], rec.deferredId);
  t.equal(d['what'], 'messages');
  t.equal(d['record'], undefined, 'a record without `record` (stored before it existed): the delivery records nothing');
  t.equal(d['call-id'], `delivery;${inv!.get('Call-ID')}`, "the relay session is named after the delivery dialog's Call-ID");
  t.equal(inv!.ruri, `${USER};gr=urn:uuid:1`, 'to the device GRUU');
  t.equal(inv!.get('X-PF-Leg'), TOKEN, 'a device leg for pf.cfg');
  t.match(inv!.get('From'), /^"Alice" <sip:alice@example.net>;tag=\w+$/, 'From of the original INVITE');
  t.equal(inv!.get('To'), `<${USER}>`);
  t.equal(inv!.get('P-Asserted-Identity'), '<sip:alice@example.net>');
  t.equal(inv!.get('Conversation-ID'), 'conv-1');
  t.equal(inv!.get('Contribution-ID'), rec.contributionId);
  t.equal(inv!.get('InReplyTo-Contribution-ID'), 'earlier');
  t.equal(inv!.get('Session-Expires'), '1800;refresher=uas');
  t.match(inv!.body, /msrp:\/\/127\.0\.0\.1:2855/, "the relay's device SDP");
  t.equal((await w.store.get(rec.deferredId))?.attempt?.callId, inv!.get('Call-ID'), 'the call in flight is stored');

  await deliverAll(w, inv!, 'dev1');
  t.equal(requests(w, 'ACK').length, 1, 'the 200 was ACKed');
  t.same(verbsOf(verbs, 'answer')[0], { 'call-id': `delivery;${inv!.get('Call-ID')}`, leg: 'dev1', sdp: DEV_SDP });
  t.equal(requests(w, 'BYE').length, 1, 'BYE after the linger');
  t.ok(verbsOf(verbs, 'delete').some((p) => p['call-id'] === `delivery;${inv!.get('Call-ID')}`), 'the relay session deleted');
  t.equal(verbsOf(verbs, 'deferred-state').length, 1, 'pending notifications asked');
  t.equal(await w.store.get(rec.deferredId), null, 'the entry is gone');
  t.equal(w.driver.counts.delivered, 1);
});

t.test('603 discards: relay discard, the entry removed, no BYE anywhere', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  const [inv] = requests(w, 'INVITE');
  w.layer.receive(reply(inv!, 603, { toTag: 'd' }));
  await flush();
  t.same(verbsOf(verbs, 'discard'), [{ 'deferred-id': rec.deferredId }]);
  t.equal(requests(w, 'BYE').length, 0);
  t.equal(await w.store.get(rec.deferredId), null);
  t.equal(w.driver.counts.discarded, 1);
});

for (const status of [480, 408, 500, 503]) {
  t.test(`${status}: the entry is kept and delivered on the next REGISTER`, async (t) => {
    const verbs: Verb[] = [];
    const w = world(fakeRelay(verbs));
    const rec = record();
    await w.driver.callerLeft(rec);
    w.driver.registered(USER, [device(1)]);
    await flush();
    w.layer.receive(reply(requests(w, 'INVITE')[0]!, status, { toTag: 'd' }));
    await flush();
    const kept = await w.store.get(rec.deferredId);
    t.ok(kept);
    t.equal(kept?.attempt, null);
    t.equal(verbsOf(verbs, 'discard').length, 0);
    w.driver.registered(USER, [device(1)]);
    await flush();
    t.equal(requests(w, 'INVITE').length, 2, 'tried again');
    await deliverAll(w, requests(w, 'INVITE')[1]!, 'd2');
    t.equal(await w.store.get(rec.deferredId), null);
  });
}

t.test('INVITE timeout (no answer at all): kept', async (t) => {
  const w = world(fakeRelay([]));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  w.clock.advance(64 * 100);
  await flush();
  t.ok(await w.store.get(rec.deferredId));
  t.equal(w.driver.counts.kept, 1);
});

t.test('several entries: one at a time, in creation order; a REGISTER meanwhile starts nothing twice', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const a = record();
  const b = record();
  await w.store.put(newEntry(b, 20));
  await w.store.put(newEntry(a, 10));
  w.driver.registered(USER, [device(1)]);
  await flush();
  w.driver.registered(USER, [device(1)]);
  w.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(w, 'INVITE').length, 1, 'one delivery at a time, whatever the REGISTERs');
  t.equal(verbsOf(verbs, 'deliver')[0]!['deferred-id'], a.deferredId, 'the oldest first');
  await deliverAll(w, requests(w, 'INVITE')[0]!, 'x1');
  t.equal(requests(w, 'INVITE').length, 2, 'then the next');
  t.equal(verbsOf(verbs, 'deliver')[1]!['deferred-id'], b.deferredId);
  await deliverAll(w, requests(w, 'INVITE')[1]!, 'x2');
  t.equal(requests(w, 'INVITE').length, 2, 'the extra REGISTERs delivered nothing twice');
  t.same(await w.store.all(0), []);
});

t.test('a failed delivery stops the pass: the next entry waits for the next REGISTER', async (t) => {
  const w = world(fakeRelay([]));
  const a = record();
  const b = record();
  await w.store.put(newEntry(a, 10));
  await w.store.put(newEntry(b, 20));
  w.driver.registered(USER, [device(1)]);
  await flush();
  w.layer.receive(reply(requests(w, 'INVITE')[0]!, 480, { toTag: 'd' }));
  await flush();
  t.equal(requests(w, 'INVITE').length, 1);
  t.equal((await w.store.all(0)).length, 2);
});

t.test('no suitable device: nothing is sent', async (t) => {
  const w = world(fakeRelay([]));
  await w.driver.callerLeft(record());
  w.driver.registered(USER, [device(1, { params: {} }), device(2, { expiresAt: 0 }), device(3, { pubGruu: null, instance: null })]);
  await flush();
  t.equal(requests(w, 'INVITE').length, 0);
});

t.test('the relay has nothing stored: the entry is done', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs, { deliver: async () => ({ result: 'error', 'error-code': 'UNKNOWN_SESSION', 'error-reason': 'nothing' }) }));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(w, 'INVITE').length, 0);
  t.equal(await w.store.get(rec.deferredId), null);
});

t.test('the relay unreachable: kept', async (t) => {
  const w = world(fakeRelay([], { deliver: async () => Promise.reject(new Error('down')) }));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  t.ok(await w.store.get(rec.deferredId));
});

t.test("the relay's leg-closed mid-delivery: BYE, kept", async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  const inv = requests(w, 'INVITE')[0]!;
  w.layer.receive(reply(inv, 200, { toTag: 'd', body: DEV_SDP }));
  await flush();
  w.driver.relayEvent({ event: 'leg-closed', 'call-id': `delivery;${inv.get('Call-ID')!}`, leg: 'd', reason: 'closed' });
  await flush();
  const [bye] = requests(w, 'BYE');
  t.ok(bye);
  w.layer.receive(reply(bye!, 200));
  await flush();
  t.ok(await w.store.get(rec.deferredId));
  t.equal((await w.store.get(rec.deferredId))?.attempt, null);
});

t.test('the device hangs up while we linger: 200, delivered', async (t) => {
  const w = world(fakeRelay([]));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  const inv = requests(w, 'INVITE')[0]!;
  w.layer.receive(reply(inv, 200, { toTag: 'd', body: DEV_SDP }));
  await flush();
  w.driver.relayEvent({ event: 'delivered', 'call-id': `delivery;${inv.get('Call-ID')!}`, leg: 'd', 'deferred-id': rec.deferredId, what: 'messages', sent: 1, remaining: 0 });
  await flush();
  w.layer.receive(fromPeer(inv, 'd', 'BYE', 5));
  await flush();
  t.equal((responsesTo(w, 'BYE')[0] as { status?: number }).status, 200);
  t.equal(requests(w, 'BYE').length, 0);
  t.equal(await w.store.get(rec.deferredId), null);
  t.equal(w.primary.got.length, 0, "the B2BUA's calls saw none of it");
});

t.test('pending notifications after the messages: a notification call to the sender', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs, {}, { messages: 0, notifications: 2 }));
  const rec = record({ record: true });
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  t.match(verbsOf(verbs, 'deliver')[0], { what: 'messages', record: true, 'conversation-id': 'conv-1', 'contribution-id': rec.contributionId },
    'a recorded session: its messages delivery records (CR 8.5), in the same folder');
  await deliverAll(w, requests(w, 'INVITE')[0]!, 'd');
  const n = requests(w, 'INVITE')[1];
  t.ok(n, 'a second INVITE');
  t.equal(verbsOf(verbs, 'deliver')[1]!['what'], 'notifications');
  t.equal(verbsOf(verbs, 'deliver')[1]!['record'], undefined, "the sender's notifications: nothing recorded for the served user");
  t.equal(n!.ruri, 'sip:alice@example.net', 'to the original sender');
  t.equal(n!.get('X-PF-Leg'), undefined, "a new originating request: the sender's terminating PF treats it");
  t.match(n!.get('From'), new RegExp(`^<${USER}>;tag=`));
  t.equal(n!.get('P-Asserted-Identity'), `<${USER}>`);
  t.equal(n!.get('InReplyTo-Contribution-ID'), rec.contributionId);
  t.equal(n!.get('Conversation-ID'), 'conv-1');
  t.match(n!.get('Accept-Contact'), /icsi-ref/);
  t.equal((await w.store.get(rec.deferredId))?.notifications, true, 'kept for the notifications while they go');
  await deliverAll(w, n!, 's');
  t.equal(await w.store.get(rec.deferredId), null, 'then gone');
});

t.test("the relay's deferred-expired with notifications: a notification call", async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.relayEvent({ event: 'deferred-expired', 'call-id': rec.callId, 'deferred-id': rec.deferredId, expired: 2, notifications: 1 });
  await flush();
  t.equal(verbsOf(verbs, 'deliver')[0]!['what'], 'notifications');
  t.equal(requests(w, 'INVITE')[0]?.ruri, 'sip:alice@example.net');
  w.layer.receive(reply(requests(w, 'INVITE')[0]!, 480, { toTag: 'a' }));
  await flush();
  t.equal((await w.store.get(rec.deferredId))?.notifications, true, 'kept after a failure');
  w.driver.relayEvent({ event: 'deferred-expired', 'call-id': rec.callId, 'deferred-id': 'f'.repeat(32), expired: 1, notifications: 1 });
  await flush();
  t.equal(requests(w, 'INVITE').length, 1, 'an unknown deferred-id: nothing');
});

t.test("deferred-expired while the call is live: its notification call goes once the caller leaves", async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record();
  await w.driver.deferred(rec);
  w.driver.relayEvent({ event: 'deferred-expired', 'call-id': rec.callId, 'deferred-id': rec.deferredId, expired: 2, notifications: 1 });
  await flush();
  t.equal(requests(w, 'INVITE').length, 0, 'no notification call while the caller is there');
  t.equal((await w.store.get(rec.deferredId))?.notifications, true, 'the notifications are remembered');
  await w.driver.callerLeft(rec);
  await flush();
  t.equal(verbsOf(verbs, 'deliver')[0]?.['what'], 'notifications', 'the caller left: a notification call');
  t.equal(requests(w, 'INVITE')[0]?.ruri, 'sip:alice@example.net');
});

t.test('a restart in the middle of a delivery: the old call ends (BYE, relay delete), the entry stays', async (t) => {
  const verbs: Verb[] = [];
  const store = new MemoryPendingDeliveries();
  const w1 = world(fakeRelay([]), store);
  const rec = record();
  await w1.driver.callerLeft(rec);
  w1.driver.registered(USER, [device(1)]);
  await flush();
  const inv = requests(w1, 'INVITE')[0]!;
  w1.layer.receive(reply(inv, 200, { toTag: 'd', body: DEV_SDP }));
  await flush();
  t.ok((await store.get(rec.deferredId))?.attempt?.dialog, 'the dialog is stored');
  // the process dies; a new one on the same store
  const w2 = world(fakeRelay(verbs), store);
  await w2.driver.start();
  await flush();
  const [bye] = requests(w2, 'BYE');
  t.equal(bye?.get('Call-ID'), inv.get('Call-ID'), 'BYE in the old dialog');
  t.same(verbsOf(verbs, 'delete'), [{ 'call-id': `delivery;${inv.get('Call-ID')}` }]);
  t.equal((await store.get(rec.deferredId))?.attempt, null);
  w2.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(w2, 'INVITE').length, 1, 'delivered again on the next REGISTER (the relay sends only what got no 200)');
  await w2.driver.stop();
});

const CI = (version: number, state: string, users: string): string =>
  `<?xml version="1.0"?><conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:conf@focus" state="${state}" version="${version}"><users>${users}</users></conference-info>`;

t.test('a group session: SUBSCRIBE to the focus, NOTIFY kept, Group State Object on delivery, then unsubscribe', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record({ group: true, focus: 'sip:conf1@focus.example.net' });
  await w.driver.callerLeft(rec);
  await flush();
  const [sub] = requests(w, 'SUBSCRIBE');
  t.ok(sub);
  t.equal(sub!.ruri, 'sip:conf1@focus.example.net');
  t.equal(sub!.get('Event'), 'conference');
  t.equal(sub!.get('Accept'), 'application/conference-info+xml');
  t.equal(sub!.get('X-PF-Leg'), `${TOKEN};direct`);
  t.match(sub!.get('From'), new RegExp(`^<${USER}>;tag=`));
  // the NOTIFY may overtake the 2xx (RFC 6665 §4.1.2.4)
  const users = '<user entity="sip:alice@example.net"><display-text>Alice</display-text></user><user entity="sip:carol@example.net"/>';
  w.layer.receive(fromPeer(sub!, 'f1', 'NOTIFY', 1, ['Event: conference', 'Subscription-State: active;expires=3600', 'Content-Type: application/conference-info+xml'], CI(1, 'full', users)));
  await flush();
  t.equal((responsesTo(w, 'NOTIFY')[0] as { status?: number }).status, 200);
  w.layer.receive(reply(sub!, 202, { toTag: 'f1', headers: ['Expires: 600'] }));
  await flush();
  w.layer.receive(fromPeer(sub!, 'f1', 'NOTIFY', 2, ['Event: conference', 'Subscription-State: active', 'Content-Type: application/conference-info+xml'],
    CI(2, 'partial', '<user entity="sip:carol@example.net" state="deleted"/><user entity="sip:dave@example.net"><display-text>Dave</display-text></user>')));
  await flush();
  t.same((await w.store.get(rec.deferredId))?.conference?.participants, [
    { uri: 'sip:alice@example.net', name: 'Alice' }, { uri: 'sip:dave@example.net', name: 'Dave' },
  ]);
  // a bad body: still 200, nothing changes
  w.layer.receive(fromPeer(sub!, 'f1', 'NOTIFY', 3, ['Event: conference', 'Subscription-State: active', 'Content-Type: application/conference-info+xml'], '<!DOCTYPE x [<!ENTITY a "b">]><x/>'));
  await flush();
  t.equal((responsesTo(w, 'NOTIFY')[2] as { status?: number }).status, 200);
  t.equal((await w.store.get(rec.deferredId))?.conference?.version, 2);
  // refreshed before the 600 s the notifier granted
  w.clock.advance(480_000);
  await flush();
  const refresh = requests(w, 'SUBSCRIBE')[1];
  t.equal(refresh?.get('Expires'), '3600', 'refreshed at 80%');
  t.match(refresh?.get('To'), /tag=f1/, 'in the dialog');
  w.layer.receive(reply(refresh!, 200, { headers: ['Expires: 3600'] }));
  await flush();

  w.driver.registered(USER, [device(1, { params: { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session.group' } })]);
  await flush();
  await deliverAll(w, requests(w, 'INVITE')[0]!, 'g');
  const gs = verbsOf(verbs, 'group-state')[0];
  t.same(gs, {
    'call-id': rec.callId, 'conversation-id': 'conv-1', 'contribution-id': rec.contributionId, focus: 'sip:conf1@focus.example.net',
    participants: [{ uri: 'sip:alice@example.net', name: 'Alice' }, { uri: 'sip:dave@example.net', name: 'Dave' }],
  });
  const last = requests(w, 'SUBSCRIBE').at(-1);
  t.equal(last?.get('Expires'), '0', 'unsubscribed');
  t.equal(await w.store.get(rec.deferredId), null);
  w.layer.receive(fromPeer(sub!, 'f1', 'NOTIFY', 9, ['Event: conference', 'Subscription-State: terminated'], ''));
  await flush();
  t.equal(w.primary.got.length, 1, 'a NOTIFY after the end is no longer ours');
});

t.test('a refused SUBSCRIBE: no subscription, the delivery stores an empty participant list', async (t) => {
  const verbs: Verb[] = [];
  const w = world(fakeRelay(verbs));
  const rec = record({ group: true, focus: 'sip:conf2@focus.example.net' });
  await w.driver.callerLeft(rec);
  await flush();
  w.layer.receive(reply(requests(w, 'SUBSCRIBE')[0]!, 489, { toTag: 'z' }));
  await flush();
  t.equal((await w.store.get(rec.deferredId))?.subscription, null);
  t.equal(w.driver.counts.subscriptions, 0);
});

t.test('pickDevice and originalOf are pure', async (t) => {
  const rec = record();
  t.equal(pickDevice([device(1), device(3), device(2)], rec, 0)?.contact, 'sip:bob@127.0.0.1:503', 'the last registered first');
  t.equal(pickDevice([device(1, { aor: 'sip:other@x' })], rec, 0), null);
  const o = originalOf(rec);
  t.equal(o.get('Conversation-ID'), 'conv-1');
  t.equal(o.get('P-Asserted-Identity'), '<sip:alice@example.net>');
});

t.test('a live deferred call: its entry waits (the call takes the device), delivered once the caller left; a stale one is swept', async (t) => {
  const w = world(fakeRelay([]));
  const rec = record({ group: true, focus: 'sip:conf3@focus.example.net' });
  await w.driver.deferred(rec);
  await flush();
  t.equal(requests(w, 'SUBSCRIBE').length, 1, 'a group session is followed from the deferral on');
  w.driver.registered(USER, [device(1)]);
  await flush();
  t.equal(requests(w, 'INVITE').length, 0, 'no delivery call while the caller is there');
  w.layer.receive(reply(requests(w, 'SUBSCRIBE')[0]!, 200, { toTag: 'f', headers: ['Expires: 3600'] }));
  await w.driver.callerLeft(rec);
  await flush();
  t.equal(requests(w, 'SUBSCRIBE').length, 1, 'the same subscription goes on');
  t.equal((await w.store.get(rec.deferredId))?.subscription?.dialog?.remoteTag, 'f');
  w.driver.registered(USER, [device(1, { params: { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session.group' } })]);
  await flush();
  t.equal(requests(w, 'INVITE').length, 1);
});

t.test('a live entry whose call ended without a handover is removed by the sweep', async (t) => {
  const verbs: Verb[] = [];
  const store = new MemoryPendingDeliveries();
  const live = new Set<string>();
  const w = world(fakeRelay(verbs), store, () => [...live]);
  const rec = record();
  live.add(rec.deferredId);
  await w.driver.deferred(rec);
  await w.driver.start();
  w.clock.advance(60_000);
  await flush();
  t.ok(await store.get(rec.deferredId), 'kept while its call is live');
  live.clear();
  w.clock.advance(60_000);
  await flush();
  t.equal(await store.get(rec.deferredId), null);
  await w.driver.stop();
});

t.test('notifications of an expired entry: kept past the grace while the relay has them, retried on a timer, removed once none are left', async (t) => {
  const verbs: Verb[] = [];
  const state = { messages: 0, notifications: 1 };
  const store = new MemoryPendingDeliveries();
  const w = world(fakeRelay(verbs, {}, state), store);
  const rec = record({ expiresAt: 1000 });
  await w.driver.callerLeft(rec);
  w.driver.relayEvent({ event: 'deferred-expired', 'call-id': rec.callId, 'deferred-id': rec.deferredId, expired: 2, notifications: 1 });
  await flush();
  w.layer.receive(reply(requests(w, 'INVITE')[0]!, 480, { toTag: 'a' }));
  await flush();
  t.equal((await store.get(rec.deferredId))?.notifications, true, 'the failed notification call is kept');
  await w.driver.start();
  w.clock.advance(10 * 60_000);
  await flush();
  t.ok(await store.get(rec.deferredId), 'past expiresAt + grace: kept, the relay still has notifications');
  const retries = requests(w, 'INVITE').slice(1);
  t.ok(retries.length >= 1, 'the notification call retried on the timer');
  t.equal(retries[0]?.ruri, 'sip:alice@example.net', 'to the sender');
  for (const r of retries) w.layer.receive(reply(r, 480, { toTag: 'b' }));
  await flush();
  state.notifications = 0;
  w.clock.advance(2 * 3_600_000);
  await flush();
  t.equal(await store.get(rec.deferredId), null, 'the relay has none left: removed');
  await w.driver.stop();
});

t.test('a restart takes the subscriptions back: one with its dialog is refreshed at its time, one without starts again', async (t) => {
  const store = new MemoryPendingDeliveries();
  const w1 = world(fakeRelay([]), store);
  const withDialog = record({ group: true, focus: 'sip:confA@focus.example.net' });
  const without = record({ group: true, focus: 'sip:confB@focus.example.net' });
  await w1.driver.callerLeft(withDialog);
  await w1.driver.callerLeft(without);
  await flush();
  const [subA] = requests(w1, 'SUBSCRIBE');
  w1.layer.receive(reply(subA!, 200, { toTag: 'fa', headers: ['Expires: 600'] }));
  await flush();
  t.ok((await store.get(withDialog.deferredId))?.subscription?.dialog, 'A: its dialog stored');
  t.equal((await store.get(without.deferredId))?.subscription?.dialog, null, 'B: no 2xx yet');
  // the process dies; a new one on the same store
  const w2 = world(fakeRelay([]), store);
  await w2.driver.start();
  await flush();
  const again = requests(w2, 'SUBSCRIBE');
  t.equal(again.length, 1, 'B subscribes again at once');
  t.equal(again[0]?.ruri, 'sip:confB@focus.example.net');
  w2.layer.receive(fromPeer(subA!, 'fa', 'NOTIFY', 2, ['Event: conference', 'Subscription-State: active', 'Content-Type: application/conference-info+xml'],
    '<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" version="1"><users><user entity="sip:z@x"/></users></conference-info>'));
  await flush();
  t.equal((responsesTo(w2, 'NOTIFY')[0] as { status?: number }).status, 200, "A's NOTIFYs are ours again");
  t.same((await store.get(withDialog.deferredId))?.conference?.participants, [{ uri: 'sip:z@x' }]);
  w2.clock.advance(480_000);
  await flush();
  const refresh = requests(w2, 'SUBSCRIBE').find((r) => r.get('Call-ID') === subA!.get('Call-ID'));
  t.match(refresh?.get('To'), /tag=fa/, 'A refreshed in its dialog');
  await w2.driver.stop();
});

t.test('a store that refuses writes (a full disk): logged, the delivery still runs, nothing unhandled', async (t) => {
  class Full extends MemoryPendingDeliveries {
    full = false;
    override async put(e: Parameters<MemoryPendingDeliveries['put']>[0]): Promise<void> {
      if (this.full) throw new Error('MDB_MAP_FULL');
      return super.put(e);
    }
  }
  const store = new Full();
  const w = world(fakeRelay([]), store);
  const rec = record();
  await w.driver.callerLeft(rec);
  store.full = true;
  w.driver.registered(USER, [device(1)]);
  await flush();
  await deliverAll(w, requests(w, 'INVITE')[0]!, 'd');
  t.equal(await store.get(rec.deferredId), null, 'delivered and removed (a remove is not a put)');
});

t.test('deferred-state unknown after a delivery (relay unreachable): the entry stays for its notifications', async (t) => {
  const w = world(fakeRelay([], { deferredState: async () => Promise.reject(new Error('down')) }));
  const rec = record();
  await w.driver.callerLeft(rec);
  w.driver.registered(USER, [device(1)]);
  await flush();
  const inv = requests(w, 'INVITE')[0]!;
  w.layer.receive(reply(inv, 200, { toTag: 'd', body: DEV_SDP }));
  await flush();
  w.driver.relayEvent({ event: 'delivered', 'call-id': `delivery;${inv.get('Call-ID')!}`, leg: 'd', 'deferred-id': rec.deferredId, what: 'messages', sent: 1, remaining: 0 });
  await flush();
  w.clock.advance(2000);
  await flush();
  w.layer.receive(reply(requests(w, 'BYE')[0]!, 200));
  await flush();
  const left = await w.store.get(rec.deferredId);
  t.match(left, { messages: false, notifications: true }, 'messages done, notifications kept');
  t.equal(requests(w, 'INVITE').length, 2, 'and a notification call tried at once');
});
