import t from 'tap';
import { sessionDialogs } from '../../../plugin/rpc/methods.js';

// pf.invite "sessions": the replaced session's entry as pf.cfg keeps it (docs/jsonrpc.md)
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
for (const [name, entry, want] of cases) {
  t.same(sessionDialogs(entry), want, name);
}
