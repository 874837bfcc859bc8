/**
 * Random tokens (SIP tags, branches and Call-IDs, tickets, MSRP ids) from a pool of
 * cryptographically random bytes. `crypto.randomBytes(n)` per token allocates a buffer and
 * calls into OpenSSL each time: 5% of the B2BUA's CPU at its highest rate. The pool is
 * filled from the same CSPRNG 4 KiB at a time, and each byte is handed out once, so the
 * tokens are as unpredictable as before (RFC 3261 §19.3: tags and branches need at least
 * 32 random bits; ours have 48 or more).
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let used = POOL_BYTES;

function take(bytes: number): Buffer {
  if (!(Number.isInteger(bytes) && bytes > 0 && bytes <= POOL_BYTES)) throw new RangeError(`random token of ${bytes} bytes`);
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const out = pool.subarray(used, used + bytes);
  used += bytes;
  return out;
}

/** `bytes` random bytes as lower-case hex (2 characters each). */
export const randomHex = (bytes: number): string => take(bytes).toString('hex');

/** `bytes` random bytes as base64url, no padding (RFC 4648 §5). */
export const randomBase64url = (bytes: number): string => take(bytes).toString('base64url');
