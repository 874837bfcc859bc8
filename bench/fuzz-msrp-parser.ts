// MSRP parser fuzzer: `npm run fuzz:msrp [-- --cases N --seed S --per-case-ms MS]`.
// Runs the cases in a worker; the main thread kills it when no progress is reported
// for 10 s (a hang), and prints the figures as JSON. Exit code 1 on any failure.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { runFuzz, type FuzzStats } from './fuzz-msrp-core.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtureDir = join(here, '../test/fixtures/msrp');

interface Job {
  cases: number;
  seed: number;
  perCaseMs: number;
}

type Msg = { type: 'progress'; done: number } | { type: 'done'; stats: FuzzStats };

if (!isMainThread) {
  const job = workerData as Job;
  const stats = runFuzz({
    ...job,
    fixtureDir,
    progressEvery: 1000,
    onProgress: (done) => parentPort!.postMessage({ type: 'progress', done } satisfies Msg),
  });
  parentPort!.postMessage({ type: 'done', stats } satisfies Msg);
} else {
  const { values } = parseArgs({
    options: {
      cases: { type: 'string', default: '100000' },
      seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
      'per-case-ms': { type: 'string', default: '1000' },
    },
  });
  const job: Job = { cases: Number(values.cases), seed: Number(values.seed), perCaseMs: Number(values['per-case-ms']) };
  // Workers do not inherit tsx's loader: register it, then load this file as the worker.
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: job });
  let last = Date.now();
  let done = 0;
  const watchdog = setInterval(() => {
    if (Date.now() - last > 10_000) {
      process.stdout.write(`${JSON.stringify({ result: 'hang', seed: job.seed, afterCases: done })}\n`);
      void worker.terminate();
      process.exitCode = 1;
      clearInterval(watchdog);
    }
  }, 1000);
  worker.on('message', (m: Msg) => {
    last = Date.now();
    if (m.type === 'progress') {
      done = m.done;
      if (done % 20_000 === 0) process.stderr.write(`fuzz: ${done}/${job.cases}\n`);
      return;
    }
    clearInterval(watchdog);
    const s = m.stats;
    const mb = (n: number): number => Math.round((n / 1048576) * 10) / 10;
    const report = {
      result: s.failures.length === 0 ? 'ok' : 'FAIL',
      seed: job.seed,
      cases: s.cases,
      seconds: Math.round(s.ms) / 1000,
      casesPerSecond: Math.round(s.cases / (s.ms / 1000)),
      maxCaseMs: Math.round(s.maxCaseMs * 10) / 10,
      bytesFed: s.bytesFed,
      parsedOk: s.parsedOk,
      framesSeen: s.framesSeen,
      errorsByCode: s.errorsByCode,
      mutations: s.mutations,
      heapMiB: { before: mb(s.heapBefore), after: mb(s.heapAfter), peak: mb(s.heapPeak) },
      failures: s.failures.map((f) => ({ ...f, inputBase64: f.inputBase64.slice(0, 400) })),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (s.failures.length > 0) process.exitCode = 1;
  });
  worker.on('error', (err) => {
    clearInterval(watchdog);
    process.stdout.write(`${JSON.stringify({ result: 'crash', seed: job.seed, message: err.message })}\n`);
    process.exitCode = 1;
  });
}
