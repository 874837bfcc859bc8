/**
 * On real Kamailio: the PF in B2BUA mode (CR 8.3.2.1 step 8, the 200 OK procedure,
 * 8.3.2.1.1). Kamailio relays the caller's INVITE to the B2BUA with a ticket; the B2BUA
 * sends one INVITE per device back through Kamailio, answers the caller itself with the
 * relay's SDP, and ends every leg when the session ends. Callers and devices are sipp.
 * After each case the B2BUA's calls and the relay's sessions are back to zero.
 */
import t, { type Test } from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { call, inviteExpecting, Device, newInstance } from '../../lab/calls.js';
import { headerValues, requestsIn } from '../../lab/sipp.js';
import { until } from '../../lab/proc.js';
import { RelayControlClient } from '../../media/relay/control-client.js';

const dir = runDir('it-b2bua');
const lab = await Lab.start({ dir, mode: 'b2bua', b2bua: { multiDevice: 'C' } });
const devices: Device[] = [];
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
t.teardown(async () => {
  await relay.close();
  await Promise.all(devices.map((d) => d.stop()));
  await lab.stop();
});
const sip = lab.sipPort;
const device = async (user: string, behaviour: Device['o']['behaviour']): Promise<Device> => {
  const d = await Device.start({ dir, sipPort: sip, user, instance: newInstance(), behaviour, setup: 'active' });
  devices.push(d);
  return d;
};

/** The B2BUA's calls in progress and the relay's sessions. */
async function live(): Promise<{ calls: number; sessions: number }> {
  const m = await lab.service.metrics();
  const calls = Number(/^pf_b2bua_calls (\d+)/m.exec(m)?.[1] ?? NaN);
  const sessions = (await relay.ping()).sessions;
  return { calls, sessions };
}

async function settled(t: Test): Promise<void> {
  const z = await until(async () => {
    const l = await live();
    return l.calls === 0 && l.sessions === 0 ? l : undefined;
  }, 10_000, 'B2BUA calls and relay sessions back to zero').catch(() => null);
  t.ok(z, `no call or relay session left (${JSON.stringify(await live())})`);
}

const A = await device('bob', { kind: 'answer' });

t.test('one device: the B2BUA answers the caller with the relay SDP and sends one INVITE to the device', async (t) => {
  const r = await call({ dir, sipPort: sip, to: 'bob' }, 200);
  t.equal(r.final?.status, 200, 'caller gets 200');
  t.match(r.final?.raw ?? '', /a=path:msrp:\/\/127\.0\.0\.1:\d+\/[^;\s]+;tcp/, "the relay's a=path in the caller's 200");
  t.match(r.final?.raw ?? '', /User-Agent: CPM-serv\/OMA2\.2/, "the PF's User-Agent");
  const inv = A.invites().at(-1) ?? '';
  t.match(inv, /Supported: timer, recipient-list-invite/, 'Supported');
  t.match(inv, /Session-Expires: \d+;refresher=uas/, 'Session-Expires');
  t.notMatch(inv, /X-PF-/i, 'no internal header reaches the device');
  t.equal(headerValues(inv, 'Contribution-ID').length, 1, 'Contribution-ID copied');
  await until(async () => (requestsIn(A.agent.messages(), 'BYE').length > 0 ? true : undefined), 5000, 'device got BYE');
  await settled(t);
});

t.test('an INVITE carrying a false X-PF-Leg is refused by Kamailio', async (t) => {
  const r = await inviteExpecting({ dir, sipPort: sip, to: 'bob', headers: { 'X-PF-Leg': 'guess' } }, 403);
  t.equal(r.final?.status, 403);
  await settled(t);
});
