/**
 * Floods (docs/deployment.md "Floods"): lab.cfg's pike check on real Kamailio. With the
 * lab's loopback exemption lifted (LAB_PIKE_LOOPBACK) and a density of 5 REGISTERs per
 * 2 s, a burst of 30 from one address is answered at first, then dropped without a reply,
 * and Kamailio logs the flood.
 */
import t from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { register } from '../../lab/sip.js';

const lab = await Lab.start({ dir: runDir('it-pike'), relay: false, defines: ['LAB_PIKE_LOOPBACK', 'LAB_PIKE_DENSITY=5'] });
t.teardown(() => lab.stop());

t.test('a REGISTER burst from one address: the first ones answered, the rest dropped and logged', async (t) => {
  const outcomes = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      register(lab.sipPort, { user: `flood${i}`, contactPort: 40000 + i, timeoutMs: 1500 }).then(
        (r) => r.status,
        () => 'dropped' as const,
      ),
    ),
  );
  const answered = outcomes.filter((o) => o === 200).length;
  const dropped = outcomes.filter((o) => o === 'dropped').length;
  t.ok(answered >= 1, `some answered (${answered})`);
  t.ok(dropped >= 10, `the flood dropped (${dropped} of 30)`);
  await lab.kamailio.proc.waitFor(/pike: REGISTER flood from 127\.0\.0\.1, dropped/, 5000);
  t.pass('Kamailio logged the flood');
});
