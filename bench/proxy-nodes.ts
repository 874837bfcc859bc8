/**
 * `npm run bench:proxy:nodes` — proxy mode on two nodes against one, on the same engine
 * (not a test; docs/deployment.md §11, §12).
 *
 * The pieces of bench:proxy (bench/proxy.ts): sipp whole calls (lab/sipp/uac-call.xml) to
 * a user with 2 devices (one answers and lingers for Timer J after the BYE, one rings and
 * gets CANCEL), stepped rates, the highest rate with zero failed calls, the decision
 * round trip from the services' pf.invite histograms. Here each configuration is a
 * MultiLab (lab/lab.ts) of NODES Kamailio nodes, each with its own service instance, all on
 * one private three-master Redis Cluster (no replicas): 1 node is the baseline on the same
 * engine. The devices register through node 1 (the registrar is shared); at each step the
 * calls are spread evenly over the nodes' Kamailio (one sipp per node at rate/NODES, run at
 * once), and a step is ok when every sipp completed all its calls. The decision p99 is over
 * the histograms of every instance summed.
 *
 * Env: NODES (comma list, 1..3; default 1,2), REPS (1), STEP_S (5), RATES (comma list),
 * REFINE bisection probes after the first failed step (2), DECISION_RATE (1000, total over
 * the nodes), CHILDREN (Kamailio children per node; 4), LINGER_MS (Timer J).
 * Do not run it beyond a smoke run (RATES=20,40 STEP_S=2) while the machine is shared.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MultiLab, runDir } from '../lab/lab.js';
import { Device, newInstance, vars, TIMER_J_MS } from '../lab/calls.js';
import { runSipp } from '../lab/sipp.js';
import { highestPassing } from './ramp.js';
import { median } from './stats.js';
import { histMinus, histogram, quantileMs, type Hist } from './decision-histogram.js';

const NODES = (process.env.NODES ?? '1,2').split(',').map(Number);
for (const n of NODES) if (!Number.isInteger(n) || n < 1 || n > 3) throw new Error(`NODES: 1..3, not ${n}`);
const REPS = Number(process.env.REPS ?? 1);
const STEP_S = Number(process.env.STEP_S ?? 5);
const RATES = (process.env.RATES ?? '1000,1400,1700,2000,2400,2800,3200,3600,4000,4500,5000,5500').split(',').map(Number);
const REFINE = Number(process.env.REFINE ?? 2);
const DECISION_RATE = Number(process.env.DECISION_RATE ?? 1000);
const CHILDREN = Number(process.env.CHILDREN ?? 4);
const LINGER_MS = Number(process.env.LINGER_MS ?? TIMER_J_MS);

interface Setup {
  readonly lab: MultiLab;
  readonly devices: Device[];
  readonly dir: string;
  stop(): Promise<void>;
}

async function setup(nodes: number, dir: string): Promise<Setup> {
  // run as root, Redis runs as nobody (lab/redis.ts): it must reach its folder
  mkdirSync(dir, { recursive: true });
  chmodSync(root, 0o711);
  const lab = await MultiLab.start({ dir, nodes, redisReplicas: 0, children: CHILDREN, serviceLogLevel: 'warn', rpcTimeoutMs: 2000 });
  const sipPort = lab.node(0).kamailio.sipPort;
  const devices: Device[] = [];
  try {
    devices.push(await Device.start({ dir, sipPort, user: 'bench', instance: newInstance(), behaviour: { kind: 'linger', lingerMs: LINGER_MS }, ringing: false, trace: false }));
    devices.push(await Device.start({ dir, sipPort, user: 'bench', instance: newInstance(), behaviour: { kind: 'ring' }, ringing: false, trace: false }));
  } catch (err) {
    await Promise.all(devices.map((d) => d.stop()));
    await lab.stop();
    throw err;
  }
  return {
    lab,
    devices,
    dir,
    stop: async () => {
      await Promise.all(devices.map((d) => d.stop()));
      await lab.stop();
    },
  };
}

let stepNo = 0;

/** `rate` calls/s in total for STEP_S seconds, spread over the nodes; ok when no call failed anywhere. */
async function step(s: Setup, rate: number): Promise<{ ok: boolean; detail: string }> {
  const n = s.lab.nodes.length;
  const each = Math.max(1, Math.round(rate / n));
  const calls = Math.max(1, Math.round(each * STEP_S));
  const no = ++stepNo;
  const results = await Promise.all(
    s.lab.nodes.map((node, i) =>
      runSipp({
        scenario: 'uac-call.xml',
        dir: join(s.dir, `calls-${i + 1}`),
        remote: `127.0.0.1:${node.kamailio.sipPort}`,
        vars: vars({ dir: s.dir, sipPort: node.kamailio.sipPort, to: 'bench', contributionId: `bench-n${i + 1}-[pid]-[call_number]` }, 200, 0),
        calls,
        extraArgs: ['-r', String(each), '-rp', '1000', '-recv_timeout', '10000'],
        timeoutMs: (STEP_S + 40) * 1000,
        name: `load-${rate}-${no}-n${i + 1}`,
        trace: false,
      }),
    ),
  );
  const failed = results.map((r, i) => (r.code === 0 ? '' : `${s.lab.nodes[i]!.name}: exit ${String(r.code)} ${/Failed call[^\n]*/.exec(r.output)?.[0] ?? ''}`.trim())).filter(Boolean);
  return { ok: failed.length === 0, detail: failed.join('; ') };
}

/** The highest total rate with zero failed calls (bench/ramp.ts). */
async function maxRate(s: Setup, label: string): Promise<number> {
  const { best } = await highestPassing(RATES, REFINE, 50, async (rate, refining) => {
    const r = await step(s, rate);
    console.log(`  ${label} ${rate} calls/s${refining ? ' (refine)' : ''}: ${r.ok ? 'ok' : `FAILED (${r.detail})`}`);
    return r;
  });
  return best;
}

/** The pf.invite histograms of every instance, summed (same buckets everywhere). */
async function decisionHist(s: Setup): Promise<Hist> {
  const hs = await Promise.all(s.lab.nodes.map(async (n) => histogram(await n.service.metrics(), 'pf.invite')));
  return hs.reduce((a, h) => (a.bounds.length === 0 ? h : { bounds: a.bounds, cum: a.cum.map((c, i) => c + (h.cum[i] ?? 0)), count: a.count + h.count }));
}

const spread = (xs: number[], digits = 0): string =>
  `${median(xs).toFixed(digits)} (min ${Math.min(...xs).toFixed(digits)}, max ${Math.max(...xs).toFixed(digits)})`;

const root = runDir('bench-proxy-nodes');
const label = (n: number): string => `${n} node${n === 1 ? '' : 's'}`;
const rates = new Map(NODES.map((n) => [n, [] as number[]]));
const p99 = new Map(NODES.map((n) => [n, [] as number[]]));
const p50 = new Map(NODES.map((n) => [n, [] as number[]]));
const allOk = new Map(NODES.map((n) => [n, [] as boolean[]]));

for (let rep = 1; rep <= REPS; rep++) {
  console.log(`repetition ${rep}/${REPS}`);
  // interleaved, the order rotating with the repetition
  const order = NODES.map((_, i) => NODES[(i + rep - 1) % NODES.length]!);
  for (const n of order) {
    const s = await setup(n, join(root, `nodes${n}-${rep}`));
    try {
      rates.get(n)!.push(await maxRate(s, label(n)));
      const before = await decisionHist(s);
      const r = await step(s, DECISION_RATE);
      const d = histMinus(await decisionHist(s), before);
      p50.get(n)!.push(quantileMs(d, 0.5));
      p99.get(n)!.push(quantileMs(d, 0.99));
      allOk.get(n)!.push(r.ok);
      console.log(`  ${label(n)} pf.invite at ${DECISION_RATE}/s (${d.count} decisions, calls ${r.ok ? 'all ok' : 'some failed'}): p50 ${quantileMs(d, 0.5).toFixed(3)} ms, p99 ${quantileMs(d, 0.99).toFixed(3)} ms`);
    } finally {
      await s.stop();
    }
  }
}

console.log(`
Proxy mode, ${NODES.map(label).join(' vs ')} on one three-master Redis Cluster (MultiLab: each node its own Kamailio and service instance),
calls spread evenly over the nodes' Kamailio; ${REPS} repetition(s), ${STEP_S} s per rate step, rates ${RATES.join('/')} calls/s (+${REFINE} bisection probes),
${CHILDREN} Kamailio children per node, answering device lingers ${LINGER_MS} ms (median (min, max); highest step with zero failed calls)
`);
for (const n of NODES) {
  console.log(`  ${label(n).padEnd(8)} highest rate            ${spread(rates.get(n)!)} calls/s`);
  console.log(`  ${label(n).padEnd(8)} pf.invite p50 / p99 at ${DECISION_RATE}/s  ${spread(p50.get(n)!, 3)} / ${spread(p99.get(n)!, 3)} ms (calls all completed: ${allOk.get(n)!.map(String).join(', ')})`);
}
console.log(`run directory: ${root}`);
