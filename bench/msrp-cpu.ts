// CPU per relayed message of our relay alone (no Kamailio): a quick check while tuning.
// Not a test: prints relay CPU µs/msg (user + system of the relay process) per size.
// Env: RUNS (5), N (10000), RELAY_MAIN, RELAY_NODE_FLAGS (as bench:msrp).
import { startOurs, throughput } from './msrp-relay.js';

const RUNS = Number(process.env.RUNS ?? 5);
const N = Number(process.env.N ?? 10000);

async function main(): Promise<void> {
  const ours = await startOurs();
  try {
    for (const size of [100, 1024, 10240]) await throughput(ours, 1, 3000, size, false);
    for (const [size, n] of [[100, N], [1024, N], [10240, Math.round(N / 5)]] as const) {
      const us: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await throughput(ours, 1, n, size, false);
        if (r.lost) throw new Error(`lost ${r.lost}`);
        us.push((r.cpu / n) * 1e6);
      }
      us.sort((a, b) => a - b);
      process.stdout.write(`${size} B: relay CPU median ${us[us.length >> 1]!.toFixed(1)} µs/msg (${us.map(u => u.toFixed(1)).join(' ')})\n`);
    }
  } finally {
    await ours.stop();
  }
}

void main().catch(err => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
