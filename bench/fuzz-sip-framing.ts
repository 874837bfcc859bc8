/**
 * `npm run fuzz:sip-framing [-- --seconds S --cases N --seed S]`: the B2BUA's SIP stream
 * framer (plugin/b2bua/sip/framing.ts) fed valid and mutated streams in random pieces
 * (default: 60 s, no case cap). Prints the figures as JSON; exits 1 on any failure.
 *
 * Valid streams (random messages with UTF-8 bodies, CRLF gaps and pings between them):
 *  1. nothing is thrown, whole or split;
 *  2. the messages are the input's, in order, and their concatenation is the input minus
 *     the CRLFs between messages; the pings are floor(CRLFs / 2) per gap (RFC 5626 §4.4.1).
 * Mutated streams and junk:
 *  3. nothing but a FramingError is thrown;
 *  4. whole and split feeds give the same messages, pings and error code;
 *  5. every message's body is exactly its Content-Length in bytes (checked where the text
 *     has no U+FFFD, i.e. the bytes were UTF-8), within the limits, and the messages are
 *     verbatim pieces of the input, in order;
 *  6. no case takes more than --per-case-ms.
 * Then the cost per byte, fed whole and byte by byte, for a small and a 16 times larger
 * message (a ratio far above 1 would mean re-scanning: a finding above 4).
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { FramingError, SipStreamFramer, type FramerOptions } from '../plugin/b2bua/sip/framing.js';
import { rng } from './rng.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    cases: { type: 'string', default: '0' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    'per-case-ms': { type: 'string', default: '1000' },
  },
});
const seconds = Number(values.seconds);
const maxCases = Number(values.cases) || Infinity;
const seed = Number(values.seed);
const perCaseMs = Number(values['per-case-ms']);

type R = () => number;
const int = (r: R, n: number): number => Math.floor(r() * n);
const pick = <T>(r: R, xs: readonly T[]): T => xs[int(r, xs.length)]!;

// ---- valid streams -------------------------------------------------------------------

const BODY_PIECES = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 'a=accept-types:message/cpim', 'Ünïcødé ✓', '😀', '日本語', '\r\n', '\r\n\r\n', 'SIP/2.0 200 OK', 'Content-Length: 5', '\n', 'l: 0'];
const START_LINES = ['INVITE sip:bob@127.0.0.1:5070;transport=tcp SIP/2.0', 'SIP/2.0 200 OK', 'SIP/2.0 180 Ringing', 'ACK sip:bob@127.0.0.1 SIP/2.0', 'BYE sip:b2bua@127.0.0.1:5070 SIP/2.0', 'MESSAGE sip:bob@example.net SIP/2.0', 'SIP/2.0 487 Request Terminated'];
const HEADERS = [
  'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-kam-1;rport',
  'Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-b2b-1',
  'From: "Älice" <sip:alice@example.net>;tag=a1',
  'To: <sip:bob@example.net>;tag=b1',
  'Call-ID: c1@127.0.0.1',
  'CSeq: 1 INVITE',
  'Contact: <sip:127.0.0.1:5070;transport=tcp>',
  'Record-Route: <sip:127.0.0.1:5060;transport=tcp;lr>',
  'Content-Type: application/sdp',
  'Subject: folded\r\n  over two lines',
  'Max-Forwards: 70',
];

function body(r: R): string {
  if (r() < 0.3) return '';
  let s = '';
  for (let k = 1 + int(r, 12); k > 0; k--) s += pick(r, BODY_PIECES);
  return r() < 0.05 ? s.repeat(50 + int(r, 200)) : s;
}

/** One valid message with the Content-Length in one of its spellings. */
function message(r: R): string {
  const b = body(r);
  const n = Buffer.byteLength(b, 'utf8');
  const eol = r() < 0.1 ? '\n' : '\r\n';
  const lengthLine = pick(r, [`Content-Length: ${n}`, `l: ${n}`, `content-length:${n}`, `Content-Length :  ${n}`, `Content-Length: 00${n}`, `Content-Length:\r\n ${n}`]);
  const headers: string[] = [];
  for (let k = int(r, HEADERS.length + 1); k > 0; k--) headers.push(pick(r, HEADERS));
  headers.splice(int(r, headers.length + 1), 0, lengthLine);
  if (r() < 0.1) headers.push(`Content-Length: ${n}`); // the same value twice is fine
  const head = [pick(r, START_LINES), ...headers].join('\r\n').replaceAll('\r\n', eol);
  return `${head}${eol}${eol}${b}`;
}

interface Valid {
  readonly input: Buffer;
  readonly messages: string[];
  readonly pings: number;
}

function validStream(r: R): Valid {
  const messages: string[] = [];
  let text = '';
  let pings = 0;
  const gap = (): void => {
    const k = r() < 0.5 ? 0 : int(r, 5);
    pings += Math.floor(k / 2);
    text += '\r\n'.repeat(k);
  };
  gap();
  for (let m = 1 + int(r, 6); m > 0; m--) {
    const msg = message(r);
    messages.push(msg);
    text += msg;
    gap();
  }
  return { input: Buffer.from(text, 'utf8'), messages, pings };
}

// ---- mutations ------------------------------------------------------------------------

const INTERESTING = [0x00, 0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x2d, 0x30, 0x39, 0x7f, 0x80, 0xc3, 0xe2, 0xf0, 0xff];
const TOKENS = ['\r\n', '\r\n\r\n', '\n\n', '\r', 'Content-Length: ', 'l: ', 'Content-Length: 5\r\n', 'l: -1\r\n', 'Content-Length: 99999999999\r\n', ': ', ' SIP/2.0', 'SIP/2.0 ', '\xf0\x9f\x98', '\xff\xfe'];
type Mutator = (b: Buffer, r: R, other: Buffer) => Buffer;

const MUTATORS: Record<string, Mutator> = {
  bitflip: (b, r) => {
    const o = Buffer.from(b);
    for (let k = 1 + int(r, 8); k > 0 && o.length; k--) {
      const i = int(r, o.length);
      o[i] = o[i]! ^ (1 << int(r, 8));
    }
    return o;
  },
  byteset: (b, r) => {
    const o = Buffer.from(b);
    for (let k = 1 + int(r, 4); k > 0 && o.length; k--) o[int(r, o.length)] = pick(r, INTERESTING);
    return o;
  },
  digit: (b, r) => {
    // Change a digit (most often one of a Content-Length): bodies too short or too long.
    const o = Buffer.from(b);
    const digits: number[] = [];
    for (let i = 0; i < o.length; i++) if (o[i]! >= 0x30 && o[i]! <= 0x39) digits.push(i);
    if (digits.length) o[pick(r, digits)] = 0x30 + int(r, 10);
    return o;
  },
  truncate: (b, r) => b.subarray(0, int(r, b.length + 1)),
  chopHead: (b, r) => b.subarray(int(r, b.length + 1)),
  splice: (b, r, other) => Buffer.concat([b.subarray(0, int(r, b.length + 1)), other.subarray(int(r, other.length + 1))]),
  insertToken: (b, r) => {
    const i = int(r, b.length + 1);
    return Buffer.concat([b.subarray(0, i), Buffer.from(pick(r, TOKENS), 'latin1'), b.subarray(i)]);
  },
  insertRandom: (b, r) => {
    const i = int(r, b.length + 1);
    const junk = Buffer.alloc(1 + int(r, 32));
    for (let k = 0; k < junk.length; k++) junk[k] = int(r, 256);
    return Buffer.concat([b.subarray(0, i), junk, b.subarray(i)]);
  },
  deleteRange: (b, r) => {
    const i = int(r, b.length + 1);
    return Buffer.concat([b.subarray(0, i), b.subarray(Math.min(b.length, i + 1 + int(r, 16)))]);
  },
  duplicateRange: (b, r) => {
    const i = int(r, b.length + 1);
    const j = Math.min(b.length, i + 1 + int(r, 64));
    return Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
  },
  amplify: (b, r) => {
    // One region repeated: long lines, many headers, large bodies (the size limits).
    const i = int(r, b.length + 1);
    const j = Math.min(b.length, i + 1 + int(r, 40));
    const reps = 50 + int(r, 2000);
    return Buffer.concat([b.subarray(0, i), ...Array.from({ length: reps }, () => b.subarray(i, j)), b.subarray(j)]);
  },
  junk: (_b, r) => {
    const o = Buffer.alloc(int(r, 4096));
    for (let k = 0; k < o.length; k++) o[k] = r() < 0.2 ? pick(r, INTERESTING) : int(r, 256);
    return o;
  },
};
const MUTATOR_NAMES = Object.keys(MUTATORS);

// ---- feeding --------------------------------------------------------------------------

function cuts(len: number, r: R): number[] {
  if (r() < 0.05 && len < 4096) return Array.from({ length: Math.max(0, len - 1) }, (_, i) => i + 1);
  const pts = new Set<number>();
  for (let k = int(r, 16); k > 0; k--) pts.add(int(r, len + 1));
  return [...pts].sort((a, b) => a - b);
}

interface Outcome {
  messages: string[];
  pings: number;
  code: string | undefined;
}

/** Feed `input` cut at `at`; anything thrown but a FramingError propagates. */
function feed(input: Buffer, at: readonly number[], opts: FramerOptions): Outcome {
  const f = new SipStreamFramer(opts);
  const o: Outcome = { messages: [], pings: 0, code: undefined };
  let prev = 0;
  try {
    for (const c of [...at, input.length]) {
      const out = f.push(input.subarray(prev, c));
      o.messages.push(...out.messages);
      o.pings += out.pings;
      prev = c;
    }
  } catch (err) {
    if (!(err instanceof FramingError)) throw err;
    const out = f.takeCompleted();
    o.messages.push(...out.messages);
    o.pings += out.pings;
    o.code = err.code;
  }
  return o;
}

const same = (a: Outcome, b: Outcome): boolean =>
  a.code === b.code && a.pings === b.pings && a.messages.length === b.messages.length && a.messages.every((m, i) => m === b.messages[i]);

/** Body bytes vs Content-Length, read independently of the framer: problems as text. */
function checkMessage(m: string, opts: Required<FramerOptions>): string | null {
  const crlf = m.indexOf('\r\n\r\n');
  const lf = m.indexOf('\n\n');
  const [headEnd, sep] = lf !== -1 && (crlf === -1 || lf < crlf) ? [lf, 2] : [crlf, 4];
  if (headEnd === -1) return 'no end of head';
  const head = m.slice(0, headEnd + sep);
  const lines = head.split(/\r?\n/);
  let cl: number | undefined;
  for (let k = 1; k < lines.length; k++) {
    const match = /^(content-length|l)[ \t]*:([^]*)$/i.exec(lines[k]!);
    if (!match) continue;
    let v = match[2]!;
    while (k + 1 < lines.length && /^[ \t]/.test(lines[k + 1]!)) v += lines[++k]!;
    cl = /^[ \t]*[0-9]+[ \t]*$/.test(v) ? Number(v) : NaN;
  }
  if (cl === undefined || !Number.isInteger(cl)) return `no readable Content-Length in ${JSON.stringify(head.slice(0, 200))}`;
  const total = Buffer.byteLength(m, 'utf8');
  const bodyBytes = Buffer.byteLength(m.slice(headEnd + sep), 'utf8');
  if (bodyBytes !== cl) return `body ${bodyBytes} bytes, Content-Length ${cl}`;
  if (total > opts.maxMessageBytes) return `message of ${total} bytes over ${opts.maxMessageBytes}`;
  if (total - bodyBytes > opts.maxHeaderBytes) return `head of ${total - bodyBytes} bytes over ${opts.maxHeaderBytes}`;
  return null;
}

const LIMITS: Required<FramerOptions>[] = [
  { maxMessageBytes: 1024 * 1024, maxHeaderBytes: 65_535 },
  { maxMessageBytes: 4096, maxHeaderBytes: 1024 },
  { maxMessageBytes: 600, maxHeaderBytes: 300 },
];

interface Failure {
  caseIndex: number;
  kind: 'crash' | 'valid-stream' | 'split-mismatch' | 'content-length' | 'not-verbatim' | 'slow' | 'scaling';
  detail: string;
  inputBase64: string;
}

const stats = {
  result: 'ok',
  seed,
  cases: 0,
  validCases: 0,
  mutatedCases: 0,
  seconds: 0,
  casesPerSecond: 0,
  bytesFed: 0,
  mbPerSecond: 0,
  maxCaseMs: 0,
  messages: 0,
  pings: 0,
  bodiesChecked: 0,
  notUtf8Skipped: 0,
  errorsByCode: {} as Record<string, number>,
  mutations: {} as Record<string, number>,
  scaling: {} as Record<string, number>,
  failures: [] as Failure[],
};

const r = rng(seed);
const t0 = performance.now();
const deadline = t0 + seconds * 1000;
for (let i = 0; i < maxCases && (i & 255 || performance.now() < deadline); i++) {
  const valid = validStream(r);
  const mutate = r() < 0.75;
  let input = valid.input;
  if (mutate) {
    const other = validStream(r).input;
    for (let k = 1 + int(r, 3); k > 0; k--) {
      const name = pick(r, MUTATOR_NAMES);
      stats.mutations[name] = (stats.mutations[name] ?? 0) + 1;
      input = MUTATORS[name]!(input, r, other);
    }
  }
  const opts = mutate ? pick(r, LIMITS) : LIMITS[0]!;
  const at = cuts(input.length, r);
  const fail = (kind: Failure['kind'], detail: string): void => {
    if (stats.failures.length < 20) stats.failures.push({ caseIndex: i, kind, detail, inputBase64: input.toString('base64').slice(0, 2000) });
  };
  const c0 = performance.now();
  try {
    const whole = feed(input, [], opts);
    const split = feed(input, at, opts);
    if (!same(whole, split)) fail('split-mismatch', `whole ${whole.code ?? 'ok'}/${whole.messages.length}/${whole.pings}, split ${split.code ?? 'ok'}/${split.messages.length}/${split.pings}`);
    if (!mutate) {
      stats.validCases++;
      const joined = split.messages.join('');
      if (split.code !== undefined) fail('valid-stream', `FramingError ${split.code}`);
      else if (joined !== valid.messages.join('') || split.messages.length !== valid.messages.length) fail('valid-stream', 'messages differ from the input minus the CRLFs between them');
      else if (split.pings !== valid.pings) fail('valid-stream', `pings ${split.pings}, want ${valid.pings}`);
    } else {
      stats.mutatedCases++;
      if (whole.code !== undefined) stats.errorsByCode[whole.code] = (stats.errorsByCode[whole.code] ?? 0) + 1;
    }
    let pos = 0;
    for (const m of whole.messages) {
      if (m.includes('\uFFFD')) {
        stats.notUtf8Skipped++;
        continue;
      }
      stats.bodiesChecked++;
      const problem = checkMessage(m, opts);
      if (problem) fail('content-length', problem);
      const bytes = Buffer.from(m, 'utf8');
      const found = input.indexOf(bytes, pos);
      if (found === -1) fail('not-verbatim', `message ${JSON.stringify(m.slice(0, 80))} not found in the input after byte ${pos}`);
      else pos = found + bytes.length;
    }
    stats.messages += whole.messages.length;
    stats.pings += whole.pings;
  } catch (err) {
    fail('crash', err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err));
  }
  const dt = performance.now() - c0;
  if (dt > stats.maxCaseMs) stats.maxCaseMs = dt;
  if (dt > perCaseMs) fail('slow', `${dt.toFixed(1)} ms`);
  stats.bytesFed += input.length * 2;
  stats.cases++;
}
const secs = (performance.now() - t0) / 1000;
stats.seconds = Math.round(secs * 10) / 10;
stats.casesPerSecond = Math.round(stats.cases / secs);
stats.mbPerSecond = Math.round((stats.bytesFed / 1048576 / secs) * 10) / 10;
stats.maxCaseMs = Math.round(stats.maxCaseMs * 10) / 10;

// ---- cost per byte: no re-scanning --------------------------------------------------------

function bigMessage(headerBytes: number, bodyBytes: number): Buffer {
  const filler = Math.max(0, headerBytes - 120);
  const b = '😀'.repeat(Math.floor(bodyBytes / 4));
  return Buffer.from(`INVITE sip:bob@127.0.0.1 SIP/2.0\r\nX-Filler: ${'a'.repeat(filler)}\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`);
}

function nsPerByte(msg: Buffer, piece: number): number {
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const f = new SipStreamFramer();
    const s = performance.now();
    let got = 0;
    try {
      for (let i = 0; i < msg.length; i += piece) got += f.push(msg.subarray(i, i + piece)).messages.length;
    } catch (err) {
      stats.failures.push({ caseIndex: -1, kind: 'scaling', detail: `probe of ${msg.length} bytes in ${piece}-byte pieces: ${String(err)}`, inputBase64: '' });
      return NaN;
    }
    if (got !== 1) {
      stats.failures.push({ caseIndex: -1, kind: 'scaling', detail: `probe of ${msg.length} bytes in ${piece}-byte pieces: ${got} messages`, inputBase64: '' });
      return NaN;
    }
    times.push(((performance.now() - s) * 1e6) / msg.length);
  }
  times.sort((a, b) => a - b);
  return times[2]!;
}

const small = bigMessage(4000, 60_000);
const large = bigMessage(64_000, 960_000);
for (const [name, msg, piece] of [
  ['small 64 KB whole', small, small.length],
  ['small 64 KB in 1-byte pieces', small, 1],
  ['large 1 MB whole', large, large.length],
  ['large 1 MB in 1-byte pieces', large, 1],
  ['large 1 MB in 1400-byte pieces', large, 1400],
] as const) {
  stats.scaling[`${name}: ns/byte`] = Math.round(nsPerByte(msg, piece) * 10) / 10;
}
const ratio = stats.scaling['large 1 MB in 1-byte pieces: ns/byte']! / stats.scaling['small 64 KB in 1-byte pieces: ns/byte']!;
stats.scaling['1-byte pieces, large/small ratio'] = Math.round(ratio * 100) / 100;
if (ratio > 4) stats.failures.push({ caseIndex: -1, kind: 'scaling', detail: `cost per byte grew ${ratio.toFixed(1)}x for a 16x larger message`, inputBase64: '' });

stats.result = stats.failures.length === 0 ? 'ok' : 'FAIL';
process.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
process.exitCode = stats.failures.length === 0 ? 0 : 1;
