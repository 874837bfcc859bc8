/**
 * On real Kamailio: the PF in proxy mode (CR 8.3.2.1 steps 1-7 and 9) with
 * several registered devices per user and XDM documents put through XCAP. The caller
 * and the devices are sipp; the decisions come from the real service.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { Lab, runDir } from '../../lab/lab.js';
import { call, inviteExpecting, inviteAnyFinal, Device, newInstance, replacingGroupInvite } from '../../lab/calls.js';
import { headerValues, requestsIn } from '../../lab/sipp.js';
import { ICSI_SESSION, ICSI_GROUP, MMTEL_DEVICE_PARAMS } from '../../lab/sip.js';
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
  // A's 200 passed Kamailio (dialog:start kept the session) once A has the ACK
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
  // its BYE ended the dialog (dialog:end): the session is no longer known, so a
  // Session-Replaces for it falls back to normal selection and B is alerted again
  const again = await group();
  t.equal(again.code, 0, `group session answered ${again.errors}`);
  t.equal(B.invites().length, b1 + 1, 'the ended session is no longer used: B alerted too');
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

