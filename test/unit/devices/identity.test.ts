/** Which device: its storage key (RFC 5626 §4.2) and the device that answered a dialog (RFC 5627 §5.1). */
import t from 'tap';
import { answeringDevice, deviceKey } from '../../../plugin/devices/identity.js';
import { parseNameAddr } from '../../../plugin/sip/uri.js';
import type { Device } from '../../../plugin/devices/types.js';
import { device as registeredDevice } from '../service/fixtures/helpers.js';

const BOB = 'sip:bob@example.net';
const GRUU = `${BOB};gr=urn:uuid:1`;
const device = (instance: string | null, contact: string, pubGruu: string | null): Device =>
  registeredDevice({ aor: BOB, instance, contact, pubGruu, expiresAt: 1 });

t.test('deviceKey: +sip.instance, else the Contact URI', async (t) => {
  t.equal(deviceKey({ instance: '<urn:uuid:1>', contact: 'sip:b@h' }), '<urn:uuid:1>');
  t.equal(deviceKey({ instance: null, contact: 'sip:b@h' }), 'sip:b@h');
});

t.test('answeringDevice', async (t) => {
  const registered = [device('<urn:uuid:1>', 'sip:bob@127.0.0.1:6001', GRUU), device(null, 'sip:bob@127.0.0.1:6003', null)];
  const cases: Array<[string, string, readonly Device[], string]> = [
    ['+sip.instance wins', '<sip:bob@127.0.0.1:6003>;+sip.instance="<urn:uuid:9>"', registered, '<urn:uuid:9>'],
    ['registered Contact URI', '<sip:bob@127.0.0.1:6001>', registered, '<urn:uuid:1>'],
    ['public GRUU', `<${GRUU}>`, registered, '<urn:uuid:1>'],
    ['registered device without instance', 'sip:bob@127.0.0.1:6003', registered, 'sip:bob@127.0.0.1:6003'],
    ['nothing registered matches: the URI', '<sip:bob@10.0.0.1>', registered, 'sip:bob@10.0.0.1'],
    ['no devices: the URI', `<${GRUU}>`, [], GRUU],
  ];
  for (const [name, contact, devices, want] of cases) {
    const na = parseNameAddr(contact);
    if (!na) throw new Error(`${name}: contact does not parse`);
    t.equal(answeringDevice(na, devices), want, name);
  }
});
