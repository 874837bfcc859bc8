/**
 * On real Kamailio, the B2BUA, the relay and Dovecot: conversation history (CR 8.5,
 * docs/history.md). The lab's relay writes history to a private Dovecot
 * (`Lab.start({ history: 'imap' })`, lab/dovecot.ts); this test reads it back with its own
 * IMAP connection (imapflow), never the relay's store. Cases:
 * - a chat to a user whose CPM rule says `<allow-offline-storage>true` (XCAP, CR 8.4.1):
 *   the conversation folder, the Session History Folder named by the Contribution-ID,
 *   one session info object, then every chat message and disposition notification as
 *   message/cpim with the header docs/history.md "Stored objects" promises, in order;
 * - a user without the rule (recordHistory off): the relay session is not recorded and
 *   nothing is stored;
 * - Dovecot stopped in the middle of a stream and started again: every message reaches
 *   the device meanwhile, and once Dovecot is back each object is stored exactly once;
 * - a deferred session (CR 8.3.2.1 step 8 a ii) with recording on: the stored messages
 *   are recorded when they arrive and not again when the device that registers gets them;
 *   the same when the caller left first and a delivery session brings them, whose
 *   device's notifications are recorded in the same folder (relay `deliver` with record).
 * Each check waits for the session's last object (a queue lane writes in order), or for a
 * marker queued into the same folder with the relay's `group-state`.
 */
import t, { type Test } from 'tap';
import { ImapFlow } from 'imapflow';
import { Lab, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { hdr, type SipMsg } from '../../lab/sip-ua.js';
import { startDovecot, type Dovecot } from '../../lab/dovecot.js';
import { ChatCaller, Phone } from '../../lab/chat-phone.js';
import { chats, eventually, handset as phoneWithLog, sessionOf, type Handset } from '../../lab/handset.js';
import { policyDoc, AUTH_POLICY } from '../../lab/xdm.js';
import { b2buaCounts, waitSettled } from '../../lab/b2bua-watch.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const BOB = 'sip:bob@example.net'; // the rule: recorded
const ERIN = 'sip:erin@example.net'; // the rule: recorded (the Dovecot restart case)
const DINA = 'sip:dina@example.net'; // the rule and deferral: recorded, deferred
const GINA = 'sip:gina@example.net'; // the rule and deferral: recorded, deferred, the caller leaves
const dir = runDir('it-b2bua-history');
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  history: 'imap',
  serviceLogLevel: process.env.PF_TEST_LOG_LEVEL ?? 'info',
  policy: { recordHistory: false, deferredDeliveryByUser: { [DINA]: true, [GINA]: true } },
  b2bua: { multiDevice: 'C', deliveryLingerMs: 500 },
});
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
const phones: Phone[] = [];
const callers = new Set<ChatCaller>();
/** The MSS the relay writes to now (the lab's, or the one started again in the restart case). */
let mss: Dovecot = lab.relay!.mss!;
t.teardown(async () => {
  await Promise.all([...callers].map((c) => c.hangup().catch(() => undefined)));
  await Promise.all(phones.map((p) => p.stop()));
  await relay.close();
  await lab.stop();
  if (mss !== lab.relay!.mss) await mss.stop();
});

for (const user of [BOB, ERIN, DINA, GINA]) {
  const status = await lab.service.putXcap('org.openmobilealliance.access-rules', user, policyDoc({ dnd: false, offlineStorage: true }), AUTH_POLICY);
  if (status !== 200 && status !== 201) throw new Error(`XCAP PUT for ${user}: ${status}`);
}

const handset = (user: string, n: number): Promise<Handset> => phoneWithLog({ sipPort: lab.sipPort, phones }, user, n);

async function call(to: string): Promise<ChatCaller> {
  const c = await ChatCaller.place({ sipPort: lab.sipPort, from: 'alice', to, out: () => undefined });
  callers.add(c);
  if (c.state !== 'confirmed') throw new Error(`call to ${to}: ${c.final?.status ?? '?'}`);
  return c;
}

/** The relay session's `record` flag (`query`, docs/media-control.md). */
async function recorded(c: ChatCaller): Promise<boolean | string> {
  const q = await relay.query({ 'call-id': hdr(c.final!, 'call-id') ?? '' });
  return q.result === 'ok' ? q.record : q['error-code'];
}

async function hangup(c: ChatCaller): Promise<void> {
  callers.delete(c);
  await c.hangup();
}

/** The ids the B2BUA passed on (the device's INVITE copies the originator's). */
function idsOf(inv: SipMsg | undefined): { conversationId: string; contributionId: string } {
  const conversationId = hdr(inv!, 'conversation-id');
  const contributionId = hdr(inv!, 'contribution-id');
  if (!conversationId || !contributionId) throw new Error('the device INVITE lacks Conversation-ID or Contribution-ID');
  return { conversationId, contributionId };
}

// ---------------------------------------------------------------- reading Dovecot back

interface Stored {
  readonly uid: number;
  /** Header fields, names lower-cased, unfolded; repeated names keep the first. */
  readonly head: Map<string, string>;
  readonly body: string;
}

/** A fresh IMAP connection of our own for `fn` (the relay's are never touched). */
async function withImap<T>(fn: (c: ImapFlow) => Promise<T>): Promise<T> {
  const c = new ImapFlow({ host: mss.host, port: mss.port, secure: false, doSTARTTLS: false, auth: { user: mss.user, pass: mss.password }, logger: false });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.logout().catch(() => c.close());
  }
}

function parseMessage(source: Buffer): { head: Map<string, string>; body: string } {
  const text = source.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  const head = new Map<string, string>();
  for (const line of text.slice(0, end).replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!head.has(name)) head.set(name, line.slice(colon + 1).trim());
  }
  return { head, body: text.slice(end + 4) };
}

/** Every folder's path and attributes. */
async function folders(): Promise<Array<{ path: string; delimiter: string; flags: Set<string> }>> {
  return withImap(async (c) => (await c.list()).map((m) => ({ path: m.path, delimiter: m.delimiter, flags: m.flags })));
}

/** The Session History Folder's path: `<Conversation-ID><delimiter><Contribution-ID>` (UUIDs need no encoding). */
async function sessionFolder(ids: { conversationId: string; contributionId: string }): Promise<string | undefined> {
  const all = await folders();
  const delim = all[0]?.delimiter ?? '.';
  return all.find((f) => f.path === `${ids.conversationId}${delim}${ids.contributionId}`)?.path;
}

/** Every object of a folder, in UID order. */
async function objects(path: string): Promise<Stored[]> {
  return withImap(async (c) => {
    const lock = await c.getMailboxLock(path);
    const out: Stored[] = [];
    try {
      if (c.mailbox && c.mailbox.exists > 0) {
        for await (const m of c.fetch('1:*', { uid: true, source: true })) out.push({ uid: m.uid, ...parseMessage(m.source ?? Buffer.alloc(0)) });
      }
    } finally {
      lock.release();
    }
    return out.sort((a, b) => a.uid - b.uid);
  });
}

/**
 * The folder's objects once `done` holds for them. Each poll is a new connection, so it
 * also works across a Dovecot restart (a refused connection is a "not yet").
 */
async function objectsWhen(ids: { conversationId: string; contributionId: string }, done: (o: Stored[]) => boolean, what: string, ms = 60_000): Promise<Stored[]> {
  return until(async () => {
    try {
      const path = await sessionFolder(ids);
      if (!path) return undefined;
      const o = await objects(path);
      return done(o) ? o : undefined;
    } catch {
      return undefined;
    }
  }, ms, what, 200);
}

const typeOf = (o: Stored): string => (o.head.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
const cpimObjects = (os: Stored[]): Stored[] => os.filter((o) => typeOf(o) === 'message/cpim');
const imdnIdOf = (o: Stored): string | undefined => o.head.get('imdn-message-id');
/** The imdn.Message-ID a disposition notification names (RFC 5438 §7.2.1.1 `<message-id>`). */
const notifiedOf = (o: Stored): string | undefined => /<message-id>([^<]*)<\/message-id>/.exec(o.body)?.[1];
const isNotification = (o: Stored): boolean => /Content-Disposition:\s*notification/i.test(o.body);
/** The CPIM head field `name` of a stored CPIM body. */
const cpimField = (o: Stored, name: string): string | undefined =>
  new RegExp(`^${name.replace('.', '\\.')}:\\s*(.*)$`, 'mi').exec(o.body.split('\r\n\r\n')[0] ?? '')?.[1]?.trim();

/** One object's header as docs/history.md "Stored objects" gives it (a chat message or a notification). */
function checkHead(t: Test, o: Stored, ids: { conversationId: string; contributionId: string }, direction: 'received' | 'sent', what: string): void {
  t.equal(o.head.get('conversation-id'), ids.conversationId, `${what}: Conversation-ID`);
  t.equal(o.head.get('contribution-id'), ids.contributionId, `${what}: Contribution-ID`);
  t.equal(o.head.get('message-direction'), direction, `${what}: Message-Direction`);
  t.equal(typeOf(o), 'message/cpim', `${what}: Content-Type`);
  t.equal(imdnIdOf(o), cpimField(o, 'imdn.Message-ID'), `${what}: IMDN-Message-ID is the CPIM imdn.Message-ID`);
  const dt = cpimField(o, 'DateTime');
  const date = Date.parse(o.head.get('date') ?? '');
  t.ok(dt !== undefined && Math.floor(Date.parse(dt) / 1000) === date / 1000, `${what}: Date is the CPIM DateTime (${o.head.get('date')}, ${dt})`);
  t.match(o.head.get('message-id'), /^<[0-9a-f-]{36}@cpm-pf>$/, `${what}: Message-ID is the queue's key`);
}

// ---------------------------------------------------------------- cases

t.test('allow-offline-storage true: the folders and objects in Dovecot, read back over IMAP', async (t) => {
  const bob = await handset('bob', 1);
  const c = await call('bob');
  const callId = hdr(c.final!, 'call-id') ?? '';
  t.equal(await recorded(c), true, 'the B2BUA asked the relay to record (the rule\'s allow-offline-storage)');
  const dev = await sessionOf(bob);
  const ids = idsOf(bob.requests.find((r) => r.method === 'INVITE'));
  // one at a time, each after its notification: the order at the relay is then fixed
  for (const text of ['hello', 'are you there?']) {
    const id = await c.session.send(text);
    await c.session.waitFor((e) => e.kind === 'imdn' && e.messageId === id);
  }
  const reply = await dev.send('yes, here');
  await dev.waitFor((e) => e.kind === 'imdn' && e.messageId === reply);
  const [m1, m2] = c.session.sent;
  const want = [m1, m2, reply];
  // the last object of the session is the caller's notification for the reply; a lane
  // writes in order, so once it is there everything before it is too
  const os = await objectsWhen(ids, (o) => o.some((x) => notifiedOf(x) === reply), 'the session\'s last object in Dovecot');

  const all = await folders();
  const conv = all.find((f) => f.path === ids.conversationId);
  t.ok(conv, 'the conversation folder, named by the Conversation-ID');
  t.notOk(conv?.flags.has('\\Noselect'), 'a real folder, not an implied parent');
  t.ok(await sessionFolder(ids), 'the Session History Folder inside it, named by the Contribution-ID');

  const info = os.filter((o) => typeOf(o) === 'application/x-cpm-session');
  t.equal(info.length, 1, 'exactly one session info object');
  t.equal(os[0]?.uid, info[0]?.uid, 'the session info object first');
  t.match(info[0]?.body ?? '', new RegExp(`Conversation-ID: ${ids.conversationId}\r\nContribution-ID: ${ids.contributionId}\r\n`), 'its ids');
  t.match(info[0]?.body ?? '', new RegExp(`Call-ID: ${callId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\r\n`), 'its Call-ID: the originating dialog');
  t.match(info[0]?.body ?? '', /To: sip:bob@example\.net\r\n/, 'its To: the served user');

  const cpim = cpimObjects(os);
  t.equal(cpim.length, os.length - 1, 'nothing else in the folder');
  t.same(
    cpim.map((o) => (isNotification(o) ? `notification for ${notifiedOf(o)}` : `message ${imdnIdOf(o)}`)),
    [`message ${m1}`, `notification for ${m1}`, `message ${m2}`, `notification for ${m2}`, `message ${reply}`, `notification for ${reply}`],
    'each chat message and each disposition notification, once, in order',
  );
  const texts = cpim.filter((o) => !isNotification(o)).map((o) => o.body.split('\r\n\r\n').slice(2).join('\r\n\r\n'));
  t.same(texts, ['hello', 'are you there?', 'yes, here'], 'the messages\' bodies as sent');
  cpim.forEach((o, i) => {
    const fromCaller = i === 0 || i === 2 || i === 5; // the caller's messages and its notification for the reply
    checkHead(t, o, ids, fromCaller ? 'received' : 'sent', `object ${i + 1}`);
  });
  t.same(cpim.filter((o) => !isNotification(o)).map(imdnIdOf), want, 'the IMDN Message-IDs a client threads by');

  await hangup(c);
  const r = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(r.ok, `no call or relay session left (${r.last})`);
});

t.test('no allow-offline-storage, recordHistory off: nothing stored', async (t) => {
  const carol = await handset('carol', 1);
  const c = await call('carol');
  t.equal(await recorded(c), false, 'the relay session is not recorded');
  await sessionOf(carol);
  const ids = idsOf(carol.requests.find((r) => r.method === 'INVITE'));
  for (const text of ['not for the record', 'nor this']) {
    const id = await c.session.send(text);
    await c.session.waitFor((e) => e.kind === 'imdn' && e.messageId === id);
  }
  t.same(chats(carol.sessions.flatMap((s) => s.events)).map((m) => m.text), ['not for the record', 'nor this'], 'the chat itself went through');
  await hangup(c);
  const r = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(r.ok, `no call or relay session left (${r.last})`);
  const names = (await folders()).map((f) => f.path);
  t.notOk(names.some((p) => p.includes(ids.conversationId) || p.includes(ids.contributionId)), 'no folder for the conversation or the session');
});

t.test('Dovecot stopped mid-stream and started again: the chat goes on, then each object is stored once', async (t) => {
  const erin = await handset('erin', 1);
  const c = await call('erin');
  const dev = await sessionOf(erin);
  const ids = idsOf(erin.requests.find((r) => r.method === 'INVITE'));
  const texts = Array.from({ length: 30 }, (_, i) => `m${i + 1}`);
  const received = (): string[] => chats(dev.events).map((m) => m.text);
  // the first third with Dovecot up, and written
  for (const text of texts.slice(0, 10)) await c.session.send(text);
  const first = c.session.sent.slice(0, 10);
  await objectsWhen(ids, (o) => o.filter((x) => !isNotification(x) && typeOf(x) === 'message/cpim').length >= 10, 'the first ten in Dovecot');
  const old = mss;
  const relayLogFrom = lab.relay!.proc.output.length;
  await old.stop();
  t.pass('Dovecot stopped');
  // the second third while it is down: every message reaches the device all the same
  for (const text of texts.slice(10, 20)) await c.session.send(text);
  await eventually(() => received().length >= 20, 'the second ten at the device while Dovecot is down');
  t.same(received(), texts.slice(0, 20), 'every message at the device, in order, with the MSS down');
  mss = await startDovecot({ dir: old.dir, port: old.port, user: old.user, password: old.password });
  t.pass('Dovecot started again (same maildir, same port)');
  for (const text of texts.slice(20)) await c.session.send(text);
  await c.session.settle(20_000);
  t.same(received(), texts, 'every message at the device, once, in order');
  const sent = c.session.sent;
  t.same(sent.slice(0, 10), first, 'the caller sent nothing twice');
  // the last object of this session is the device's notification for the last message
  // (or that message, when its notification was written first): a lane writes in order,
  // so once both are there every entry queued before them is written
  const last = sent[sent.length - 1]!;
  const os = await objectsWhen(ids, (o) => o.some((x) => notifiedOf(x) === last) && o.some((x) => imdnIdOf(x) === last), 'every object once Dovecot is back', 120_000);
  const messages = cpimObjects(os).filter((o) => !isNotification(o)).map(imdnIdOf);
  const notes = cpimObjects(os).filter(isNotification).map(notifiedOf);
  t.match(lab.relay!.proc.output.slice(relayLogFrom), /history write failed; will retry/, 'the write queue met the outage and retried');
  t.same(messages, sent, 'each chat message stored exactly once, in order');
  t.same([...notes].sort(), [...sent].sort(), 'each disposition notification stored exactly once');
  t.equal(os.filter((o) => typeOf(o) === 'application/x-cpm-session').length, 1, 'one session info object');
  t.equal(new Set(os.map((o) => o.head.get('message-id'))).size, os.length, 'no queue key twice');
  await hangup(c);
  const r = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(r.ok, `no call or relay session left (${r.last})`);
});

t.test('a deferred session with recording on: the stored messages are recorded once, not again when delivered', async (t) => {
  const c = await call('dina');
  t.equal(c.final?.status, 200, 'deferred: the caller gets 200 with no device');
  t.equal(await recorded(c), true, 'recorded');
  for (const text of ['one', 'two']) await c.session.send(text);
  const [m1, m2] = c.session.sent;
  const dina = await handset('dina', 1);
  const dev = await sessionOf(dina);
  await eventually(() => chats(dev.events).length >= 2, 'the stored messages at the phone');
  for (const id of [m1!, m2!]) await c.session.waitFor((e) => e.kind === 'imdn' && e.messageId === id);
  const m3 = await c.session.send('three');
  await c.session.waitFor((e) => e.kind === 'imdn' && e.messageId === m3);
  t.same(chats(dev.events).map((m) => m.text), ['one', 'two', 'three'], 'the phone got the stored ones, then the live one, each once');
  const ids = idsOf(dina.requests.find((r) => r.method === 'INVITE'));
  const os = await objectsWhen(ids, (o) => o.some((x) => notifiedOf(x) === m3), 'the session\'s last object in Dovecot');
  t.equal(os.filter((o) => typeOf(o) === 'application/x-cpm-session').length, 1, 'one session info object');
  t.same(
    cpimObjects(os).map((o) => (isNotification(o) ? `notification for ${notifiedOf(o)}` : `message ${imdnIdOf(o)}`)),
    [`message ${m1}`, `message ${m2}`, `notification for ${m1}`, `notification for ${m2}`, `message ${m3}`, `notification for ${m3}`],
    'stored messages recorded as they arrived and not again when delivered; the device\'s notifications recorded',
  );
  cpimObjects(os).forEach((o, i) => checkHead(t, o, ids, isNotification(o) ? 'sent' : 'received', `object ${i + 1}`));
  await hangup(c);
  const r = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(r.ok, `no call or relay session left (${r.last})`);
});

t.test('a deferred session whose caller left: the stored messages are recorded once, not again by the delivery session; its notifications are', async (t) => {
  const alice = await handset('alice', 1); // the sender's phone, for the notification call
  const c = await call('gina');
  t.equal(await recorded(c), true, 'recorded');
  for (const text of ['later one', 'later two']) await c.session.send(text);
  const sent = [...c.session.sent];
  const logFrom = lab.service.proc.output.length;
  await hangup(c);
  // the B2BUA keeps the pending delivery once the caller has left; a phone that registers before that gets nothing yet
  await lab.service.proc.waitFor(/"servedUser":"sip:gina@example\.net"[^\n]*"msg":"deferred: pending delivery kept"/, 10_000, logFrom);
  const gina = await handset('gina', 1);
  await eventually(() => chats(gina.sessions.flatMap((s) => s.events)).length >= 2, 'the stored messages at the phone (a delivery call)', 20_000);
  t.same(chats(gina.sessions.flatMap((s) => s.events)).map((m) => m.imdnId), sent, 'delivered, each once');
  const ids = idsOf(gina.requests.find((r) => r.method === 'INVITE'));
  // the phone's notifications went through the relay: they are at the sender's phone
  await eventually(() => sent.every((id) => alice.sessions.some((s) => s.events.some((e) => e.kind === 'imdn' && e.messageId === id))), 'the IMDNs at the sender', 20_000);
  // a marker into the same Session History Folder (the same lane of the write queue,
  // written in order): once it is in Dovecot, whatever was queued for the folder before is too
  const marker = await relay.groupState({ 'call-id': 'marker', 'conversation-id': ids.conversationId, 'contribution-id': ids.contributionId, focus: 'sip:marker@example.net' });
  t.equal(marker.result, 'ok', 'marker queued');
  const os = await objectsWhen(ids, (o) => o.some((x) => typeOf(x) === 'application/group-state-object+xml'), 'the marker in Dovecot');
  const cpim = cpimObjects(os);
  t.equal(os.filter((o) => typeOf(o) === 'application/x-cpm-session').length, 1, 'one session info object');
  t.same(cpim.filter((o) => !isNotification(o)).map(imdnIdOf), sent, 'each stored message recorded once (when it arrived), not again when delivered');
  t.same(cpim.filter(isNotification).map(notifiedOf), sent, 'the device\'s notifications on the delivery session recorded, each once');
  t.same(cpim.map(isNotification), [false, false, true, true], 'the messages as they arrived, then the notifications');
  cpim.forEach((o, i) => checkHead(t, o, ids, isNotification(o) ? 'sent' : 'received', `object ${i + 1}`));
  const r = await waitSettled(() => b2buaCounts(lab.service, relay), 20_000);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
});
