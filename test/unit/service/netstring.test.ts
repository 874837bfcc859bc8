import t from 'tap';
import { NetstringDecoder, encodeNetstring, netstringText } from '../../../plugin/rpc/netstring.js';

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
  t.equal(d1.pending, 0);

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
