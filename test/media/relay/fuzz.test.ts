// A small relay fuzz run (the full one is `npm run fuzz:msrp-relay`, 100,000 cases).
import t from 'tap';
import { fuzzRelay } from '../../../bench/msrp-relay-fuzz.js';

t.test('mutated frames through a live relay: no crash, no hang, state drained', async t => {
  const rep = await fuzzRelay({ cases: 1500, seed: 20261124 });
  t.equal(rep.cases, 1500);
  t.ok(rep.relayed > 300, `${rep.relayed} frames relayed, ${rep.responses} responses`);
  t.same(rep.uncaught, [], 'no uncaught exception');
  t.equal(rep.hung, 0, 'the relay finished every connection');
  t.equal(rep.probeFailures, 0, 'a clean message crossed the relay after every 10 rounds');
  t.equal(rep.sessionsLeft, 0, 'every session deleted');
  t.ok(rep.heapEndMiB - rep.heapStartMiB < 64, `heap ${rep.heapStartMiB.toFixed(1)} -> ${rep.heapEndMiB.toFixed(1)} MiB`);
});
