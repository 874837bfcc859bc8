import t from 'tap';
import type { Device } from '../../../plugin/devices/types.js';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { inviteFacts } from '../../../plugin/rules/facts.js';
import { deviceCapable, suitableDevices } from '../../../plugin/rules/stages/no-suitable-device.js';
import { sdpOffer } from '../../../plugin/sip/sdp.js';
import { CHAT_SDP, device, ENC, FT_SDP, ICSI, ICSI_GROUP, input, invite, NOW, TAGS } from './fixtures/build.js';

const rejectContacts = (hdrs: string): string[] => hdrs.split('\r\n').filter((l) => l.startsWith('Reject-Contact:'));

t.test('CR step 6: which devices are suitable', async (t) => {
  const groupInvite = { 'P-Preferred-Service': ICSI_GROUP, 'Accept-Contact': `*;+g.3gpp.icsi-ref="${ENC(ICSI_GROUP)}"` };
  const cases: { name: string; d: Device; h?: Record<string, string | string[] | null>; body?: string; suitable: boolean }[] = [
    { name: 'CPM 1-1 device', d: device('a', TAGS.cpm), suitable: true },
    { name: 'SIMPLE IM only device', d: device('b', TAGS.simpleIm), suitable: true },
    { name: 'MMTEL only device', d: device('c', TAGS.mmtel), suitable: false },
    { name: 'no feature tags', d: device('d', {}), suitable: false },
    { name: 'ICSI list with CPM inside', d: device('e', { '+g.3gpp.icsi-ref': `urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel,${ENC(ICSI)}` }), suitable: true },
    { name: 'ICSI list, comma percent-encoded', d: device('e2', { '+g.3gpp.icsi-ref': `urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel%2C${ENC(ICSI)}` }), suitable: true },
    { name: 'ICSI not percent-encoded', d: device('f', { '+g.3gpp.icsi-ref': ICSI }), suitable: true },
    { name: 'ICSI upper-case', d: device('f2', { '+g.3gpp.icsi-ref': ENC(ICSI).toUpperCase() }), suitable: true },
    { name: 'expired registration', d: device('g', TAGS.cpm, { expiresAt: NOW }), suitable: false },
    { name: 'group invite, 1-1-only device', d: device('h', TAGS.cpm), h: groupInvite, suitable: false },
    { name: 'group invite, group device', d: device('i', TAGS.cpmGroup), h: groupInvite, suitable: true },
    { name: 'group invite, SIMPLE IM device', d: device('j', TAGS.simpleIm), h: groupInvite, suitable: true },
    { name: 'file transfer, chat-only device', d: device('k', TAGS.cpm), body: FT_SDP, suitable: false },
    { name: 'file transfer, FT ICSI device', d: device('l', TAGS.cpmFt), body: FT_SDP, suitable: true },
    { name: 'file transfer, FT IARI device', d: device('m', { ...TAGS.cpm, '+g.3gpp.iari-ref': 'urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.ft' }), body: FT_SDP, suitable: true },
    {
      name: 'caller Reject-Contact names the device',
      d: device('n', TAGS.cpm),
      h: { 'Reject-Contact': '*;+sip.instance="<urn:uuid:n>"' },
      suitable: false,
    },
    {
      name: 'caller Accept-Contact explicit;require for another instance',
      d: device('o', TAGS.cpm),
      h: { 'Accept-Contact': [`*;+g.3gpp.icsi-ref="${ENC(ICSI)}"`, '*;+sip.instance="<urn:uuid:zzz>";explicit;require'] },
      suitable: false,
    },
    {
      name: 'caller Accept-Contact with ICSI explicit;require, SIMPLE IM device lacks the tag',
      d: device('p', TAGS.simpleIm),
      h: { 'Accept-Contact': `*;+g.3gpp.icsi-ref="${ENC(ICSI)}";explicit;require` },
      suitable: false,
    },
    {
      name: 'caller Accept-Contact ICSI without require: SIMPLE IM device kept',
      d: device('q', TAGS.simpleIm),
      h: { 'Accept-Contact': `*;+g.3gpp.icsi-ref="${ENC(ICSI)}"` },
      suitable: true,
    },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ msg: invite(c.h ?? {}, c.body ?? CHAT_SDP), devices: [c.d] }));
    if (c.suitable) t.equal(d.action, 'proxy', c.name);
    else t.same(d, { action: 'reject', code: 480, reason: 'Temporarily Unavailable', hdrs: '', stage: 'no-suitable-device' }, c.name);
  }
});

t.test('no suitable device: ISF when policy says so', async (t) => {
  const d = decideInvite(input({ devices: [device('mm', TAGS.mmtel)], policy: { noSuitableDevice: 'isf', isfUri: 'sip:isf@127.0.0.1:5090' } }));
  t.same(d, { action: 'isf', ruri: 'sip:isf@127.0.0.1:5090', remove: [], hdrs: '', stage: 'no-suitable-device' });
  const none = decideInvite(input({ devices: [] }));
  t.equal(none.stage, 'no-suitable-device');
});

t.test('mixed devices: unsuitable ones are excluded by instance', async (t) => {
  const devices = [
    device('cpm', TAGS.cpm),
    device('im', TAGS.simpleIm),
    device('mmtel', TAGS.mmtel),
    device('old', TAGS.cpm, { expiresAt: NOW - 1 }),
    device('noinst', TAGS.mmtel, { instance: null, params: TAGS.mmtel }),
  ];
  const d = decideInvite(input({ devices }));
  if (d.action !== 'proxy') throw new Error(`expected proxy, got ${d.action}`);
  // The expired CPM device is excluded too (usrloc may still hold it for a moment).
  t.same(rejectContacts(d.hdrs), ['Reject-Contact: *;+sip.instance="<urn:uuid:mmtel>"', 'Reject-Contact: *;+sip.instance="<urn:uuid:old>"']);
});

t.test('deviceCapable ignores disabled streams', async (t) => {
  t.ok(deviceCapable(TAGS.cpm, ICSI, [{ media: 'audio', port: 0, proto: 'RTP/AVP', acceptTypes: null, fileTransfer: false }, { media: 'message', port: 1, proto: 'TCP/MSRP', acceptTypes: ['message/cpim'], fileTransfer: false }]));
  t.notOk(deviceCapable(TAGS.cpm, ICSI, [{ media: 'audio', port: 4000, proto: 'RTP/AVP', acceptTypes: null, fileTransfer: false }]));
  t.ok(deviceCapable({ ...TAGS.cpm, audio: true }, ICSI, [{ media: 'audio', port: 4000, proto: 'RTP/AVP', acceptTypes: null, fileTransfer: false }]));
});

t.test('a user with 50 devices', async (t) => {
  const devices: Device[] = [];
  for (let i = 0; i < 50; i++) {
    const tags = [TAGS.cpm, TAGS.simpleIm, TAGS.mmtel, TAGS.cpmGroup, {}][i % 5]!;
    devices.push(device(`d${i}`, tags));
  }
  const d = decideInvite(input({ devices }));
  if (d.action !== 'proxy') throw new Error(`expected proxy, got ${d.action}`);
  // 20 of 50 are MMTEL-only or tagless: each excluded once.
  t.equal(rejectContacts(d.hdrs).length, 20);
  t.ok(rejectContacts(d.hdrs).every((l) => /^Reject-Contact: \*;\+sip\.instance="<urn:uuid:d[0-9]+>"$/.test(l)));
});

t.test('suitableDevices: best first (RFC 3841 Qa, then q), the order step 8 a ii fans out in', async (t) => {
  const devices = [device('im', TAGS.simpleIm), device('cpm', TAGS.cpm, { q: 0.1 }), device('mm', TAGS.mmtel)];
  const msg = invite();
  const facts = inviteFacts(msg);
  const offer = sdpOffer(msg);
  if (facts.icsi === null || offer.kind !== 'ok') throw new Error('the fixture is a CPM invitation with an SDP offer');
  t.same(suitableDevices(facts, facts.icsi, offer.streams, devices, NOW).map((d) => d.instance), ['<urn:uuid:cpm>', '<urn:uuid:im>'], 'Qa (ICSI match) before q');
});
