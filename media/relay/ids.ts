// Transaction ids for relayed frames (RFC 4975 §7.1: unique, hard to guess): random
// bytes drawn from a pool refilled 4 KiB at a time, since one crypto call per frame
// cost a tenth of the relay's CPU.
import { randomFillSync } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const POOL = Buffer.alloc(4096);
let pos = POOL.length;

/** 16 alphanumerics (~95 bits). */
export function fastTransactionId(): string {
  if (pos + 16 > POOL.length) {
    randomFillSync(POOL);
    pos = 0;
  }
  let s = '';
  for (let i = 0; i < 16; i++) s += ALPHABET[POOL[pos++]! % 62];
  return s;
}
