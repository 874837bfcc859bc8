/** Short version of `npm run fuzz:sip`: mutated INVITEs never throw past the boundary. */
import t from 'tap';
import { decisionProblem, fuzz, mutate, rng, SEEDS } from '../../../bench/fuzz-sip-lib.js';

t.test('mutation is deterministic for a seed', async (t) => {
  const a = rng(7);
  const b = rng(7);
  t.equal(mutate(SEEDS[0]!, a), mutate(SEEDS[0]!, b));
});

t.test('the contract check rejects header injection', async (t) => {
  t.equal(decisionProblem({ action: 'proxy', remove: [], hdrs: 'X: 1\r\nbroken\r\n', failover: null, stage: 'proxy' }), 'bad request header lines');
  t.equal(decisionProblem({ action: 'reject', code: 403, reason: 'Forbidden', hdrs: '', stage: 'blacklist' }), null);
});

for (const seed of [1, 2024]) {
  t.test(`3,000 mutated INVITEs, seed ${seed}`, async (t) => {
    const s = fuzz(3000, seed);
    t.same(s.findings, [], 'no findings');
    t.ok(Object.keys(s.stages).length >= 4, `several stages reached: ${JSON.stringify(s.stages)}`);
    t.ok(s.textForms > 100, `proxy decisions in the text form read back as pf.cfg reads them: ${s.textForms}`);
  });
}
