/**
 * The session lines pf.cfg keeps and sends with a Session-Replaces INVITE (pf.invite
 * `sessions`, docs/jsonrpc.md): how they are split, and which of the served user's
 * devices they name (CR 8.3.2.1 step 9).
 */
import t from 'tap';
import { sessionDevices, sessionDialogs } from '../../../plugin/sessions/lines.js';
import type { Device } from '../../../plugin/devices/types.js';
import { device as registeredDevice } from '../service/fixtures/helpers.js';

t.test('sessionDialogs', async (t) => {
  const cases: Array<[string, string, Array<{ dialog: string; ruri: string; contact: string }>]> = [
    ['empty', '', []],
    ['one line', 'c1;t1\tsip:bob@example.net\t<sip:b@127.0.0.1:6000>\n', [{ dialog: 'c1;t1', ruri: 'sip:bob@example.net', contact: '<sip:b@127.0.0.1:6000>' }]],
    [
      'two lines, no final LF',
      'c1;t1\tsip:bob@example.net\t<sip:b@h>\nc2;t2\ttel:+15551234\t"Bob" <sip:c@h>;+sip.instance="<urn:uuid:1>"',
      [
        { dialog: 'c1;t1', ruri: 'sip:bob@example.net', contact: '<sip:b@h>' },
        { dialog: 'c2;t2', ruri: 'tel:+15551234', contact: '"Bob" <sip:c@h>;+sip.instance="<urn:uuid:1>"' },
      ],
    ],
    ['folded Contact (CRLF SP)', 'c1;t1\tsip:bob@h\t<sip:b@h>\r\n ;expires=10\n', [{ dialog: 'c1;t1', ruri: 'sip:bob@h', contact: '<sip:b@h> ;expires=10' }]],
    ['folded Contact (LF HTAB)', 'c1;t1\tsip:bob@h\t<sip:b@h>\n\t;a=1', [{ dialog: 'c1;t1', ruri: 'sip:bob@h', contact: '<sip:b@h> ;a=1' }]],
    ['a TAB inside the Contact stays', 'c1;t1\tsip:bob@h\t<sip:b@h>\t;a=1', [{ dialog: 'c1;t1', ruri: 'sip:bob@h', contact: '<sip:b@h>\t;a=1' }]],
    ['no TAB', 'garbage\n', []],
    ['one TAB', 'c1;t1\tsip:bob@h\n', []],
    ['empty fields', '\tsip:bob@h\t<sip:b@h>\nc1;t1\t\t<sip:b@h>\nc1;t1\tsip:bob@h\t \n', []],
    ['old JSON line', '{"v":1,"event":"confirmed","callId":"c"}\n', []],
  ];
  for (const [name, entry, want] of cases) t.same(sessionDialogs(entry), want, name);
});

const BOB = 'sip:bob@example.net';
const DEV1 = '<urn:uuid:00000000-0000-0000-0000-000000000001>';
const DEV2 = '<urn:uuid:00000000-0000-0000-0000-000000000002>';
const device = (instance: string | null, contact: string, pubGruu: string | null): Device =>
  registeredDevice({ aor: BOB, instance, contact, pubGruu, expiresAt: 1 });
const REGISTERED: readonly Device[] = [
  device(DEV1, 'sip:bob@127.0.0.1:6001;transport=tcp', `${BOB};gr=urn:uuid:00000000-0000-0000-0000-000000000001`),
  device(DEV2, 'sip:bob@127.0.0.1:6002;transport=tcp', `${BOB};gr=urn:uuid:00000000-0000-0000-0000-000000000002`),
  device(null, 'sip:bob@127.0.0.1:6003', null),
];
const line = (dialog: string, ruri: string, contact: string): string => `${dialog}\t${ruri}\t${contact}\n`;

t.test('sessionDevices: the served user\'s devices in the session', async (t) => {
  const isBob = (ruri: string): boolean => ruri === BOB;
  const cases: Array<[string, string, string[] | null]> = [
    ['no lines: the session is unknown', '', null],
    ['+sip.instance of the answering Contact', line('c1;t1', BOB, `<sip:x@127.0.0.1:7000>;+sip.instance="${DEV1}"`), [DEV1]],
    // RFC 5627 §5.1: the Contact without +sip.instance is the device's public GRUU
    ['public GRUU as Contact', line('c1;t1', BOB, `<${BOB};gr=urn:uuid:00000000-0000-0000-0000-000000000002>`), [DEV2]],
    ['registered Contact URI', line('c1;t1', BOB, '<sip:bob@127.0.0.1:6001;transport=tcp>'), [DEV1]],
    ['registered Contact URI of a device without instance', line('c1;t1', BOB, '<sip:bob@127.0.0.1:6003>'), ['sip:bob@127.0.0.1:6003']],
    ['an instance not registered is named all the same', line('c1;t1', BOB, '<sip:127.0.0.1:26727>;+sip.instance="<urn:uuid:ff>"'), ['<urn:uuid:ff>']],
    ['unknown Contact, no instance: the URI itself', line('c1;t1', BOB, '<sip:bob@10.9.9.9:5060>'), ['sip:bob@10.9.9.9:5060']],
    ['another user\'s line is left out', line('c1;t1', 'sip:carol@example.net', `<sip:y@h>;+sip.instance="${DEV2}"`), null],
    ['a Contact that does not parse is left out', line('c1;t1', BOB, '<sip:unterminated'), null],
    [
      'one device in two dialogs is listed once, in line order',
      line('c1;t1', BOB, `<sip:x@h>;+sip.instance="${DEV2}"`) + line('c2;t2', BOB, `<sip:x@h>\r\n ;+sip.instance="${DEV1}"`) + line('c3;t3', BOB, `<sip:z@h>;+sip.instance="${DEV2}"`),
      [DEV2, DEV1],
    ],
  ];
  for (const [name, entry, want] of cases) t.same(sessionDevices(entry, isBob, REGISTERED), want, name);
});
