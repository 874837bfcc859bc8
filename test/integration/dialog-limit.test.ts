/**
 * pf.cfg keeps at most PF_DIALOGS_MAX dialogs for Session-Replaces (pfdlg items, counted in
 * pfcount; docs/reliability.md "Kamailio memory"). Without the limit, answered calls with
 * distinct Contribution-IDs that never send BYE stay in shared memory until their items
 * expire (12 h), as many as their rate allows. Here the limit is 3 and items expire after
 * 3 s: of five answered calls held at once three dialogs are kept, the other two are
 * logged and not kept (the calls still complete); BYE and expiry both give the count back.
 */
import t from 'tap';
import { join } from 'node:path';
import { Lab, runDir } from '../../lab/lab.js';
import { call, Device, newInstance } from '../../lab/calls.js';
import { kamcmd } from '../../bench/soak-lib.js';
import { until } from '../../lab/proc.js';

const dir = runDir('it-dialog-limit');
const ctl = `unix:${join(dir, 'kamailio.ctl')}`;
const lab = await Lab.start({
  dir,
  defines: ['PF_DIALOGS_MAX=3', 'PF_DIALOG_HTABLE="pfdlg=>size=4;autoexpire=3;"', 'LAB_HTABLE_TIMER=1', `LAB_CTL="${ctl}"`],
});
const device = await Device.start({ dir, sipPort: lab.sipPort, user: 'carol', instance: newInstance(), behaviour: { kind: 'answer' }, ringing: false });
t.teardown(async () => {
  await device.stop();
  await lab.stop();
});

/** Items in an htable (kamcmd htable.stats: name, slots, all, min, max). */
function items(table: string): number {
  const out = kamcmd(ctl, 'htable.stats');
  const block = out.split(/\{/).find((b) => new RegExp(`name:\\s*${table}\\b`).test(b)) ?? '';
  return Number(/\ball:\s*(\d+)/.exec(block)?.[1] ?? NaN);
}
const counted = (): number => Number(/value:\s*(-?\d+)/.exec(kamcmd(ctl, 'htable.get', 'pfcount', 'dialogs'))?.[1] ?? 0);
let cids = 0;
const refused = (): Set<string> =>
  new Set([...lab.kamailio.proc.output.matchAll(/PF: PF_DIALOGS_MAX dialogs kept, not this one \[([^\]]+)\]/g)].map((m) => m[1] ?? ''));

t.test('five answered calls held at once: three dialogs kept, two refused; the BYEs give the count back', async (t) => {
  const calls = Array.from({ length: 5 }, () => call({ dir, sipPort: lab.sipPort, to: 'carol', contributionId: `flood-${++cids}` }, 4000));
  await until(async () => (refused().size + items('pfdlg') >= 5 ? true : undefined), 10_000, 'five dialogs confirmed');
  t.equal(items('pfdlg'), 3, 'pfdlg holds PF_DIALOGS_MAX items');
  t.equal(counted(), 3, 'the count matches');
  t.equal(refused().size, 2, 'two dialogs not kept, logged');
  const results = await Promise.all(calls);
  t.ok(results.every((r) => r.code === 0), 'every call completed (a dialog not kept is still relayed)');
  t.equal(items('pfdlg'), 0, 'the BYEs took the kept dialogs out');
  t.equal(counted(), 0, 'count back to 0');
});

t.test('expiry gives the count back', async (t) => {
  // a call whose caller is killed while holding it (sipp stopped after 2 s): ACKed, no BYE
  const r = await call({ dir, sipPort: lab.sipPort, to: 'carol', contributionId: `flood-${++cids}`, timeoutMs: 2000 }, 30_000);
  t.not(r.code, 0, 'the caller was stopped before its BYE');
  t.equal(r.final?.status, 200, 'answered');
  t.equal(counted(), 1, 'kept');
  await until(async () => (items('pfdlg') === 0 ? true : undefined), 15_000, 'pfdlg item expired');
  t.equal(counted(), 0, 'count back to 0 (event_route htable:expired:pfdlg)');
});
