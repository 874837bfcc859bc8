// Short fuzz run for CI (npm run fuzz:msrp runs >= 100,000 cases).
import t from 'tap';
import { runFuzz } from '../../../bench/fuzz-msrp-core.js';
import { FIXTURE_DIR } from '../../fixtures/msrp/helpers.js';

t.test('3,000 mutated frames: only coded errors, split-invariant, round trip, bounded time', async (t) => {
  const seed = 20260101;
  const s = runFuzz({ cases: 3000, seed, perCaseMs: 500, fixtureDir: FIXTURE_DIR });
  t.equal(s.cases, 3000);
  t.same(s.failures, [], `seed ${seed}: no failures`);
  t.ok(s.parsedOk > 100, `${s.parsedOk} mutated inputs still parsed`);
  t.ok(Object.keys(s.errorsByCode).length >= 5, `error codes seen: ${Object.keys(s.errorsByCode).join(' ')}`);
  t.ok(s.heapPeak - s.heapBefore < 64 * 1024 * 1024, 'heap bounded');
});
