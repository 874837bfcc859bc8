/**
 * `npm run lab:tour` (scripts/lab/tour.ts) against a lab as `npm run lab` runs it (the lab's
 * policy, the demo users' documents): every case as expected, exit 0. In proxy mode, and
 * unchanged in B2BUA mode (`npm run lab -- --mode b2bua`): the tour only sees SIP and MSRP.
 */
import t from 'tap';
import { join } from 'node:path';
import { Lab, ROOT, runDir } from '../../lab/lab.js';
import { seedDemoUsers } from '../../lab/lab-state.js';
import { Proc } from '../../lab/proc.js';
import { LAB_POLICY } from '../../lab/xdm.js';

for (const mode of ['proxy', 'b2bua'] as const) {
  t.test(`the tour in ${mode} mode: six cases, each as expected`, async (t) => {
    const dir = runDir(`it-tour-${mode}`);
    const lab = await Lab.start({ dir, policy: LAB_POLICY, mode });
    t.teardown(() => lab.stop());
    t.same(await seedDemoUsers(lab.service), [], 'demo documents stored');
    const tour = new Proc('tour', process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'lab', 'tour.ts')], {
      cwd: ROOT,
      env: { ...process.env, LAB_SIP_PORT: String(lab.sipPort) },
      logFile: join(dir, 'tour.log'),
    });
    const code = await tour.exited;
    if (code !== 0) t.comment(tour.output);
    t.equal(code, 0, 'exit 0');
    t.match(tour.output, `tour: the lab's Kamailio at 127.0.0.1:${lab.sipPort} (from LAB_SIP_PORT)`);
    t.equal(tour.output.match(/^ {4}ok$/gm)?.length, 6, 'six cases ok');
    t.notMatch(tour.output, /MISMATCH/);
    t.match(tour.output, /tour: 6 of 6 cases as expected\n/);
    // what a user sees for the blacklisted caller
    t.match(tour.output, '[2] sip:spam@example.net calls bob, who blacklists it\n    expected: 403 Warning: 399 pf.example.net "122 Function not allowed"\n    happened: 403 Warning: 399 pf.example.net "122 Function not allowed"\n    ok\n');
  });
}
