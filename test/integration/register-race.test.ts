/**
 * The defect "on the first INVITE after a second and third device registered, the caller
 * got 100 then 200 with no 180, and the ringing device never got a CANCEL": register two or
 * three chat phones of a fresh user and call the moment the last REGISTER's 200 is in,
 * many rounds, on real Kamailio in proxy mode (one round: lab/register-race.ts).
 *
 * Round outcome asserted: every phone gets the INVITE (pf.register stored the device before
 * save() answered, so the fork has it), the caller gets a 180 from every phone and then the
 * 200 of the one that answers, and every other phone gets CANCEL.
 * - "answer on ringing", with the lab's 4 UDP workers: the answering phone answers once the
 *   caller has every phone's 180 (event driven, so "180 then 200" is the only legal order);
 * - "answer at once", with one UDP worker: it answers as soon as the INVITE arrives, racing
 *   the other phones' 180s; then a 180 may come after the 200 (not relayed, RFC 3261 §16.7
 *   step 5), but every other phone must still get CANCEL;
 * - "answer at once without a 180": the setup of the report (the benchmark's devices
 *   answer without ringing), with one UDP worker.
 * "At once" with several UDP workers is not a product guarantee: Kamailio 5.6.3's tm leaves
 * a phone without CANCEL in a few rounds in 25 (a 180 handled by another worker while the
 * 2xx cancels the other branches). `npm run lab:tm-race` measures that rate; docs/lab.md
 * explains it and how to avoid it. It is not asserted here.
 */
import t from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { LAB_POLICY } from '../../lab/xdm.js';
import { raceRound, type Mode, type RoundResult } from '../../lab/register-race.js';

const ROUNDS = 50;

const dir = runDir('it-register-race');
// Kamailio as the lab runs it (4 UDP workers), and with one UDP worker, where replies are
// handled one after the other
const labs = { 4: await Lab.start({ dir: `${dir}/four`, policy: LAB_POLICY }), 1: await Lab.start({ dir: `${dir}/one`, policy: LAB_POLICY, children: 1 }) };
t.teardown(() => Promise.all([labs[4].stop(), labs[1].stop()]));
t.setTimeout(300_000);

const MODES: readonly { mode: Mode; workers: 1 | 4; title: string }[] = [
  { mode: 'on-ringing', workers: 4, title: 'register, then answer once every phone rings' },
  { mode: 'at-once', workers: 1, title: 'register and answer at once, one UDP worker' },
  { mode: 'at-once-silent', workers: 1, title: 'register and answer at once without a 180, one UDP worker' },
];

for (const { mode, workers, title } of MODES) {
  t.test(`${title}: ${ROUNDS} rounds`, async (t) => {
    let late180 = 0;
    let noCancel = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const devices = 2 + (r % 2);
      const answerer = r % devices;
      let res: RoundResult;
      try {
        res = await raceRound(labs[workers], r, devices, mode);
      } catch (err) {
        t.fail(err instanceof Error ? err.message : String(err));
        continue;
      }
      const wanted = Array.from({ length: devices }, () => true);
      const cancelled = wanted.map((_, i) => i !== answerer);
      const ringers = mode === 'at-once-silent' ? devices - 1 : devices;
      if (mode === 'on-ringing') {
        t.same(res.statuses, [...Array.from({ length: devices }, () => 180), 200], `round ${r}: ${devices} x 180, then 200`);
      } else {
        t.equal(res.statuses[res.statuses.length - 1], 200, `round ${r}: 200 last`);
        t.ok(res.statuses.slice(0, -1).every((s) => s === 180), `round ${r}: only 180s before it`);
        if (res.statuses.length - 1 < ringers) late180++;
      }
      t.same(res.invited, wanted, `round ${r}: every phone got the INVITE`);
      t.same(res.cancelled, cancelled, `round ${r}: the phones that lost got CANCEL`);
      if (res.cancelled.filter((c, i) => !c && i !== answerer).length > 0) noCancel++;
    }
    if (mode !== 'on-ringing') t.comment(`rounds where a 180 came after the 200 (not relayed): ${late180}; with a phone left without CANCEL: ${noCancel} (of ${ROUNDS})`);
  });
}
