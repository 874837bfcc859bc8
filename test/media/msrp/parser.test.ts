// Fixture -> parse -> snapshot -> serialize -> byte-equal; split at every offset; error table.
import { Buffer } from 'node:buffer';
import t from 'tap';
import { MsrpError } from '../../../media/msrp/errors.js';
import { MsrpFrameParser, MsrpStreamParser, parseFrames } from '../../../media/msrp/parser.js';
import { serializeEnd, serializeFrame, serializeHead } from '../../../media/msrp/serializer.js';
import type { ContinuationFlag, Frame, FrameHead } from '../../../media/msrp/types.js';
import { describeFrame, loadFixtures } from '../../fixtures/msrp/helpers.js';

const fixtures = loadFixtures();

function parseSplit(raw: Buffer, cuts: number[]): Frame[] {
  const p = new MsrpFrameParser();
  const out: Frame[] = [];
  let prev = 0;
  for (const c of [...cuts, raw.length]) {
    out.push(...p.feed(raw.subarray(prev, c)));
    prev = c;
  }
  p.end();
  return out;
}

const serializeAll = (frames: Frame[]): Buffer => Buffer.concat(frames.map(serializeFrame));

t.test('fixtures: parse, snapshot, byte-equal round trip', async (t) => {
  t.ok(fixtures.length >= 12, 'fixtures present');
  for (const { name, raw } of fixtures) {
    t.test(name, async (t) => {
      const frames = parseFrames(raw);
      t.matchSnapshot(frames.map(describeFrame), 'parsed');
      t.ok(serializeAll(frames).equals(raw), 'serialize(parse(x)) === x');
      // head.raw is the exact wire head; serializeHead rebuilds the same bytes.
      for (const f of frames) t.ok(serializeHead(f.head).equals(f.head.raw), 'head raw kept and rebuilt');
    });
  }
});

t.test('fixtures: split at every byte offset gives the same frames', async (t) => {
  for (const { name, raw } of fixtures) {
    let bad = 0;
    for (let i = 0; i <= raw.length; i++) {
      if (!serializeAll(parseSplit(raw, [i])).equals(raw)) bad++;
    }
    // three-way splits around every position of the end-lines region
    for (let i = 0; i < raw.length; i += 3) {
      const j = Math.min(raw.length, i + 1 + (i % 7));
      if (!serializeAll(parseSplit(raw, [i, j])).equals(raw)) bad++;
    }
    t.equal(bad, 0, `${name}: all splits`);
  }
});

t.test('fixtures: one byte per read', async (t) => {
  for (const { name, raw } of fixtures) {
    const cuts = Array.from({ length: raw.length - 1 }, (_, i) => i + 1);
    t.ok(serializeAll(parseSplit(raw, cuts)).equals(raw), name);
  }
});

t.test('multi-byte UTF-8 split inside characters keeps bytes intact', async (t) => {
  const raw = fixtures.find((f) => f.name === 'send-utf8-cpim')!.raw;
  const whole = parseFrames(raw)[0]!;
  const text = whole.body.toString('utf8');
  t.match(text, /😀🎉👩‍💻 𝄞/);
  let cutsInsideChar = 0;
  for (let i = 1; i < raw.length; i++) {
    // continuation byte 10xxxxxx: this cut falls inside a character
    if ((raw[i]! & 0xc0) === 0x80) cutsInsideChar++;
    const f = parseSplit(raw, [i])[0]!;
    if (!f.body.equals(whole.body)) t.fail(`body differs when split at ${i}`);
  }
  t.ok(cutsInsideChar > 40, `covered ${cutsInsideChar} cuts inside characters`);
  const resp = parseFrames(raw)[1]!;
  t.equal(resp.head.kind === 'response' && resp.head.comment, 'Très bien ✓', 'UTF-8 comment decoded');
});

t.test('binary body with all 256 byte values', async (t) => {
  const raw = fixtures.find((f) => f.name === 'send-binary-256')!.raw;
  const f = parseFrames(raw)[0]!;
  t.equal(f.body.length, 514);
  for (let i = 0; i < 256; i++) {
    if (f.body[i] !== i || f.body[256 + i] !== i) t.fail(`byte ${i}`);
  }
  t.same([...f.body.subarray(512)], [13, 10], 'trailing CRLF inside data kept');
});

t.test('streaming: body pieces flow before the frame ends, head bounded', async (t) => {
  const body = Buffer.alloc(200_000, 0x61);
  const frame = serializeFrame({
    head: {
      kind: 'request',
      method: 'SEND',
      transactionId: 'strm0001',
      headers: [
        { name: 'To-Path', value: 'msrp://b:1/s;tcp' },
        { name: 'From-Path', value: 'msrp://a:1/t;tcp' },
        { name: 'Content-Type', value: 'text/plain' },
      ],
      hasBody: true,
      raw: Buffer.alloc(0),
    },
    body,
    flag: '$',
  });
  let got = 0;
  let ended = false;
  let maxLag = 0;
  let fed = 0;
  let headLen = 0;
  const p = new MsrpStreamParser({
    frameStart: (h) => {
      headLen = h.raw.length;
    },
    body: (piece) => {
      t.notOk(ended);
      got += piece.length;
    },
    frameEnd: (flag) => {
      ended = true;
      t.equal(flag, '$');
    },
  });
  for (let i = 0; i < frame.length; i += 1000) {
    const c = frame.subarray(i, i + 1000);
    p.feed(c);
    fed += c.length;
    if (!ended && fed > headLen) maxLag = Math.max(maxLag, fed - headLen - got);
  }
  t.ok(ended);
  t.equal(got, body.length);
  t.ok(maxLag <= '\r\n-------strm0001'.length + 3, `held back at most the end-line (${maxLag} bytes)`);
});

t.test('streaming writer: serializeHead + pieces + serializeEnd equals serializeFrame', async (t) => {
  const f = parseFrames(fixtures.find((x) => x.name === 'send-simple')!.raw)[0]!;
  const streamed = Buffer.concat([serializeHead(f.head), f.body, serializeEnd(f.head.transactionId, f.flag, true)]);
  t.ok(streamed.equals(serializeFrame(f)));
});

t.test('frame ended by + then the rest later (interrupted message)', async (t) => {
  const raw = fixtures.find((f) => f.name === 'send-interrupted')!.raw;
  const flags: ContinuationFlag[] = [];
  const heads: FrameHead[] = [];
  const p = new MsrpStreamParser({ frameStart: (h) => heads.push(h), body: () => undefined, frameEnd: (f) => flags.push(f) });
  p.feed(raw);
  p.end();
  t.same(flags, ['+', '$', '$']);
  t.same(
    heads.map((h) => h.headers.find((x) => x.name === 'Message-ID')?.value),
    ['big-1', 'small-2', 'big-1'],
  );
});

interface ErrCase {
  name: string;
  input: string;
  code: string;
  tid?: string;
  limits?: { maxStartLine?: number; maxHeaderBlock?: number; maxHeaders?: number };
}

const TP = 'To-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:1/t;tcp\r\n';
const errorCases: ErrCase[] = [
  { name: 'not MSRP', input: 'HTTP/1.1 200 OK\r\n', code: 'MSRP_BAD_START_LINE' },
  { name: 'lower-case method', input: 'MSRP abcd1234 send\r\n', code: 'MSRP_BAD_START_LINE', tid: 'abcd1234' },
  { name: 'short transaction id', input: 'MSRP abc SEND\r\n', code: 'MSRP_BAD_START_LINE' },
  { name: 'tid too long', input: `MSRP ${'a'.repeat(33)} SEND\r\n`, code: 'MSRP_BAD_START_LINE' },
  { name: 'two-digit status', input: 'MSRP abcd1234 20 OK\r\n', code: 'MSRP_BAD_START_LINE', tid: 'abcd1234' },
  { name: 'bare LF', input: 'MSRP abcd1234 SEND\n', code: 'MSRP_BAD_START_LINE', tid: 'abcd1234' },
  { name: 'empty first line', input: '\r\nMSRP abcd1234 SEND\r\n', code: 'MSRP_BAD_START_LINE' },
  { name: 'header without colon', input: `MSRP abcd1234 SEND\r\n${TP}Bogus\r\n`, code: 'MSRP_BAD_HEADER', tid: 'abcd1234' },
  { name: 'header with space in name', input: `MSRP abcd1234 SEND\r\nTo Path: x\r\n`, code: 'MSRP_BAD_HEADER', tid: 'abcd1234' },
  { name: 'control char in value', input: `MSRP abcd1234 SEND\r\nX: a\x01b\r\n`, code: 'MSRP_BAD_HEADER', tid: 'abcd1234' },
  { name: 'bare LF in headers', input: `MSRP abcd1234 SEND\r\nX: a\n`, code: 'MSRP_BAD_HEADER', tid: 'abcd1234' },
  { name: 'end-line of another transaction', input: `MSRP abcd1234 SEND\r\n${TP}-------zzzz9999$\r\n`, code: 'MSRP_BAD_HEADER', tid: 'abcd1234' },
  { name: 'invalid UTF-8 in header', input: `MSRP abcd1234 SEND\r\nX: \xff\xfe\r\n`, code: 'MSRP_BAD_ENCODING', tid: 'abcd1234' },
  { name: 'start-line over limit', input: `MSRP abcd1234 ${'A'.repeat(2000)}`, code: 'MSRP_START_LINE_TOO_LARGE', tid: 'abcd1234' },
  { name: 'start-line over custom limit', input: 'MSRP abcd1234 SEND\r\n', code: 'MSRP_START_LINE_TOO_LARGE', tid: 'abcd1234', limits: { maxStartLine: 10 } },
  { name: 'head over limit', input: `MSRP abcd1234 SEND\r\n${TP}${`X-Pad: ${'y'.repeat(500)}\r\n`.repeat(40)}`, code: 'MSRP_HEADER_TOO_LARGE', tid: 'abcd1234' },
  { name: 'never-ending header line', input: `MSRP abcd1234 SEND\r\nX-Long: ${'z'.repeat(17000)}`, code: 'MSRP_HEADER_TOO_LARGE', tid: 'abcd1234' },
  { name: 'too many headers', input: `MSRP abcd1234 SEND\r\n${'X: 1\r\n'.repeat(5)}`, code: 'MSRP_TOO_MANY_HEADERS', tid: 'abcd1234', limits: { maxHeaders: 4 } },
];

t.test('malformed input gives coded errors', async (t) => {
  for (const c of errorCases) {
    const p = new MsrpStreamParser({ frameStart: () => undefined, body: () => undefined, frameEnd: () => undefined }, c.limits);
    let err: unknown;
    try {
      p.feed(Buffer.from(c.input, 'latin1'));
      p.end();
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof MsrpError, `${c.name}: MsrpError`);
    if (err instanceof MsrpError) {
      t.equal(err.code, c.code, `${c.name}: code`);
      t.equal(err.transactionId, c.tid, `${c.name}: transaction id recovered`);
    }
    t.throws(() => p.feed(Buffer.from('MSRP abcd1234 SEND\r\n')), { code: 'MSRP_PARSER_FAILED' }, `${c.name}: parser stays failed`);
  }
});

t.test('truncated stream and body size limit', async (t) => {
  const raw = fixtures.find((f) => f.name === 'send-simple')!.raw;
  for (const cut of [5, 40, raw.length - 3]) {
    const p = new MsrpFrameParser();
    p.feed(raw.subarray(0, cut));
    t.throws(() => p.end(), { code: 'MSRP_TRUNCATED' }, `cut at ${cut}`);
  }
  const small = new MsrpFrameParser({ maxBodySize: 10 });
  t.throws(() => small.feed(raw), { code: 'MSRP_BODY_TOO_LARGE', transactionId: 'a786hjs2' });
  t.same(new MsrpFrameParser({ maxBodySize: 23 }).feed(raw).length, 1, 'exactly at the limit is fine');
});

t.test('lenient header spacing parses; serializer normalises to "Name: value"', async (t) => {
  const raw = Buffer.from(`MSRP abcd1234 SEND\r\nTo-Path:msrp://b:1/s;tcp\r\nFrom-Path:   msrp://a:1/t;tcp\r\n-------abcd1234$\r\n`);
  const f = parseFrames(raw)[0]!;
  t.same(f.head.headers.map((h) => h.value), ['msrp://b:1/s;tcp', 'msrp://a:1/t;tcp']);
  t.equal(serializeFrame(f).toString(), `MSRP abcd1234 SEND\r\nTo-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:1/t;tcp\r\n-------abcd1234$\r\n`);
});

t.test('serializer refuses what would not parse back', async (t) => {
  const f = parseFrames(fixtures.find((x) => x.name === 'send-simple')!.raw)[0]!;
  t.throws(() => serializeFrame({ ...f, body: Buffer.from('x\r\n-------a786hjs2$\r\ny') }), { code: 'MSRP_BAD_HEADER' }, 'body with own end-line');
  t.throws(() => serializeFrame({ ...f, head: { ...f.head, headers: [{ name: 'X', value: 'a\r\nInjected: 1' }] } }), { code: 'MSRP_BAD_HEADER' }, 'CRLF injection');
  t.throws(() => serializeFrame({ ...f, head: { ...f.head, transactionId: 'a b' } }), { code: 'MSRP_BAD_START_LINE' });
});

t.test('a 32 MiB body streams through with flat memory', async (t) => {
  const head = Buffer.from('MSRP huge0001 SEND\r\nTo-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:1/t;tcp\r\nContent-Type: application/octet-stream\r\n\r\n');
  const block = Buffer.alloc(64 * 1024, 0x2d); // dashes: the end-line search sees many near-misses
  let got = 0;
  let ended = false;
  const p = new MsrpStreamParser({ frameStart: () => undefined, body: (x) => (got += x.length), frameEnd: () => (ended = true) });
  global.gc?.();
  const before = process.memoryUsage();
  p.feed(head);
  for (let i = 0; i < 512; i++) p.feed(block);
  p.feed(Buffer.from('\r\n-------huge0001$\r\n'));
  const after = process.memoryUsage();
  t.ok(ended);
  t.equal(got, 512 * block.length);
  const grew = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  t.ok(grew < 16 * 1024 * 1024, `memory grew ${(grew / 1048576).toFixed(1)} MiB for a 32 MiB body`);
});
