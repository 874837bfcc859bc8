import t from 'tap';
import { geometricRates, highestPassing } from '../../../bench/ramp.js';

/** A load step against a system that takes `ceiling` calls/s; the probes made, in order. */
async function search(rates: Iterable<number>, refine: number, grain: number, ceiling: number) {
  const probes: string[] = [];
  const r = await highestPassing(rates, refine, grain, async (rate, refining) => {
    probes.push(`${rate}${refining ? 'r' : ''}`);
    return { ok: rate <= ceiling, rate };
  });
  return { ...r, probes };
}

const cases: Array<{ name: string; rates: number[]; refine: number; grain: number; ceiling: number; best: number; failedAt: number; probes: string[] }> = [
  { name: 'no refinement: the last step before the failure', rates: [100, 200, 300, 400], refine: 0, grain: 50, ceiling: 250, best: 200, failedAt: 300, probes: ['100', '200', '300'] },
  { name: 'two probes between 1000 and 1400', rates: [1000, 1400, 1700], refine: 2, grain: 50, ceiling: 1230, best: 1200, failedAt: 1300, probes: ['1000', '1400', '1200r', '1300r'] },
  { name: 'every step passes: nothing to refine', rates: [10, 20], refine: 2, grain: 10, ceiling: 99, best: 20, failedAt: 0, probes: ['10', '20'] },
  { name: 'the first step fails: bisect from 0', rates: [1000, 2000], refine: 1, grain: 50, ceiling: 100, best: 0, failedAt: 500, probes: ['1000', '500r'] },
  { name: 'no room between good and failed at this grain', rates: [100, 150], refine: 3, grain: 50, ceiling: 120, best: 100, failedAt: 150, probes: ['100', '150'] },
];
for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = await search(c.rates, c.refine, c.grain, c.ceiling);
    t.same({ best: r.best, failedAt: r.failedAt, probes: r.probes }, { best: c.best, failedAt: c.failedAt, probes: c.probes });
    t.equal(r.bestResult?.rate ?? 0, c.best, 'the best step\'s own result');
  });
}

t.test('geometric rates, rounded to 10, up to the maximum', async (t) => {
  t.same([...geometricRates(100, 1.4, 500)], [100, 140, 200, 280, 390]);
  t.same([...geometricRates(600, 1.4, 500)], []);
});
