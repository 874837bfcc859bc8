// Transaction ids for relayed frames (RFC 4975 §7.1: unique, hard to guess): random
// bytes drawn from a pool refilled 4 KiB at a time, since one crypto call per frame
// cost a tenth of the relay's CPU.
import { randomFillSync } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const ALPHA_CODES = Uint8Array.from(ALPHABET, c => c.charCodeAt(0));
const POOL = Buffer.alloc(4096);
let pos = POOL.length;

/** 16 alphanumerics (~95 bits). */
export function fastTransactionId(): string {
  if (pos + 16 > POOL.length) {
    randomFillSync(POOL);
    pos = 0;
  }
  const p = POOL;
  const a = ALPHA_CODES;
  const i = pos;
  pos += 16;
  // One string, not 16 intermediate ones.
  return String.fromCharCode(
    a[p[i]! % 62]!, a[p[i + 1]! % 62]!, a[p[i + 2]! % 62]!, a[p[i + 3]! % 62]!,
    a[p[i + 4]! % 62]!, a[p[i + 5]! % 62]!, a[p[i + 6]! % 62]!, a[p[i + 7]! % 62]!,
    a[p[i + 8]! % 62]!, a[p[i + 9]! % 62]!, a[p[i + 10]! % 62]!, a[p[i + 11]! % 62]!,
    a[p[i + 12]! % 62]!, a[p[i + 13]! % 62]!, a[p[i + 14]! % 62]!, a[p[i + 15]! % 62]!,
  );
}
