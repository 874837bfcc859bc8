/** SIP stream framing (RFC 3261 §18.3, §7.5; RFC 5626 §4.4.1 keepalives): case tables through SipStreamFramer. */
import t from 'tap';
import { Buffer } from 'node:buffer';
import { guardedTransition, IllegalTransition } from '../../../../lib/fsm.js';
import { contentLength, FRAMER_NEXT, FramingError, SipStreamFramer, type FramerOptions } from '../../../../plugin/b2bua/sip/framing.js';
import type { SipFramingErrorCode } from '../../../../plugin/errors.js';
import { text } from './helpers.js';

const BODY = 'v=0\r\ns=Ünïcødé ✓ 😀\r\na=x:\r\n\r\nSIP/2.0 200 OK\r\n'; // multi-byte, and a blank line inside
const INVITE = text('INVITE sip:bob@127.0.0.1:5070 SIP/2.0', ['Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1', 'CSeq: 1 INVITE'], BODY);
const OK = text('SIP/2.0 200 OK', ['Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK2', 'CSeq: 2 BYE'], '');
const MESSAGE = text('MESSAGE sip:bob@x SIP/2.0', ['CSeq: 3 MESSAGE', 'Content-Type: text/plain'], 'é');

interface Fed {
  messages: string[];
  pings: number;
  code?: SipFramingErrorCode;
}

/** Feed `chunks` to a new framer; collect messages and pings, and the error code if one is thrown. */
function feed(chunks: readonly Buffer[], opts?: FramerOptions): Fed {
  const f = new SipStreamFramer(opts);
  const fed: Fed = { messages: [], pings: 0 };
  try {
    for (const c of chunks) {
      const out = f.push(c);
      fed.messages.push(...out.messages);
      fed.pings += out.pings;
    }
  } catch (err) {
    if (!(err instanceof FramingError)) throw err;
    const out = f.takeCompleted();
    fed.messages.push(...out.messages);
    fed.pings += out.pings;
    fed.code = err.code;
  }
  return fed;
}

const whole = (s: string): Buffer[] => [Buffer.from(s, 'utf8')];
function bytewise(s: string): Buffer[] {
  const b = Buffer.from(s, 'utf8');
  return Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
}

t.test('a message with a UTF-8 body, split at every byte (two pieces, and three)', async (t) => {
  const b = Buffer.from(INVITE, 'utf8');
  t.not(b.length, INVITE.length, 'the body is multi-byte');
  let bad = 0;
  for (let i = 0; i <= b.length; i++) {
    const got = feed([b.subarray(0, i), b.subarray(i)]);
    if (got.code !== undefined || got.messages.length !== 1 || got.messages[0] !== INVITE) {
      bad++;
      t.fail(`split at ${i}: ${JSON.stringify(got)}`);
    }
  }
  for (let i = 0; i <= b.length; i += 7) {
    for (let j = i; j <= b.length; j++) {
      const got = feed([b.subarray(0, i), b.subarray(i, j), b.subarray(j)]);
      if (got.messages.length !== 1 || got.messages[0] !== INVITE) {
        bad++;
        t.fail(`split at ${i}, ${j}`);
      }
    }
  }
  t.equal(bad, 0, 'every split gives the message back whole');
  t.same(feed(bytewise(INVITE)), { messages: [INVITE], pings: 0 }, 'byte by byte');
});

t.test('several messages per chunk, leading CRLFs skipped, keepalives counted', async (t) => {
  const cases: [string, string, string[], number][] = [
    ['three messages back to back', INVITE + OK + MESSAGE, [INVITE, OK, MESSAGE], 0],
    ['CRLF before and between (§7.5)', `\r\n${INVITE}\r\n${OK}`, [INVITE, OK], 0],
    ['bare LF before a message', `\n\n${OK}`, [OK], 0],
    ['a ping alone', '\r\n\r\n', [], 1],
    ['a single CRLF (a pong) is no ping', '\r\n', [], 0],
    ['two pings', '\r\n\r\n\r\n\r\n', [], 2],
    ['ping, message, ping', `\r\n\r\n${OK}\r\n\r\n`, [OK], 2],
    ['a stray CR before a ping', '\r\r\n\r\n', [], 1],
    ['three CRLFs: one ping, one stray', '\r\n\r\n\r\n', [], 1],
    ['"\\n\\n" is no ping', '\n\n', [], 0],
    ['Content-Length 0 then another message at once', OK + OK, [OK, OK], 0],
    ['a message cut short yields nothing yet', INVITE.slice(0, -3), [], 0],
  ];
  for (const [name, input, messages, pings] of cases) {
    t.same(feed(whole(input)), { messages, pings }, `${name}: one chunk`);
    t.same(feed(bytewise(input)), { messages, pings }, `${name}: byte by byte`);
  }
});

t.test('head forms: LF-only lines, compact l, case, folding, space before the colon', async (t) => {
  const cases: [string, string][] = [
    ['LF line ends', 'OPTIONS sip:a SIP/2.0\nCSeq: 1 OPTIONS\nContent-Length: 2\n\nhi'],
    ['compact l (§7.3.3)', 'OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nhi'],
    ['any case', 'OPTIONS sip:a SIP/2.0\r\ncontent-LENGTH: 2\r\n\r\nhi'],
    ['folded value (§7.3.1)', 'OPTIONS sip:a SIP/2.0\r\nContent-Length:\r\n  2\r\n\r\nhi'],
    ['space before the colon', 'OPTIONS sip:a SIP/2.0\r\nContent-Length  :  2 \r\n\r\nhi'],
    ['the same length twice', 'OPTIONS sip:a SIP/2.0\r\nContent-Length: 2\r\nl: 02\r\n\r\nhi'],
    ['a status line', 'SIP/2.0 180 Ringing\r\nl: 0\r\n\r\n'],
  ];
  for (const [name, input] of cases) {
    t.same(feed(whole(input)), { messages: [input], pings: 0 }, name);
    t.same(feed(bytewise(input)), { messages: [input], pings: 0 }, `${name}, byte by byte`);
  }
});

t.test('each FramingError code, whole and byte by byte; the messages before it are kept', async (t) => {
  const head = (...h: string[]): string => `OPTIONS sip:a SIP/2.0\r\n${h.map((x) => `${x}\r\n`).join('')}\r\n`;
  const cases: [string, string, SipFramingErrorCode, FramerOptions?][] = [
    ['no Content-Length (§18.3)', head('CSeq: 1 OPTIONS'), 'SIP_FRAMING_NO_CONTENT_LENGTH'],
    ['negative', head('Content-Length: -1'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['not a number', head('Content-Length: ten'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['empty', head('Content-Length:'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['a fraction', head('l: 1.5'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['hex', head('l: 0x10'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['a list', head('Content-Length: 2, 2'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['a bare CR before the digits', head('l:\r 2'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['a vertical tab after them', head('Content-Length: 0\v'), 'SIP_FRAMING_BAD_CONTENT_LENGTH'],
    ['twice, different', head('Content-Length: 2', 'l: 3'), 'SIP_FRAMING_CONFLICTING_CONTENT_LENGTH'],
    ['body beyond maxMessageBytes', head('Content-Length: 300'), 'SIP_FRAMING_TOO_LARGE', { maxMessageBytes: 256 }],
    ['a length of 20 digits', head('Content-Length: 99999999999999999999'), 'SIP_FRAMING_TOO_LARGE'],
    ['head beyond maxHeaderBytes', head(`X: ${'a'.repeat(200)}`, 'l: 0'), 'SIP_FRAMING_HEADER_TOO_LARGE', { maxHeaderBytes: 128 }],
    ['no line end at all', 'x'.repeat(300), 'SIP_FRAMING_HEADER_TOO_LARGE', { maxHeaderBytes: 128 }],
    ['not a start line', 'HELLO\r\nl: 0\r\n\r\n', 'SIP_FRAMING_BAD_START_LINE'],
    ['binary junk', '\x00\x01\x02\n', 'SIP_FRAMING_BAD_START_LINE'],
    ['a lower-case version', 'options sip:a sip/2.0\r\nl: 0\r\n\r\n', 'SIP_FRAMING_BAD_START_LINE'],
  ];
  for (const [name, input, code, opts] of cases) {
    t.same(feed(whole(input), opts), { messages: [], pings: 0, code }, name);
    t.same(feed(bytewise(input), opts), { messages: [], pings: 0, code }, `${name}, byte by byte`);
    t.same(feed(whole(`\r\n\r\n${OK}${input}`), opts), { messages: [OK], pings: 1, code }, `${name}: what came before in the chunk is kept`);
  }
  const at = head('Content-Length: 128');
  const atLimit = { maxMessageBytes: Buffer.byteLength(at) + 128 };
  t.same(feed(whole(at), atLimit), { messages: [], pings: 0 }, 'head + body at maxMessageBytes: waits for the body');
  t.same(feed(whole(at + 'b'.repeat(128)), atLimit).messages.length, 1, 'and takes it');
  t.equal(feed(whole(at), { maxMessageBytes: Buffer.byteLength(at) + 127 }).code, 'SIP_FRAMING_TOO_LARGE', 'one byte more is too large');
  const long = head(`X: ${'a'.repeat(98)}`, 'l: 0');
  const n = Buffer.byteLength(long);
  t.same(feed(whole(long), { maxHeaderBytes: n }), { messages: [long], pings: 0 }, 'a head of exactly maxHeaderBytes passes');
  t.same(feed(bytewise(long), { maxHeaderBytes: n }), { messages: [long], pings: 0 }, 'byte by byte too');
  t.equal(feed(whole(long), { maxHeaderBytes: n - 1 }).code, 'SIP_FRAMING_HEADER_TOO_LARGE', 'one byte more is too large');
  t.equal(feed(bytewise(long), { maxHeaderBytes: n - 1 }).code, 'SIP_FRAMING_HEADER_TOO_LARGE', 'byte by byte too');
});

t.test('after a FramingError the stream stays failed', async (t) => {
  const f = new SipStreamFramer();
  const err = t.throws(() => f.push(Buffer.from('GARBAGE\r\n')));
  t.equal(f.state, 'failed');
  t.equal(t.throws(() => f.push(Buffer.from(OK))), err, 'the same error again');
  t.same(f.takeCompleted(), { messages: [], pings: 0 });
});

t.test('buffered counts the bytes of the message in progress', async (t) => {
  const f = new SipStreamFramer();
  const b = Buffer.from(INVITE);
  const headLen = b.indexOf('\r\n\r\n') + 4;
  f.push(b.subarray(0, 10));
  t.equal(f.buffered, 10);
  f.push(b.subarray(10, headLen + 3));
  t.equal(f.state, 'body');
  t.equal(f.buffered, headLen + 3);
  t.same(f.push(b.subarray(headLen + 3)).messages, [INVITE]);
  t.equal(f.buffered, 0);
});

t.test('contentLength reads the head', async (t) => {
  const cases: [string, ReturnType<typeof contentLength>][] = [
    ['A\r\nContent-Length: 12\r\n', 12],
    ['A\r\nl:0\r\n', 0],
    ['A\r\nX-Content-Length: 5\r\n', 'missing'],
    ['Content-Length: 5\r\nX: 1\r\n', 'missing'], // the start line is not a header
    ['A\r\nContent-Length: 5\r\n X\r\n', 'bad'],
    ['A\r\nl: 4\r\nl: 5\r\n', 'conflict'],
  ];
  for (const [head, want] of cases) t.equal(contentLength(head), want, JSON.stringify(head));
});

t.test('bad limits are refused', async (t) => {
  t.throws(() => new SipStreamFramer({ maxMessageBytes: 0 }), RangeError);
  t.throws(() => new SipStreamFramer({ maxHeaderBytes: -1 }), RangeError);
  t.equal(new SipStreamFramer({ maxMessageBytes: 100 }).maxHeaderBytes, 100, 'the head limit is capped at the message limit');
});

t.test('FRAMER_NEXT: legal and illegal moves through the one guard', async (t) => {
  const legal = new Set(['idle>head', 'idle>failed', 'head>body', 'head>idle', 'head>failed', 'body>idle', 'body>failed']);
  const states = Object.keys(FRAMER_NEXT) as (keyof typeof FRAMER_NEXT)[];
  for (const from of states) {
    for (const to of states) {
      if (legal.has(`${from}>${to}`)) t.equal(guardedTransition('framer', FRAMER_NEXT, from, to), to);
      else t.throws(() => guardedTransition('framer', FRAMER_NEXT, from, to), IllegalTransition);
    }
  }
});
