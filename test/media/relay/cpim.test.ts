// CPIM classification, Message-Direction injection and Byte-Range mapping.
import t from 'tap';
import { classify, cpimAddress, isRecordedKind, parseCpimHead, type CpimHead } from '../../../media/cpim/head.js';
import { rng } from '../../../bench/rng.js';
import {
  formatByteRange, injectIntoChunk, parseByteRange, planInjection, shiftRange, unshiftRange,
} from '../../../media/cpim/direction.js';
import { HeadTracker } from '../../../media/cpim/tracker.js';

const cpim = (inner: string, body: string | Buffer, extra = ''): Buffer =>
  Buffer.concat([
    Buffer.from(
      'From: "Ålice" <sip:alice@example.net>\r\nTo: <sip:bob@example.net>\r\n' +
        'DateTime: 2026-11-24T01:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\n' +
        `imdn.Message-ID: 34jk324j\r\n${extra}\r\nContent-Type: ${inner}\r\n\r\n`,
      'utf8',
    ),
    typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
  ]);

const headOf = (b: Buffer): CpimHead => {
  const r = parseCpimHead(b);
  if (r.state !== 'complete') throw new Error(`head ${r.state}`);
  return r.head;
};

t.test('classification table', async t => {
  const cases: { name: string; type: string | undefined; body: Buffer; expect: string }[] = [
    { name: 'text chat in CPIM', type: 'message/cpim', body: cpim('text/plain;charset=utf-8', 'hi ✓'), expect: 'chat' },
    { name: 'isComposing in CPIM', type: 'message/cpim', body: cpim('application/im-iscomposing+xml', '<x/>'), expect: 'isComposing' },
    { name: 'IMDN in CPIM, upper case', type: 'Message/CPIM', body: cpim('MESSAGE/IMDN+XML', '<imdn/>'), expect: 'imdn' },
    { name: 'bare isComposing', type: 'application/im-iscomposing+xml', body: Buffer.from('<x/>'), expect: 'isComposing' },
    { name: 'bare IMDN', type: 'message/imdn+xml; charset=utf-8', body: Buffer.from('<x/>'), expect: 'imdn' },
    { name: 'bare text', type: 'text/plain', body: Buffer.from('x'), expect: 'chat' },
    { name: 'binary file part', type: 'message/cpim', body: cpim('image/png', Buffer.from([0, 0xff, 0x0d, 0x0a, 0x0d, 0x0a])), expect: 'chat' },
    { name: 'empty SEND', type: undefined, body: Buffer.alloc(0), expect: 'empty' },
  ];
  for (const c of cases) {
    const r = parseCpimHead(c.body);
    t.equal(classify(c.type, r.state === 'complete' ? r.head : undefined), c.expect, c.name);
  }
});

// History records chat messages and notifications (CR 8.5): isRecordedKind must give the
// same answer as classify on the parsed head, which it skips unless "composing" appears.
const recordedByClassify = (type: string | undefined, body: Buffer): boolean => {
  const r = parseCpimHead(body.subarray(0, 16 * 1024));
  const kind = classify(type, r.state === 'complete' ? r.head : undefined);
  return kind === 'chat' || kind === 'imdn';
};

t.test('what history records: the same answer as classify', async t => {
  const cases: { name: string; type: string | undefined; body: Buffer; expect: boolean }[] = [
    { name: 'chat', type: 'message/cpim', body: cpim('text/plain', 'hi'), expect: true },
    { name: 'IMDN', type: 'message/cpim', body: cpim('message/imdn+xml', '<imdn/>'), expect: true },
    { name: 'isComposing', type: 'message/cpim', body: cpim('application/im-iscomposing+xml', '<x/>'), expect: false },
    { name: 'isComposing, mixed case', type: 'Message/CPIM', body: cpim('Application/IM-IsComposing+XML', '<x/>'), expect: false },
    { name: 'chat whose text says composing', type: 'message/cpim', body: cpim('text/plain', 'composing a reply'), expect: true },
    { name: 'chat with a CPIM header that says composing', type: 'message/cpim', body: cpim('text/plain', 'x', 'Subject: composing\r\n'), expect: true },
    { name: 'invalid head naming isComposing: classify says chat', type: 'message/cpim', body: Buffer.from('no colon\r\n\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n<x/>'), expect: true },
    { name: 'bare isComposing', type: 'application/im-iscomposing+xml', body: Buffer.from('<x/>'), expect: false },
    { name: 'bare text', type: 'text/plain', body: Buffer.from('x'), expect: true },
    { name: 'no Content-Type', type: undefined, body: Buffer.from('x'), expect: false },
    { name: 'head past the 16 KiB the relay reads', type: 'message/cpim', body: cpim('application/im-iscomposing+xml', '<x/>', `X-Pad: ${'p'.repeat(17 * 1024)}\r\n`), expect: true },
  ];
  for (const c of cases) {
    t.equal(isRecordedKind(c.type, c.body), c.expect, c.name);
    t.equal(isRecordedKind(c.type, c.body), recordedByClassify(c.type, c.body), `${c.name}: as classify`);
  }
  // Random heads built from pieces that matter: the same answer every time.
  const next = rng(20261206);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const inner = ['text/plain', 'application/im-iscomposing+xml', 'APPLICATION/IM-ISCOMPOSING+XML', 'message/imdn+xml', '', 'composing/x'];
  const lines = ['From: <sip:a@x>', 'Subject: composing', 'bad line', ' folded', 'NS: imdn <urn:ietf:params:imdn>', ''];
  for (let i = 0; i < 2000; i++) {
    const head = Array.from({ length: Math.floor(next() * 4) }, () => pick(lines)).join('\r\n');
    const mime = [`Content-Type: ${pick(inner)}`, ...(next() < 0.3 ? [pick(lines)] : [])];
    if (next() < 0.3) mime.reverse();
    const text = `${head}\r\n\r\n${mime.join('\r\n')}\r\n\r\n${next() < 0.2 ? 'composing' : 'x'}`;
    const body = Buffer.from(next() < 0.1 ? text.slice(0, Math.floor(next() * text.length)) : text);
    const type = pick(['message/cpim', 'Message/CPIM; x=1', 'text/plain', undefined]);
    if (isRecordedKind(type, body) !== recordedByClassify(type, body)) {
      t.fail(`differs from classify: ${JSON.stringify(type)} ${JSON.stringify(body.toString())}`);
      return;
    }
  }
  t.pass('2000 random heads: the same answer as classify');
});

t.test('head parsing', async t => {
  const b = cpim('text/plain', 'body');
  const h = headOf(b);
  t.equal(h.headers.length, 5);
  t.equal(h.headers[0]!.value, '"Ålice" <sip:alice@example.net>', 'UTF-8 display name');
  t.equal(b.subarray(h.bodyOffset).toString(), 'body');
  t.equal(b.subarray(h.headerBlockEnd, h.headerBlockEnd + 4).toString(), '\r\nCo');
  t.equal(parseCpimHead(b.subarray(0, 40)).state, 'incomplete');
  t.equal(parseCpimHead(Buffer.from('From: a\r\n\r\nContent-Type: x')).state, 'incomplete', 'inner block not ended');
  t.equal(parseCpimHead(Buffer.from('no colon here\r\n\r\nContent-Type: x\r\n\r\n')).state, 'invalid');
  t.equal(parseCpimHead(Buffer.from('From: a\r\n folded\r\n\r\nContent-Type: x\r\n\r\n')).state, 'invalid');
  const empty = parseCpimHead(Buffer.from('\r\nContent-Type: text/plain\r\n\r\nx'));
  t.equal(empty.state, 'complete', 'empty CPIM header block');
  t.equal(cpimAddress('"Bob" <sip:Bob@EXAMPLE.net;gr=x>'), 'sip:Bob@example.net');
  t.equal(cpimAddress('<SIP:bob@example.net>'), 'sip:bob@example.net');
  t.equal(cpimAddress('tel:+1555;phone-context=x'), 'tel:+1555');
});

t.test('planInjection: at most once, unknown value kept', async t => {
  const b = cpim('text/plain', 'x');
  const inj = planInjection(headOf(b))!;
  t.equal(inj.bytes.toString(), 'Message-Direction: sent\r\n');
  t.equal(inj.offset, headOf(b).headerBlockEnd);
  t.equal(planInjection(headOf(cpim('text/plain', 'x', 'Message-Direction: sent\r\n'))), null, 'already sent');
  t.equal(planInjection(headOf(cpim('text/plain', 'x', 'message-direction: sideways\r\n'))), null, 'unknown value is left alone');
});

t.test('byte ranges', async t => {
  t.same(parseByteRange('1-100/200'), { start: 1, end: 100, total: 200 });
  t.same(parseByteRange('5-*/*'), { start: 5, end: '*', total: '*' });
  t.equal(parseByteRange('0-1/2'), undefined);
  t.equal(parseByteRange('x'), undefined);
  t.equal(formatByteRange({ start: 1, end: '*', total: 9 }), '1-*/9');
  const inj = { offset: 10, bytes: Buffer.alloc(5) }; // inserted before original byte 11
  const cases: [string, string][] = [
    ['1-5/100', '1-5/105'], // before
    ['1-10/100', '1-10/105'], // ends just before
    ['1-11/100', '1-16/105'], // holds the point
    ['11-20/100', '11-25/105'], // starts at the point: inserted bytes lead
    ['12-20/100', '17-25/105'], // after
    ['12-*/*', '17-*/*'],
  ];
  for (const [inp, out] of cases) {
    const r = parseByteRange(inp)!;
    t.equal(formatByteRange(shiftRange(r, inj)), out, `shift ${inp}`);
    t.equal(formatByteRange(unshiftRange(shiftRange(r, inj), inj)), inp, `round trip ${inp}`);
  }
  t.equal(formatByteRange(unshiftRange(parseByteRange('12-14/105')!, inj)), '11-11/100', 'inserted bytes only');
  t.equal(formatByteRange(unshiftRange(parseByteRange('1-105/105')!, inj)), '1-100/100', 'whole message');
  t.same(shiftRange({ start: 3, end: 4, total: 5 }, null), { start: 3, end: 4, total: 5 });
});

// Split a message at the given cut points, run it through tracker + injection the way
// the relay does, reassemble as a receiver would (by Byte-Range), compare byte by byte.
function relayChunks(msg: Buffer, cuts: number[], inject: boolean): { out: Buffer; ranges: string[]; held: number } {
  const tracker = new HeadTracker<number>('message/cpim');
  const bounds = [0, ...cuts.filter(c => c > 0 && c < msg.length), msg.length];
  const out = Buffer.alloc(msg.length + 64, 0x2e);
  let outTotal = -1;
  const ranges: string[] = [];
  let maxHeld = 0;
  const send = (i: number, inj: ReturnType<typeof planInjection>): void => {
    const s = bounds[i]!;
    const e = bounds[i + 1]!;
    const range = shiftRange({ start: s + 1, end: e, total: msg.length }, inj);
    const body = injectIntoChunk(msg.subarray(s, e), s + 1, inj);
    if (range.end !== '*' && range.end - range.start + 1 !== body.length) throw new Error('range/body mismatch');
    body.copy(out, range.start - 1);
    outTotal = range.total === '*' ? -1 : range.total;
    ranges.push(formatByteRange(range));
  };
  for (let i = 0; i + 1 < bounds.length; i++) {
    const s = bounds[i]!;
    const r = tracker.push(i, msg.subarray(s, bounds[i + 1]!), s + 1, i + 2 === bounds.length);
    maxHeld = Math.max(maxHeld, tracker.holding);
    if (!r) continue;
    const inj = inject && r.decision.head ? planInjection(r.decision.head) : null;
    for (const k of r.release) send(k, inj);
  }
  return { out: out.subarray(0, outTotal), ranges, held: maxHeld };
}

t.test('injection across chunk boundaries, byte by byte', async t => {
  const payload = Buffer.concat([Buffer.from('héllo wörld 😀 '.repeat(50), 'utf8'), Buffer.from([0, 1, 0xfe, 0xff])]);
  const msg = cpim('text/plain; charset=utf-8', payload);
  const head = headOf(msg);
  const expected = Buffer.concat([
    msg.subarray(0, head.headerBlockEnd),
    Buffer.from('Message-Direction: sent\r\n'),
    msg.subarray(head.headerBlockEnd),
  ]);
  // Every single cut point through the head region, plus pairs and tiny chunks.
  for (let c = 1; c < head.bodyOffset + 3; c++) {
    const r = relayChunks(msg, [c], true);
    if (!r.out.equals(expected)) t.fail(`single cut at ${c}`);
  }
  for (let a = 1; a < head.bodyOffset; a += 7) {
    for (let b = a + 1; b < head.bodyOffset + 5; b += 5) {
      const r = relayChunks(msg, [a, b, b + 300], true);
      if (!r.out.equals(expected)) t.fail(`cuts ${a},${b}`);
    }
  }
  const oneByte = relayChunks(msg, Array.from({ length: msg.length }, (_, i) => i), true);
  t.ok(oneByte.out.equals(expected), '1-byte chunks reassemble exactly');
  t.ok(oneByte.held > 100, 'chunks inside the head are held until it is complete');
  t.ok(relayChunks(msg, [head.headerBlockEnd], true).out.equals(expected), 'cut exactly at the insertion point');
  t.ok(relayChunks(msg, [], true).out.equals(expected), 'single chunk');
  t.ok(relayChunks(msg, [5, 100], false).out.equals(msg), 'no injection: untouched');
  const r = relayChunks(msg, [20, head.headerBlockEnd + 1], true);
  const total = expected.length;
  t.same(r.ranges, [`1-20/${total}`, `21-${head.headerBlockEnd + 1 + 25}/${total}`, `${head.headerBlockEnd + 2 + 25}-${total}/${total}`]);
});

t.test('existing Message-Direction: relayed unchanged', async t => {
  const msg = cpim('text/plain', 'x', 'Message-Direction: received\r\n');
  t.ok(relayChunks(msg, [30, 60], true).out.equals(msg));
});

t.test('tracker bounds and fallbacks', async t => {
  const big = new HeadTracker<number>('message/cpim', 64);
  t.equal(big.push(0, Buffer.alloc(40, 0x41), 1, false), null, 'held');
  const d = big.push(1, Buffer.alloc(40, 0x41), 41, false)!;
  t.same(d.release, [0, 1], 'limit reached: released in order');
  t.equal(d.decision.head, undefined);
  t.equal(d.decision.prefix.length, 64, 'prefix bounded');
  t.same(big.push(2, Buffer.alloc(1), 81, true)!.release, [2], 'after the decision chunks pass through');

  const ooo = new HeadTracker<number>('message/cpim');
  ooo.push(0, Buffer.from('From: a\r\n'), 1, false);
  t.same(ooo.push(1, Buffer.from('x'), 500, false)!.release, [0, 1], 'out of order gives up');

  const fin = new HeadTracker<number>('message/cpim');
  t.equal(fin.push(0, Buffer.from('From: a\r\n'), 1, true)!.decision.kind, 'chat', 'message ended without head');

  const plain = new HeadTracker<number>('application/im-iscomposing+xml');
  t.equal(plain.push(0, Buffer.from('<x/>'), 1, false)!.decision.kind, 'isComposing');
});
