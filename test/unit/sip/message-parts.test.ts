/**
 * plugin/sip/message.ts messageFromParts: the message it builds is the one
 * parseSipMessage reads from the printed text, and it refuses what would not parse the
 * same. The B2BUA builds every message this way (plugin/b2bua/sip/build.ts).
 */
import t, { type Test } from 'tap';
import { messageFromParts, parseSipMessage, SipParseError, type SipMessage } from '../../../plugin/sip/message.js';
import { rng } from '../../../bench/rng.js';

type Start = { method: string; ruri: string } | { status: number; reason: string };
type Head = readonly [string, string];

function printed(start: Start, headers: readonly Head[], body: string): string {
  const first = 'method' in start ? `${start.method} ${start.ruri} SIP/2.0` : `SIP/2.0 ${start.status} ${start.reason}`;
  return `${[first, ...headers.map(([n, v]) => `${n}: ${v}`)].join('\r\n')}\r\n\r\n${body}`;
}

/** What a reader of either form sees. */
function view(m: SipMessage) {
  const names = [...new Set(m.headers.map((h) => h.name.toLowerCase()))];
  return {
    start: m.kind === 'request' ? [m.method, m.ruri] : [m.status, m.reason],
    headers: m.headers.map((h) => [h.name, h.value]),
    body: m.body,
    get: names.map((n) => [m.get(n), m.getAll(n), m.getValues(n)]),
  };
}

const agree = (t: Test, start: Start, headers: readonly Head[], body: string, name: string): void => {
  t.same(view(messageFromParts(start, headers, body)), view(parseSipMessage(printed(start, headers, body))), name);
};

t.test('table: the built form is the parsed form', async (t) => {
  const cases: [string, Start, Head[], string][] = [
    ['INVITE with compact forms and a body', { method: 'INVITE', ruri: 'sip:bob@example.com;transport=tcp' },
      [['v', 'SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKa'], ['f', '<sip:a@b>;tag=1'], ['t', '<sip:bob@example.com>'], ['i', 'x@y'],
        ['CSeq', '1 INVITE'], ['m', '<sip:pf@127.0.0.1:5070;transport=tcp>'], ['Content-Type', 'application/sdp'], ['Content-Length', '5']],
      'v=0\r\n'],
    ['lower-case method, spaces around values, an empty value', { method: 'bye', ruri: 'sip:x@y' },
      [['Via', '  SIP/2.0/TCP h;branch=z9hG4bKb  '], ['X-Empty', ''], ['Route', '<sip:a;lr>, <sip:b;lr>'], ['Route', '<sip:c;lr>']], ''],
    ['a response with a reason of several words and UTF-8', { status: 486, reason: 'Busy Here ✓' },
      [['Via', 'SIP/2.0/TCP h;branch=z9hG4bKc'], ['Warning', '399 pf "a, b"'], ['Subject', 'Ünïcødé, commas']], 'é'],
    ['a status with an empty reason', { status: 200, reason: '' }, [['CSeq', '2 BYE']], ''],
    ['header names as written, constructor-like names kept', { method: 'OPTIONS', ruri: 'sip:a@b' },
      [['constructor', '1'], ['X-Weird!%*_+`\'~.-', '2'], ['i', 'c@d']], ''],
  ];
  for (const [name, start, headers, body] of cases) agree(t, start, headers, body, name);
});

t.test('generated: 2,000 messages from random parts agree', async (t) => {
  const r = rng(4028);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const names = ['Via', 'v', 'From', 'f', 'To', 't', 'Call-ID', 'i', 'CSeq', 'Contact', 'm', 'Route', 'Record-Route', 'Allow', 'Supported', 'k',
    'Session-Expires', 'x', 'Warning', 'Subject', 's', 'Reason', 'X-PF-Leg', 'Accept-Contact', 'a', 'Content-Type', 'c'];
  const bits = [' ', ',', '"', '<', '>', ';', '=', 'a', 'Z', '9', '\\', 'é', '😀', 'sip:u@h', ';lr', '\t'];
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const start: Start = r() < 0.5 ? { method: pick(['INVITE', 'ack', 'Bye', 'UPDATE', 'MESSAGE']), ruri: `sip:u${i}@h` } : { status: 100 + Math.floor(r() * 600), reason: pick(['OK', '', 'Not Here', 'x  y']) };
    const headers: Head[] = [];
    for (let n = Math.floor(r() * 12); n > 0; n--) {
      let v = '';
      for (let k = Math.floor(r() * 10); k > 0; k--) v += pick(bits);
      headers.push([pick(names), v]);
    }
    const body = r() < 0.3 ? 'v=0\r\no=- 1 1 IN IP4 h\r\n' : '';
    const a = view(messageFromParts(start, headers, body));
    const b = view(parseSipMessage(printed(start, headers, body)));
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      mismatches++;
      t.same(a, b, `case ${i}`);
    }
  }
  t.equal(mismatches, 0);
});

t.test('refused where the printed text would not parse the same', async (t) => {
  const bad: [string, Start, Head[]][] = [
    ['CRLF in a value (header injection)', { method: 'BYE', ruri: 'sip:a@b' }, [['X', 'a\r\nInjected: 1']]],
    ['bare LF in a value', { method: 'BYE', ruri: 'sip:a@b' }, [['X', 'a\nb']]],
    ['LF in a name', { method: 'BYE', ruri: 'sip:a@b' }, [['X\nY', 'a']]],
    ['colon in a name', { method: 'BYE', ruri: 'sip:a@b' }, [['X:Y', 'a']]],
    ['empty name', { method: 'BYE', ruri: 'sip:a@b' }, [['', 'a']]],
    ['space in the Request-URI', { method: 'BYE', ruri: 'sip:a@b c' }, []],
    ['empty Request-URI', { method: 'BYE', ruri: '' }, []],
    ['bad method', { method: 'BY E', ruri: 'sip:a@b' }, []],
    ['status 99', { status: 99, reason: 'X' }, []],
    ['status 700', { status: 700, reason: 'X' }, []],
    ['CRLF in the reason', { status: 200, reason: 'OK\r\nX: 1' }, []],
  ];
  for (const [name, start, headers] of bad) t.throws(() => messageFromParts(start, headers, ''), SipParseError, name);
});
