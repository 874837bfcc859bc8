// `npm run bench:history:instructions`: what recording history (CR 8.5) costs the relay
// per message, counted in instructions by valgrind's callgrind (not a test).
//
// The set-up of `npm run bench:history` (one recorded session, 1 originator -> 1 device,
// SIZE-byte CPIM chat messages, window WINDOW), with each relay (history off, the LMDB
// store, the IMAP write queue in front of a private Dovecot) run under callgrind with
// collection off. Collection is switched on (callgrind_control) only around N messages
// sent after a warm-up, so start-up, JIT warm-up and the session set-up are not counted.
// Two windows per run:
//   relayed  from the first message sent until the device has all N;
//   stored   until the store holds all N (imap: the MSS, read back over IMAP; lmdb and
//            off: a 1 s settle, the same for both, so their writer threads finish).
// Every thread of the relay's process is counted (V8's compiler and GC threads, LMDB's
// writer, libuv's pool), user space only; Dovecot and the load peers are not. Instruction
// counts do not move with the machine's load, unlike the messages/s of bench:history.
//
// Env: RUNS (3), N (2000), WINDOW (32), SIZE (100), MODES (off,lmdb,imap), WARMUP (4 batches),
// KEEP (set: keep the callgrind files, for callgrind_annotate).
// Needs valgrind (Debian package `valgrind`).

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { startDovecot } from '../lab/dovecot.js';
import { blast } from './msrp-load.js';
import { cpimBody } from './msrp-relay.js';
import { median } from './stats.js';
import { mssCount, session, startRelay, stopRelay, type Mode, type Relay } from './history.js';

const RUNS = Number(process.env.RUNS ?? 3);
const N = Number(process.env.N ?? 2000);
const WINDOW = Number(process.env.WINDOW ?? 32);
const SIZE = Number(process.env.SIZE ?? 100);
const MODES = (process.env.MODES ?? 'off,lmdb,imap').split(',') as Mode[];
const WARMUP = Number(process.env.WARMUP ?? 4);
// V8 without its compiler and GC threads: tier-up and collection then happen on the
// relay's thread, at the same points in every run (bench/history.ts reads RELAY_NODE_ARGS).
// A full collection forced before each window was tried: V8 then drops compiled code, and
// every window paid for compiling it again (2.5 times the instructions, all modes).
process.env.RELAY_NODE_ARGS ??= '--single-threaded';

function callgrind(pid: number, ...args: string[]): void {
  execFileSync('callgrind_control', [...args, String(pid)], { stdio: 'ignore' });
}

/** Dump the counters since the last dump (or zero) and return their total instructions. */
async function dump(dir: string, pid: number): Promise<number> {
  const before = new Set(readdirSync(dir));
  callgrind(pid, '--dump');
  const deadline = Date.now() + 120_000;
  for (;;) {
    for (const f of readdirSync(dir)) {
      if (before.has(f) || !f.startsWith(`cg.${pid}.`)) continue;
      const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
      if (m) return Number(m[1]);
    }
    if (Date.now() > deadline) throw new Error(`no callgrind dump from ${pid}`);
    await new Promise(res => setTimeout(res, 200));
  }
}

interface Counted { relayed: number; stored: number }

/** One measured batch of N messages: instructions per message in each window. */
async function measure(r: Relay, dir: string, imap: ImapFlow): Promise<Counted> {
  const pid = r.child.pid!;
  const s = await session(r);
  const body = cpimBody(SIZE, 'sip:carol@example.net');
  callgrind(pid, '--zero');
  callgrind(pid, '--instr=on');
  const sending = blast(s.a, { count: N, body, contentType: 'message/cpim', toPath: s.toPath, fromPath: s.a.localUri, window: WINDOW });
  await s.b.until(() => s.b.stats.messages >= N, 600_000, `${N} messages (${r.mode})`);
  const relayed = await dump(dir, pid);
  await sending;
  if (r.mode === 'imap') {
    const deadline = Date.now() + 600_000;
    while ((await mssCount(imap, s.callId)) < N + 1 && Date.now() < deadline) await new Promise(res => setTimeout(res, 100));
  } else {
    await new Promise(res => setTimeout(res, 1000));
  }
  const after = await dump(dir, pid);
  callgrind(pid, '--instr=off');
  s.a.close();
  s.b.close();
  await r.ctl.delete({ 'call-id': s.callId });
  return { relayed: relayed / N, stored: (relayed + after) / N };
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
const spread = (xs: number[], d = 0): string => {
  const f = (x: number): string => (d ? x.toFixed(d) : fmt(x));
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-history-instr-'));
  chmodSync(dir, 0o755); // searchable by Dovecot's account (lab/dovecot.ts)
  const cg = join(dir, 'callgrind');
  const mss = await startDovecot({ dir: join(dir, 'dovecot') });
  const imap = new ImapFlow({ host: mss.host, port: mss.port, secure: false, doSTARTTLS: false, auth: { user: mss.user, pass: mss.password }, logger: false });
  const relays: Relay[] = [];
  try {
    mkdirSync(cg);
    const wrapper = ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${cg}/cg.%p`, '--dump-instr=no'];
    for (const m of MODES) relays.push(await startRelay(m, dir, mss, wrapper));
    await imap.connect();
    // Warm-up, not counted: JIT, connections, the MSS's first folder.
    for (let i = 0; i < WARMUP; i++) for (const r of relays) await measure(r, cg, imap);
    const results = new Map<Mode, Counted[]>(MODES.map(m => [m, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const r of relays) {
        const x = await measure(r, cg, imap);
        results.get(r.mode)!.push(x);
        process.stderr.write(`  run ${i + 1} ${r.mode}: relayed ${fmt(x.relayed)} instr/msg, stored ${fmt(x.stored)} instr/msg\n`);
      }
    }
    const off = results.get('off');
    const rows = [
      `History on vs off, instructions per message in the relay's process (callgrind): ${N} messages of ${SIZE} B per run, window ${WINDOW}, ${RUNS} runs, median (min–max)`,
      '',
      '| history | until relayed | ratio to off | until stored | ratio to off |',
      '|---|---|---|---|---|',
    ];
    for (const m of MODES) {
      const xs = results.get(m)!;
      const ratio = (k: keyof Counted): string => (off && m !== 'off' ? spread(xs.map((x, i) => x[k] / off[i]![k]), 3) : '1');
      rows.push(`| ${m} | ${spread(xs.map(x => x.relayed))} | ${ratio('relayed')} | ${spread(xs.map(x => x.stored))} | ${ratio('stored')} |`);
    }
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    await imap.logout().catch(() => undefined);
    for (const r of relays) await stopRelay(r);
    await mss.stop();
    if (process.env.KEEP) process.stderr.write(`callgrind files kept in ${cg}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch(err => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
