// The one netstring codec (wire/netstring.ts), used by the decision service and the relay.
import t from 'tap';
import { NetstringDecoder, encodeNetstring, netstringText } from '../../../wire/netstring.js';
import { WireError } from '../../../wire/errors.js';

const s = (b: Buffer[]): string[] => b.map((x) => x.toString('utf8'));

t.test('encodes byte lengths, not characters', async (t) => {
  t.equal(encodeNetstring('hello').toString(), '5:hello,');
  t.equal(encodeNetstring('').toString(), '0:,');
  // the text form counts bytes, not characters
  for (const p of ['hello', '', 'é€😀', '{"a":"\\r\\n"}']) t.equal(netstringText(p), encodeNetstring(p).toString('utf8'), p);
  // "é" is 2 bytes, "😀" is 4 in UTF-8
  t.equal(encodeNetstring('é😀').toString(), '6:é😀,');
});

t.test('one frame per push, several per push, split at every byte', async (t) => {
  const wire = Buffer.concat([encodeNetstring('{"a":1}'), encodeNetstring(''), encodeNetstring('{"b":"é😀"}')]);
  const d1 = new NetstringDecoder(1024);
  t.same(s(d1.push(wire)), ['{"a":1}', '', '{"b":"é😀"}']);

  // split a multi-byte character and every header/comma boundary
  const d2 = new NetstringDecoder(1024);
  const got: string[] = [];
  for (let i = 0; i < wire.length; i++) got.push(...s(d2.push(wire.subarray(i, i + 1))));
  t.same(got, ['{"a":1}', '', '{"b":"é😀"}']);
  t.equal(d2.error, null);
});

t.test('binary payload survives chunking', async (t) => {
  const payload = Buffer.from([0, 255, 0x3a, 0x2c, 10, 13, 0xc3]);
  const wire = encodeNetstring(payload);
  const d = new NetstringDecoder(64);
  const out = [...d.push(wire.subarray(0, 4)), ...d.push(wire.subarray(4))];
  t.equal(out.length, 1);
  t.ok(out[0]?.equals(payload));
});

const bad: ReadonlyArray<readonly [string, string, string]> = [
  ['letters in length', 'ab:x,', 'NETSTRING_BAD_LENGTH'],
  ['empty length', ':x,', 'NETSTRING_BAD_LENGTH'],
  ['negative length', '-1:x,', 'NETSTRING_BAD_LENGTH'],
  ['leading zero', '01:x,', 'NETSTRING_LEADING_ZERO'],
  ['missing comma', '3:abc;', 'NETSTRING_NO_COMMA'],
  ['length too short for payload', '2:abc,', 'NETSTRING_NO_COMMA'],
  ['over the cap', '1025:', 'NETSTRING_TOO_LONG'],
  ['too many digits', '00000000000000000000', 'NETSTRING_LEADING_ZERO'],
  ['huge number', '99999999999999999999:', 'NETSTRING_TOO_LONG'],
  ['JSON without framing', '{"jsonrpc":"2.0"}', 'NETSTRING_BAD_LENGTH'],
];

for (const [name, wire, code] of bad) {
  t.test(`malformed: ${name}`, async (t) => {
    const d = new NetstringDecoder(1024);
    t.same(d.push(Buffer.from(wire)), []);
    t.equal(d.error?.code, code);
    // the stream stays failed
    t.same(d.push(Buffer.from('1:a,')), []);
  });
}

t.test('frames before a framing error are still returned', async (t) => {
  const d = new NetstringDecoder(1024);
  t.same(s(d.push(Buffer.from('1:a,2:bc,x:'))), ['a', 'bc']);
  t.equal(d.error?.code, 'NETSTRING_BAD_LENGTH');
});

t.test('the cap is exact', async (t) => {
  const d = new NetstringDecoder(4);
  t.same(s(d.push(Buffer.from('4:abcd,'))), ['abcd']);
  d.push(Buffer.from('5:'));
  t.equal(d.error?.code, 'NETSTRING_TOO_LONG');
});

t.test('an incomplete header waits for more bytes', async (t) => {
  const d = new NetstringDecoder(1024);
  t.same(d.push(Buffer.from('12')), []);
  t.equal(d.error, null);
  t.same(s(d.push(Buffer.from(':hello world!,'))), ['hello world!']);
});

// Cases from the relay's former codec (media/relay/netstring.ts), with the one set of codes.
t.test('relay cases: byte at a time, empty frame, the cap', async (t) => {
  const d = new NetstringDecoder(100);
  const enc = encodeNetstring('{"a":"é"}');
  t.equal(enc.toString(), '10:{"a":"é"},');
  const got = [...enc].flatMap((b) => d.push(Buffer.from([b])));
  t.same(s(got), ['{"a":"é"}'], 'byte-at-a-time');
  t.same(s(new NetstringDecoder(1 << 20).push(Buffer.from('0:,3:abc,'))), ['', 'abc']);
  const codeOf = (max: number, wire: string): string | undefined => {
    const dec = new NetstringDecoder(max);
    dec.push(Buffer.from(wire));
    return dec.error?.code;
  };
  t.equal(codeOf(1 << 20, '3:abcX'), 'NETSTRING_NO_COMMA');
  t.equal(codeOf(1 << 20, 'x:'), 'NETSTRING_BAD_LENGTH');
  t.equal(codeOf(10, '11:'), 'NETSTRING_TOO_LONG');
  t.equal(codeOf(1 << 20, '12345678901'), 'NETSTRING_TOO_LONG', 'more digits than the cap has');
});

t.test('the error is a WireError with a stable code', async (t) => {
  const d = new NetstringDecoder(8);
  d.push(Buffer.from('9:'));
  t.ok(d.error instanceof WireError);
  t.equal(d.error?.name, 'WireError');
  t.match(d.error?.message, /longer than 8 bytes/);
});

/**
 * Fuzz table: each input is fed whole and split at every offset (two pushes); the frames
 * and the error must be the same however the bytes arrive.
 */
const fuzz: ReadonlyArray<{ name: string; wire: Buffer; max: number; frames: string[]; error: string | null }> = [
  { name: 'two frames', wire: Buffer.from('3:abc,0:,'), max: 16, frames: ['abc', ''], error: null },
  { name: 'multi-byte UTF-8', wire: encodeNetstring('€😀é'), max: 16, frames: ['€😀é'], error: null },
  { name: 'payload holding : and ,', wire: encodeNetstring('1:a,'), max: 16, frames: ['1:a,'], error: null },
  { name: 'leading zero after a frame', wire: Buffer.from('1:a,01:b,'), max: 16, frames: ['a'], error: 'NETSTRING_LEADING_ZERO' },
  { name: 'lone zero length is fine', wire: Buffer.from('0:,'), max: 16, frames: [''], error: null },
  { name: 'over-long by one', wire: Buffer.from('17:'), max: 16, frames: [], error: 'NETSTRING_TOO_LONG' },
  { name: 'over-long by digits', wire: Buffer.from('100'), max: 16, frames: [], error: 'NETSTRING_TOO_LONG' },
  { name: 'missing comma', wire: Buffer.from('2:ab;2:cd,'), max: 16, frames: [], error: 'NETSTRING_NO_COMMA' },
  { name: 'missing comma after good frame', wire: Buffer.from('1:x,2:abc'), max: 16, frames: ['x'], error: 'NETSTRING_NO_COMMA' },
  { name: 'space in length', wire: Buffer.from(' 2:ab,'), max: 16, frames: [], error: 'NETSTRING_BAD_LENGTH' },
  { name: 'sign in length', wire: Buffer.from('+2:ab,'), max: 16, frames: [], error: 'NETSTRING_BAD_LENGTH' },
  { name: 'binary garbage', wire: Buffer.from([0xff, 0x00, 0x3a, 0x2c]), max: 16, frames: [], error: 'NETSTRING_BAD_LENGTH' },
  { name: 'HTTP request', wire: Buffer.from('POST / HTTP/1.1\r\n'), max: 16, frames: [], error: 'NETSTRING_BAD_LENGTH' },
  { name: 'incomplete frame only', wire: Buffer.from('5:ab'), max: 16, frames: [], error: null },
];

for (const c of fuzz) {
  t.test(`fuzz: ${c.name}, split at every offset`, async (t) => {
    for (let at = 0; at <= c.wire.length; at++) {
      const d = new NetstringDecoder(c.max);
      const got = [...d.push(c.wire.subarray(0, at)), ...d.push(c.wire.subarray(at))].map((b) => b.toString('utf8'));
      t.same(got, c.frames, `split at ${at}`);
      t.equal(d.error?.code ?? null, c.error, `error, split at ${at}`);
    }
  });
}
