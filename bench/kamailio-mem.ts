/**
 * `npx tsx bench/kamailio-mem.ts` — Kamailio's memory in proxy mode, per registered
 * Contact, per held session and per call/s (docs/reliability.md "Kamailio memory").
 *
 * The lab of the soak (bench/soak-lib.ts: lab.cfg with the PF, a ctl socket, the callee
 * "bench" with two devices). Read over kamcmd at each step: shared memory in use
 * (core.shmmem real_used, with the allocator's overhead), private memory summed over
 * Kamailio's processes (pkg.stats used), usrloc's contacts, and the items of pf.cfg's
 * htables (htable.stats):
 *   1. idle, after the start;
 *   2. after CONTACTS users registered one Contact each;
 *   3. with HELD calls held at once (sipp uac-call.xml, each with its own Contribution-ID,
 *      held HOLD_S), read once their INVITE transactions are gone (tm keeps a finished
 *      transaction for wait_timer, 5 s): what a held session costs;
 *   4. after their BYEs, once those transactions are gone;
 *   5. during RATE calls/s of short calls (INVITE/200/ACK/BYE, no hold) for RATE_S: the
 *      transactions in flight, per call/s of rate.
 * Differences: (2-1)/CONTACTS, (3-4)/HELD, (5-4)/RATE. The largest shm allocation sites
 * during step 5 come from mod.stats (lab.cfg memdbg). pkg.stats shows each process's
 * private memory as last published by that process; proxy mode keeps no per-call state
 * in private memory, so its figures are context, not a per-call cost.
 *
 * Env: CONTACTS (2000), HELD (2000), HOLD_S (60), RATE (200), RATE_S (30), RUN_DIR.
 */
import { join, resolve } from 'node:path';
import { runDir, ROOT } from '../lab/lab.js';
import { Binding, newInstance, vars } from '../lab/calls.js';
import { CPM_DEVICE_PARAMS } from '../lab/sip.js';
import { runSipp } from '../lab/sipp.js';
import { startProxyLab, kamcmd, kamShm, kamStat, registerRetransmitting, sleep } from './soak-lib.js';

const CONTACTS = Number(process.env.CONTACTS ?? 2000);
const HELD = Number(process.env.HELD ?? 2000);
const HOLD_S = Number(process.env.HOLD_S ?? 60);
const RATE = Number(process.env.RATE ?? 200);
const RATE_S = Number(process.env.RATE_S ?? 30);
/** tm's wait_timer (5 s) and a margin: finished transactions are gone after it. */
const TX_GONE_MS = 8000;
const dir = resolve(process.env.RUN_DIR ?? runDir('kamailio-mem', join(ROOT, 'run')));
const KiB = 1024;

interface Reading {
  step: string;
  shm: number;
  pkg: number;
  contacts: number;
  pfdlg: number;
  pfsess: number;
}

const lab = await startProxyLab({ dir, children: 4 });

/** Private memory in use, summed over Kamailio's processes (pkg.stats: one "used" each). */
function pkgUsed(): number {
  return [...kamcmd(lab.ctl, 'pkg.stats').matchAll(/\bused:\s*(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}
function htItems(table: string): number {
  const block = kamcmd(lab.ctl, 'htable.stats').split('{').find((b) => new RegExp(`name:\\s*${table}\\b`).test(b)) ?? '';
  return Number(/\ball:\s*(\d+)/.exec(block)?.[1] ?? NaN);
}
const readings: Reading[] = [];
function read(step: string): Reading {
  const r = { step, shm: kamShm(lab.ctl).used, pkg: pkgUsed(), contacts: kamStat(lab.ctl, 'location_contacts'), pfdlg: htItems('pfdlg'), pfsess: htItems('pfsess') };
  readings.push(r);
  console.log(`  ${step.padEnd(34)} shm ${(r.shm / KiB).toFixed(0).padStart(8)} KiB  pkg ${(r.pkg / KiB).toFixed(0).padStart(7)} KiB  contacts ${r.contacts}  pfdlg ${r.pfdlg}  pfsess ${r.pfsess}`);
  return r;
}

console.log(`Kamailio memory, proxy mode; run dir ${dir}`);
await sleep(3000);
const idle = read('1 idle');

// 2. CONTACTS users, one Contact each (nobody listens on them: nothing calls these users)
for (let i = 0; i < CONTACTS; i += 50) {
  await Promise.all(
    Array.from({ length: Math.min(50, CONTACTS - i) }, async (_, j) => {
      const b = new Binding({ user: `mem${String(i + j).padStart(5, '0')}`, instance: newInstance(), params: CPM_DEVICE_PARAMS });
      const r = await registerRetransmitting(lab.sipPort, b.next(30000 + ((i + j) % 20000), 3600), 8000);
      if (r.status !== 200) throw new Error(`REGISTER ${i + j}: ${r.status} ${r.reason}`);
    }),
  );
}
// the REGISTER transactions end too (tm wait_timer)
await sleep(TX_GONE_MS);
const registered = read(`2 ${CONTACTS} contacts registered`);

// 3. HELD calls at once, each with its own Contribution-ID
const sippDir = join(dir, 'calls');
const heldRate = Math.min(200, HELD);
const held = runSipp({
  scenario: 'uac-call.xml',
  dir: sippDir,
  name: 'held',
  remote: `127.0.0.1:${lab.sipPort}`,
  vars: vars({ dir: sippDir, sipPort: lab.sipPort, to: 'bench', contributionId: 'mem-[pid]-[call_number]' }, 200, HOLD_S * 1000),
  calls: HELD,
  trace: false,
  extraArgs: ['-r', String(heldRate), '-l', String(HELD + 10), '-recv_timeout', '10000'],
  timeoutMs: (HELD / heldRate + HOLD_S + 60) * 1000,
});
await sleep((HELD / heldRate) * 1000 + TX_GONE_MS);
const holding = read(`3 ${HELD} calls held`);
const heldResult = await held;
await sleep(TX_GONE_MS);
const after = read('4 after their BYEs');

// 5. a steady rate of short calls
const short = runSipp({
  scenario: 'uac-call.xml',
  dir: sippDir,
  name: 'rate',
  remote: `127.0.0.1:${lab.sipPort}`,
  vars: vars({ dir: sippDir, sipPort: lab.sipPort, to: 'bench', contributionId: 'rate-[pid]-[call_number]' }, 200, 0),
  calls: RATE * RATE_S,
  trace: false,
  extraArgs: ['-r', String(RATE), '-recv_timeout', '10000'],
  timeoutMs: (RATE_S + 60) * 1000,
});
await sleep((RATE_S / 2) * 1000);
const steady: Reading[] = [];
for (let i = 0; i < 5; i++) {
  steady.push(read(`5 at ${RATE} calls/s (${i + 1}/5)`));
  await sleep(1000);
}
// where the shm of the calls in flight is: the largest allocation sites (mod.stats, memdbg)
const sites = [...kamcmd(lab.ctl, 'mod.stats', 'all', 'shm').matchAll(/^\s*([\w]+\(\d+\)):\s*(\d+)$/gm)]
  .map((m) => [m[1] ?? '', Number(m[2])] as const)
  .sort((a, b) => b[1] - a[1])
  .slice(0, 8);
const shortResult = await short;
await lab.stop();

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const perContact = (registered.shm - idle.shm) / CONTACTS;
const perHeld = (holding.shm - after.shm) / HELD;
const perHeldPkg = (holding.pkg - after.pkg) / HELD;
const perRate = (mean(steady.map((s) => s.shm)) - after.shm) / RATE;
console.log(`
Kamailio memory in proxy mode (lab.cfg, 4 children, TLSF, -m 512)
  held calls: sipp exit ${heldResult.code}; short calls: sipp exit ${shortResult.code}
  shm per registered Contact (usrloc): ${(perContact / KiB).toFixed(2)} KiB (${CONTACTS} contacts)
  shm per held session (pfdlg + pfsess items, no transaction left): ${(perHeld / KiB).toFixed(2)} KiB; pkg ${(perHeldPkg / KiB).toFixed(2)} KiB (${HELD} held, pfdlg ${holding.pfdlg}, pfsess ${holding.pfsess})
  shm per call/s of rate (transactions in flight, wait_timer included): ${(perRate / KiB).toFixed(1)} KiB (at ${RATE} calls/s)
  idle shm ${(idle.shm / KiB / KiB).toFixed(1)} MiB, pkg ${(idle.pkg / KiB / KiB).toFixed(1)} MiB over all processes
  largest shm allocation sites at ${RATE} calls/s (mod.stats all shm):
${sites.map(([site, bytes]) => `    ${site.padEnd(40)} ${(bytes / KiB).toFixed(0)} KiB`).join('\n')}`);
process.exit(0);
