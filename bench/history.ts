// History on vs off benchmark (npm run bench:history). Not a test: prints figures.
//
// Messages per second through the relay, 1 originator -> 1 device, 100-byte CPIM chat
// messages, with the session recorded (CR 8.5) and history:
//   off   --history off
//   lmdb  the embedded LMDB store (the default)
//   imap  the write queue in front of a private Dovecot (docs/history.md)
// Each figure is the median of RUNS runs with min and max, the three cases interleaved
// (off, lmdb, imap, off, ...) so they share the machine's background load. The ratios are
// paired, run by run. For imap it also gives the time until the MSS holds every message
// (the relay does not wait for it: that is the point of the queue), and the rate at which
// the queue fills the MSS with one session and with LANES sessions side by side.
//
// Env: RUNS (5), N (2000), WINDOW (32), SIZE (100), MODES (off,lmdb,imap), LANES (4: MSS connections of the imap relay),
// RELAY_NODE_ARGS (node flags for the relays, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": NODE_OPTIONS refuses --cpu-prof).

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImapFlow } from 'imapflow';
import { startDovecot, type Dovecot } from '../lab/dovecot.js';
import { freePort } from '../lab/proc.js';
import { encodeComponent } from '../media/history/mailbox-name.js';
import { RelayControlClient } from '../media/relay/control-client.js';
import { LoadPeer, blast } from './msrp-load.js';
import { bindPeer, cpimBody, cpuSeconds, sdp, uriFor, waitListening } from './msrp-relay.js';
import { median } from './stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUNS = Number(process.env.RUNS ?? 5);
const N = Number(process.env.N ?? 2000);
const WINDOW = Number(process.env.WINDOW ?? 32);
const SIZE = Number(process.env.SIZE ?? 100);
/** MSS connections (queue lanes) of the imap relay. */
const LANES = Number(process.env.LANES ?? 4);
export const CONVERSATION = 'bench-conv';

export type Mode = 'off' | 'lmdb' | 'imap';
/** The cases run, `off` first (the ratios are to it). */
const MODES = (process.env.MODES ?? 'off,lmdb,imap').split(',') as Mode[];

export interface Relay {
  mode: Mode;
  child: ChildProcess;
  ctl: RelayControlClient;
  msrpPort: number;
  calls: number;
}

/** A relay child with history `mode`; `wrapper` runs it under another program (valgrind). */
export async function startRelay(mode: Mode, dir: string, mss: Dovecot, wrapper: string[] = []): Promise<Relay> {
  const msrpPort = await freePort();
  const controlPort = await freePort();
  const history = {
    off: ['--history', 'off'],
    lmdb: ['--history', join(dir, `${mode}.mdb`)],
    imap: ['--history-store', 'imap', '--mss-host', mss.host, '--mss-port', String(mss.port), '--mss-user', mss.user,
      '--mss-tls', 'none', '--mss-connections', String(LANES), '--history-queue', join(dir, 'queue.mdb')],
  }[mode];
  const nodeArgs = process.env.RELAY_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const argv = [process.execPath, ...nodeArgs, '--import', 'tsx', join(ROOT, 'media/main.ts'),
    '--msrp-port', String(msrpPort), '--control-port', String(controlPort), ...history];
  const [cmd, ...args] = [...wrapper, ...argv] as [string, ...string[]];
  const child = spawn(cmd, args, {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_ENV: 'production', MSS_PASSWORD: mss.password },
  });
  child.stdout!.resume();
  const startMs = wrapper.length > 0 ? 600_000 : undefined; // valgrind starts Node slowly
  await waitListening(controlPort, child, startMs);
  await waitListening(msrpPort, child, startMs);
  return { mode, child, ctl: await RelayControlClient.connect('127.0.0.1', controlPort), msrpPort, calls: 0 };
}

export async function stopRelay(r: Relay): Promise<void> {
  await r.ctl.close();
  r.child.kill('SIGTERM');
  await new Promise(res => r.child.once('exit', res));
}

interface Run {
  rate: number;
  lost: number;
  cpuUs: number;
  /** imap: seconds from the first message sent until the MSS held them all. */
  caughtUp?: number;
}

/** Messages in the session's folder on the MSS (STATUS, RFC 3501 §6.3.10). */
export async function mssCount(c: ImapFlow, contributionId: string): Promise<number> {
  try {
    const st = await c.status([encodeComponent(CONVERSATION), encodeComponent(contributionId)], { messages: true });
    return st ? (st.messages ?? 0) : 0;
  } catch {
    return 0;
  }
}

/** One session: originator and device connected, recorded. */
export async function session(r: Relay): Promise<{ callId: string; a: LoadPeer; b: LoadPeer; toPath: string }> {
  const callId = `${r.mode}-${++r.calls}`;
  const a = await LoadPeer.connect(r.msrpPort, uriFor('a'));
  const o = await r.ctl.offer({
    'call-id': callId, sdp: sdp(a.localUri), policy: 'C', record: true,
    'conversation-id': CONVERSATION, 'contribution-id': callId, 'served-user': 'sip:bob@example.net',
  });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  const b = await LoadPeer.connect(r.msrpPort, uriFor('b'));
  const ans = await r.ctl.answer({ 'call-id': callId, leg: 'd0', sdp: sdp(b.localUri) });
  if (ans.result !== 'ok') throw new Error(ans['error-reason']);
  await bindPeer(b, o['device-relay-uri']);
  await bindPeer(a, o['relay-uri']);
  return { callId, a, b, toPath: o['relay-uri'] };
}

/** N messages in total over `sessions` sessions at once. */
async function run(r: Relay, imap: ImapFlow, sessions = 1): Promise<Run> {
  const ss = [];
  for (let i = 0; i < sessions; i++) ss.push(await session(r));
  const per = Math.floor(N / sessions);
  const body = cpimBody(SIZE, 'sip:carol@example.net');
  const pids = [r.child.pid!];
  const c0 = cpuSeconds(pids);
  const t0 = process.hrtime.bigint();
  const sending = ss.map(x => blast(x.a, { count: per, body, contentType: 'message/cpim', toPath: x.toPath, fromPath: x.a.localUri, window: WINDOW }));
  let lost = 0;
  for (const x of ss) {
    try {
      await x.b.until(() => x.b.stats.messages >= per, 60_000, `${per} messages (${r.mode})`);
    } catch {
      lost += Math.max(0, per - x.b.stats.messages);
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(pids) - c0;
  if (lost === 0) await Promise.all(sending);
  let caughtUp: number | undefined;
  if (r.mode === 'imap') {
    // Each folder: session info object + its messages; polled, bounded.
    const deadline = Date.now() + 300_000;
    for (const x of ss) {
      while ((await mssCount(imap, x.callId)) < per + 1 && Date.now() < deadline) await new Promise(res => setTimeout(res, 50));
    }
    caughtUp = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  for (const x of ss) {
    x.a.close();
    x.b.close();
    await r.ctl.delete({ 'call-id': x.callId });
  }
  const total = per * sessions;
  return { rate: total / seconds, lost, cpuUs: (cpu / total) * 1e6, ...(caughtUp === undefined ? {} : { caughtUp }) };
}

const fmt = (n: number, d = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const spread = (xs: number[], d = 0): string =>
  xs.length ? `${fmt(median(xs), d)} (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})` : 'n/a';

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-history-'));
  chmodSync(dir, 0o755); // searchable by Dovecot's account (lab/dovecot.ts: nobody when run as root)
  const mss = await startDovecot({ dir: join(dir, 'dovecot') });
  const relays: Relay[] = [];
  const imap = new ImapFlow({ host: mss.host, port: mss.port, secure: false, doSTARTTLS: false, auth: { user: mss.user, pass: mss.password }, logger: false });
  try {
    for (const m of MODES) relays.push(await startRelay(m, dir, mss));
    await imap.connect();
    // Warm-up (JIT, connections, the MSS's first folder): not measured.
    for (const r of relays) await run(r, imap);
    const results = new Map<Mode, Run[]>(relays.map(r => [r.mode, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const r of relays) {
        const x = await run(r, imap);
        results.get(r.mode)!.push(x);
        process.stderr.write(`  run ${i + 1} ${r.mode}: ${fmt(x.rate)} msg/s, lost ${x.lost}, relay CPU ${fmt(x.cpuUs, 1)} us/msg` +
          `${x.caughtUp !== undefined ? `, MSS caught up after ${fmt(x.caughtUp, 2)} s` : ''}\n`);
      }
    }
    const good = (m: Mode): Run[] => results.get(m)!.filter(x => x.lost === 0);
    const ratio = (m: Mode): number[] => results.get(m)!.map((x, i) => {
      const off = results.get('off')![i]!;
      return x.lost === 0 && off.lost === 0 ? x.rate / off.rate : NaN;
    }).filter(Number.isFinite);
    const rows = [
      `History on vs off: ${N} messages of ${SIZE} B per run, 1 originator -> 1 device, window ${WINDOW}, ${RUNS} runs, median (min–max)`,
      '',
      '| history | messages/s | ratio to off (paired) | relay CPU µs/msg | lost | MSS holds all after (s) |',
      '|---|---|---|---|---|---|',
    ];
    for (const m of MODES) {
      const rs = good(m);
      const lost = results.get(m)!.reduce((n, x) => n + x.lost, 0);
      rows.push(`| ${m} | ${spread(rs.map(x => x.rate))} | ${m === 'off' ? '1' : spread(ratio(m), 2)} | ${spread(results.get(m)!.map(x => x.cpuUs), 1)} | ${lost} | ${m === 'imap' ? spread(rs.map(x => x.caughtUp ?? NaN), 2) : '–'} |`);
    }
    // The MSS side: how fast the queue drains with one session (one lane) and with
    // LANES sessions (spread over the lanes, one MSS connection each).
    const imapRelay = relays.find(r => r.mode === 'imap');
    const drain: Record<'one' | 'many', number[]> = { one: [], many: [] };
    for (let i = 0; imapRelay && i < Math.min(RUNS, 3); i++) {
      for (const [k, n] of [['one', 1], ['many', LANES]] as const) {
        const x = await run(imapRelay, imap, n);
        if (x.lost === 0 && x.caughtUp) drain[k].push(N / x.caughtUp);
        process.stderr.write(`  drain ${n} session(s): ${fmt(N / (x.caughtUp ?? NaN))} msg/s onto the MSS\n`);
      }
    }
    if (imapRelay) {
      rows.push('', `MSS write rate (messages/s onto Dovecot until it holds all ${N}), ${LANES} MSS connections: ` +
        `1 session ${spread(drain.one)}, ${LANES} sessions ${spread(drain.many)}`);
    }
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    await imap.logout().catch(() => undefined);
    for (const r of relays) await stopRelay(r);
    await mss.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  void main().catch(err => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
