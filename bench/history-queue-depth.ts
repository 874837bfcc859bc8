// How deep the history write queue gets in front of a real MSS (docs/history.md "If a
// node's disk is lost"): what a node whose disk is lost for good loses of history is what
// its queue held at that instant. Offered loads of recorded messages per node (100-byte
// CPIM, spread over 10 sessions, 4 lanes) for a fixed time each, onto a private Dovecot
// (lab/dovecot.ts); the queue's depth sampled every 10 ms. Run: npx tsx bench/history-queue-depth.ts [seconds]
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDovecot } from '../lab/dovecot.js';
import { ImapMessageStore } from '../media/history/imap-store.js';
import { WriteQueue } from '../media/history/queue.js';

const SECONDS = Number(process.argv[2] ?? 20);
const RATES = [10, 50, 100, 150];
const SESSIONS = 10;
const LANES = 4;

const cpim = (n: number): Buffer => Buffer.from(
  `From: <sip:alice@example.net>\r\nTo: <sip:bob@example.net>\r\nDateTime: ${new Date().toISOString()}\r\n\r\n`
  + `Content-Type: text/plain\r\n\r\n${`m${n} `.padEnd(100, 'x')}`, 'utf8');

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hq-depth-'));
  chmodSync(dir, 0o711);
  const mss = await startDovecot({ dir: join(dir, 'dovecot') });
  try {
    for (const rate of RATES) {
      const q = new WriteQueue({
        path: join(dir, `q-${rate}.mdb`),
        target: Array.from({ length: LANES }, () => new ImapMessageStore({
          host: mss.host, port: mss.port, user: mss.user, password: mss.password, tls: 'none', commandTimeoutMs: 10_000,
        })),
      });
      const refs = Array.from({ length: SESSIONS }, (_, i) => ({ conversationId: `conv-${rate}-${i}`, contributionId: `contrib-${rate}-${i}` }));
      for (const r of refs) void q.ensureSessionFolder(r, {});
      const depths: number[] = [];
      const sampler = setInterval(() => depths.push(q.stats().queued), 10);
      const started = performance.now();
      let sent = 0;
      while (performance.now() - started < SECONDS * 1000) {
        const due = Math.floor(((performance.now() - started) / 1000) * rate);
        while (sent < due) {
          void q.append(refs[sent % SESSIONS]!, 'message/cpim', cpim(sent));
          sent += 1;
        }
        await new Promise(r => setTimeout(r, 5));
      }
      const offeredFor = performance.now() - started;
      await q.drained();
      const drainMs = performance.now() - started - offeredFor;
      clearInterval(sampler);
      const s = q.stats();
      console.log(JSON.stringify({
        rate, seconds: SECONDS, sent, written: s.written, dropped: s.dropped,
        depth: { median: pct(depths, 50), p99: pct(depths, 99), max: Math.max(...depths) },
        drainAfterLoadMs: Math.round(drainMs),
      }));
      await q.close();
    }
  } finally {
    await mss.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
