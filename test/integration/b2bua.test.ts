/**
 * On real Kamailio: the PF in B2BUA mode (CR 8.3.2.1 step 8, the 200 OK procedure,
 * 8.3.2.1.1). Kamailio relays the caller's INVITE to the B2BUA with a ticket; the B2BUA
 * sends one INVITE per device back through Kamailio, answers the caller itself with the
 * relay's SDP, and ends every leg when the session ends. Callers and devices are sipp.
 * After each case the B2BUA's calls and the relay's sessions are back to zero.
 */
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { Lab, runDir } from '../../lab/lab.js';
import { call, inviteExpecting, vars, type Device } from '../../lab/calls.js';
import { headerValues, requestsIn, responsesIn, runSipp, SippAgent } from '../../lab/sipp.js';
import { freePort, until } from '../../lab/proc.js';
import { b2buaCounts, b2buaDevices, waitSettled, type B2buaCounts } from '../../lab/b2bua-watch.js';
import { ringing } from '../../lab/calls.js';
import { RelayControlClient } from '../../media/relay/control-client.js';
import { chatSdpLines } from '../../lab/sip-fixtures.js';

const dir = runDir('it-b2bua');
const isfPort = await freePort();
const isf = await SippAgent.start({
  scenario: 'uas-answer.xml', dir, port: isfPort, vars: { CONTACT_PARAMS: '', RINGING: ringing(''), SETUP: 'active' }, name: 'isf',
});
const lab = await Lab.start({
  dir,
  mode: 'b2bua',
  policy: { interworkingOnFailure: true, isfUri: `sip:isf@127.0.0.1:${isfPort}` },
  b2bua: { multiDevice: 'C', multiDeviceByUser: { 'sip:ann@example.net': 'A' } },
});
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
t.teardown(async () => {
  await relay.close();
  await Promise.all(devices.map((d) => d.stop()));
  await isf.stop();
  await lab.stop();
});
const sip = lab.sipPort;
const { device, all: devices } = b2buaDevices(dir, sip);
const byes = (d: Device): string[] => requestsIn(d.agent.messages(), 'BYE');
const cancels = (d: Device): string[] => requestsIn(d.agent.messages(), 'CANCEL');

const live = (): Promise<B2buaCounts> => b2buaCounts(lab.service, relay);

/** The bad-input rule: nothing left behind once a case is over. */
async function settled(t: Test): Promise<void> {
  const r = await waitSettled(live);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
}

// setup throws rather than asserting (tap ends the root test at its first assertion
// followed by a long await)
const A = await device('bob', { kind: 'answer' });
const C1 = await device('cee', { kind: 'answer' });
const C2 = await device('cee', { kind: 'answer' });
const N1 = await device('ann', { kind: 'answer' });
const N2 = await device('ann', { kind: 'answer' });
const R1 = await device('rick', { kind: 'ring' });
const R2 = await device('rick', { kind: 'ring' });
await device('busy', { kind: 'reply', code: 486, reason: 'Busy Here' });
await device('gone', { kind: 'reply', code: 480, reason: 'Temporarily Unavailable' });
await device('gone', { kind: 'reply', code: 503, reason: 'Service Unavailable' });
const H = await device('hang', { kind: 'answer-bye', holdMs: 300 });
const target = await device('target', { kind: 'answer' });
await device('moved', { kind: 'reply', code: 302, reason: 'Moved Temporarily', extra: [`Contact: <${target.contact}>`] });
await device('nosdp', { kind: 'answer-body', type: '', body: '' });
await device('garbled', { kind: 'answer-body', type: 'application/sdp', body: 'v=0\nthis is not SDP' });

t.test('one device: our own 200 with the relay SDP, one INVITE to the device, BYE on both sides', async (t) => {
  const r = await call({ dir, sipPort: sip, to: 'bob' }, 200);
  t.equal(r.final?.status, 200, 'caller gets 200');
  const ok = r.final?.raw ?? '';
  t.match(ok, /a=path:msrp:\/\/127\.0\.0\.1:\d+\/[^;\s]+;tcp/, "the relay's a=path in the caller's 200");
  t.match(ok, /User-Agent: CPM-serv\/OMA2\.2/, "the PF's User-Agent (CR Appendix D)");
  t.match(ok, /Record-Route:/, 'the Record-Route copied (RFC 3261 §12.1.1)');
  t.equal(headerValues(ok, 'Contribution-ID').length, 1, 'Contribution-ID copied into the 200');
  const inv = A.invites().at(-1) ?? '';
  t.match(inv, /Supported: timer, recipient-list-invite/, 'Supported');
  t.match(inv, /Session-Expires: \d+;refresher=uas/, 'Session-Expires');
  t.match(inv, /a=setup:passive/, "the relay's passive offer");
  t.notMatch(inv, /X-PF-/i, 'no internal header reaches the device');
  t.equal(headerValues(inv, 'Contribution-ID').length, 1, 'Contribution-ID copied');
  await until(async () => (byes(A).length > 0 ? true : undefined), 5000, 'device got BYE');
  await settled(t);
});

t.test('an offer of two MSRP streams: our 200 answers both m= lines, the second declined (RFC 3264 §6)', async (t) => {
  const sdp = [...chatSdpLines(), 'm=message 7655 TCP/MSRP *', 'a=path:msrp://127.0.0.1:7655/s2;tcp', 'a=accept-types:message/cpim', 'a=setup:active'];
  const r = await call({ dir, sipPort: sip, to: 'bob', body: sdp.join('\n') }, 200);
  t.equal(r.final?.status, 200);
  const ms = (r.final?.raw ?? '').split(/\r?\n/).filter((l) => l.startsWith('m='));
  t.equal(ms.length, 2, 'two m= lines');
  t.match(ms[0] ?? '', /^m=message [1-9]\d* TCP\/MSRP/, 'the first stream through the relay');
  t.match(ms[1] ?? '', /^m=message 0 TCP\/MSRP/, 'the second declined');
  await settled(t);
});

t.test('policy C: two devices answer and both stay until the caller hangs up', async (t) => {
  const r = await call({ dir, sipPort: sip, to: 'cee' }, 500);
  t.equal(r.final?.status, 200);
  await until(async () => (byes(C1).length > 0 && byes(C2).length > 0 ? true : undefined), 5000, 'both devices got BYE');
  t.notMatch(byes(C1)[0] ?? '', /Call completed elsewhere/, 'no "completed elsewhere" under C');
  await settled(t);
});

t.test('policy A: the first 200 keeps the session; the other device is cancelled or gets BYE with the Reason', async (t) => {
  const r = await call({ dir, sipPort: sip, to: 'ann' }, 500);
  t.equal(r.final?.status, 200);
  await until(async () => (byes(N1).length + byes(N2).length + cancels(N1).length + cancels(N2).length >= 2 ? true : undefined), 5000, 'both legs ended');
  const elsewhere = [...byes(N1), ...byes(N2), ...cancels(N1), ...cancels(N2)].filter((m) => /Reason: SIP;cause=200;text="Call completed elsewhere"/.test(m));
  t.equal(elsewhere.length, 1, 'exactly one device was told "Call completed elsewhere"');
  await settled(t);
});

t.test('CANCEL while both devices ring: both legs cancelled, 487 to the caller', async (t) => {
  const r = await runSipp({ scenario: 'uac-cancel.xml', dir, remote: `127.0.0.1:${sip}`, vars: vars({ dir, sipPort: sip, to: 'rick' }, null), timeoutMs: 15_000, name: 'cancel-rick' });
  t.ok(responsesIn(r.messages).some((x) => x.status === 487), 'caller gets 487');
  await until(async () => (cancels(R1).length > 0 && cancels(R2).length > 0 ? true : undefined), 5000, 'both devices got CANCEL');
  await settled(t);
});

t.test('a device that is busy: its 486 reaches the caller (no ISF: 486 is not in the failover set)', async (t) => {
  const r = await inviteExpecting({ dir, sipPort: sip, to: 'busy' }, 486);
  t.equal(r.final?.status, 486);
  await settled(t);
});

t.test('480 and 503 from every device with interworking: the INVITE goes to the ISF (CR 8.3.2.1.1)', async (t) => {
  const before = requestsIn(isf.messages(), 'INVITE').length;
  const r = await call({ dir, sipPort: sip, to: 'gone' }, 200);
  t.equal(r.final?.status, 200, 'the ISF answered; the caller gets our 200');
  const inv = requestsIn(isf.messages(), 'INVITE').slice(before)[0] ?? '';
  t.match(inv, /^INVITE sip:isf@127\.0\.0\.1:\d+ SIP\/2\.0/, 'to the ISF URI as it is');
  t.notMatch(inv, /X-PF-/i, 'no internal header');
  await settled(t);
});

t.test('302 from a device: the INVITE goes to its Contact', async (t) => {
  const r = await call({ dir, sipPort: sip, to: 'moved' }, 200);
  t.equal(r.final?.status, 200);
  t.ok(target.invites().length >= 1, 'the Contact got the INVITE');
  await settled(t);
});

t.test('the device hangs up: the caller gets BYE', async (t) => {
  const r = await call({ dir, sipPort: sip, to: 'hang' }, 0, true);
  t.equal(r.final?.status, 200);
  t.equal(requestsIn(r.messages, 'BYE').length, 1, 'the caller got BYE');
  t.equal(byes(H).length, 1, 'one BYE at the device: its own');
  await settled(t);
});

for (const [user, what] of [['nosdp', 'no SDP'], ['garbled', 'garbled SDP']] as const) {
  t.test(`a device answers 200 with ${what}: ACK and BYE to it, 488 to the caller`, async (t) => {
    const r = await inviteExpecting({ dir, sipPort: sip, to: user }, 488);
    t.equal(r.final?.status, 488);
    await settled(t);
  });
}

t.test('an INVITE carrying a false X-PF-Leg is refused by Kamailio', async (t) => {
  const r = await inviteExpecting({ dir, sipPort: sip, to: 'bob', headers: { 'X-PF-Leg': 'guess' } }, 403);
  t.equal(r.final?.status, 403);
  await settled(t);
});

t.test("an INVITE sent straight to the B2BUA's port with a guessed ticket is refused", async (t) => {
  const port = lab.b2buaSipPort;
  const invite = [
    `INVITE sip:bob@example.net SIP/2.0`, `Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKforged1`, 'Max-Forwards: 70',
    'From: <sip:mallory@example.net>;tag=m1', 'To: <sip:bob@example.net>', 'Call-ID: forged-1', 'CSeq: 1 INVITE',
    'Contact: <sip:mallory@127.0.0.1:9>', `X-PF-Ticket: ${'0'.repeat(32)}`, 'Content-Length: 0', '', '',
  ].join('\r\n');
  const answer = await new Promise<string>((resolve, reject) => {
    let got = '';
    const s = connect(port, '127.0.0.1', () => s.write(invite));
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      got += d;
      if (/^SIP\/2\.0 [2-6]\d\d /m.test(got)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    setTimeout(() => {
      s.destroy();
      resolve(got);
    }, 5000).unref();
  });
  // the B2BUA answers on its connection to Kamailio (docs/b2bua.md), so the forger may
  // see nothing at all; either way no call starts
  t.notMatch(answer, /^SIP\/2\.0 200/m, 'no 200');
  const m = await lab.service.metrics();
  t.match(m, /^pf_b2bua_invites_refused [1-9]/m, 'counted as refused');
  await settled(t);
});
