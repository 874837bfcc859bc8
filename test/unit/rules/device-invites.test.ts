import t from 'tap';
import type { Header } from '../../../plugin/b2bua/sip/build.js';
import { printRequest } from '../../../plugin/b2bua/sip/build.js';
import { sdpOffer } from '../../../plugin/sip/sdp.js';
import { parseMultipart, partHeader } from '../../../plugin/sip/multipart.js';
import { parseRecipients } from '../../../plugin/sip/recipient-list.js';
import { deviceAddress, deviceInvite, targetInvite, type DeviceInviteInput } from '../../../plugin/rules/stages/device-invites.js';
import { PF_LEG_HEADER, PF_TICKET_HEADER, pfUserAgent } from '../../../plugin/rules/b2bua-headers.js';
import { CHAT_SDP, device, ENC, ICSI, invite, TAGS } from './fixtures/build.js';
import { listInvite, recipientListPart, resourceLists } from './fixtures/b2bua.js';

const RELAY_SDP = CHAT_SDP.replace('7654', '9000').replace('s1a2b3', 'relay1');
const AC_ICSI = `*;+g.3gpp.icsi-ref="${ENC(ICSI)}"`;
const SERVICE = { remove: ['P-Preferred-Service'], hdrs: `P-Asserted-Service: ${ICSI}\r\n` };
const UA = pfUserAgent('OMA2.2', ['pf/1'])!;
const GRUU = 'sip:bob@example.net;gr=urn:uuid:phone';

function input(over: Partial<DeviceInviteInput> = {}): DeviceInviteInput {
  return {
    original: invite(),
    servedUser: 'sip:bob@example.net',
    device: device('phone', TAGS.cpm, { pubGruu: GRUU }),
    service: SERVICE,
    offerSdp: RELAY_SDP,
    contact: 'sip:b2bua@127.0.0.1:5080;transport=tcp',
    sessionExpires: 1800,
    userAgent: UA,
    ...over,
  };
}

const names = (h: readonly Header[]): string[] => h.map(([n]) => n.toLowerCase());
const values = (h: readonly Header[], name: string): string[] => h.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

t.test('CR step 8: Request-URI is the public GRUU, else the AoR with an instance Accept-Contact', async (t) => {
  const cases: { name: string; over: Parameters<typeof device>[2]; ruri: string; ac: string | null; warned: boolean }[] = [
    { name: 'public GRUU', over: { pubGruu: GRUU }, ruri: GRUU, ac: null, warned: false },
    { name: 'no GRUU, an instance', over: { pubGruu: null }, ruri: 'sip:bob@example.net', ac: '*;+sip.instance="<urn:uuid:phone>";explicit;require', warned: false },
    { name: 'a GRUU that cannot be a Request-URI, an instance', over: { pubGruu: 'sip:bob@example.net;gr=x y' }, ruri: 'sip:bob@example.net', ac: '*;+sip.instance="<urn:uuid:phone>";explicit;require', warned: false },
    { name: 'neither (never from decideInvite): its Contact, with a warning', over: { pubGruu: null, instance: null, contact: 'sip:bob@10.0.0.9:5060' }, ruri: 'sip:bob@10.0.0.9:5060', ac: null, warned: true },
    { name: 'an unsafe instance counts as none', over: { pubGruu: null, instance: '<urn:x>"\r\nX-Evil: 1', contact: 'sip:bob@10.0.0.9' }, ruri: 'sip:bob@10.0.0.9', ac: null, warned: true },
  ];
  for (const c of cases) {
    const d = device('phone', TAGS.cpm, c.over);
    const out = deviceInvite(input({ device: d }));
    t.equal(out.ruri, c.ruri, `${c.name}: ruri`);
    const ac = values(out.headers, 'Accept-Contact');
    t.same(ac, c.ac === null ? [AC_ICSI] : [AC_ICSI, c.ac], `${c.name}: the caller's Accept-Contact, then the instance one`);
    t.equal(out.warnings.length > 0, c.warned, `${c.name}: warnings`);
    t.equal(deviceAddress(d, 'sip:bob@example.net')?.ruri ?? null, c.warned ? null : c.ruri, `${c.name}: deviceAddress`);
  }
});

t.test('CR step 8: headers carried, dropped and added', async (t) => {
  const original = invite({
    Route: '<sip:pf@127.0.0.1;lr>',
    'Record-Route': '<sip:kamailio@127.0.0.1;lr>',
    'Max-Forwards': '69',
    k: 'timer, 100rel',
    x: '1800;refresher=uac',
    'Min-SE': '600',
    Require: 'timer, foo',
    'X-PF-Ticket': '0123456789abcdef0123456789abcdef',
    'x-pf-leg': 'forged',
    'InReplyTo-Contribution-ID': 'prev-1',
    'Accept-Contact': [AC_ICSI, '*;+g.oma.sip-im'],
    'Reject-Contact': '*;+sip.instance="<urn:uuid:other>"',
    'Session-Replaces': 'contrib-0',
    Privacy: 'none',
    'Content-Disposition': 'session',
    'MIME-Version': '1.0',
    Allow: 'INVITE, ACK, MESSAGE',
    'X-Custom': 'kept',
  });
  const out = deviceInvite(input({ original }));
  const expected: Header[] = [
    ['P-Asserted-Identity', '<sip:alice@example.net>'],
    ['Accept-Contact', AC_ICSI],
    ['Accept-Contact', '*;+g.oma.sip-im'],
    ['Conversation-ID', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'],
    ['Contribution-ID', 'abcdef-1234'],
    ['Require', 'foo'],
    ['InReplyTo-Contribution-ID', 'prev-1'],
    ['Reject-Contact', '*;+sip.instance="<urn:uuid:other>"'],
    ['Session-Replaces', 'contrib-0'],
    ['Privacy', 'none'],
    ['X-Custom', 'kept'],
    ['P-Asserted-Service', ICSI],
    ['Contact', '<sip:b2bua@127.0.0.1:5080;transport=tcp>'],
    ['Supported', 'timer, recipient-list-invite'],
    ['Session-Expires', '1800;refresher=uas'],
    ['User-Agent', 'CPM-serv/OMA2.2 pf/1'],
  ];
  t.same(out.headers, expected, 'the whole list, in order');
  for (const gone of ['via', 'route', 'record-route', 'max-forwards', 'from', 'to', 'call-id', 'cseq', 'content-length', 'content-type', 'min-se', 'p-preferred-service', PF_TICKET_HEADER.toLowerCase(), PF_LEG_HEADER.toLowerCase(), 'content-disposition', 'mime-version', 'allow']) {
    t.notOk(names(out.headers).includes(gone), `${gone} dropped`);
  }
  t.same([out.body, out.contentType, out.warnings], [RELAY_SDP, 'application/sdp', []], "the relay's offer as the body");
});

t.test('Require: the tokens the B2BUA terminates go, the rest stays', async (t) => {
  const cases: [string | string[], string[]][] = [
    ['timer', []],
    ['Timer, foo', ['foo']],
    ['recipient-list-invite, timer', []],
    [['foo', 'timer', 'bar, timer'], ['foo', 'bar']],
  ];
  for (const [require, want] of cases) t.same(values(deviceInvite(input({ original: invite({ Require: require }) })).headers, 'Require'), want, JSON.stringify(require));
});

t.test('step 7 service edit on the device INVITE', async (t) => {
  const cases: { name: string; h: Record<string, string | null>; service: DeviceInviteInput['service']; pps: string[]; pas: string[] }[] = [
    { name: 'PPS replaced by PAS', h: {}, service: SERVICE, pps: [], pas: [ICSI] },
    { name: 'PAS already there: kept once', h: { 'P-Asserted-Service': ICSI }, service: { remove: ['P-Preferred-Service'], hdrs: '' }, pps: [], pas: [ICSI] },
    { name: 'no edit: untouched', h: {}, service: { remove: [], hdrs: '' }, pps: [ICSI], pas: [] },
  ];
  for (const c of cases) {
    const out = deviceInvite(input({ original: invite(c.h), service: c.service }));
    t.same(values(out.headers, 'P-Preferred-Service'), c.pps, `${c.name}: PPS`);
    t.same(values(out.headers, 'P-Asserted-Service'), c.pas, `${c.name}: PAS`);
  }
});

t.test('inputs: Contact bracketed once, Session-Expires at least 90', async (t) => {
  const cases: [Partial<DeviceInviteInput>, string, string][] = [
    [{ contact: '<sip:b2bua@h>' }, '<sip:b2bua@h>', '1800;refresher=uas'],
    [{ contact: ' sip:b2bua@h ', sessionExpires: 30 }, '<sip:b2bua@h>', '90;refresher=uas'],
    [{ sessionExpires: 120.7 }, '<sip:b2bua@127.0.0.1:5080;transport=tcp>', '120;refresher=uas'],
    [{ sessionExpires: Number.NaN }, '<sip:b2bua@127.0.0.1:5080;transport=tcp>', '90;refresher=uas'],
  ];
  for (const [over, contact, se] of cases) {
    const out = deviceInvite(input(over));
    t.same([values(out.headers, 'Contact'), values(out.headers, 'Session-Expires')], [[contact], [se]], JSON.stringify(over));
  }
});

t.test('RFC 5364: recipient-list-history, bcc left out', async (t) => {
  const xml = resourceLists('<entry uri="sip:bob@example.net" cp:copyControl="to"/><entry uri="sip:carol@example.net" cp:copyControl="cc"/><entry uri="sip:secret@example.net" cp:copyControl="bcc"/>');
  const out = deviceInvite(input({ original: listInvite([recipientListPart(xml)], { Require: 'recipient-list-invite' }) }));
  t.same(out.warnings, []);
  t.equal(out.contentType, 'multipart/mixed;boundary=pf-part-boundary');
  t.same(values(out.headers, 'Require'), [], 'the list was consumed: no Require towards the device');
  const mp = parseMultipart(out.contentType, out.body);
  if (mp.kind !== 'ok') throw new Error(mp.why);
  t.same(mp.parts.map((p) => [partHeader(p, 'Content-Type'), partHeader(p, 'Content-Disposition') ?? null]), [
    ['application/sdp', null],
    ['application/resource-lists+xml', 'recipient-list-history; handling=optional'],
  ]);
  t.equal(mp.parts[0]!.body, RELAY_SDP, "the relay's offer, not the caller's");
  const history = parseRecipients(mp.parts[1]!.body);
  t.same(history.kind === 'ok' ? history.recipients.map((r) => [r.uri, r.copyControl]) : history, [
    ['sip:bob@example.net', 'to'],
    ['sip:carol@example.net', 'cc'],
  ]);
  t.notMatch(out.body, /secret/);
});

t.test('a bad recipient list never fails the call', async (t) => {
  const ok = recipientListPart(resourceLists('<entry uri="sip:a@x"/>'));
  const cases: { name: string; msg: ReturnType<typeof invite>; warning: RegExp | null }[] = [
    { name: 'no list', msg: invite(), warning: null },
    { name: 'a list of bcc only: no history, nothing to warn', msg: listInvite([recipientListPart(resourceLists('<entry uri="sip:a@x" cp:copyControl="bcc"/>'))]), warning: null },
    { name: 'no boundary', msg: invite({ 'Content-Type': 'multipart/mixed' }, `--bb\r\n${ok}\r\n--bb--\r\n`), warning: /no-boundary/ },
    { name: 'no close delimiter', msg: invite({ 'Content-Type': 'multipart/mixed;boundary=bb' }, `--bb\r\n${ok}\r\n`), warning: /no-close-delimiter/ },
    { name: 'a part without headers', msg: invite({ 'Content-Type': 'multipart/mixed;boundary=bb' }, `--bb\r\n\r\n${CHAT_SDP}\r\n--bb\r\n${ok}\r\n--bb--\r\n`), warning: /part-without-headers/ },
    { name: 'XML not well-formed', msg: listInvite([recipientListPart('<resource-lists')]), warning: /XML_NOT_WELL_FORMED/ },
    { name: 'a DTD', msg: listInvite([recipientListPart(`<!DOCTYPE r [<!ENTITY x "y">]>${resourceLists('')}`)]), warning: /XML_DTD_FORBIDDEN/ },
  ];
  for (const c of cases) {
    const out = deviceInvite(input({ original: c.msg }));
    t.same([out.body, out.contentType], [RELAY_SDP, 'application/sdp'], `${c.name}: the offer alone`);
    if (c.warning) t.match(out.warnings.join(' '), c.warning, `${c.name}: warned`);
    else t.same(out.warnings, [], `${c.name}: no warning`);
  }
});

t.test('what the SIP layer prints from it parses back as the INVITE meant', async (t) => {
  const xml = resourceLists('<entry uri="sip:bob@example.net"/>');
  for (const original of [invite(), listInvite([recipientListPart(xml)])]) {
    for (const d of [device('phone', TAGS.cpm, { pubGruu: GRUU }), device('tab', TAGS.cpm)]) {
      const out = deviceInvite(input({ original, device: d }));
      const layer: Header[] = [['Via', 'SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bKx'], ['Max-Forwards', '70'], ['From', '<sip:alice@example.net>;tag=1'], ['To', '<sip:bob@example.net>'], ['Call-ID', 'leg1@b2bua'], ['CSeq', '1 INVITE']];
      const built = printRequest('INVITE', out.ruri, [...layer, ...out.headers, ['Content-Type', out.contentType]], out.body);
      t.equal(built.msg.ruri, out.ruri);
      t.equal(built.msg.get('Conversation-ID'), 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6');
      const offer = sdpOffer(built.msg);
      t.equal(offer.kind === 'ok' ? offer.streams[0]?.port : offer.kind, 9000, 'the SDP offer is found in the printed body');
    }
  }
});

t.test('targetInvite: a Request-URI of the B2BUA', async (t) => {
  const out = targetInvite({ ...input(), ruri: 'sip:isf@127.0.0.1:5090' });
  t.equal(out.ruri, 'sip:isf@127.0.0.1:5090');
  t.same(values(out.headers, 'Accept-Contact'), [AC_ICSI], 'no instance Accept-Contact');
  t.same(values(out.headers, 'P-Asserted-Service'), [ICSI]);
});

t.test('pfUserAgent (CR Appendix D)', async (t) => {
  const cases: [string, string[], string | null][] = [
    ['OMA2.2', [], 'CPM-serv/OMA2.2'],
    ['oma02.1', ['pf/1.0'], 'CPM-serv/OMA2.1 pf/1.0'],
    ['2.2', [], null],
    ['OMA2', [], null],
    ['OMA2.2', ['two words'], null],
  ];
  for (const [v, p, want] of cases) t.equal(pfUserAgent(v, p), want, `${v} ${p.join(' ')}`);
});
