/**
 * `npm run lab:tm-race`: how often Kamailio 5.6.3's tm leaves a ringing phone without
 * CANCEL when one phone answers at once and others ring (a measurement, not a test; its
 * cause and how to avoid it: docs/lab.md "A phone that rings on after the answer").
 *
 * Starts its own lab (proxy mode) with WORKERS UDP workers, then ROUNDS rounds of each
 * "at once" mode of lab/register-race.ts: two or three phones of a fresh user register,
 * the call goes out the moment the last 200 is in, one phone answers on the INVITE (with
 * and without sending 180 first). Prints, per mode, the rounds where a losing phone got
 * no CANCEL and where a 180 came after the 200. Exit 0 unless a round could not be run.
 *
 * Env: WORKERS (4), ROUNDS (25).
 */
import { Lab, runDir } from '../../lab/lab.js';
import { LAB_POLICY } from '../../lab/xdm.js';
import { CANCEL_WAIT_MS, raceRound, type Mode } from '../../lab/register-race.js';

const WORKERS = Number(process.env.WORKERS ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 25);
if (!(Number.isInteger(WORKERS) && WORKERS > 0 && Number.isInteger(ROUNDS) && ROUNDS > 0)) {
  console.error('tm-race: WORKERS and ROUNDS must be positive integers');
  process.exit(2);
}

const lab = await Lab.start({ dir: runDir('tm-race'), policy: LAB_POLICY, children: WORKERS });
console.log(`tm-race: Kamailio with ${WORKERS} UDP worker(s), ${ROUNDS} rounds per mode (a missing CANCEL costs ${CANCEL_WAIT_MS} ms)`);
let broken = 0;
try {
  for (const mode of ['at-once', 'at-once-silent'] as const satisfies readonly Mode[]) {
    let noCancel = 0;
    let late180 = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const devices = 2 + (r % 2);
      const answerer = r % devices;
      try {
        const res = await raceRound(lab, r, devices, mode);
        if (res.cancelled.some((c, i) => !c && i !== answerer)) noCancel++;
        const ringers = mode === 'at-once-silent' ? devices - 1 : devices;
        if (res.statuses.length - 1 < ringers) late180++;
      } catch (err) {
        broken++;
        console.log(`  round ${r}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    console.log(`${mode.padEnd(15)} a losing phone without CANCEL in ${noCancel} of ${ROUNDS} rounds; a 180 after the 200 in ${late180}`);
  }
} finally {
  await lab.stop();
}
process.exit(broken > 0 ? 1 : 0);
