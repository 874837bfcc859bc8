/**
 * Deferred sessions in the B2BUA driver (plugin/b2bua/b2bua.ts; CR 8.3.2.1 step 8 a ii,
 * 8.3.2.1.1; docs/b2bua.md "Deferred sessions"), with its real transaction layer on a fake
 * clock and a fake relay that records the verbs it is asked: defer with no device, defer
 * after every leg failed, the caller leaving (the record handed over), a device that
 * registers joining (200: a normal call; 603: discard and BYE with "Call completed"), the
 * relay refusing, and a restart of a deferred call.
 */
import t from 'tap';
import type { SipMessage } from '../../../plugin/sip/message.js';
import type { RelayPort } from '../../../plugin/b2bua/b2bua.js';
import type { Device } from '../../../plugin/devices/types.js';
import type { DeferredRecord } from '../../../plugin/b2bua/deferred/record.js';
import { isDeferredRecord } from '../../../plugin/b2bua/deferred/record.js';
import { REASON_COMPLETED } from '../../../plugin/b2bua/call/machine.js';
import { MemoryCallStore } from '../../../plugin/b2bua/store.js';
import { WireError, WireErrorCode } from '../../../wire/errors.js';
import {
  DEVICE, answerTo, callerInvite, deviceResponse, driverWorld, flush, fromCallerTo, ok, responses, statusOf, toCaller, toDevice, yesRelay,
} from './driver-world.js';
import { TAGS } from '../rules/fixtures/build.js';

const BOB = 'sip:bob@example.net';
const ICSI = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session';
const EPOCH = Date.UTC(2026, 11, 6);
/** A CPM session invitation (the ICSI in P-Preferred-Service, as pf.invite saw it) with the ids a delivery copies. */
const CPM = [
  `P-Preferred-Service: ${ICSI}`, 'P-Asserted-Identity: <sip:alice@example.net>', 'P-Asserted-Identity: <tel:+15550001>',
  'Conversation-ID: conv-1', 'Contribution-ID: contrib-1',
];
/** A CPM phone of bob's that registers later (suitable, addressable by its GRUU). */
const PHONE: Device = { ...DEVICE, instance: '<urn:uuid:2>', params: { ...TAGS.cpm }, pubGruu: 'sip:bob@example.net;gr=urn:uuid:2', callId: 'reg2' };
const TV: Device = { ...DEVICE, instance: '<urn:uuid:3>', params: { ...TAGS.mmtel }, pubGruu: 'sip:bob@example.net;gr=urn:uuid:3', callId: 'reg3' };
const CPM_DEVICE: Device = { ...DEVICE, params: { ...TAGS.cpm } };

/** A relay that says yes and records each verb; `over` replaces verbs. */
function world(over: Partial<RelayPort> = {}, store?: MemoryCallStore, wallNow = (): number => EPOCH) {
  const calls: string[] = [];
  const params: Record<string, unknown[]> = {};
  const note = (verb: string, p: unknown): void => {
    calls.push(verb);
    (params[verb] ??= []).push(p);
  };
  const base = yesRelay();
  const relay: RelayPort = {
    offer: async (p) => (note('offer', p), base.offer(p)),
    answer: async (p) => (note('answer', p), base.answer(p)),
    drop: async (p) => (note('drop', p), ok),
    delete: async (p) => (note('delete', p), ok),
    query: async (p) => (note('query', p), base.query(p)),
    groupState: async (p) => (note('groupState', p), ok),
    defer: async (p) => (note('defer', p), ok),
    discard: async (p) => (note('discard', p), { ...ok, discarded: 2 }),
    ...over,
  };
  const w = driverWorld(relay, { ...(store ? { store } : {}), wallNow });
  const ended: DeferredRecord[] = [];
  const started: DeferredRecord[] = [];
  w.b.onDeferredEnded = (r) => void ended.push(r);
  w.b.onDeferred = (r) => void started.push(r);
  return { ...w, calls, params, ended, started };
}
type World = ReturnType<typeof world>;

/** The caller's INVITE with a ticket for `targets` and deferral on (TTL 60 s). */
async function invite(w: World, targets: readonly Device[] = [], deferral: { ttlS: number } | null = { ttlS: 60 }): Promise<void> {
  const ticket = w.tickets.issue({
    callId: 'c1', servedUser: BOB, targets, service: { remove: [], hdrs: '' }, stage: 'b2bua', defer: targets.length === 0, deferral, record: true,
  });
  w.layer.receive(callerInvite(ticket, CPM));
  await flush();
}

/** A device that registered joins at once (pf.registered comes after Kamailio saved its binding). */
async function joined(_w: World): Promise<void> {
  await flush();
}

const ok200 = (w: World): SipMessage | undefined => responses(w, /^1 INVITE$/).find((r) => statusOf(r) === 200);

/** The relay's `delivered`: the stored backlog of `rec` reached leg `leg` (docs/media-control.md "Events"). */
function delivered(w: World, rec: DeferredRecord, leg = 'L1'): void {
  w.b.relayEvent({ event: 'delivered', 'call-id': 'c1', leg, 'deferred-id': rec.deferredId, what: 'messages', sent: 2, remaining: 0 });
}

/** A deferred call whose device joined and answered 200: the relay is flushing the backlog to it. */
async function flushing(): Promise<{ w: World; rec: DeferredRecord }> {
  const w = await deferredUp();
  const rec = w.b.deferredCalls(BOB)[0]!;
  w.b.deviceRegistered(BOB, PHONE);
  await flush();
  w.layer.receive(deviceResponse(toDevice(w, 'INVITE')[0]!, 200));
  await flush();
  return { w, rec };
}

/** A call deferred with no device and confirmed (the caller's ACK). */
async function deferredUp(w: World = world()): Promise<World> {
  await invite(w);
  w.layer.receive(fromCallerTo(ok200(w)!));
  await flush();
  return w;
}

t.test('no device, deferral on: relay defer, then our 200 with the relay\'s answer; the call is live and deferred', async (t) => {
  const w = world();
  await invite(w);
  t.same(w.calls, ['offer', 'defer'], 'offer, then defer');
  t.match(w.params.offer?.[0], { 'call-id': 'c1', record: true, 'conversation-id': 'conv-1', 'contribution-id': 'contrib-1' }, 'record and the ids in offer');
  const d = w.params.defer?.[0] as { 'deferred-id': string; 'expires-at': number };
  t.match(d, { 'call-id': 'c1', 'served-user': BOB, 'expires-at': EPOCH + 60_000 }, 'defer until the TTL');
  t.match(d['deferred-id'], /^[0-9a-f]{32}$/, 'a 128-bit deferred-id');
  const res = ok200(w);
  t.ok(res, 'our 200 to the caller');
  t.match(res?.body ?? '', /msrp:\/\/127.0.0.1:2855\/r1;tcp/, 'with the relay\'s SDP answer');
  t.equal(res?.get('Conversation-ID'), 'conv-1', 'as the 200 OK procedure: the ids copied');
  t.equal(toDevice(w, 'INVITE').length, 0, 'no device invited');
  const live = w.b.deferredCalls(BOB);
  t.equal(live.length, 1, 'one live deferred call of bob');
  t.ok(isDeferredRecord(live[0]), 'a record of the schema');
  t.same(live[0], {
    deferredId: d['deferred-id'], servedUser: BOB, callId: 'c1', from: '"Alice" <sip:alice@example.net>',
    pAssertedIdentity: ['<sip:alice@example.net>', '<tel:+15550001>'], to: '<sip:bob@example.net>', conversationId: 'conv-1', contributionId: 'contrib-1',
    inReplyToContributionId: null, group: false, focus: null, expiresAt: EPOCH + 60_000, record: true,
  }, 'the record (recorded, as the plan said: its delivery records too)');
  t.same(w.started, live, 'onDeferred told once');
  t.same(w.b.deferredCalls('sip:carol@example.net'), [], 'nobody else\'s');
  w.layer.receive(fromCallerTo(res!));
  await flush();
  t.equal(w.b.counts.confirmed, 1, 'confirmed, with no leg');
  w.clock.advance(3_600_000);
  await flush();
  t.equal(toCaller(w, 'BYE').length, 0, 'no "last leg gone" BYE: it stays up');
});

t.test('every leg failed with 480: defer (before the ISF), then our 200', async (t) => {
  const w = world();
  await invite(w, [CPM_DEVICE]);
  const leg = toDevice(w, 'INVITE')[0]!;
  w.layer.receive(deviceResponse(leg, 480));
  await flush();
  t.same(w.calls, ['offer', 'defer'], 'defer after the failure');
  t.equal(statusOf(ok200(w)), 200, 'our 200 to the caller');
  t.equal(w.b.deferredCalls(BOB).length, 1, 'deferred');
});

t.test('every leg failed with 486: no deferral, the error to the caller', async (t) => {
  const w = world();
  await invite(w, [CPM_DEVICE]);
  w.layer.receive(deviceResponse(toDevice(w, 'INVITE')[0]!, 486));
  await flush();
  t.notOk(w.calls.includes('defer'), 'no defer');
  t.equal(statusOf(responses(w, /^1 INVITE$/).at(-1)), 486);
});

t.test('the relay refuses defer: 500; cannot be reached: 503; nothing kept', async (t) => {
  const cases: [string, RelayPort['defer'], number][] = [
    ['refused', async () => ({ result: 'error', 'error-code': 'STORE_UNAVAILABLE', 'error-reason': 'no store' }), 500],
    ['unreachable', () => Promise.reject(new WireError(WireErrorCode.Closed, 'connection closed')), 503],
  ];
  for (const [name, defer, status] of cases) {
    const w = world({ defer });
    await invite(w);
    t.equal(statusOf(responses(w, /^1 INVITE$/).at(-1)), status, `${name}: ${status}`);
    t.equal(w.b.counts.calls, 0, `${name}: no call left`);
    t.same(w.b.deferredCalls(BOB), [], `${name}: nothing deferred`);
    t.same(w.ended, [], `${name}: nothing handed over`);
  }
});

t.test('the caller\'s BYE ends a deferred call: 200, the relay session goes, the record is handed over', async (t) => {
  const w = await deferredUp();
  const rec = w.b.deferredCalls(BOB)[0];
  w.layer.receive(fromCallerTo(ok200(w)!, 'BYE', 2));
  await flush();
  t.equal(statusOf(responses(w, /^2 BYE$/).at(-1)), 200, 'BYE answered');
  t.ok(w.calls.includes('delete'), 'the relay session deleted (its stored messages stay)');
  t.notOk(w.calls.includes('discard'), 'nothing discarded');
  t.same(w.ended, [rec], 'onDeferredEnded with the record');
  t.same(w.b.deferredCalls(BOB), [], 'no live deferred call');
  t.equal(w.b.deviceRegistered(BOB, PHONE), false, 'a device that registers now is the delivery module\'s');
});

t.test('a device registers: a leg to it; its 200: relay answer, a normal call', async (t) => {
  const w = await deferredUp();
  t.equal(w.b.deviceRegistered(BOB, TV), false, 'a device that cannot take the session: not taken');
  t.equal(w.b.deviceRegistered('sip:carol@example.net', PHONE), false, 'another user: not taken');
  t.equal(toDevice(w, 'INVITE').length, 0);
  t.equal(w.b.deviceRegistered(BOB, PHONE), true, 'bob\'s CPM phone: taken');
  await joined(w);
  const legs = toDevice(w, 'INVITE');
  t.equal(legs.length, 1, 'one leg INVITE');
  const leg = legs[0]!;
  t.equal(leg.ruri, PHONE.pubGruu, 'to its GRUU');
  t.equal(leg.get('Conversation-ID'), 'conv-1', 'the INVITE\'s ids copied (CR step 8 c iv)');
  t.match(leg.body, /msrp:\/\/127.0.0.1:2855\/r2;tcp/, 'the relay\'s device offer');
  t.equal(w.b.deviceRegistered(BOB, PHONE), true, 'the same device again (a refresh) is still the call\'s');
  await joined(w);
  t.equal(toDevice(w, 'INVITE').length, 1, '... and invited once');
  w.layer.receive(deviceResponse(leg, 200));
  await flush();
  t.match(w.params.answer?.[0], { 'call-id': 'c1', leg: 'L1' }, 'relay answer: the relay flushes the backlog to it');
  t.equal(responses(w, /^1 INVITE$/).filter((r) => statusOf(r) === 200).length, 1, 'no second 200 to the caller');
  const rec = w.b.deferredCalls(BOB)[0]!;
  t.ok(rec, 'still deferred while the relay flushes the backlog');
  delivered(w, rec);
  await flush();
  t.same(w.b.deferredCalls(BOB), [], 'no longer deferred once the relay delivered it');
  w.layer.receive(fromCallerTo(ok200(w)!, 'BYE', 2));
  await flush();
  t.equal(toDevice(w, 'BYE').length, 1, 'the caller\'s BYE: BYE to the device');
  t.same(w.ended, [], 'a normal call: nothing handed over');
});

t.test('a device that joins and fails with 480: the call stays deferred; another device may join', async (t) => {
  const w = await deferredUp();
  w.b.deviceRegistered(BOB, PHONE);
  await joined(w);
  w.layer.receive(deviceResponse(toDevice(w, 'INVITE')[0]!, 480));
  await flush();
  t.equal(w.b.deferredCalls(BOB).length, 1, 'still deferred');
  t.equal(toCaller(w, 'BYE').length, 0, 'the caller stays');
  t.equal(w.b.deviceRegistered(BOB, PHONE), true, 'the device again (a refresh) is the call\'s');
  await flush();
  t.equal(toDevice(w, 'INVITE').length, 1, '... but a device that failed is not invited again at a refresh');
  t.equal(w.b.deviceRegistered(BOB, { ...PHONE, callId: 'reg2-reboot' }), true, 'the device registered anew (a new Call-ID)');
  await flush();
  t.equal(toDevice(w, 'INVITE').length, 2, '... a new leg');
});

t.test('the caller\'s BYE while the relay flushes the backlog to the device: the record is handed over', async (t) => {
  const { w, rec } = await flushing();
  w.layer.receive(fromCallerTo(ok200(w)!, 'BYE', 2));
  await flush();
  t.equal(toDevice(w, 'BYE').length, 1, 'the device gets BYE');
  t.same(w.ended, [rec], 'handed over: the rest of the backlog is delivered later');
  t.notOk(w.calls.includes('discard'), 'nothing discarded');
});

t.test('the device\'s media fails while the relay flushes: deferred again, the caller stays', async (t) => {
  const { w, rec } = await flushing();
  w.b.relayEvent({ event: 'leg-closed', 'call-id': 'c1', leg: 'L1', reason: 'deferred backlog: no response in 30 s' });
  await flush();
  t.equal(toDevice(w, 'BYE').length, 1, 'the device gets BYE');
  t.equal(toCaller(w, 'BYE').length, 0, 'no BYE to the caller');
  t.same(w.b.deferredCalls(BOB), [rec], 'live and deferred again');
  t.same(w.ended, [], 'nothing handed over yet');
  w.layer.receive(fromCallerTo(ok200(w)!, 'BYE', 2));
  await flush();
  t.same(w.ended, [rec], 'the caller\'s BYE later hands it over');
});

t.test('a deferred call that starts ending (max age) hands over at once; the call record goes after the pending write', async (t) => {
  const store = new MemoryCallStore();
  const w = await deferredUp(world({}, store));
  const rec = w.b.deferredCalls(BOB)[0]!;
  let written: () => void = () => {};
  const order: string[] = [];
  w.b.onDeferredEnded = (r) => {
    order.push(`handover ${r.deferredId === rec.deferredId}`);
    return new Promise<void>((res) => (written = () => (order.push('written'), res())));
  };
  const del = store.delete.bind(store);
  store.delete = (id: string): void => {
    order.push('record deleted');
    del(id);
  };
  t.ok(store.records.has('c1'), 'the confirmed call is stored');
  void w.b.stop(); // max-age: BYE to the caller, ending
  await flush();
  t.same(order, ['handover true'], 'handed over at ending, the record still there');
  t.ok(store.records.has('c1'), 'the call record stays until the pending entry is written');
  written();
  await flush();
  t.same(order, ['handover true', 'written', 'record deleted'], 'then the record goes');
});

t.test('CR 8.3.2.1.1 603 from the device that joined: discard, BYE the caller with Reason "Call completed"', async (t) => {
  const w = await deferredUp();
  const rec = w.b.deferredCalls(BOB)[0]!;
  w.b.deviceRegistered(BOB, PHONE);
  await joined(w);
  w.layer.receive(deviceResponse(toDevice(w, 'INVITE')[0]!, 603));
  await flush();
  t.same(w.params.discard, [{ 'deferred-id': rec.deferredId }], 'relay discard of the deferred-id');
  t.ok(w.calls.includes('delete') && w.calls.indexOf('delete') < w.calls.indexOf('discard'), 'the session stops storing (delete) before the discard');
  t.equal(w.calls.filter((c) => c === 'delete').length, 1, 'deleted once');
  const bye = toCaller(w, 'BYE');
  t.equal(bye.length, 1, 'BYE to the caller');
  t.equal(bye[0]?.get('Reason'), 'SIP;cause=200;text="Call completed"', 'with the exact Reason');
  t.equal(REASON_COMPLETED, 'SIP;cause=200;text="Call completed"');
  w.layer.receive(answerTo(bye[0]!, 200));
  await flush();
  t.equal(w.b.counts.calls, 0, 'the call is over');
  t.same(w.ended, [], 'nothing handed over: discarded');
});

t.test('a deferred call survives a restart: its record and leg source are stored, a device joins after', async (t) => {
  const store = new MemoryCallStore();
  const w = await deferredUp(world({}, store));
  await flush();
  const rec = w.b.deferredCalls(BOB)[0]!;
  const stored = JSON.parse(store.records.get('c1') ?? '{}') as { v: number; machine: { deferred: string }; deferral?: { record: unknown } };
  t.equal(stored.v, 2, 'version 2');
  t.equal(stored.machine.deferred, 'on');
  t.same(stored.deferral?.record, rec, 'the deferred record stored');
  const w2 = world({}, store);
  await w2.b.restore();
  await w2.b.checkRelay();
  await flush();
  t.same(w2.b.deferredCalls(BOB), [rec], 'live and deferred after the restart');
  t.equal(w2.b.deviceRegistered(BOB, PHONE), true, 'a device joins');
  await joined(w2);
  const leg = toDevice(w2, 'INVITE')[0];
  t.equal(leg?.ruri, PHONE.pubGruu, 'a leg INVITE from the stored INVITE');
  t.equal(leg?.get('Contribution-ID'), 'contrib-1');
  w2.layer.receive(deviceResponse(leg!, 180));
  await flush();
  w2.layer.receive(fromCallerTo(ok200(w)!, 'BYE', 2));
  await flush();
  t.equal(toDevice(w2, 'CANCEL').length, 1, 'the caller\'s BYE: the ringing device is cancelled');
  w2.layer.receive(deviceResponse(leg!, 487));
  await flush();
  t.same(w2.ended, [rec], 'once it is closed, the record is handed over');
});
