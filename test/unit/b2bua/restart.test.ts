/**
 * A restart of the B2BUA (docs/b2bua.md "Restart"), on a fake clock and a fake relay:
 * the stored record of a confirmed call (plugin/b2bua/store.ts: schema table, damaged
 * records skipped and counted), a second B2BUA that reloads it, re-arms its timers at
 * their absolute deadlines (one already past fires at once), answers in-dialog requests
 * of the old dialogs, and ends a call whose relay session is gone with BYE and a Reason.
 * The LMDB store is checked on a temporary directory.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SipMessage, SipRequest } from '../../../plugin/sip/message.js';
import { MemoryCallStore, openLmdbCallStore, parseStoredCall, STORE_VERSION, type StoredCall } from '../../../plugin/b2bua/store.js';
import type { QueryReply } from '../../../media/relay/types.js';
import {
  CALLER_SDP, DEVICE, DEVICE_SDP, KAM_RR, US, driverWorld, flush, ok, requests, responses, statusOf, text, toCaller, toDevice, yesRelay,
} from './driver-world.js';

/** Wall clock of the first B2BUA's start (epoch ms). */
const EPOCH = 1_800_000_000_000;

/** A relay that says yes; `has` says whether query finds the session (throws: unreachable). */
function fakeRelay(has: () => boolean | 'down' = () => true) {
  const calls: string[] = [];
  const relay = yesRelay({
    drop: async (p) => (calls.push(`drop ${p.leg}`), ok),
    delete: async (p) => (calls.push(`delete ${p['call-id']}`), ok),
    groupState: async (p) => (calls.push(`group-state ${p['call-id']}`), ok),
    query: async (p): Promise<QueryReply> => {
      const h = has();
      if (h === 'down') throw new Error('relay down');
      calls.push(`query ${p['call-id']}`);
      return h
        ? { ...ok, 'call-id': p['call-id'], policy: 'C', 'direct-delivery': false, record: false, legs: [] }
        : { result: 'error', 'error-code': 'UNKNOWN_SESSION', 'error-reason': 'no such session' };
    },
  });
  return { relay, calls };
}

/** One B2BUA on a fake clock whose wall clock is `start` + the fake time. */
function world(store: MemoryCallStore, start: number, relay = fakeRelay()) {
  const w = driverWorld(relay.relay, { store, wallNow: () => start + w.clock.now() });
  return { ...w, relay };
}
type World = ReturnType<typeof world>;

let branch = 0;
const via = (): string => `Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKr${++branch}`;

interface Up {
  readonly store: MemoryCallStore;
  readonly w: World;
  readonly ok200: SipMessage;
  readonly legInvite: SipRequest;
  deviceSeq: number;
  callerSeq: number;
}

/** A confirmed call: the caller asks refresher=uac (1800 s), the device refreshes its leg (900 s). */
async function callUp(store = new MemoryCallStore()): Promise<Up> {
  const w = world(store, EPOCH);
  const ticket = w.tickets.issue({ callId: 'c1', servedUser: 'sip:bob@example.net', targets: [DEVICE], service: { remove: [], hdrs: '' }, stage: 'step-8' });
  w.layer.receive(text(`INVITE ${US} SIP/2.0`, [
    via(), `Record-Route: ${KAM_RR}`, 'From: <sip:alice@example.net>;tag=a1', 'To: <sip:bob@example.net>', 'Call-ID: c1', 'CSeq: 1 INVITE',
    'Contact: <sip:alice@127.0.0.1:5555>', 'Max-Forwards: 69', `X-PF-Ticket: ${ticket}`, 'Supported: timer', 'Session-Expires: 1800;refresher=uac',
    'Conversation-ID: conv1', 'Contribution-ID: contrib1', 'Content-Type: application/sdp',
  ], CALLER_SDP));
  await flush();
  const inv = requests(w, 'INVITE').at(-1)!;
  w.layer.receive(text('SIP/2.0 200 OK', [
    ...inv.getAll('Via').map((v) => `Via: ${v}`), `From: ${inv.get('From')}`, `To: ${inv.get('To')};tag=d1`, `Call-ID: ${inv.get('Call-ID')}`,
    `CSeq: ${inv.get('CSeq')}`, `Record-Route: ${KAM_RR}`, 'Contact: <sip:bob@127.0.0.1:5099>', 'Allow: INVITE, ACK, BYE, UPDATE',
    'Session-Expires: 900;refresher=uas', 'Content-Type: application/sdp',
  ], DEVICE_SDP));
  await flush();
  const ok200 = responses(w, /^1 INVITE$/).find((r) => statusOf(r) === 200)!;
  w.layer.receive(text(`ACK ${US} SIP/2.0`, [
    via(), 'From: <sip:alice@example.net>;tag=a1', `To: ${ok200.get('To')}`, 'Call-ID: c1', 'CSeq: 1 ACK', 'Max-Forwards: 69',
  ]));
  await flush();
  return { store, w, ok200, legInvite: inv, deviceSeq: 0, callerSeq: 1 };
}

function fromDevice(u: Up, method: string, lines: readonly string[] = [], seq = ++u.deviceSeq): string {
  const inv = u.legInvite;
  return text(`${method} ${US} SIP/2.0`, [
    via(), `From: ${inv.get('To')};tag=d1`, `To: ${inv.get('From')}`, `Call-ID: ${inv.get('Call-ID')}`, `CSeq: ${seq} ${method}`,
    'Contact: <sip:bob@127.0.0.1:5099>', 'Max-Forwards: 69', ...lines,
  ]);
}

function fromCaller(u: Up, method: string, lines: readonly string[] = []): string {
  return text(`${method} ${US} SIP/2.0`, [
    via(), 'From: <sip:alice@example.net>;tag=a1', `To: ${u.ok200.get('To')}`, 'Call-ID: c1', `CSeq: ${++u.callerSeq} ${method}`,
    'Contact: <sip:alice@127.0.0.1:5555>', 'Max-Forwards: 69', ...lines,
  ]);
}

function answer(req: SipRequest, status: number): string {
  return text(`SIP/2.0 ${status} X`, [
    ...req.getAll('Via').map((v) => `Via: ${v}`), `From: ${req.get('From')}`, `To: ${req.get('To')}`, `Call-ID: ${req.get('Call-ID')}`, `CSeq: ${req.get('CSeq')}`,
  ]);
}

/** The record the first B2BUA left, as stored. */
function stored(u: Up): StoredCall {
  const r = parseStoredCall(u.store.records.get('c1') ?? '');
  if (!r.ok) throw new Error(`no good record: ${r.ok ? '' : r.why}`);
  return r.call;
}

// ---------------------------------------------------------------- the record

t.test('a confirmed call is stored: machine, both dialogs, each side with its deadline', async (t) => {
  const u = await callUp();
  const r = stored(u);
  t.equal(r.v, STORE_VERSION);
  t.equal(r.machine.state, 'confirmed');
  t.equal(r.servedUser, 'sip:bob@example.net');
  t.equal(r.conversationId, 'conv1');
  t.equal(r.focus, 'sip:alice@127.0.0.1:5555');
  t.equal(r.caller.dialog?.remoteTag, 'a1', 'the caller dialog');
  t.same(r.caller.dialog?.routeSet, [KAM_RR], 'its route set');
  t.equal(r.legs[0]?.dialog?.remoteTag, 'd1', 'the leg dialog');
  t.equal(r.legs[0]?.dialog?.remoteTarget, 'sip:bob@127.0.0.1:5099');
  // the caller and the device refresh: each side expires interval - 32 s after its 2xx
  t.same(r.caller.side?.deadline, { due: 'expire', at: EPOCH + 1768_000 });
  t.same(r.legs[0]?.side?.deadline, { due: 'expire', at: EPOCH + 868_000 });
  // a refresh moves the deadline, and the remote CSeq, in the record
  u.w.clock.advance(100_000);
  u.w.layer.receive(fromDevice(u, 'UPDATE', ['Supported: timer', 'Session-Expires: 900;refresher=uac']));
  await flush();
  const r2 = stored(u);
  t.same(r2.legs[0]?.side?.deadline, { due: 'expire', at: EPOCH + 968_000 }, 'the refresh moved the deadline');
  t.equal(r2.legs[0]?.dialog?.remoteSeq, 1, 'the remote CSeq');
  // a call that ends leaves no record
  u.w.layer.receive(fromCaller(u, 'BYE'));
  await flush();
  t.equal(u.store.records.size, 0, 'the record goes with the call');
});

t.test('schema: parseStoredCall takes a good record and reports the rest', async (t) => {
  const good = stored(await callUp());
  const cases: [string, string, boolean, RegExp?][] = [
    ['a good record', JSON.stringify(good), true],
    ['cut short (a partly written record)', JSON.stringify(good).slice(0, 200), false, /not JSON/],
    ['not JSON', '\u0000\u0001garbage', false, /not JSON/],
    ['another version', JSON.stringify({ ...good, v: 3 }), false, /version 3/],
    ['a version 1 record (before deferral): loads, not deferred', JSON.stringify({ ...good, v: 1, machine: { ...good.machine, deferred: undefined } }), true],
    ['deferred unknown', JSON.stringify({ ...good, machine: { ...good.machine, deferred: 'maybe' } }), false, /machine/],
    ['no machine', JSON.stringify({ ...good, machine: undefined }), false, /machine/],
    ['a leg state unknown', JSON.stringify({ ...good, machine: { ...good.machine, legs: [{ ...good.machine.legs[0], state: 'flying' }] } }), false, /legs/],
    ['a dialog without Call-ID', JSON.stringify({ ...good, caller: { ...good.caller, dialog: { ...good.caller.dialog, callId: '' } } }), false, /caller/],
    ['a deadline as text', JSON.stringify({ ...good, caller: { ...good.caller, side: { ...good.caller.side, deadline: { due: 'expire', at: 'soon' } } } }), false, /caller\/side/],
    ['an extra field', JSON.stringify({ ...good, extra: 1 }), false],
    ['null', 'null', false],
  ];
  for (const [name, text, want, why] of cases) {
    const r = parseStoredCall(text);
    t.equal(r.ok, want, name);
    if (!r.ok && why) t.match(r.why, why, `${name}: why`);
  }
});

// ---------------------------------------------------------------- a restart

/** The first B2BUA dies (nothing is sent); a second one starts `afterMs` later on the same store. */
async function restart(u: Up, afterMs: number, relay = fakeRelay()): Promise<World> {
  const w2 = world(u.store, EPOCH + u.w.clock.now() + afterMs, relay);
  await w2.b.restore();
  await w2.b.checkRelay();
  await flush();
  return w2;
}

t.test('after a restart: damaged records skipped and counted, the call answers a refresh and a BYE from the device', async (t) => {
  const u = await callUp();
  u.w.layer.receive(fromDevice(u, 'UPDATE', ['Supported: timer', 'Session-Expires: 900;refresher=uac']));
  await flush();
  u.store.records.set('broken', '{"v":1,"callId":"broken","machine":');
  u.store.records.set('wrong', JSON.stringify({ v: 1, callId: 'wrong' }));
  u.store.records.set('other-key', u.store.records.get('c1')!);
  const w2 = await restart(u, 5_000);
  t.same({ calls: w2.b.counts.calls, restored: w2.b.counts.restored, skipped: w2.b.counts.skipped }, { calls: 1, restored: 1, skipped: 3 });
  t.same(w2.b.sessions(), [{ callId: 'c1', servedUser: 'sip:bob@example.net', state: 'confirmed', legs: [{ id: 'L1', device: w2.b.sessions()[0]!.legs[0]!.device, state: 'up' }] }]);
  t.same(w2.relay.calls, ['query c1'], 'the relay was asked for the session');
  // a stale CSeq on the old dialog is refused, a newer one is a refresh
  w2.layer.receive(fromDevice(u, 'UPDATE', ['Supported: timer', 'Session-Expires: 900;refresher=uac'], 0));
  await flush();
  t.equal(statusOf(responses(w2, /UPDATE$/).at(-1)), 500, 'a stale CSeq: 500 (the stored remote CSeq)');
  w2.layer.receive(fromDevice(u, 'UPDATE', ['Supported: timer', 'Session-Expires: 900;refresher=uac']));
  await flush();
  t.equal(statusOf(responses(w2, /UPDATE$/).at(-1)), 200, 'the refresh: 200');
  // the caller refreshes by re-INVITE: answered with the SDP given before the restart
  w2.layer.receive(fromCaller(u, 'INVITE', ['Supported: timer', 'Session-Expires: 1800;refresher=uac']));
  await flush();
  const ri = responses(w2, /INVITE$/).at(-1);
  t.equal(statusOf(ri), 200, 'the caller re-INVITE: 200');
  t.match(ri?.body ?? '', /a=path:msrp:\/\/127.0.0.1:2855\/r1;tcp/, 'with our SDP of before');
  w2.layer.receive(text(`ACK ${US} SIP/2.0`, [via(), 'From: <sip:alice@example.net>;tag=a1', `To: ${u.ok200.get('To')}`, 'Call-ID: c1', `CSeq: ${u.callerSeq} ACK`, 'Max-Forwards: 69']));
  // the device hangs up: BYE to the caller along its stored route set, then the relay session goes
  w2.layer.receive(fromDevice(u, 'BYE'));
  await flush();
  t.equal(statusOf(responses(w2, /BYE$/).at(-1)), 200, 'the BYE: 200');
  const bye = toCaller(w2, 'BYE')[0];
  t.ok(bye, 'BYE to the caller');
  t.equal(bye?.ruri, 'sip:alice@127.0.0.1:5555', 'to its Contact');
  t.same(bye?.getAll('Route'), [KAM_RR], 'along its route set');
  t.match(bye?.get('CSeq') ?? '', /^1 BYE$/, 'our first request in that dialog');
  w2.layer.receive(answer(bye!, 200));
  await flush();
  t.same(w2.relay.calls, ['query c1', 'drop L1', 'delete c1'], 'the media leg dropped and the session deleted');
  t.equal(w2.b.counts.calls, 0, 'no call left');
  t.same([...u.store.records.keys()].sort(), ['broken', 'other-key', 'wrong'], 'its record deleted, the damaged ones left alone');
});

t.test('after a restart: the timers run from their stored deadlines', async (t) => {
  const u = await callUp();
  u.w.clock.advance(500_000);
  const w2 = await restart(u, 0);
  w2.clock.advance(367_000);
  await flush();
  t.equal(requests(w2, 'BYE').length, 0, '867 s after the 2xx: nothing yet');
  w2.clock.advance(1_000);
  await flush();
  t.match(toDevice(w2, 'BYE')[0]?.get('Reason') ?? '', /Session timer expired/, 'at 868 s: BYE to the device');
  t.equal(toCaller(w2, 'BYE').length, 1, 'the last device: BYE to the caller');
});

t.test('after a restart: a deadline already past counts as expired at once', async (t) => {
  const u = await callUp();
  const w2 = await restart(u, 1000_000);
  w2.clock.advance(0);
  await flush();
  t.match(toDevice(w2, 'BYE')[0]?.get('Reason') ?? '', /Session timer expired/, 'BYE to the device');
  t.equal(toCaller(w2, 'BYE').length, 1, 'BYE to the caller');
});

t.test('after a restart: a call whose relay session is gone ends with BYE and Reason on every leg', async (t) => {
  for (const [name, has] of [['the relay lost the session', () => false], ['the relay cannot be reached', () => 'down' as const]] as const) {
    const u = await callUp();
    const w2 = await restart(u, 1_000, fakeRelay(has));
    const dev = toDevice(w2, 'BYE')[0];
    const caller = toCaller(w2, 'BYE')[0];
    t.match(dev?.get('Reason') ?? '', /cause=503;text="Media relay unavailable"/, `${name}: BYE to the device with the Reason`);
    t.match(caller?.get('Reason') ?? '', /cause=503;text="Media relay unavailable"/, `${name}: BYE to the caller with the Reason`);
    w2.layer.receive(answer(dev!, 200));
    w2.layer.receive(answer(caller!, 200));
    await flush();
    t.equal(w2.b.counts.calls, 0, `${name}: the call is over`);
    t.notOk(w2.relay.calls.some((c) => c.startsWith('delete') || c.startsWith('drop')), `${name}: nothing asked of the relay after`);
    t.equal(u.store.records.size, 0, `${name}: its record deleted`);
  }
});

t.test('after a restart: what was in flight is over: a leg still ringing failed, our BYE to a leg done', async (t) => {
  const u = await callUp();
  const r = stored(u);
  const ringing = { ...r.machine.legs[0]!, id: 'L2', state: 'early' as const, media: false, timer: null };
  u.store.put({ ...r, machine: { ...r.machine, legs: [...r.machine.legs, ringing], nextLeg: 3 }, legs: [...r.legs, { id: 'L2', dialog: null, side: null }] });
  const w2 = await restart(u, 1_000);
  t.same(w2.b.sessions()[0]?.legs.map((l) => `${l.id}:${l.state}`), ['L1:up', 'L2:closed'], 'the ringing leg failed, the call goes on');
  t.equal(requests(w2, 'BYE').length, 0, 'no BYE');

  const u2 = await callUp();
  const r2 = stored(u2);
  u2.store.put({ ...r2, machine: { ...r2.machine, legs: [{ ...r2.machine.legs[0]!, state: 'releasing', timer: null }] } });
  const w3 = await restart(u2, 1_000);
  t.same([...w3.relay.calls].sort(), ['drop L1', 'query c1'], 'the released leg closed, its media dropped');
  t.equal(toCaller(w3, 'BYE').length, 1, 'no device left: BYE to the caller');
  t.equal(toDevice(w3, 'BYE').length, 0, 'no second BYE to the device');
});

t.test('the relay lost while running: checkRelay ends the calls it no longer has', async (t) => {
  let has = true;
  const store = new MemoryCallStore();
  await callUp(store);
  // a B2BUA that took the call over (its relay answers as `has` says)
  const w = world(store, EPOCH, fakeRelay(() => has));
  await w.b.restore();
  await w.b.checkRelay();
  await flush();
  t.equal(requests(w, 'BYE').length, 0, 'the relay has it: nothing');
  has = false;
  await w.b.checkRelay();
  await flush();
  t.equal(requests(w, 'BYE').length, 2, 'gone: BYE both ways');
});

t.test('the LMDB store: records round-trip, a damaged one is reported and skipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'b2bua-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = stored(await callUp());
  const errors: unknown[] = [];
  const s1 = openLmdbCallStore(dir, (e) => errors.push(e));
  s1.put(good);
  s1.put({ ...good, callId: 'c2' });
  s1.delete('c2');
  await s1.flushed();
  await s1.close();
  // a damaged record written underneath
  const { open } = await import('lmdb');
  const raw = open({ path: dir, maxDbs: 1 });
  const db = raw.openDB<string, string>({ name: 'calls', encoding: 'string' });
  await db.put('bad', '{"v":1,"callId":"bad"');
  await raw.close();
  const s2 = openLmdbCallStore(dir, (e) => errors.push(e));
  const loaded = await s2.load();
  t.same(loaded.calls, [good], 'the good record back as it was');
  t.same(loaded.bad.map((b) => b.key), ['bad'], 'the damaged one reported');
  await s2.close();
  t.same(errors, []);
});
