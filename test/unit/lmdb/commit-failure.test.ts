// A refused LMDB commit, for real: the child runs with a file-size limit (RLIMIT_FSIZE,
// SIGXFSZ handled), so the data file cannot grow and lmdb-js refuses commits. lmdb-js
// then also rejects promises no caller holds (lib/lmdb-commit-guard.ts); without the
// guard each one would end the process. What must hold: the process lives, each store
// reports its refused writes as errors, and a rejection of ours still ends the process.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';

interface Seen { readonly code: number | null; readonly out: Record<string, unknown> | null; readonly stderr: string }

async function child(dir: string, mode: string, limitKiB: number): Promise<Seen> {
  mkdirSync(dir, { recursive: true });
  const script = `ulimit -S -f ${limitKiB}; exec "$0" --import tsx test/unit/lmdb/commit-failure-child.ts "$1" "$2"`;
  const p = spawn('bash', ['-c', script, process.execPath, dir, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => p.once('exit', (c, sig) => r(c ?? (sig ? -1 : null))));
  if (code === -1) stderr += ` [killed by ${String(p.signalCode)}]`;
  const line = out.trim().split('\n').pop() ?? '';
  return { code, out: line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : null, stderr };
}

t.test('the B2BUA call store: commits refused, the process lives, each refused write reported and kept for a retry', async (t) => {
  const seen = await child(`${t.testdir()}/b2bua`, 'calls', 64);
  t.equal(seen.code, 0, `the process ended normally${seen.code === 0 ? '' : ` (code ${String(seen.code)}): ${seen.stderr.slice(-800)}`}`);
  const out = seen.out ?? {};
  t.ok(Number(out.errors) > 0, `refused writes reported to the store's onError (${String(out.errors)})`);
  t.ok(Number(out.stored) > 0 && Number(out.stored) < 40, `the first records are on disk (${String(out.stored)} of 40)`);
  t.ok(Number(out.retrying) > 0, `the refused ones wait for a retry (${String(out.retrying)})`);
  t.ok((out.causes as string[]).length > 0, `the guard took lmdb-js's unheld rejections, with the cause: ${String((out.causes as string[])[0])}`);
});

t.test('the relay deferred store: a refused append rejects (the relay answers 500), the process lives', async (t) => {
  const seen = await child(t.testdir(), 'deferred', 64);
  t.equal(seen.code, 0, `the process ended normally${seen.code === 0 ? '' : ` (code ${String(seen.code)}): ${seen.stderr.slice(-800)}`}`);
  const out = seen.out ?? {};
  t.ok(Number(out.stored) > 0, `the first messages stored (${String(out.stored)})`);
  t.ok(Number(out.refused) > 0, `the rest refused, each as an error to its sender (${String(out.refused)})`);
  t.equal(out.counted, out.stored, 'what the store counts is what it said it stored');
});

t.test('a rejection that is not lmdb-js\'s still ends the process', async (t) => {
  const seen = await child(t.testdir(), 'other', 1 << 20);
  t.not(seen.code, 0, 'exit code not 0');
  t.equal(seen.out, null, 'it did not go on');
  t.match(seen.stderr, /a defect of ours/, 'the reason is printed');
});
