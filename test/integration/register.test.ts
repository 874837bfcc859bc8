/**
 * On real Kamailio: REGISTER goes to the service (pf.register) before
 * save(), the registrar answers with GRUUs, the service keeps the devices with their
 * feature tags across a restart, and odd Contacts get a clear reply.
 */
import t from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { register, CPM_DEVICE_PARAMS, MMTEL_DEVICE_PARAMS, sipUdpRequest, token } from '../../lab/sip.js';

interface DeviceView {
  instance: string | null;
  contact: string;
  params: Record<string, string | true>;
  pubGruu: string | null;
}

const dir = runDir('it-register');
const lab = await Lab.start({ dir });
t.teardown(() => lab.stop());

const devicesOf = async (user: string): Promise<DeviceView[]> => {
  const r = await lab.service.getJson(`/users/${user}/devices`);
  const body = r.body as { devices?: DeviceView[] };
  return body.devices ?? [];
};

const A = 'urn:uuid:0a0a0a0a-0000-4000-8000-000000000001';
const B = 'urn:uuid:0b0b0b0b-0000-4000-8000-000000000002';

t.test('two devices of one user register with instance ids and feature tags', async (t) => {
  const ra = await register(lab.sipPort, { user: 'bob', contactPort: 41001, instance: A, params: CPM_DEVICE_PARAMS });
  t.equal(ra.status, 200, 'device A registered');
  // RFC 5627: the registrar hands out the public GRUU of the instance
  t.match(ra.header('contact') ?? '', `pub-gruu="sip:bob@example.net;gr=${A}"`);
  const rb = await register(lab.sipPort, { user: 'bob', contactPort: 41002, instance: B, params: MMTEL_DEVICE_PARAMS });
  t.equal(rb.status, 200, 'device B registered');
  t.equal((rb.headers.get('contact') ?? []).join(',').split('+sip.instance').length - 1, 2, '200 lists both bindings');

  // pf.register ran before save(): the service already has both when the 200 left
  const devs = await devicesOf('bob');
  t.equal(devs.length, 2, 'service reports two devices');
  const a = devs.find((d) => d.instance === `<${A}>`);
  const b = devs.find((d) => d.instance === `<${B}>`);
  t.ok(a && b, 'both instance ids known');
  t.equal(a?.pubGruu, `sip:bob@example.net;gr=${A}`, 'GRUU of A');
  t.equal(a?.params['+g.oma.sip-im'], true, 'A keeps +g.oma.sip-im');
  t.equal(a?.params['+g.3gpp.icsi-ref'], 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session', 'A keeps the CPM ICSI');
  t.equal(b?.params['+g.3gpp.icsi-ref'], 'urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel', 'B keeps the MMTEL ICSI');
  t.equal(b?.contact, 'sip:bob@127.0.0.1:41002');
});

t.test('a REGISTER with an odd Contact gets a clear reply and breaks nothing', async (t) => {
  const odd = [
    '<sip:bob@127.0.0.1:41003;+sip.instance="<urn:uuid:unterminated>',
    '<<<>>>',
    'sip:bob@127.0.0.1:41004;expires=notanumber',
  ];
  for (const rawContact of odd) {
    const r = await register(lab.sipPort, { user: 'bob', contactPort: 0, rawContact });
    t.ok(r.status >= 400 && r.status < 500, `odd Contact ${rawContact.slice(0, 40)} -> ${r.status} ${r.reason}`);
  }
  // syntactically valid but absurd: any clear answer, then it is removed again
  const long = `<sip:bob@127.0.0.1:41005>;+sip.instance="${'x'.repeat(3000)}"`;
  const rl = await register(lab.sipPort, { user: 'bob', contactPort: 0, rawContact: `${long};expires=600` });
  t.ok(rl.status === 200 || (rl.status >= 400 && rl.status < 500), `3000-byte instance id -> ${rl.status}`);
  if (rl.status === 200) {
    const r0 = await register(lab.sipPort, { user: 'bob', contactPort: 0, rawContact: `${long};expires=0` });
    t.equal(r0.status, 200, 'and removed');
  }
  // a REGISTER without Contact is a query (RFC 3261 §10.2.3): the bindings come back
  const q = await sipUdpRequest(lab.sipPort, (lp) =>
    [
      'REGISTER sip:example.net SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${token()};rport`,
      'Max-Forwards: 70',
      `From: <sip:bob@example.net>;tag=${token(4)}`,
      'To: <sip:bob@example.net>',
      `Call-ID: ${token()}`,
      'CSeq: 1 REGISTER',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  t.equal(q.final.status, 200, 'query answered');
  t.ok(await lab.kamailio.alive(), 'Kamailio still answers');
  t.equal((await lab.service.getJson('/ready')).status, 200, 'service still ready');
  t.equal((await devicesOf('bob')).length, 2, 'bob still has exactly his two devices');
});

t.test('de-registration removes the device in the service too', async (t) => {
  const r1 = await register(lab.sipPort, { user: 'carol', contactPort: 41010, instance: A, params: CPM_DEVICE_PARAMS });
  t.equal(r1.status, 200);
  t.equal((await devicesOf('carol')).length, 1);
  const r0 = await register(lab.sipPort, { user: 'carol', contactPort: 41010, instance: A, params: CPM_DEVICE_PARAMS, expires: 0 });
  t.equal(r0.status, 200);
  t.equal((await devicesOf('carol')).length, 0, 'gone after expires=0');
});

t.test('the service restarts with the devices still known', async (t) => {
  // same ports and data dir; janssonrpcc reconnects by itself
  await lab.restartService();
  const devs = await devicesOf('bob');
  t.equal(devs.length, 2, 'devices survive the restart');
  const r = await register(lab.sipPort, { user: 'bob', contactPort: 41001, instance: A, params: CPM_DEVICE_PARAMS, cseq: 2 });
  t.equal(r.status, 200, 'refresh after the restart');
  t.equal((await devicesOf('bob')).length, 2);
});
