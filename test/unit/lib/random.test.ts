// lib/random.ts: tokens of the asked length, never repeated, every byte value reachable.
import t from 'tap';
import { randomBase64url, randomHex } from '../../../lib/random.js';

t.test('lengths and alphabets', async (t) => {
  for (const n of [1, 6, 8, 10, 16, 4096]) {
    t.match(randomHex(n), new RegExp(`^[0-9a-f]{${2 * n}}$`), `hex of ${n} bytes`);
    t.equal(Buffer.from(randomBase64url(n), 'base64url').length, n, `base64url of ${n} bytes`);
  }
  t.match(randomBase64url(12), /^[A-Za-z0-9_-]{16}$/);
});

t.test('bad lengths are refused', async (t) => {
  for (const n of [0, -1, 1.5, 4097, Number.NaN]) t.throws(() => randomHex(n), RangeError, String(n));
});

t.test('many tokens across several refills: no repeat, bytes spread', async (t) => {
  const seen = new Set<string>();
  const counts = new Array<number>(256).fill(0);
  for (let i = 0; i < 20_000; i++) {
    const h = randomHex(8);
    seen.add(h);
    for (const b of Buffer.from(h, 'hex')) counts[b]!++;
  }
  t.equal(seen.size, 20_000, 'no token twice');
  // 160,000 bytes: about 625 per value; a fair source stays far inside these bounds
  t.ok(Math.min(...counts) > 400 && Math.max(...counts) < 900, `byte counts ${Math.min(...counts)}..${Math.max(...counts)}`);
});
