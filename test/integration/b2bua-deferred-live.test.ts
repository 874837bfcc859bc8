/**
 * On real Kamailio and the real relay: a deferred session whose caller stays (CR 8.3.2.1
 * step 8 a ii, 8.3.2.1.1; docs/b2bua.md "Deferred sessions"). A chat caller
 * (lab/chat-phone.ts ChatCaller) invites a served user with no device: the B2BUA answers
 * it 200 and the relay stores what it sends. Then a chat phone of that user registers:
 * the B2BUA invites it into the same call, and
 * - its 200: the stored messages reach it first, in order, then the caller's next message
 *   live; the caller's BYE ends the call on both sides, and nothing is left pending;
 * - its 603: the caller gets BYE with `Reason: SIP;cause=200;text="Call completed"`.
 * The first served user is in proxy mode (deferral takes the B2BUA whatever the mode).
 */
import t from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { type SipMsg } from '../../lab/sip-ua.js';
import { ChatCaller, Phone } from '../../lab/chat-phone.js';
import { chats, eventually, handset as phoneWithLog, reasonLines, type Handset } from '../../lab/handset.js';
import { b2buaCounts, waitSettled } from '../../lab/b2bua-watch.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const DINA = 'sip:dina@example.net';
const dir = runDir('it-b2bua-deferred-live');
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  serviceLogLevel: process.env.PF_TEST_LOG_LEVEL ?? 'info',
  policy: { deferredDelivery: true, modeByUser: { [DINA]: 'proxy' } },
  b2bua: { multiDevice: 'C' },
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
const allChats = (h: Handset) => h.sessions.flatMap((s) => chats(s.events));

/** alice calls `to`, who has no device: deferred, answered 200. The requests the caller gets are kept. */
async function deferredCall(to: string): Promise<{ c: ChatCaller; requests: SipMsg[] }> {
  const c = await ChatCaller.place({ sipPort: lab.sipPort, from: 'alice', to, out: () => undefined });
  callers.add(c);
  const requests: SipMsg[] = [];
  c.ua.on('request', (r) => requests.push(r));
  if (c.state !== 'confirmed') throw new Error(`call to ${to}: ${c.final?.status ?? '?'}`);
  return { c, requests };
}

t.test('a proxy-mode user with no device: deferred; a phone that registers joins the call, stored messages first, then live', async (t) => {
  const { c } = await deferredCall('dina');
  t.equal(c.final?.status, 200, 'the caller gets 200 with no device');
  for (const text of ['one', 'two']) await c.session.send(text);
  const dina = await handset('dina', 1);
  await eventually(() => allChats(dina).length >= 2, 'the stored messages at the phone');
  const inv = dina.requests.find((r) => r.method === 'INVITE');
  t.ok(inv, 'the phone was invited into the call');
  await c.session.send('three');
  await eventually(() => allChats(dina).length >= 3, 'the live message at the phone');
  t.same(allChats(dina).map((m) => m.text), ['one', 'two', 'three'], 'stored first, in order, then live; each once');
  t.same(allChats(dina).map((m) => m.imdnId), c.session.sent, 'the original imdn.Message-IDs');
  callers.delete(c);
  await c.hangup();
  await eventually(() => dina.requests.some((r) => r.method === 'BYE'), 'the caller\'s BYE reaches the phone');
  const r = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(r.ok, `no call or relay session left (${r.last})`);
});

t.test('603 from the phone that joins: the caller gets BYE with Reason "Call completed"', async (t) => {
  const { c, requests } = await deferredCall('fay');
  await c.session.send('hello?');
  const fay = await handset('fay', 1, { kind: 'manual' });
  fay.phone.on('invite', (callId) => {
    // the phone files the call right after it says 'invite'
    queueMicrotask(() => {
      const call = fay.phone.calls.get(callId);
      if (!call) return;
      fay.phone.ua.respond(call.invite, 603, 'Decline', { toTag: call.toTag });
      fay.phone.calls.delete(callId); // answered here: the phone's stop() must not answer it again

    });
  });
  await eventually(() => requests.some((r) => r.method === 'BYE'), 'BYE to the caller');
  const bye = requests.find((r) => r.method === 'BYE');
  t.same(reasonLines(bye), ['Reason: SIP;cause=200;text="Call completed"'], 'the exact Reason (CR 8.3.2.1.1)');
  t.equal(fay.sessions.length, 0, 'no session at the phone');
  callers.delete(c);
  const r = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(r.ok, `no call or relay session left (${r.last})`);
});
