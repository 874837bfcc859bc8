// The pending-delivery claim's decision (plugin/b2bua/deferred/claim.ts), as a case table.
import t from 'tap';
import { decideClaim, type ClaimDecision } from '../../../../plugin/b2bua/deferred/claim.js';

const cases: readonly { name: string; holder: string | null; alive: boolean | undefined; want: ClaimDecision }[] = [
  { name: 'no claim: taken', holder: null, alive: undefined, want: { take: true, why: 'free' } },
  { name: 'no claim, lease not asked: taken', holder: null, alive: false, want: { take: true, why: 'free' } },
  { name: 'its own claim (a restart of the same node): taken', holder: 'node-a', alive: undefined, want: { take: true, why: 'own' } },
  { name: 'its own claim, even if its lease reads out: taken', holder: 'node-a', alive: false, want: { take: true, why: 'own' } },
  { name: 'another node, its lease held: refused', holder: 'node-b', alive: true, want: { take: false, why: 'held' } },
  { name: 'another node, its lease ran out: taken over', holder: 'node-b', alive: false, want: { take: true, why: 'takeover' } },
  { name: 'another node, its lease unreadable: refused', holder: 'node-b', alive: undefined, want: { take: false, why: 'held' } },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    t.same(decideClaim('node-a', c.holder, c.alive), c.want);
  });
}
