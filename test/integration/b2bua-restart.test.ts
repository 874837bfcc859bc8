/**
 * On real Kamailio, B2BUA sessions across faults (docs/b2bua.md "Restart", "Faults"),
 * with the lab's chat phones (lab/chat-phone.ts) and real MSRP through the relay:
 * - the service (and the B2BUA in it) killed with SIGKILL and started again, with two
 *   damaged records put in its store meanwhile (skipped and counted): the chat goes on
 *   (the relay carried it meanwhile), policy B's first-active event reaches the new
 *   B2BUA, a refresh is answered, a BYE from a phone ends every leg and the relay session;
 * - a session the relay no longer has when the B2BUA starts again: BYE with a Reason on
 *   every leg;
 * - Kamailio restarted: the dialogs go on once it is back;
 * - the relay killed: BYE with `Reason: SIP;cause=503` on every leg; a new call gets 503.
 * Short timers: T1 = 100 ms, one RFC 4028 second = 50 ms (b2bua.sessionTimerUnitMs).
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Kamailio, Lab, Service, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { b2buaCounts, waitSettled, type B2buaCounts } from '../../lab/b2bua-watch.js';
import { sipMessage } from '../../lab/sip-fixtures.js';
import { hdr, hostPort, uriOf, type SipMsg } from '../../lab/sip-ua.js';
import { ChatCaller, Phone } from '../../lab/chat-phone.js';
import { byes, eventually, handset as phoneWithLog, reasonLines, sessionOf, texts, type Handset } from '../../lab/handset.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';
const RELAY_GONE = 'SIP;cause=503;text="Media relay unavailable"';

const dir = runDir('it-b2bua-restart');
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  serviceLogLevel: process.env.PF_TEST_LOG_LEVEL ?? 'info',
  b2bua: { multiDevice: 'C', multiDeviceByUser: { 'sip:rex@example.net': 'B' }, t1Ms: 100, sessionTimerUnitMs: 50 },
});
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
/** Kamailio started again by the Kamailio case. */
let kamailio2: Kamailio | null = null;
const phones: Phone[] = [];
const callers = new Set<ChatCaller>();
t.teardown(async () => {
  await Promise.all([...callers].map((c) => c.hangup().catch(() => undefined)));
  await Promise.all(phones.map((p) => p.stop()));
  await relay.close().catch(() => undefined);
  await kamailio2?.stop();
  await lab.stop();
});
const sip = lab.sipPort;

// ---------------------------------------------------------------- helpers

const handset = (user: string, n: number): Promise<Handset> => phoneWithLog({ sipPort: sip, phones }, user, n);

/** A chat from alice to `to`, confirmed; `byes` collects the BYEs it receives. */
async function chatCaller(to: string): Promise<{ c: ChatCaller; byes: SipMsg[] }> {
  const c = await ChatCaller.place({ sipPort: sip, from: 'alice', to, out: () => undefined });
  callers.add(c);
  if (c.state !== 'confirmed') throw new Error(`call to ${to}: ${c.final?.status ?? '?'}`);
  const byes: SipMsg[] = [];
  c.ua.on('request', (r) => r.method === 'BYE' && byes.push(r));
  return { c, byes };
}


const live = (): Promise<B2buaCounts> => b2buaCounts(lab.service, relay);

async function settled(t: Test): Promise<void> {
  const r = await waitSettled(live);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
}

async function metric(name: string): Promise<number> {
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await lab.service.metrics())?.[1] ?? NaN);
}

/** The phone's one call: its Call-ID and dialog (as the phone keeps it). */
function callOf(h: Handset) {
  const [id, call] = [...h.phone.calls.entries()][0]!;
  if (!call.dialog) throw new Error('no dialog');
  return { id, dialog: call.dialog };
}

/** An UPDATE refresh from the phone in its dialog (RFC 4028 §7.4: it refreshes), its final response. */
async function phoneRefresh(h: Handset): Promise<SipMsg> {
  const { dialog: d } = callOf(h);
  d.cseq++;
  const text = sipMessage(`UPDATE ${d.target} SIP/2.0`, [
    `Via: ${h.phone.ua.via()}`, 'Max-Forwards: 70', `From: ${d.local}`, `To: ${d.remote}`, `Call-ID: ${d.callId}`, `CSeq: ${d.cseq} UPDATE`,
    ...d.routes.map((r) => `Route: ${r}`), `Contact: ${h.phone.contact}`, 'Supported: timer', 'Session-Expires: 1800;refresher=uac',
  ]);
  const first = d.routes[0];
  return h.phone.ua.request(text, hostPort(first === undefined ? d.target : uriOf(first)));
}

/**
 * SIGKILL the service (the B2BUA in it) once its `n` calls are confirmed (the caller's ACK
 * came: only then is a call stored), then start it again on the same ports and data.
 */
async function killService(n = 1): Promise<void> {
  await until(async () => ((await metric('pf_b2bua_calls_confirmed')) === n ? true : undefined), 10_000, `${n} confirmed`);
  await lab.service.proc.kill();
}
async function startService(): Promise<void> {
  const from = lab.kamailio.outputLength;
  lab.service = await Service.start(lab.service.opts);
  await lab.kamailio.waitRpcConnected(lab.service.rpcPort, from).catch(() => undefined);
}

// ---------------------------------------------------------------- cases

t.test('SIGKILL and start again: the chat goes on, first-active, a refresh and a BYE from a phone end every leg', async (t) => {
  const [h1, h2] = [await handset('rex', 1), await handset('rex', 2)];
  const { c: caller, byes: callerByes } = await chatCaller('rex');
  const [s1, s2] = await Promise.all([sessionOf(h1), sessionOf(h2)]);
  await caller.session.send('before the crash');
  await eventually(() => [s1, s2].every((s) => texts(s.events).includes('before the crash')), 'the first message at both phones');
  const before = await phoneRefresh(h1);
  t.equal(before.status, 200, 'a refresh before the crash: 200');
  t.match(hdr(before, 'session-expires') ?? '', /^1800;refresher=uac/, 'with Session-Expires');

  await killService();
  // a record cut short (a write torn by a crash) and one of no known form, beside the good one
  const env = open({ path: join(lab.service.opts.dataDir!, 'b2bua'), maxDbs: 1 });
  const calls = env.openDB<string, string>({ name: 'calls', encoding: 'string' });
  await calls.put('torn@x', '{"v":1,"callId":"torn@x","servedUser":"sip:rex@exa');
  await calls.put('odd@x', JSON.stringify({ v: 1, callId: 'odd@x', machine: 'confirmed' }));
  await env.close();
  await caller.session.send('while the B2BUA is down');
  await eventually(() => [s1, s2].every((s) => texts(s.events).includes('while the B2BUA is down')), 'MSRP went on through the relay');
  t.pass('the relay carried the chat while the B2BUA was down');
  await startService();
  t.equal(await metric('pf_b2bua_calls_restored'), 1, 'one call reloaded');
  t.equal(await metric('pf_b2bua_records_skipped'), 2, 'the two damaged records reported and skipped');
  t.equal(await metric('pf_b2bua_calls'), 1, 'the call is in progress again');

  // policy B: phone 1 speaks first; the relay's event reaches the new B2BUA (its link subscribed again)
  await s1.send('phone 1 here');
  await eventually(() => texts(caller.session.events).includes('phone 1 here'), "phone 1's message at the caller");
  await eventually(() => byes(h2).length > 0, 'phone 2 got BYE');
  t.same(reasonLines(byes(h2)[0]), [`Reason: ${ELSEWHERE}`], 'phone 2: completed elsewhere');
  await caller.session.send('after the restart');
  await eventually(() => texts(s1.events).includes('after the restart'), 'the next message at phone 1');

  const after = await phoneRefresh(h1);
  t.equal(after.status, 200, 'a refresh after the restart: 200 (the stored dialog and CSeq)');
  t.match(hdr(after, 'session-expires') ?? '', /^1800;refresher=uac/, 'with Session-Expires');

  await h1.phone.hangup(callOf(h1).id);
  t.ok(h1.phone.lines.some((l) => /^<< 200 .*\(BYE\)$/.test(l)), "phone 1's BYE answered 200");
  await eventually(() => callerByes.length > 0, 'the caller got BYE');
  t.same(reasonLines(callerByes[0]), [], "the caller's BYE (the last phone hung up) has no Reason");
  callers.delete(caller);
  await settled(t);
});

t.test('a session the relay lost while the B2BUA was down: BYE with the Reason on every leg', async (t) => {
  const h = await handset('ray', 1);
  const { c: caller, byes: callerByes } = await chatCaller('ray');
  await sessionOf(h);
  const callId = hdr(caller.final!, 'call-id') ?? '';
  await killService();
  t.equal((await relay.delete({ 'call-id': callId })).result, 'ok', 'the relay session removed underneath');
  await startService();
  await eventually(() => byes(h).length > 0 && callerByes.length > 0, 'BYE to the phone and the caller');
  t.same(reasonLines(byes(h)[0]), [`Reason: ${RELAY_GONE}`], 'the phone: Reason 503');
  t.same(reasonLines(callerByes[0]), [`Reason: ${RELAY_GONE}`], 'the caller: Reason 503');
  callers.delete(caller);
  await settled(t);
});

t.test('Kamailio restarted: the dialogs go on once it is back', async (t) => {
  const h = await handset('kim', 1);
  const { c: caller, byes: callerByes } = await chatCaller('kim');
  const s = await sessionOf(h);
  await caller.session.send('before');
  await eventually(() => texts(s.events).includes('before'), 'at the phone');
  await lab.kamailio.stop();
  await caller.session.send('while Kamailio is down');
  await eventually(() => texts(s.events).includes('while Kamailio is down'), 'MSRP does not go through Kamailio');
  kamailio2 = await Kamailio.start(lab.kamailio.opts);
  t.pass('Kamailio is back on its port');
  const r = await phoneRefresh(h);
  t.equal(r.status, 200, 'a refresh through the new Kamailio: 200');
  await s.send('after');
  await eventually(() => texts(caller.session.events).includes('after'), 'at the caller');
  await h.phone.hangup(callOf(h).id);
  t.ok(h.phone.lines.some((l) => /^<< 200 .*\(BYE\)$/.test(l)), "the phone's BYE answered 200");
  await eventually(() => callerByes.length > 0, "the phone's BYE reached the B2BUA, its BYE the caller");
  callers.delete(caller);
  await settled(t);
});

t.test('the relay killed: BYE with Reason 503 on every leg; a new call gets 503', async (t) => {
  const h = await handset('kit', 1);
  const { c: caller, byes: callerByes } = await chatCaller('kit');
  await sessionOf(h);
  await relay.close();
  await lab.relay!.proc.kill();
  await eventually(() => byes(h).length > 0 && callerByes.length > 0, 'BYE to the phone and the caller', 15_000);
  t.same(reasonLines(byes(h)[0]), [`Reason: ${RELAY_GONE}`], 'the phone: Reason 503');
  t.same(reasonLines(callerByes[0]), [`Reason: ${RELAY_GONE}`], 'the caller: Reason 503');
  callers.delete(caller);
  await until(async () => ((await metric('pf_b2bua_calls')) === 0 ? true : undefined), 10_000, 'no B2BUA call');
  t.equal(await metric('pf_b2bua_relay_up'), 0, 'the relay seen down');
  const again = await ChatCaller.place({ sipPort: sip, from: 'alice', to: 'kit', out: () => undefined });
  t.equal(again.final?.status, 503, 'a new call: the fail-safe 503 (docs/deployment.md §4)');
  t.match(hdr(again.final!, 'warning') ?? '', /"PF unavailable"/, "with the fail-safe's Warning");
  await again.hangup();
});
