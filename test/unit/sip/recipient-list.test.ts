import t from 'tap';
import { parseXml } from '../../../plugin/xdm/xml.js';
import { ANONYMOUS_URI, parseRecipients, recipientListHistory, recipientListOf, RESOURCE_LISTS_NS, type Recipient } from '../../../plugin/sip/recipient-list.js';
import { CHAT_SDP, invite } from '../rules/fixtures/build.js';
import { listInvite as listInviteOf, recipientListPart, resourceLists as doc } from '../rules/fixtures/b2bua.js';

const listInvite = (...parts: string[]): ReturnType<typeof invite> => listInviteOf(parts);

const R = (uri: string, copyControl: Recipient['copyControl'] = null, o: Partial<Recipient> = {}): Recipient => ({ uri, displayName: null, copyControl, anonymize: false, ...o });

t.test('RFC 5364 §4: entries, copy control, anonymize', async (t) => {
  const cases: { name: string; xml: string; want: Recipient[] | string }[] = [
    {
      name: 'to, cc, bcc and none, in order',
      xml: doc('<entry uri="sip:a@x" cp:copyControl="to"/><entry uri="sip:b@x" cp:copyControl="CC"/><entry uri="sip:c@x" cp:copyControl="bcc"/><entry uri="sip:d@x"/>'),
      want: [R('sip:a@x', 'to'), R('sip:b@x', 'cc'), R('sip:c@x', 'bcc'), R('sip:d@x')],
    },
    {
      name: 'display name, anonymize, an unknown copyControl value',
      xml: doc('<entry uri="sip:a@x" cp:anonymize="true"><display-name>Ann</display-name></entry><entry uri="sip:b@x" cp:copyControl="later" cp:anonymize="0"/>'),
      want: [R('sip:a@x', null, { displayName: 'Ann', anonymize: true }), R('sip:b@x')],
    },
    {
      name: 'nested lists; entries without uri, entry-ref and external skipped',
      xml: doc('<list><entry uri="sip:a@x"/><entry/></list><entry-ref ref="x"/><external anchor="http://x"/><entry uri="sip:b@x"/>'),
      want: [R('sip:a@x'), R('sip:b@x')],
    },
    {
      name: 'copyControl without its namespace still counts',
      xml: doc('<entry uri="sip:a@x" copyControl="bcc"/>', ''),
      want: [R('sip:a@x', 'bcc')],
    },
    { name: 'not XML', xml: '<resource-lists', want: 'malformed' },
    { name: 'a DTD', xml: `<!DOCTYPE x [<!ENTITY e "e">]>${doc('')}`, want: 'malformed' },
    { name: 'another root', xml: `<list xmlns="${RESOURCE_LISTS_NS}"/>`, want: 'malformed' },
    { name: 'another namespace', xml: '<resource-lists xmlns="urn:x"><list/></resource-lists>', want: 'malformed' },
    { name: 'too large', xml: doc(`<entry uri="sip:a@x"/>`.repeat(4000)), want: 'malformed' },
  ];
  for (const c of cases) {
    const r = parseRecipients(c.xml);
    t.same(r.kind === 'ok' ? r.recipients : r.kind, c.want, c.name);
  }
});

t.test('RFC 5366: the recipient-list part of an INVITE', async (t) => {
  const list = doc('<entry uri="sip:a@x"/>');
  const cases: { name: string; msg: ReturnType<typeof invite>; want: string }[] = [
    { name: 'plain SDP body', msg: invite(), want: 'none' },
    { name: 'multipart without a list', msg: listInvite('Content-Type: text/plain\r\n\r\nhi'), want: 'none' },
    { name: 'a resource list of another disposition', msg: listInvite(`Content-Type: application/resource-lists+xml\r\nContent-Disposition: render\r\n\r\n${list}`), want: 'none' },
    { name: 'a recipient list', msg: listInvite(recipientListPart(list)), want: 'ok' },
    { name: 'case-insensitive type and disposition', msg: listInvite(`content-type: Application/Resource-Lists+XML; charset=utf-8\r\ncontent-disposition: Recipient-List;handling=required\r\n\r\n${list}`), want: 'ok' },
    { name: 'multipart/related is not a recipient-list INVITE', msg: invite({ 'Content-Type': 'multipart/related;boundary=bb' }, `--bb\r\nContent-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n\r\n${list}\r\n--bb--\r\n`), want: 'none' },
    { name: 'base64 part', msg: listInvite(`Content-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\nContent-Transfer-Encoding: base64\r\n\r\nPHg+`), want: 'malformed' },
    { name: 'broken multipart', msg: invite({ 'Content-Type': 'multipart/mixed;boundary=bb' }, `--bb\r\nContent-Type: application/sdp\r\n\r\n${CHAT_SDP}`), want: 'malformed' },
    { name: 'broken XML', msg: listInvite('Content-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n\r\n<resource-lists'), want: 'malformed' },
  ];
  for (const c of cases) t.equal(recipientListOf(c.msg).kind, c.want, c.name);
});

t.test('RFC 5364 §7: the history leaves bcc out and anonymizes', async (t) => {
  t.equal(recipientListHistory([]), null, 'nothing: no history');
  t.equal(recipientListHistory([R('sip:a@x', 'bcc')]), null, 'only bcc: no history');
  const xml = recipientListHistory([
    R('sip:a@x', 'to', { displayName: 'A & "B" <c>' }),
    R('sip:secret@x', 'bcc'),
    R('sip:hidden@x', 'cc', { displayName: 'Hidden', anonymize: true }),
    R('sip:d@x?a=1&b=2'),
  ]);
  t.ok(xml !== null);
  const back = parseRecipients(xml!);
  t.same(back.kind === 'ok' ? back.recipients : back, [
    R('sip:a@x', 'to', { displayName: 'A & "B" <c>' }),
    R(ANONYMOUS_URI, 'cc', { anonymize: true }),
    R('sip:d@x?a=1&b=2'),
  ], 'parsed back: bcc gone, anonymized, text escaped');
  t.notMatch(xml!, /secret|hidden|Hidden/);
  const root = parseXml(xml!, 1 << 16);
  t.equal(root.ns, RESOURCE_LISTS_NS);
});
