/**
 * On real Kamailio: the PF in proxy mode (CR 8.3.2.1 steps 1-7 and 9) with
 * several registered devices per user and XDM documents put through XCAP. The caller
 * and the devices are sipp; the decisions come from the real service. Who is in which
 * session (Session-Replaces) is kept by pf.cfg in Kamailio's htables: a 2xx adds the
 * dialog, a BYE of either side or the expiry of its item takes it out.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Lab, runDir } from '../../lab/lab.js';
import { call, inviteExpecting, inviteAnyFinal, Device, newInstance, replacingGroupInvite } from '../../lab/calls.js';
import { headerValues, requestsIn } from '../../lab/sipp.js';
import { ICSI_SESSION, ICSI_GROUP, MMTEL_DEVICE_PARAMS, register } from '../../lab/sip.js';
import { blacklistDoc, policyDoc, RESOURCE_LISTS, AUTH_POLICY } from '../../lab/xdm.js';
import { until } from '../../lab/proc.js';

const dir = runDir('it-proxy');
const lab = await Lab.start({
  dir,
  policy: { supportedVersions: ['OMA2.0', 'OMA2.1', 'OMA2.2'], allowAnonymity: false, foreignService: 'reject' },
});
const devices: Device[] = [];
t.teardown(async () => {
  await Promise.all(devices.map((d) => d.stop()));
  await lab.stop();
});
const sip = lab.sipPort;
const device = async (user: string, behaviour: Device['o']['behaviour'], params?: string): Promise<Device> => {
  const d = await Device.start({ dir, sipPort: sip, user, instance: newInstance(), behaviour, params });
  devices.push(d);
  return d;
};

// bob: A answers, B only rings, M is MMTEL-only (never suitable for CPM)
const A = await device('bob', { kind: 'answer' });
const B = await device('bob', { kind: 'ring' });
const M = await device('bob', { kind: 'ring' }, MMTEL_DEVICE_PARAMS);
// setup throws rather than asserting: tap ends the root test at its first assertion
// followed by a long await
const put = async (auid: string, user: string, xml: string, type: string): Promise<void> => {
  const status = await lab.service.putXcap(auid, user, xml, type);
  if (status !== 200 && status !== 201) throw new Error(`XCAP PUT ${auid} for ${user}: ${status}`);
};
await put('resource-lists', 'sip:bob@example.net', blacklistDoc(['sip:spam@example.net', 'tel:+15550000002']), RESOURCE_LISTS);
// dora: do-not-disturb on, one device
await device('dora', { kind: 'answer' });
await put('org.openmobilealliance.access-rules', 'sip:dora@example.net', policyDoc({ dnd: true }), AUTH_POLICY);

const rejects: { name: string; to: string; code: number; warning: string | null | RegExp; headers?: Record<string, string | null>; bodyType?: string; body?: string }[] = [
  {
    name: 'release version not supported (step 1)',
    to: 'bob',
    code: 403,
    warning: '132 Version not supported',
    headers: { 'User-Agent': 'CPM-client/OMA1.0' },
  },
  { name: 'anonymous caller (step 2)', to: 'bob', code: 403, warning: '119 Anonymity not allowed', headers: { Privacy: 'id' } },
  {
    name: 'anonymous asserted identity (step 2)',
    to: 'bob',
    code: 403,
    warning: '119 Anonymity not allowed',
    headers: { 'P-Asserted-Identity': '<sip:anonymous@anonymous.invalid>' },
  },
  {
    name: 'blacklisted originator (step 3)',
    to: 'bob',
    code: 403,
    warning: '122 Function not allowed',
    headers: { 'P-Asserted-Identity': '<sip:spam@example.net>' },
  },
  {
    name: 'blacklisted number, other form (step 3)',
    to: 'bob',
    code: 403,
    warning: '122 Function not allowed',
    headers: { 'P-Asserted-Identity': '<sip:+15550000002@example.net;user=phone>' },
  },
  { name: 'do not disturb (step 4)', to: 'dora', code: 480, warning: null },
  {
    name: 'media not allowed (step 5)',
    to: 'bob',
    code: 488,
    // the CR gives no Warning text for 488; the service's own is in the 399 format
    warning: /^399 pf\.example\.net "[^"]+"$/,
    body: ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 4000 RTP/AVP 0'].join('\n'),
  },
  { name: 'no suitable device (step 6)', to: 'nobody', code: 480, warning: null },
  {
    name: 'foreign service (step 7)',
    to: 'bob',
    code: 403,
    warning: '122 Function not allowed',
    // a CPM invitation (Accept-Contact) asking for another service
    headers: { 'P-Preferred-Service': 'urn:urn-7:3gpp-service.ims.icsi.mmtel' },
  },
];

for (const c of rejects) {
  t.test(`${c.code} ${c.name}`, async (t) => {
    const r = await inviteExpecting({ dir, sipPort: sip, to: c.to, headers: c.headers, body: c.body, bodyType: c.bodyType }, c.code);
    t.equal(r.code, 0, `caller got ${c.code} ${r.errors}`);
    const w = r.final?.headers.get('warning') ?? [];
    if (c.warning === null) t.same(w, [], 'no Warning');
    else if (c.warning instanceof RegExp) t.match(w.join('\n'), c.warning, 'Warning');
    else t.same(w, [`399 pf.example.net "${c.warning}"`], 'exact Warning');
  });
}

t.test('proxy: the suitable devices get the INVITE, the MMTEL-only one never', async (t) => {
  const before = { a: A.invites().length, b: B.invites().length, m: M.invites().length };
  const forks = async (): Promise<number> =>
    Number(/^pf_rpc_requests_total\{[^}]*method="core\.fork"[^}]*\} (\d+)/m.exec(await lab.service.metrics())?.[1] ?? 0);
  const forksBefore = await forks();
  const r = await call({ dir, sipPort: sip, to: 'bob' });
  t.equal(r.code, 0, `call completed: 200, ACK and BYE along the Record-Route ${r.errors}`);
  const inv = A.invites().slice(before.a);
  t.equal(inv.length, 1, 'A alerted once');
  t.equal(B.invites().length - before.b, 1, 'B alerted');
  t.equal(M.invites().length - before.m, 0, 'MMTEL-only device never alerted');
  const msg = inv[0] ?? '';
  // CR 8.3.2.1 step 7: P-Preferred-Service becomes P-Asserted-Service
  t.same(headerValues(msg, 'P-Asserted-Service'), [ICSI_SESSION], 'P-Asserted-Service');
  t.same(headerValues(msg, 'P-Preferred-Service'), [], 'P-Preferred-Service removed');
  // step 9: Record-Route, one Reject-Contact per unsuitable device, parallel fork
  t.equal(headerValues(msg, 'Record-Route').length, 1, 'Record-Route');
  t.match(headerValues(msg, 'Record-Route')[0] ?? '', new RegExp(`127\\.0\\.0\\.1:${sip};lr`));
  t.same(headerValues(msg, 'Reject-Contact'), [`*;+sip.instance="<${M.o.instance}>"`], 'exactly the MMTEL device rejected');
  t.same(headerValues(msg, 'Request-Disposition'), ['fork, parallel']);
  // one round trip: pf.invite carried the core's fork (pf.invite "fork": true), no core.fork
  t.equal(await forks(), forksBefore, 'no separate core.fork call');
  // ACK and BYE followed the Record-Route to A
  const ackByes = A.messages();
  t.ok(requestsIn(ackByes, 'ACK').length >= 1, 'A got the ACK');
  t.ok(requestsIn(ackByes, 'BYE').length >= 1, 'A got the BYE');
  // the CANCEL to B leaves when A's 200 arrives; it may land after the caller is done
  await until(async () => (requestsIn(B.messages(), 'CANCEL').length >= 1 ? true : undefined), 5000, 'CANCEL at B');
  t.pass('B got CANCEL once A answered');
});

t.test('Session-Replaces reaches only the replaced session\'s device', async (t) => {
  const cid = randomUUID();
  const b0 = B.invites().length;
  const acks0 = requestsIn(A.messages(), 'ACK').length;
  // a 1-1 session with A, held open while the group INVITE arrives
  const first = call({ dir, sipPort: sip, to: 'bob', contributionId: cid }, 4000);
  // A's 200 passed Kamailio (PF_REPLY_APPLY kept the session) once A has the ACK
  await until(async () => (requestsIn(A.messages(), 'ACK').length > acks0 ? true : undefined), 10_000, 'the 1-1 session is up');
  const b1 = B.invites().length;
  t.equal(b1 - b0, 1, 'B was alerted for the 1-1 session');
  const group = (): ReturnType<typeof call> => call(replacingGroupInvite({ dir, sipPort: sip, to: 'bob', contributionId: cid }));
  const g = await group();
  t.equal(g.code, 0, `group session answered ${g.errors}`);
  t.equal(B.invites().length, b1, 'B not alerted for the group session');
  const groupInvite = A.invites().find((m) => /Session-Replaces:/i.test(m));
  t.ok(groupInvite, 'A got the group INVITE');
  t.same(headerValues(groupInvite ?? '', 'P-Asserted-Service'), [ICSI_GROUP]);
  t.equal((await first).code, 0, 'the 1-1 session ended normally');
  // the caller's BYE ended the dialog: the session is no longer known, so a
  // Session-Replaces for it falls back to normal selection and B is alerted again
  const again = await group();
  t.equal(again.code, 0, `group session answered ${again.errors}`);
  t.equal(B.invites().length, b1 + 1, 'the ended session is no longer used: B alerted too');
});

t.test("Session-Replaces: the device's own BYE ends its dialog (a Contribution-ID with a colon)", async (t) => {
  // X answers and hangs up itself after 3 s; Y only rings
  const X = await device('nick', { kind: 'answer-bye', holdMs: 3000 });
  const Y = await device('nick', { kind: 'ring' });
  // the pfdlg item's length prefix must not split at the colon
  const cid = `${randomUUID()}:x`;
  const acks0 = requestsIn(X.messages(), 'ACK').length;
  const first = call({ dir, sipPort: sip, to: 'nick', contributionId: cid }, 0, true);
  await until(async () => (requestsIn(X.messages(), 'ACK').length > acks0 ? true : undefined), 10_000, 'the 1-1 session is up');
  const y1 = Y.invites().length;
  // the group call is answered by X, which hangs up after 3 s as well
  const group = (): ReturnType<typeof call> => call(replacingGroupInvite({ dir, sipPort: sip, to: 'nick', contributionId: cid }), 0, true);
  const g = await group();
  t.equal(g.code, 0, `group session answered ${g.errors}`);
  t.equal(Y.invites().length, y1, 'while the session is up: only its device is alerted');
  const r = await first;
  t.equal(r.code, 0, `the 1-1 session ended with the device's BYE ${r.errors}`);
  const again = await group();
  t.equal(again.code, 0, `group session answered ${again.errors}`);
  t.equal(Y.invites().length, y1 + 1, 'after the device\'s BYE the session is unknown: Y alerted too');
});

t.test("a caller's Request-Disposition gives way to the PF's (two header names removed)", async (t) => {
  const a0 = A.invites().length;
  const r = await call({ dir, sipPort: sip, to: 'bob', headers: { 'Request-Disposition': 'no-fork' } });
  t.equal(r.code, 0, `call completed ${r.errors}`);
  const inv = A.invites()[a0] ?? '';
  t.same(headerValues(inv, 'Request-Disposition'), ['fork, parallel'], "only the PF's Request-Disposition");
  t.same(headerValues(inv, 'P-Preferred-Service'), [], 'P-Preferred-Service removed');
  t.same(headerValues(inv, 'P-Asserted-Service'), [ICSI_SESSION]);
});

t.test('a proxy decision the text form cannot carry comes as JSON and is applied the same', async (t) => {
  const L = await device('lena', { kind: 'answer' });
  // an MMTEL device whose +sip.instance holds a "|": its Reject-Contact cannot go in
  // the '|'-separated text form (plugin/rpc/decision-text.ts), so the decision is a JSON object
  const odd = '<urn:uuid:pipe|00000000-0000-4000-8000-000000000001>';
  const reg = await register(sip, { user: 'lena', contactPort: 31999, instance: odd.slice(1, -1), params: MMTEL_DEVICE_PARAMS });
  t.equal(reg.status, 200, 'odd device registered');
  const r = await call({ dir, sipPort: sip, to: 'lena' });
  t.equal(r.code, 0, `call completed ${r.errors}`);
  const inv = L.invites()[0] ?? '';
  t.same(headerValues(inv, 'P-Asserted-Service'), [ICSI_SESSION], 'P-Asserted-Service');
  t.same(headerValues(inv, 'P-Preferred-Service'), [], 'P-Preferred-Service removed');
  t.same(headerValues(inv, 'Reject-Contact'), [`*;+sip.instance="${odd}"`], 'the odd device rejected');
  t.equal(headerValues(inv, 'Record-Route').length, 1, 'record-routed');
});

t.test("a non-CPM INVITE passes untouched: the core forks on the caller's own Request-Disposition", async (t) => {
  const P = await device('pat', { kind: 'answer' });
  const notCpm = { 'P-Preferred-Service': null, 'Accept-Contact': null, 'Request-Disposition': 'sequential' };
  // serial routing: lab.cfg reads "routing" with jansson (its slow path)
  const r = await call({ dir, sipPort: sip, to: 'pat', headers: notCpm });
  t.equal(r.code, 0, `call completed ${r.errors}`);
  const inv = P.invites()[0] ?? '';
  t.same(headerValues(inv, 'P-Asserted-Service'), [], 'no PF treatment');
  t.same(headerValues(inv, 'Request-Disposition'), ['sequential'], "the caller's Request-Disposition kept");
  // nobody registered: the fork in the pf.invite answer is {"code":480,...} (lab.cfg's slow path)
  const none = await inviteExpecting({ dir, sipPort: sip, to: 'nobody', headers: notCpm }, 480);
  t.equal(none.code, 0, `480 from the core ${none.errors}`);
  t.notMatch(none.final?.header('warning') ?? '', /PF unavailable/, 'decided, not the fail-safe');
});

t.test('sessions kept in Kamailio: an expired pfdlg item takes its dialog out of the session', async (t) => {
  // a lab of its own: dialogs expire after 3 s (htable timer 1 s)
  const d = join(dir, 'expiry');
  const lab2 = await Lab.start({ dir: d, defines: ['PF_DIALOG_HTABLE="pfdlg=>size=8;autoexpire=3;"', 'LAB_HTABLE_TIMER=1'] });
  const J = await Device.start({ dir: d, sipPort: lab2.sipPort, user: 'jay', instance: newInstance(), behaviour: { kind: 'answer' } });
  const K = await Device.start({ dir: d, sipPort: lab2.sipPort, user: 'jay', instance: newInstance(), behaviour: { kind: 'ring' } });
  t.teardown(async () => {
    await Promise.all([J.stop(), K.stop()]);
    await lab2.stop();
  });
  // a Contribution-ID with a colon: the pfdlg item's length prefix must not split at it
  const cid = `${randomUUID()}:x`;
  const acks0 = requestsIn(J.messages(), 'ACK').length;
  let done = false;
  const up = call({ dir: d, sipPort: lab2.sipPort, to: 'jay', contributionId: cid }, 12_000).finally(() => {
    done = true;
  });
  await until(async () => (requestsIn(J.messages(), 'ACK').length > acks0 ? true : undefined), 10_000, 'the 1-1 session is up');
  const group = (): ReturnType<typeof call> => call(replacingGroupInvite({ dir: d, sipPort: lab2.sipPort, to: 'jay', contributionId: cid }));
  const k0 = K.invites().length;
  const g = await group();
  t.equal(g.code, 0, `group session answered ${g.errors}`);
  t.equal(K.invites().length, k0, 'while kept: only the session\'s device is alerted');
  // the item expires (autoexpire 3 s, htable timer 1 s) while the call is still up
  await until(async () => (/PF: dialog \S+ ended without BYE/.test(lab2.kamailio.proc.output) ? true : undefined), 10_000, 'pfdlg item expired');
  const again = await group();
  t.equal(again.code, 0, `group session answered ${again.errors}`);
  t.notOk(done, 'the 1-1 call is still up (no BYE yet)');
  t.equal(K.invites().length, k0 + 1, 'after expiry the session is unknown: normal selection, K alerted too');
  const r = await up;
  t.equal(r.code, 0, `the call itself is unaffected ${r.errors}`);
});

t.test('all devices fail: the best error reaches the caller', async (t) => {
  await device('erin', { kind: 'reply', code: 500, reason: 'Server Internal Error' });
  await device('erin', { kind: 'reply', code: 486, reason: 'Busy Here' });
  // RFC 3261 §16.7: a 4xx beats a 5xx
  const r = await inviteExpecting({ dir, sipPort: sip, to: 'erin' }, 486);
  t.equal(r.code, 0, `caller got 486 ${r.errors}`);
});

t.test('302 recursion: the invitation follows the Contact, never loops', async (t) => {
  // the redirect target: an answering UA that is not registered
  const target = await Device.start({ dir, sipPort: sip, user: 'fred', instance: newInstance(), behaviour: { kind: 'answer' }, register: false });
  devices.push(target);
  await device('fred', { kind: 'reply', code: 302, reason: 'Moved Temporarily', extra: [`Contact: <sip:fred@127.0.0.1:${target.port}>`] });
  const r = await call({ dir, sipPort: sip, to: 'fred' });
  t.equal(r.code, 0, `answered by the redirect target ${r.errors}`);
  const inv = target.invites();
  t.equal(inv.length, 1, 'the target got the INVITE');
  t.same(headerValues(inv[0] ?? '', 'P-Asserted-Service'), [ICSI_SESSION], 'PF headers on the redirected INVITE');
  t.equal(headerValues(inv[0] ?? '', 'Record-Route').length, 1, 'still record-routed');

  // a device that redirects to its own Contact: tried once, then the caller gets the 302
  const loop = await device('gina', { kind: 'reply', code: 302, reason: 'Moved Temporarily', extra: ['Contact: <sip:gina@[local_ip]:[local_port]>'] });
  const rl = await inviteExpecting({ dir, sipPort: sip, to: 'gina' }, 302);
  t.equal(rl.code, 0, `302 back to the caller ${rl.errors}`);
  t.equal(loop.invites().length, 1, 'the looping device was tried once');
});

t.test('bad input on the wire gets clear replies and breaks nothing', async (t) => {
  const bad: { name: string; headers?: Record<string, string | null>; extraLines?: string[]; bodyType?: string; body?: string }[] = [
    { name: 'garbled P-Asserted-Identity', headers: { 'P-Asserted-Identity': '<<sip:alice@@example.net' } },
    { name: 'garbled Privacy', headers: { Privacy: ';;;id;;=' } },
    { name: 'garbled Accept-Contact', headers: { 'Accept-Contact': '*;+g.3gpp.icsi-ref="urn%3Aunterminated' } },
    { name: 'garbled Reject-Contact', extraLines: ['Reject-Contact: *;+sip.instance="<urn:uuid:x>;;;=""'] },
    { name: 'garbled Request-Disposition', extraLines: ['Request-Disposition: fork, fork, no-such-directive, ,'] },
    { name: 'non-SDP body', bodyType: 'text/plain', body: 'hello, this is not SDP' },
    {
      name: 'huge Reject-Contact list',
      extraLines: Array.from({ length: 200 }, (_, i) => `Reject-Contact: *;+sip.instance="<urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}>"`),
    },
  ];
  for (const b of bad) {
    // "nobody" has no device: whatever the PF makes of the input, the answer must be a
    // clear final 4xx, never the fail-safe (which would mean the service failed)
    const r = await inviteAnyFinal({ dir, sipPort: sip, to: 'nobody', headers: b.headers, extraLines: b.extraLines, bodyType: b.bodyType, body: b.body });
    t.ok(r.status >= 400 && r.status < 500, `${b.name}: ${r.status} ${r.reason}`);
    t.notMatch(r.header('warning') ?? '', /PF unavailable/, `${b.name}: decided, not the fail-safe`);
    if (b.name === 'non-SDP body') t.equal(r.status, 488, 'no SDP offer: 488 (step 5)');
  }
  t.ok(await lab.kamailio.alive(), 'Kamailio alive');
  t.equal((await lab.service.getJson('/ready')).status, 200, 'service ready');
});

t.test('a user with 50 devices', async (t) => {
  const answering = await device('hank', { kind: 'answer' });
  const { register } = await import('../../lab/sip.js');
  for (let i = 0; i < 49; i++) {
    const r = await register(sip, { user: 'hank', contactPort: 30000 + i, instance: newInstance(), params: MMTEL_DEVICE_PARAMS });
    t.equal(r.status, 200);
  }
  const devs = await lab.service.getJson('/users/hank/devices');
  t.equal((devs.body as { devices: unknown[] }).devices.length, 50, 'service knows 50 devices');
  const r = await call({ dir, sipPort: sip, to: 'hank' });
  t.equal(r.code, 0, `answered ${r.errors}`);
  const inv = answering.invites()[0] ?? '';
  t.equal(headerValues(inv, 'Reject-Contact').length, 49, '49 Reject-Contact, one per MMTEL device');
  t.ok(await lab.kamailio.alive(), 'Kamailio alive');
});

