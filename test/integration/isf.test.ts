/**
 * Interworking through the ISF on real Kamailio. A sipp UAS plays the ISF;
 * the policy sends invitations without a suitable device there (CR 8.3.2.1 step 6),
 * and fails over to it when every device fails with 480/408/487/500/503/504
 * (CR 8.3.2.1.1, the `failover` of a proxy decision applied in pf.cfg's failure_route).
 */
import t from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { call, inviteExpecting, Device, newInstance, ringing } from '../../lab/calls.js';
import { SippAgent, headerValues, requestsIn } from '../../lab/sipp.js';
import { freePort } from '../../lab/proc.js';
import { ICSI_SESSION } from '../../lab/sip.js';

const dir = runDir('it-isf');
const isfPort = await freePort();
const lab = await Lab.start({
  dir,
  policy: { noSuitableDevice: 'isf', isfUri: `sip:isf@127.0.0.1:${isfPort}`, interworkingOnFailure: true },
});
const isf = await SippAgent.start({ scenario: 'uas-answer.xml', dir, port: isfPort, vars: { CONTACT_PARAMS: '', RINGING: ringing(''), SETUP: 'passive' }, name: 'isf' });
const devices: Device[] = [];
t.teardown(async () => {
  await Promise.all([isf.stop(), ...devices.map((d) => d.stop())]);
  await lab.stop();
});
const isfInvites = (): string[] => requestsIn(isf.messages(), 'INVITE');

t.test('no suitable device: the INVITE goes to the ISF (step 6)', async (t) => {
  const n = isfInvites().length;
  const r = await call({ dir, sipPort: lab.sipPort, to: 'ivan' });
  t.equal(r.code, 0, `answered by the ISF, ACK and BYE along the Record-Route ${r.errors}`);
  const inv = isfInvites().slice(n);
  t.equal(inv.length, 1, 'the ISF got one INVITE');
  const msg = inv[0] ?? '';
  t.match(msg, new RegExp(`^INVITE sip:isf@127\\.0\\.0\\.1:${isfPort} SIP/2\\.0`), 'Request-URI is the ISF');
  // step 6 comes before service identification (step 7): the ICSI travels in either header
  t.same([...headerValues(msg, 'P-Asserted-Service'), ...headerValues(msg, 'P-Preferred-Service')], [ICSI_SESSION], 'the CPM service travels with it');
  t.equal(headerValues(msg, 'Record-Route').length, 1, 'record-routed');
  t.ok(requestsIn(isf.messages(), 'BYE').length >= 1, 'BYE reached the ISF');
});

t.test('every device fails with 480: failover to the ISF (8.3.2.1.1)', async (t) => {
  const d = await Device.start({ dir, sipPort: lab.sipPort, user: 'judy', instance: newInstance(), behaviour: { kind: 'reply', code: 480, reason: 'Temporarily Unavailable' } });
  devices.push(d);
  const n = isfInvites().length;
  const r = await call({ dir, sipPort: lab.sipPort, to: 'judy' });
  t.equal(r.code, 0, `answered by the ISF after the device's 480 ${r.errors}`);
  t.equal(d.invites().length, 1, 'the device was tried first');
  const inv = isfInvites().slice(n);
  t.equal(inv.length, 1, 'then the ISF');
  t.same(headerValues(inv[0] ?? '', 'P-Asserted-Service'), [ICSI_SESSION], 'with the PF headers');
  t.same(headerValues(inv[0] ?? '', 'P-Preferred-Service'), [], 'and without P-Preferred-Service');
  t.equal(headerValues(inv[0] ?? '', 'Record-Route').length, 1, 'record-routed once');
});

t.test('a 486 is not a failover code: it reaches the caller', async (t) => {
  const d = await Device.start({ dir, sipPort: lab.sipPort, user: 'kurt', instance: newInstance(), behaviour: { kind: 'reply', code: 486, reason: 'Busy Here' } });
  devices.push(d);
  const n = isfInvites().length;
  const r = await inviteExpecting({ dir, sipPort: lab.sipPort, to: 'kurt' }, 486);
  t.equal(r.code, 0, `caller got 486 ${r.errors}`);
  t.equal(isfInvites().length, n, 'the ISF was not involved');
});
