// Child of commit-failure.test.ts: run under a file-size limit (RLIMIT_FSIZE, SIGXFSZ
// handled), so that LMDB's data file cannot grow and its commits are refused for real.
// argv: <dir> <calls|deferred|other>. Prints one JSON line of what it saw, then exits 0.
import { setImmediate as turn } from 'node:timers/promises';
import { guardLmdbCommitFailures } from '../../../lib/lmdb-commit-guard.js';
import { openLmdbCallStore } from '../../../plugin/b2bua/store.js';
import { LmdbDeferredStore } from '../../../media/deferred/lmdb.js';
import { storedCall } from '../b2bua/store-suite.js';

// a write past the limit then fails with EFBIG instead of killing the process (tap's
// process hooks, signal-exit among them, would otherwise turn SIGXFSZ back into a kill)
process.on('SIGXFSZ', () => undefined);
const [dir = '', mode = ''] = process.argv.slice(2);
const guarded = { causes: [] as string[], wrappers: 0 };
guardLmdbCommitFailures({
  error: (obj) => void guarded.causes.push('err' in obj && obj.err instanceof Error ? obj.err.message : String(obj)),
  warn: () => void guarded.wrappers++,
});
const big = 'v=0\r\n' + 'a=x\r\n'.repeat(1500); // ~7.5 KB: a few records fill the limit

if (mode === 'other') {
  // a rejection that is not LMDB's must still end the process
  void Promise.reject(new Error('a defect of ours'));
  await new Promise((r) => setTimeout(r, 500));
  process.stdout.write('{"survived":true}\n');
} else if (mode === 'calls') {
  const errors: string[] = [];
  const store = openLmdbCallStore(dir, (e) => errors.push(e instanceof Error ? e.message : String(e)));
  for (let i = 0; i < 40; i++) {
    store.put(storedCall(`call-${i}`, { caller: { dialog: null, side: { interval: 1800, useUpdate: true, localSdp: big, remoteSdp: big, deadline: null } } }));
    // The first record is committed on its own, so it fits under the limit whatever the
    // machine's speed; the rest may share commits (lmdb-js batches what arrives together),
    // and those the limit refuses.
    if (i === 0) await store.flushed().catch(() => undefined);
    await turn();
  }
  await store.flushed().catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  const stored = (await store.load()).calls.length;
  process.stdout.write(`${JSON.stringify({ errors: errors.length, retrying: store.retrying, stored, ...guarded })}\n`);
} else if (mode === 'deferred') {
  const store = new LmdbDeferredStore({ path: `${dir}/deferred.mdb`, bounds: { maxItemBytes: 64 * 1024 } });
  let stored = 0;
  const refused: string[] = [];
  for (let i = 0; i < 40; i++) {
    const item = { payload: Buffer.from(big), contentType: 'message/cpim', negativeDelivery: false, expiresAt: Date.now() + 60_000 };
    await store.append('d1', 'messages', item).then(
      (r) => void (r.ok ? stored++ : refused.push(r.reason)),
      (e: unknown) => void refused.push(e instanceof Error ? e.message : String(e)),
    );
  }
  await new Promise((r) => setTimeout(r, 300));
  const counted = (await store.counts('d1')).messages;
  process.stdout.write(`${JSON.stringify({ stored, refused: refused.length, counted, ...guarded })}\n`);
}
process.exit(0);
