/**
 * `npm run lab:tour`: a scripted tour of a running lab (lab/tour.ts): a chat that forks to
 * two phones, a blacklisted caller, do-not-disturb, an MMTEL-only phone kept out, OPTIONS
 * and MESSAGE. Prints what each case expected and what happened; exit 1 on any mismatch.
 *
 *   npm run lab:tour [-- --verbose]      (--verbose: every line the phones and callers print)
 * Env: LAB_SIP_PORT (else the running lab's run/lab/lab.json, else 5060).
 */
import { parseArgs } from 'node:util';
import { labPorts } from '../../lab/lab-state.js';
import { runTour } from '../../lab/tour.js';

const { values } = parseArgs({ options: { verbose: { type: 'boolean', default: false } } });
const { sipPort, from } = labPorts();
console.log(`tour: the lab's Kamailio at 127.0.0.1:${sipPort} (from ${from})`);
try {
  const cases = await runTour({ sipPort, out: (l) => console.log(l), verbose: values.verbose });
  const bad = cases.filter((c) => !c.ok);
  console.log(`tour: ${cases.length - bad.length} of ${cases.length} cases as expected${bad.length ? `; mismatches: ${bad.map((c) => c.title).join('; ')}` : ''}`);
  process.exit(bad.length ? 1 : 0);
} catch (err) {
  console.error(`tour: ${err instanceof Error ? err.message : String(err)} (is the lab up? npm run lab)`);
  process.exit(1);
}
