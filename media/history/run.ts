// A run: objects of one session folder with consecutive UIDs, stored as one LMDB record
// by the embedded store (store.ts) and as one entry by the write queue (queue.ts). The
// relay records each event-loop turn's messages together (history-recorder.ts), and one
// record per folder per turn, instead of one per message, is what keeps recording cheap
// (docs/history.md "Where the cost of history goes").
//
// Binary, big-endian:
//   u8  version (1)
//   u32 count
//   count × object:
//     u16 length, bytes   Content-Type (UTF-8)
//     u16 length, bytes   idempotency key (UTF-8; length 0: none)
//     u8                  direction: 0 none, 1 received, 2 sent
//     f64                 when the relay saw it, ms since the epoch
//     u32 length, bytes   the object

import type { Direction } from './mss.js';

export interface RunObject {
  readonly contentType: string;
  readonly data: Buffer;
  readonly key?: string;
  readonly direction?: Direction;
  /** ms since the epoch. */
  readonly at: number;
}

const VERSION = 1;
const DIRECTIONS: readonly (Direction | undefined)[] = [undefined, 'received', 'sent'];
/** The fixed bytes of one object: three lengths, direction and time. */
const FIXED = 2 + 2 + 1 + 8 + 4;
/** The largest time a Date holds, in ms (ECMA-262 §21.4.1.1). */
const MAX_TIME = 8.64e15;

/** The Content-Type and key fit a run record (each at most 65535 bytes of UTF-8). */
export function fitsRun(contentType: string, key: string | undefined): boolean {
  return Buffer.byteLength(contentType) <= 0xffff && (key === undefined || Buffer.byteLength(key) <= 0xffff);
}

export function encodeRun(objects: readonly RunObject[]): Buffer {
  let size = 5;
  const types: number[] = [];
  const keys: number[] = [];
  for (const o of objects) {
    const t = Buffer.byteLength(o.contentType);
    const k = o.key === undefined ? 0 : Buffer.byteLength(o.key);
    if (t > 0xffff || k > 0xffff) throw new RangeError('run: Content-Type or key over 65535 bytes');
    types.push(t);
    keys.push(k);
    size += FIXED + t + k + o.data.length;
  }
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt8(VERSION, 0);
  buf.writeUInt32BE(objects.length, 1);
  let at = 5;
  objects.forEach((o, i) => {
    at = buf.writeUInt16BE(types[i]!, at);
    at += buf.write(o.contentType, at, 'utf8');
    at = buf.writeUInt16BE(keys[i]!, at);
    if (o.key !== undefined) at += buf.write(o.key, at, 'utf8');
    at = buf.writeUInt8(o.direction === 'received' ? 1 : o.direction === 'sent' ? 2 : 0, at);
    at = buf.writeDoubleBE(o.at, at);
    at = buf.writeUInt32BE(o.data.length, at);
    at += o.data.copy(buf, at);
  });
  return buf;
}

/** Objects counted by the header (0 when it is unreadable). */
export function runCount(buf: Uint8Array): number {
  return buf.length >= 5 && buf[0] === VERSION ? Buffer.from(buf.buffer, buf.byteOffset, buf.length).readUInt32BE(1) : 0;
}

/**
 * The objects of a run, in order; each `data` is a copy. Stops at the first object that
 * does not fit the bytes (a truncated or damaged record): `objects` then has fewer than
 * `count`, and the caller reports the missing ones.
 */
export function decodeRun(input: Uint8Array): { count: number; objects: RunObject[] } {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.length);
  const count = runCount(buf);
  const objects: RunObject[] = [];
  let at = 5;
  const fits = (n: number): boolean => at + n <= buf.length;
  while (objects.length < count) {
    if (!fits(2)) break;
    const t = buf.readUInt16BE(at);
    if (!fits(2 + t + 2)) break;
    const contentType = buf.toString('utf8', at + 2, at + 2 + t);
    at += 2 + t;
    const k = buf.readUInt16BE(at);
    if (!fits(2 + k + 1 + 8 + 4)) break;
    const key = k === 0 ? undefined : buf.toString('utf8', at + 2, at + 2 + k);
    at += 2 + k;
    const dir = buf.readUInt8(at);
    const when = buf.readDoubleBE(at + 1);
    const len = buf.readUInt32BE(at + 9);
    at += 13;
    // A time no Date can hold (NaN, past ±8.64e15 ms) is damage too.
    if (dir >= DIRECTIONS.length || !(Math.abs(when) <= MAX_TIME) || !fits(len)) break;
    const direction = DIRECTIONS[dir];
    objects.push({
      contentType, data: Buffer.from(buf.subarray(at, at + len)), at: when,
      ...(key === undefined ? {} : { key }), ...(direction === undefined ? {} : { direction }),
    });
    at += len;
  }
  return { count, objects };
}
