/**
 * On real Kamailio and the real relay: deferred delivery, the delivery half (docs/deferred.md
 * "Delivery"; CR 8.3.2.1.1 step 3 i, 8.3.2.9). A chat caller (lab/chat-phone.ts ChatCaller)
 * invites a served user with no device: the B2BUA defers (our 200, the relay stores what
 * the caller sends); the caller leaves; a chat phone of the user registers and gets a
 * delivery call. Cases:
 * - the stored messages arrive in order with their CPIM headers (From, DateTime,
 *   imdn.Message-ID), each once; the phone's IMDNs reach the sender through a new session
 *   (the notification call to the sender's own phone), for a sender in proxy mode and
 *   for one in B2BUA mode (the notification call then goes relay to relay);
 * - a 603 to the delivery INVITE discards the stored messages (relay deferred-state 0);
 * - the service killed while the delivery INVITE rings, started again: the next REGISTER
 *   delivers every message, each imdn.Message-ID once; killed while the delivery call
 *   lingers after the last message: BYE in the stored dialog after the restart, nothing
 *   delivered again, the IMDNs still reach the sender;
 * - a deferred group session subscribes to the conference package at the focus (a
 *   notifier in this test, through Kamailio), and the NOTIFY's participants end up in the
 *   Group State Object the relay stores; a SUBSCRIBE with a false X-PF-Leg gets 403.
 * The pending deliveries are read from the service's LMDB environment (read-only, as a
 * second process may).
 */
import t from 'tap';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Lab, runDir, Service } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { SipUa, hdr, hdrs, uriOf, type SipMsg } from '../../lab/sip-ua.js';
import { sipMessage } from '../../lab/sip-fixtures.js';
import { LmdbMessageStore } from '../../media/history/store.js';
import { GROUP_STATE_TYPE } from '../../media/history/mss.js';
import { ChatCaller, Phone } from '../../lab/chat-phone.js';
import { chats, eventually, handset as phoneWithLog, type Handset } from '../../lab/handset.js';
import { RelayControlClient } from '../../media/relay/control-client.js';
import { LmdbPendingDeliveries, type PendingEntry } from '../../plugin/b2bua/deferred/pending-store.js';

const dir = runDir('it-deferred');
const ALICE = 'sip:alice@example.net';
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  serviceLogLevel: process.env.PF_TEST_LOG_LEVEL ?? 'info',
  // deferral for everyone; alice (the sender) in proxy mode, so the notification call reaches her phone directly
  policy: { deferredDelivery: true, modeByUser: { [ALICE]: 'proxy' } },
  b2bua: { multiDevice: 'C', deliveryLingerMs: 3000 },
});
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
const phones: Phone[] = [];
const callers = new Set<ChatCaller>();
t.teardown(async () => {
  await Promise.all([...callers].map((c) => c.hangup().catch(() => undefined)));
  await Promise.all(phones.map((p) => p.stop()));
  await relay.close();
  await lab.stop();
});

const handset = (user: string, n: number, answer?: Phone['o']['answer']): Promise<Handset> =>
  phoneWithLog({ sipPort: lab.sipPort, phones }, user, n, answer);

/** The pending entries of `user`, read now from the service's store (a fresh read-only snapshot). */
async function pendingOf(user: string): Promise<PendingEntry[]> {
  const root = open({ path: join(lab.service.opts.dataDir!, 'b2bua-pending'), maxDbs: 2, readOnly: true });
  try {
    const store = new LmdbPendingDeliveries(root, root.openDB({ name: 'pending', encoding: 'string' }), root.openDB({ name: 'by-user', encoding: 'string' }));
    return await store.forUser(`sip:${user}@example.net`, Date.now());
  } finally {
    await root.close();
  }
}

/** alice calls `to` (no device: deferred), sends `texts`, hangs up; the deferred entry, once the caller has left. */
async function deferredChat(to: string, texts: readonly string[]): Promise<{ entry: PendingEntry; sent: string[]; leftAt: number }> {
  const c = await ChatCaller.place({ sipPort: lab.sipPort, from: 'alice', to, out: () => undefined });
  callers.add(c);
  if (c.state !== 'confirmed') throw new Error(`call to ${to}: ${c.final?.status ?? '?'}`);
  for (const text of texts) await c.session.send(text);
  const sent = [...c.session.sent];
  callers.delete(c);
  await c.hangup();
  const leftAt = Date.now();
  let entry: PendingEntry | undefined;
  await until(async () => {
    entry = (await pendingOf(to)).find((e) => !e.live);
    return entry;
  }, 10_000, `${to}: a pending delivery once the caller left`);
  return { entry: entry!, sent, leftAt };
}

/** alice's phones, for the notification calls. */
const senders: Handset[] = [];
const allChats = (h: Handset) => h.sessions.flatMap((s) => chats(s.events));

t.test('stored while no device; delivered in order with the CPIM headers on REGISTER; the IMDNs reach the sender in a new session', async (t) => {
  const alice = await handset('alice', 1);
  senders.push(alice);
  const { entry, sent, leftAt } = await deferredChat('dora', ['one', 'two', 'three']);
  t.equal(sent.length, 3);
  t.equal(entry.record.from.includes(ALICE), true, 'the record keeps the original From');
  const dora = await handset('dora', 1);
  await eventually(() => allChats(dora).length >= 3, 'three messages at the phone');
  const got = allChats(dora);
  t.same(got.map((c) => c.text), ['one', 'two', 'three'], 'in order');
  t.same(got.map((c) => c.imdnId), sent, 'the original imdn.Message-IDs');
  t.ok(got.every((c) => c.from === ALICE), 'CPIM From: the original sender');
  t.ok(got.every((c) => c.dateTime !== undefined && Date.parse(c.dateTime) <= leftAt), 'CPIM DateTime: when it was sent, not when delivered');
  const inv = dora.requests.find((r) => r.method === 'INVITE');
  t.match(hdr(inv!, 'from') ?? '', /<sip:alice@example\.net>/, 'the delivery INVITE comes from the original sender');
  t.equal(hdr(inv!, 'contribution-id'), entry.record.contributionId);
  // the phone's delivery notifications: the original session is gone, so a new one to alice
  await eventually(() => alice.sessions.some((s) => sent.every((id) => s.events.some((e) => e.kind === 'imdn' && e.messageId === id))), 'the IMDNs at the sender', 20_000);
  await until(async () => ((await pendingOf('dora')).length === 0 ? true : undefined), 10_000, 'the entry is gone');
  t.equal(allChats(dora).length, 3, 'nothing delivered twice');
});

t.test('a sender in B2BUA mode: the notification call goes relay to relay', async (t) => {
  const ben = await handset('ben', 1);
  const c = await ChatCaller.place({ sipPort: lab.sipPort, from: 'ben', to: 'ivy', out: () => undefined });
  callers.add(c);
  t.equal(c.state, 'confirmed');
  await c.session.send('hello ivy');
  const sent = [...c.session.sent];
  callers.delete(c);
  await c.hangup();
  await until(async () => (await pendingOf('ivy')).find((e) => !e.live), 10_000, 'pending');
  const ivy = await handset('ivy', 1);
  await eventually(() => allChats(ivy).length >= 1, 'delivered');
  await eventually(() => ben.sessions.some((s) => s.events.some((e) => e.kind === 'imdn' && e.messageId === sent[0])), 'the IMDN at the sender', 20_000);
});

t.test('603 to the delivery INVITE: the stored messages are discarded', async (t) => {
  const { entry } = await deferredChat('erin', ['x', 'y']);
  const before = await relay.deferredState({ 'deferred-id': entry.record.deferredId });
  t.match(before, { result: 'ok', messages: 2 }, 'two stored');
  const erin = await handset('erin', 1, { kind: 'manual' });
  erin.phone.on('invite', (callId) => {
    // the phone files the call right after it says 'invite'
    queueMicrotask(() => {
      const call = erin.phone.calls.get(callId);
      if (!call) return;
      erin.phone.ua.respond(call.invite, 603, 'Decline', { toTag: call.toTag });
      // answered here, behind the phone's back: its stop() must not answer it again
      erin.phone.calls.delete(callId);
    });
  });
  await until(async () => ((await pendingOf('erin')).length === 0 ? true : undefined), 10_000, 'the entry is gone');
  const after = await relay.deferredState({ 'deferred-id': entry.record.deferredId });
  t.match(after, { result: 'ok', messages: 0, notifications: 0 }, 'nothing stored any more');
  t.equal(erin.sessions.length, 0, 'no session');
});

t.test('the service killed while the delivery rings, started again: each message delivered once on the next REGISTER', async (t) => {
  const { entry, sent } = await deferredChat('fred', ['a', 'b', 'c', 'd', 'e']);
  const first = await handset('fred', 1, { kind: 'manual' });
  await eventually(() => first.requests.some((r) => r.method === 'INVITE'), 'the delivery INVITE rings');
  t.ok((await pendingOf('fred'))[0]?.attempt, 'the call in flight is stored');
  await lab.service.proc.kill();
  const from = lab.kamailio.outputLength;
  lab.service = await Service.start(lab.service.opts);
  await lab.kamailio.waitRpcConnected(lab.service.rpcPort, from).catch(() => undefined);
  await until(async () => ((await pendingOf('fred'))[0]?.attempt === null ? true : undefined), 10_000, 'the old call ended after the restart');
  t.equal((await pendingOf('fred'))[0]?.record.deferredId, entry.record.deferredId, 'nothing lost');
  await first.phone.stop();
  const fred = await handset('fred', 2);
  await eventually(() => allChats(fred).length >= 5, 'five messages');
  await until(async () => ((await pendingOf('fred')).length === 0 ? true : undefined), 10_000, 'the entry is gone');
  const ids = [...first.sessions, ...fred.sessions].flatMap((s) => chats(s.events)).map((c) => c.imdnId);
  t.same(ids, sent, 'each imdn.Message-ID once, in order');
});

t.test('the service killed while the delivery call lingers after the last message: nothing is delivered again, the IMDNs still reach the sender', async (t) => {
  const { sent } = await deferredChat('hank', ['p', 'q', 'r']);
  const first = await handset('hank', 1);
  // the kill lands inside the linger (b2bua.deliveryLingerMs): before our BYE
  await eventually(() => allChats(first).length >= 3, 'three messages', 10_000);
  await lab.service.proc.kill();
  t.equal(first.requests.filter((r) => r.method === 'BYE').length, 0, 'killed before the BYE');
  t.ok((await pendingOf('hank'))[0]?.attempt?.dialog, 'the confirmed dialog is stored');
  const from = lab.kamailio.outputLength;
  lab.service = await Service.start(lab.service.opts);
  await lab.kamailio.waitRpcConnected(lab.service.rpcPort, from).catch(() => undefined);
  await eventually(() => first.requests.some((r) => r.method === 'BYE'), 'BYE in the stored dialog after the restart');
  const again = await handset('hank', 2);
  await until(async () => ((await pendingOf('hank')).length === 0 ? true : undefined), 10_000, 'the entry is gone');
  const ids = [...first.sessions, ...again.sessions].flatMap((x) => chats(x.events)).map((c) => c.imdnId);
  t.same(ids, sent, 'each imdn.Message-ID once');
  // alice's phones (the first case's): the core forks the notification call to each
  const imdns = (): string[] => senders.flatMap((h) => h.sessions).flatMap((x) => x.events).flatMap((e) => (e.kind === 'imdn' ? [e.messageId] : []));
  await eventually(() => sent.every((id) => imdns().includes(id)), 'the IMDNs at the sender', 20_000);
});

t.test('a deferred group session: SUBSCRIBE to the focus, the NOTIFY participants in the Group State Object', async (t) => {
  // the focus: a notifier on its own port, reached through Kamailio
  const focus = await SipUa.open();
  t.teardown(() => focus.close());
  const subs: SipMsg[] = [];
  const focusUri = `sip:conf-1@127.0.0.1:${focus.port}`;
  focus.on('request', (req) => {
    if (req.method !== 'SUBSCRIBE') {
      focus.respond(req, 200, 'OK');
      return;
    }
    subs.push(req);
    // a UAS copies Record-Route into its 2xx (RFC 3261 §12.1.1): our later requests come the same way
    const rr = hdrs(req, 'record-route').map((r) => `Record-Route: ${r}`);
    focus.respond(req, 200, 'OK', { toTag: 'focus1', extra: [...rr, `Contact: <${focusUri}>`, `Expires: ${hdr(req, 'expires') ?? '0'}`] });
  });
  const c = await ChatCaller.place({ sipPort: lab.sipPort, from: 'alice', to: 'gus', out: () => undefined, group: { focus: focusUri } });
  callers.add(c);
  t.equal(c.state, 'confirmed', 'deferred: answered with no device');
  await eventually(() => subs.length > 0, 'SUBSCRIBE at the focus');
  const sub = subs[0]!;
  t.equal(hdr(sub, 'event'), 'conference');
  t.equal(hdr(sub, 'accept'), 'application/conference-info+xml');
  t.equal(hdr(sub, 'x-pf-leg'), undefined, 'the internal header never leaves the PF');
  t.match(hdr(sub, 'from') ?? '', /sip:gus@example\.net/, 'on behalf of the served user');
  await c.session.send('to the group');
  // the NOTIFY, in the subscription's dialog (RFC 6665 §4.1.2.4 as the notifier: route set = Record-Route in order)
  const users = ['<user entity="sip:alice@example.net"><display-text>Alice</display-text></user>', '<user entity="sip:gus@example.net"/>', '<user entity="sip:hal@example.net"/>'];
  const xml = `<?xml version="1.0"?><conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="${focusUri}" state="full" version="1"><users>${users.join('')}</users></conference-info>`;
  const notify = sipMessage(`NOTIFY ${uriOf(hdr(sub, 'contact') ?? '')} SIP/2.0`, [
    `Via: ${focus.via()}`, 'Max-Forwards: 70', `From: ${hdr(sub, 'to')};tag=focus1`, `To: ${hdr(sub, 'from')}`, `Call-ID: ${hdr(sub, 'call-id')}`,
    'CSeq: 1 NOTIFY', ...hdrs(sub, 'record-route').map((r) => `Route: ${r}`), `Contact: <${focusUri}>`, 'Event: conference',
    'Subscription-State: active;expires=3600', 'Content-Type: application/conference-info+xml',
  ], xml);
  const answered = await focus.request(notify, { host: '127.0.0.1', port: lab.sipPort });
  t.equal(answered.status, 200, 'NOTIFY answered 200');
  callers.delete(c);
  await c.hangup();
  await until(async () => (await pendingOf('gus')).find((e) => !e.live && (e.conference?.participants.length ?? 0) === 3), 10_000, 'the participants kept');
  const conversationId = hdr(c.responses.find((r) => r.status === 200)!, 'conversation-id') ?? (await pendingOf('gus'))[0]!.record.conversationId!;
  const contributionId = (await pendingOf('gus'))[0]!.record.contributionId!;
  const gus = await handset('gus', 1);
  await eventually(() => allChats(gus).length >= 1, 'the stored message delivered');
  await eventually(() => subs.some((s) => hdr(s, 'expires') === '0'), 'unsubscribed (Expires: 0)');
  await until(async () => ((await pendingOf('gus')).length === 0 ? true : undefined), 10_000, 'the entry is gone');
  // the relay's own history store (lab/lab.ts: history.mdb in the lab's folder), read beside it
  const store = new LmdbMessageStore(join(dir, 'history.mdb'));
  t.teardown(() => store.close());
  const objs = await until(async () => {
    const l = await store.list({ conversationId, contributionId });
    return l.some((o) => o.contentType === GROUP_STATE_TYPE) ? l : undefined;
  }, 10_000, 'the Group State Object in the session folder');
  const gso = objs.filter((o) => o.contentType === GROUP_STATE_TYPE).map((o) => o.data.toString('utf8'));
  t.equal(gso.length, 1, 'one Group State Object');
  for (const u of ['sip:alice@example.net', 'sip:gus@example.net', 'sip:hal@example.net']) t.match(gso[0], u, `participant ${u}`);
});

t.test('a SUBSCRIBE carrying a false X-PF-Leg is refused by Kamailio (pf.cfg PF_SUBSCRIBE)', async (t) => {
  const ua = await SipUa.open();
  t.teardown(() => ua.close());
  const sub = (leg: string | null): string =>
    sipMessage('SUBSCRIBE sip:conf-9@127.0.0.1:9 SIP/2.0', [
      `Via: ${ua.via()}`, 'Max-Forwards: 70', `From: <sip:mallory@example.net>;tag=${Date.now()}`, 'To: <sip:conf-9@127.0.0.1:9>',
      `Call-ID: sub-${Date.now()}-${leg ?? 'none'}@x`, 'CSeq: 1 SUBSCRIBE', `Contact: <sip:mallory@127.0.0.1:${ua.port}>`, 'Event: conference', 'Expires: 60',
      ...(leg === null ? [] : [`X-PF-Leg: ${leg}`]),
    ]);
  const forged = await ua.request(sub('guess;direct'), { host: '127.0.0.1', port: lab.sipPort });
  t.equal(forged.status, 403, 'a guessed secret: 403');
  const plain = await ua.request(sub(null), { host: '127.0.0.1', port: lab.sipPort });
  t.equal(plain.status, 405, 'without X-PF-Leg: the lab core serves no SUBSCRIBE, as before');
});

t.test('a REGISTER storm from one user while messages are pending: each message delivered once', async (t) => {
  const { sent } = await deferredChat('iris', ['s1', 's2', 's3', 's4']);
  // the first phone registers (that alone starts the delivery), then refreshes 30 times at once,
  // while three more phones of the same user register beside it
  const first = await handset('iris', 1);
  const refreshes = await Promise.all(Array.from({ length: 30 }, () => first.phone.refresh()));
  const others = await Promise.all([2, 3, 4].map((n) => handset('iris', n)));
  t.ok(refreshes.every((r) => r.status === 200), 'every refresh answered 200');
  const every = [first, ...others];
  const delivered = (): string[] => every.flatMap((h) => h.sessions).flatMap((s) => chats(s.events)).map((c) => c.imdnId ?? '');
  await eventually(() => delivered().length >= sent.length, 'four messages at the phones', 20_000);
  await until(async () => ((await pendingOf('iris')).length === 0 ? true : undefined), 10_000, 'the entry is gone');
  // more REGISTERs after the delivery find nothing to deliver
  await Promise.all(every.map((h) => h.phone.refresh()));
  // an absence cannot be waited for: give a wrong second delivery call 1.5 s to show itself
  await new Promise((r) => setTimeout(r, 1500));
  t.same(delivered(), sent, 'each imdn.Message-ID once, in order');
  t.equal(every.flatMap((h) => h.requests).filter((r) => r.method === 'INVITE').length, 1, 'one delivery call');
});
