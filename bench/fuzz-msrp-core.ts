// MSRP parser fuzzing core: random mutations of valid frames through the parser at
// random split points. Shared by bench/fuzz-msrp-parser.ts (>=100k cases) and the
// tap suite (a few thousand). Deterministic for a given seed.
//
// Per case the invariants are:
//  1. feed() throws nothing but MsrpError (coded);
//  2. the result (frames and error code) is the same whole and split at random points;
//  3. frames that parsed re-serialize and re-parse to the same frames;
//  4. the case finishes within perCaseMs.
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MsrpError } from '../media/msrp/errors.js';
import { MsrpFrameParser } from '../media/msrp/parser.js';
import { serializeFrame } from '../media/msrp/serializer.js';
import type { Frame } from '../media/msrp/types.js';
import { rng } from './rng.js';

export interface FuzzOptions {
  cases: number;
  seed: number;
  perCaseMs: number;
  fixtureDir: string;
  /** Called every `progressEvery` cases. */
  onProgress?: (done: number) => void;
  progressEvery?: number;
}

export interface FuzzFailure {
  caseIndex: number;
  kind: 'crash' | 'split-mismatch' | 'roundtrip' | 'slow';
  detail: string;
  inputBase64: string;
}

export interface FuzzStats {
  cases: number;
  ms: number;
  maxCaseMs: number;
  parsedOk: number;
  errorsByCode: Record<string, number>;
  mutations: Record<string, number>;
  framesSeen: number;
  bytesFed: number;
  heapBefore: number;
  heapAfter: number;
  heapPeak: number;
  failures: FuzzFailure[];
}


const INTERESTING = [0x00, 0x0d, 0x0a, 0x2d, 0x24, 0x2b, 0x23, 0x3a, 0x20, 0x09, 0x7f, 0x80, 0xc3, 0xe2, 0xf0, 0xff, 0x2f, 0x3b];
const TOKENS = ['\r\n', '-------', '\r\n\r\n', 'MSRP ', ' SEND\r\n', ': ', '$\r\n', '+\r\n', '#\r\n', 'To-Path: ', 'Byte-Range: 1-*/*\r\n', '\xf0\x9f\x98', '\xff\xfe'];

type Mutator = (b: Buffer, r: () => number, pool: Buffer[]) => Buffer;

const int = (r: () => number, n: number): number => Math.floor(r() * n);

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
    for (let k = 1 + int(r, 4); k > 0 && o.length; k--) o[int(r, o.length)] = INTERESTING[int(r, INTERESTING.length)]!;
    return o;
  },
  truncate: (b, r) => b.subarray(0, int(r, b.length + 1)),
  chopHead: (b, r) => b.subarray(int(r, b.length + 1)),
  splice: (b, r, pool) => {
    const other = pool[int(r, pool.length)]!;
    return Buffer.concat([b.subarray(0, int(r, b.length + 1)), other.subarray(int(r, other.length + 1))]);
  },
  concat: (b, r, pool) => Buffer.concat([b, pool[int(r, pool.length)]!, r() < 0.5 ? b : Buffer.alloc(0)]),
  insertToken: (b, r) => {
    const i = int(r, b.length + 1);
    return Buffer.concat([b.subarray(0, i), Buffer.from(TOKENS[int(r, TOKENS.length)]!, 'latin1'), b.subarray(i)]);
  },
  insertRandom: (b, r) => {
    const i = int(r, b.length + 1);
    const junk = Buffer.alloc(1 + int(r, 32));
    for (let k = 0; k < junk.length; k++) junk[k] = int(r, 256);
    return Buffer.concat([b.subarray(0, i), junk, b.subarray(i)]);
  },
  deleteRange: (b, r) => {
    const i = int(r, b.length + 1);
    const j = Math.min(b.length, i + 1 + int(r, 16));
    return Buffer.concat([b.subarray(0, i), b.subarray(j)]);
  },
  duplicateRange: (b, r) => {
    const i = int(r, b.length + 1);
    const j = Math.min(b.length, i + 1 + int(r, 64));
    return Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
  },
  amplify: (b, r) => {
    // Blow one region up to hit the size limits (long lines, many headers, big bodies).
    const i = int(r, b.length + 1);
    const j = Math.min(b.length, i + 1 + int(r, 40));
    const reps = 50 + int(r, 600);
    return Buffer.concat([b.subarray(0, i), ...Array.from({ length: reps }, () => b.subarray(i, j)), b.subarray(j)]);
  },
  endLineConfusion: (b, r) => {
    // Put an end-line with this or another transaction id somewhere.
    const m = /^MSRP (\S+)/.exec(b.toString('latin1', 0, 64));
    const tid = m && r() < 0.7 ? m[1]! : 'zzzz9999';
    const i = int(r, b.length + 1);
    const tail = ['$', '+', '#', 'x', ''][int(r, 5)]! + (r() < 0.7 ? '\r\n' : '');
    return Buffer.concat([b.subarray(0, i), Buffer.from(`\r\n-------${tid}${tail}`, 'latin1'), b.subarray(i)]);
  },
};

function splitPoints(len: number, r: () => number): number[] {
  const mode = r();
  if (mode < 0.1 && len < 4096) return Array.from({ length: Math.max(0, len - 1) }, (_, i) => i + 1); // byte by byte
  const n = int(r, 12);
  const pts = new Set<number>();
  for (let k = 0; k < n; k++) pts.add(int(r, len + 1));
  return [...pts].sort((a, b) => a - b);
}

interface Outcome {
  frames: Frame[];
  code: string | undefined;
}

function run(input: Buffer, cuts: number[]): Outcome {
  const p = new MsrpFrameParser({ maxBodySize: 64 * 1024, limits: { maxHeaderBlock: 8192, maxStartLine: 512, maxHeaders: 48 } });
  const frames: Frame[] = [];
  let prev = 0;
  try {
    for (const c of [...cuts, input.length]) {
      frames.push(...p.feed(input.subarray(prev, c)));
      prev = c;
    }
    p.end();
    return { frames, code: undefined };
  } catch (err) {
    if (err instanceof MsrpError) return { frames: [...frames, ...p.takeCompleted()], code: err.code };
    throw err;
  }
}

function key(o: Outcome): string {
  return `${o.code ?? 'ok'}|${o.frames.map((f) => serializeFrame(f).toString('base64')).join(',')}`;
}

export function loadSeeds(fixtureDir: string): Buffer[] {
  return readdirSync(fixtureDir)
    .filter((f) => f.endsWith('.msrp'))
    .sort()
    .map((f) => readFileSync(join(fixtureDir, f)));
}

/** `count` mutated inputs (same mutators as runFuzz), for fuzzing other layers. */
export function mutatedInputs(seed: number, count: number, fixtureDir: string): Buffer[] {
  const r = rng(seed);
  const seeds = loadSeeds(fixtureDir);
  const names = Object.keys(MUTATORS);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    let input = seeds[int(r, seeds.length)]!;
    for (let k = 1 + int(r, 3); k > 0; k--) input = MUTATORS[names[int(r, names.length)]!]!(input, r, seeds);
    out.push(input);
  }
  return out;
}

export function runFuzz(opts: FuzzOptions): FuzzStats {
  const r = rng(opts.seed);
  const seeds = loadSeeds(opts.fixtureDir);
  const names = Object.keys(MUTATORS);
  const stats: FuzzStats = {
    cases: 0,
    ms: 0,
    maxCaseMs: 0,
    parsedOk: 0,
    errorsByCode: {},
    mutations: {},
    framesSeen: 0,
    bytesFed: 0,
    heapBefore: process.memoryUsage().heapUsed,
    heapAfter: 0,
    heapPeak: 0,
    failures: [],
  };
  stats.heapPeak = stats.heapBefore;
  const t0 = performance.now();
  for (let i = 0; i < opts.cases; i++) {
    let input = seeds[int(r, seeds.length)]!;
    const rounds = 1 + int(r, 3);
    for (let k = 0; k < rounds; k++) {
      const name = names[int(r, names.length)]!;
      stats.mutations[name] = (stats.mutations[name] ?? 0) + 1;
      input = MUTATORS[name]!(input, r, seeds);
    }
    const cuts = splitPoints(input.length, r);
    const c0 = performance.now();
    const fail = (kind: FuzzFailure['kind'], detail: string): void => {
      if (stats.failures.length < 20) stats.failures.push({ caseIndex: i, kind, detail, inputBase64: input.toString('base64') });
    };
    try {
      const whole = run(input, []);
      const split = run(input, cuts);
      if (key(whole) !== key(split)) fail('split-mismatch', `whole=${whole.code ?? 'ok'}/${whole.frames.length} split=${split.code ?? 'ok'}/${split.frames.length}`);
      if (whole.code === undefined) {
        stats.parsedOk++;
        const again = run(Buffer.concat(whole.frames.map(serializeFrame)), []);
        if (again.code !== undefined || key(again) !== key(whole)) fail('roundtrip', `re-parse gave ${again.code ?? 'ok'}`);
      } else {
        stats.errorsByCode[whole.code] = (stats.errorsByCode[whole.code] ?? 0) + 1;
      }
      stats.framesSeen += whole.frames.length;
    } catch (err) {
      fail('crash', err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
    const dt = performance.now() - c0;
    if (dt > stats.maxCaseMs) stats.maxCaseMs = dt;
    if (dt > opts.perCaseMs) fail('slow', `${dt.toFixed(1)} ms`);
    stats.bytesFed += input.length;
    stats.cases++;
    if ((i & 1023) === 0) {
      const h = process.memoryUsage().heapUsed;
      if (h > stats.heapPeak) stats.heapPeak = h;
    }
    if (opts.onProgress && (i + 1) % (opts.progressEvery ?? 10_000) === 0) opts.onProgress(i + 1);
  }
  stats.ms = performance.now() - t0;
  stats.heapAfter = process.memoryUsage().heapUsed;
  if (stats.heapAfter > stats.heapPeak) stats.heapPeak = stats.heapAfter;
  return stats;
}
