// The history write queue (media/history/queue.ts; docs/history.md "Write queue"): in order,
// retried while the MSS is down, bounded, kept on disk, nothing lost or stored twice.
import t from 'tap';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { startDovecot, type Dovecot } from '../../../lab/dovecot.js';
import { freePort } from '../../../lab/proc.js';
import { ImapMessageStore } from '../../../media/history/imap-store.js';
import { MssError, SESSION_INFO_TYPE, type MessageStore } from '../../../media/history/mss.js';
import { laneOf, WORKER_NEXT, WriteQueue, type QueueStats, type WorkerState } from '../../../media/history/queue.js';
import { guardedTransition, IllegalTransition } from '../../../lib/fsm.js';
import { cpim } from './suite.js';

const imap = (mss: { port: number }, timeoutMs = 2000): ImapMessageStore =>
  new ImapMessageStore({ host: '127.0.0.1', port: mss.port, user: 'pf', password: 'pf-secret', tls: 'none', commandTimeoutMs: timeoutMs });

/** Resolve once the queue's stats satisfy `ok` (checked on each of its steps; bounded). */
async function statsUntil(q: WriteQueue, ok: (s: QueueStats) => boolean, what: string, ms = 15_000): Promise<QueueStats> {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = q.stats();
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}: ${JSON.stringify(s)}`);
    await new Promise(r => setTimeout(r, 20));
  }
}

/** The folder's message bodies, in UID order, without the session info object. */
async function bodies(store: MessageStore, ref: { conversationId: string; contributionId: string }): Promise<string[]> {
  const objs = await store.list(ref);
  return objs.filter(o => o.contentType !== SESSION_INFO_TYPE).map(o => o.data.toString('utf8'));
}

let mss: Dovecot;
t.before(async () => {
  const dir = `${t.testdirName}-dovecot`;
  rmSync(dir, { recursive: true, force: true });
  mss = await startDovecot({ dir });
});
t.teardown(async () => {
  await mss.stop();
  rmSync(mss.dir, { recursive: true, force: true });
});

t.test('Dovecot stopped mid-stream, then restarted: everything written once, in order', async t => {
  const q = new WriteQueue({ path: `${t.testdir()}/q.mdb`, target: imap(mss, 1000), backoffMs: { first: 20, max: 300 } });
  const ref = { conversationId: 'restart', contributionId: 'c1' };
  const expected: string[] = [];
  void q.ensureSessionFolder(ref, {});
  for (let i = 0; i < 20; i++) {
    expected.push(cpim(`a${i}`, `a${i}`).toString());
    void q.append(ref, 'message/cpim', cpim(`a${i}`, `a${i}`));
  }
  await statsUntil(q, s => s.written >= 5, 'some written');
  await mss.stop();
  for (let i = 0; i < 20; i++) {
    expected.push(cpim(`b${i}`, `b${i}`).toString());
    t.equal(await q.append(ref, 'message/cpim', cpim(`b${i}`, `b${i}`)), true, 'queued while the MSS is down');
  }
  // Seen between two attempts (a retry may be in flight at any one poll).
  const down = await statsUntil(q, s => s.failures >= 2 && s.state === 'waiting', 'backing off while down');
  t.ok(down.queued > 0, 'entries wait while the worker backs off');
  mss = await startDovecot({ dir: mss.dir, port: mss.port });
  await q.drained();
  t.match(q.stats(), { queued: 0, dropped: 0, setAside: 0 });
  const reader = imap(mss);
  t.same(await bodies(reader, ref), expected, 'all 40, once each, in order');
  await reader.close();
  await q.close();
});

t.test('lanes: sessions written side by side over 4 connections, each in order, through an MSS restart', async t => {
  const q = new WriteQueue({
    path: `${t.testdir()}/q.mdb`, target: [0, 1, 2, 3].map(() => imap(mss, 1000)), backoffMs: { first: 20, max: 300 },
  });
  const refs = Array.from({ length: 8 }, (_, i) => ({ conversationId: `lanes-${i % 3}`, contributionId: `s${i}` }));
  t.ok(new Set(refs.map(r => laneOf(r, 4))).size > 1, 'the sessions spread over more than one lane');
  const expected = new Map(refs.map(r => [r.contributionId, [] as string[]]));
  for (const r of refs) void q.ensureSessionFolder(r, {});
  const send = (round: string): void => {
    for (let i = 0; i < 10; i++) {
      for (const r of refs) {
        const body = cpim(`${round}${i} ${r.contributionId}`, `${round}${i}${r.contributionId}`);
        expected.get(r.contributionId)!.push(body.toString());
        void q.append(r, 'message/cpim', body);
      }
    }
  };
  send('a');
  await statsUntil(q, s => s.written >= 20, 'some written');
  await mss.stop();
  send('b');
  await statsUntil(q, s => s.failures >= 2, 'failures while down');
  mss = await startDovecot({ dir: mss.dir, port: mss.port });
  await q.drained();
  t.match(q.stats(), { queued: 0, written: 8 + 160, lanes: ['idle', 'idle', 'idle', 'idle'] });
  const reader = imap(mss);
  for (const r of refs) t.same(await bodies(reader, r), expected.get(r.contributionId), `${r.contributionId}: 20 once each, in order`);
  await reader.close();
  await q.close();
});

t.test('lane of a session folder: stable, in range', async t => {
  const cases: [string, string, number][] = [['c', 's', 1], ['c', 's', 4], ['conv.1/ü', 'x', 7], ['', '', 3]];
  for (const [c, s, n] of cases) {
    const lane = laneOf({ conversationId: c, contributionId: s }, n);
    t.ok(lane >= 0 && lane < n, `${c}/${s} over ${n}`);
    t.equal(laneOf({ conversationId: c, contributionId: s }, n), lane, 'same lane again');
  }
  t.not(laneOf({ conversationId: 'ab', contributionId: 'c' }, 1 << 30), laneOf({ conversationId: 'a', contributionId: 'bc' }, 1 << 30),
    'the separator keeps conversation and contribution apart');
});

for (const batch of [1, 20]) t.test(`a PF killed mid-stream (${batch === 1 ? 'single entries' : `runs of ${batch}`}): reopened queue loses nothing, duplicates nothing`, async t => {
  const path = `${t.testdir()}/q.mdb`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/media/history/queue-child.ts', path, String(mss.port), '200', String(batch), `crash-${batch}`],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise(r => child.once('exit', r));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('queued')) resolve();
    });
    child.once('exit', code => reject(new Error(`child exited ${String(code)} before queueing`)));
  });
  const ref = { conversationId: `crash-${batch}`, contributionId: 'c1' };
  const reader = imap(mss);
  // Kill it while it writes: some of the 200 are on the MSS, the rest only in the queue.
  const deadline = Date.now() + 30_000;
  while ((await bodies(reader, ref)).length === 0) {
    if (Date.now() > deadline) throw new Error('the child wrote nothing');
  }
  child.kill('SIGKILL');
  await exited;
  const before = (await bodies(reader, ref)).length;
  // Usually some are left (the MSS takes ~100 APPENDs/s here); a fast MSS may have all 200.
  t.ok(before > 0 && before <= 200, `killed with ${before} of 200 written`);
  const q = new WriteQueue({ path, target: imap(mss), backoffMs: { first: 20, max: 300 } });
  await q.drained();
  const got = await bodies(reader, ref);
  t.same(got, Array.from({ length: 200 }, (_, i) => cpim(`n${i}`, `id${i}`).toString()), 'each of the 200 once, in order');
  await reader.close();
  await q.close();
});

t.test('a write stored but not taken off the queue is not stored again', async t => {
  const path = `${t.testdir()}/q.mdb`;
  const ref = { conversationId: 'limbo', contributionId: 'c1' };
  const real = imap(mss);
  let hung = 0;
  // Stores for real, then never answers: the process "dies" between APPEND and the queue's removal.
  const hanging: Pick<MessageStore, 'ensureSessionFolder' | 'append' | 'close'> = {
    ensureSessionFolder: (r, i) => real.ensureSessionFolder(r, i),
    append: async (r, ct, d, o) => {
      await real.append(r, ct, d, o);
      hung++;
      return new Promise<number>(() => undefined);
    },
    close: () => real.close(),
  };
  const q1 = new WriteQueue({ path, target: hanging, closeWaitMs: 10 });
  await q1.ensureSessionFolder(ref, {});
  await q1.append(ref, 'message/cpim', cpim('only once', 'x1'));
  await q1.append(ref, 'message/cpim', cpim('second', 'x2'));
  await statsUntil(q1, () => hung === 1, 'the first append stored');
  await q1.close();
  const q2 = new WriteQueue({ path, target: imap(mss) });
  t.equal(q2.stats().queued, 2, 'both still queued after the "crash"');
  await q2.drained();
  const reader = imap(mss);
  t.same(await bodies(reader, ref), [cpim('only once', 'x1').toString(), cpim('second', 'x2').toString()]);
  await reader.close();
  await q2.close();
});

t.test('bounded: past maxEntries new entries are dropped, queued ones kept', async t => {
  const path = `${t.testdir()}/q.mdb`;
  const nobody = await freePort();
  const q1 = new WriteQueue({ path, target: imap({ port: nobody }, 300), maxEntries: 5, backoffMs: { first: 20, max: 100 } });
  const ref = { conversationId: 'bound', contributionId: 'c1' };
  const took: boolean[] = [await q1.ensureSessionFolder(ref, {})];
  for (let i = 0; i < 7; i++) took.push(await q1.append(ref, 'message/cpim', cpim(`m${i}`, `m${i}`)));
  t.same(took, [true, true, true, true, true, false, false, false], 'the sixth entry on is dropped');
  t.match(q1.stats(), { queued: 5, dropped: 3 });
  await statsUntil(q1, s => s.failures >= 1, 'MSS unreachable');
  await q1.close();
  const q2 = new WriteQueue({ path, target: imap(mss) });
  await q2.drained();
  const reader = imap(mss);
  t.same(await bodies(reader, ref), [0, 1, 2, 3].map(i => cpim(`m${i}`, `m${i}`).toString()));
  await reader.close();
  await q2.close();
});

t.test('appendMany: one commit, bounded entry by entry, written in order', async t => {
  const path = `${t.testdir()}/q.mdb`;
  const nobody = await freePort();
  const q1 = new WriteQueue({ path, target: imap({ port: nobody }, 300), maxEntries: 4, backoffMs: { first: 20, max: 100 } });
  const ref = { conversationId: 'many', contributionId: 'c1' };
  t.same(await q1.ensureSessionFolder(ref, {}), true);
  const items = [0, 1, 2, 3, 4].map(i => ({ ref, contentType: 'message/cpim', data: cpim(`n${i}`, `n${i}`) }));
  t.same(await q1.appendMany(items), [true, true, true, false, false], 'past maxEntries the rest of the batch is dropped');
  t.match(q1.stats(), { queued: 4, dropped: 2 });
  t.same(await q1.appendMany([]), [], 'an empty batch');
  await statsUntil(q1, s => s.failures >= 1, 'MSS unreachable');
  await q1.close();
  const q2 = new WriteQueue({ path, target: imap(mss) });
  await q2.drained();
  const reader = imap(mss);
  t.same(await bodies(reader, ref), [0, 1, 2].map(i => cpim(`n${i}`, `n${i}`).toString()), 'reopened: the three queued, in order');
  await reader.close();
  await q2.close();
});

t.test('runs: written in order through an MSS outage; an object refused for good is set aside alone', async t => {
  const ref = { conversationId: 'runs', contributionId: 'c1' };
  const other = { conversationId: 'runs', contributionId: 'c2' };
  const real = imap(mss);
  let down = false;
  let calls = 0;
  // An MSS that goes away for a while in the middle of the first run, and refuses 'bad' for good.
  const flaky: Pick<MessageStore, 'ensureSessionFolder' | 'append' | 'close'> = {
    ensureSessionFolder: (r, i) => real.ensureSessionFolder(r, i),
    append: async (r, ct, d, o) => {
      if (++calls === 3) down = true;
      if (down) throw new MssError('MSS down', false);
      if (d.toString().includes('bad')) throw new MssError('refused', true);
      return real.append(r, ct, d, o);
    },
    close: () => real.close(),
  };
  const q = new WriteQueue({ path: `${t.testdir()}/q.mdb`, target: flaky, maxAttempts: 2, backoffMs: { first: 10, max: 40 } });
  await q.ensureSessionFolder(ref, {});
  await q.ensureSessionFolder(other, {});
  const first = ['r0', 'r1', 'r2', 'bad', 'r3'];
  t.same(await q.appendMany([
    ...first.map(x => ({ ref, contentType: 'message/cpim', data: cpim(x, x) })),
    { ref: other, contentType: 'message/cpim', data: cpim('o0', 'o0') },
  ]), [true, true, true, true, true, true]);
  t.match(q.stats(), { queued: 8 }, 'objects counted, not records (2 folders + 6 objects)');
  await statsUntil(q, s => s.failures >= 2, 'the outage seen');
  down = false;
  await q.appendMany([{ ref, contentType: 'message/cpim', data: cpim('r4', 'r4') }]);
  await q.drained();
  t.match(q.stats(), { queued: 0, bytes: 0, setAside: 1, written: 8 });
  const aside = q.asideEntries();
  t.equal(aside.length, 1, 'one object set aside');
  t.match(aside[0], { error: /refused/, entry: { op: 'append', ref } });
  t.ok(Buffer.from((aside[0]!.entry as { data: Uint8Array }).data).equals(cpim('bad', 'bad')), 'the refused object itself');
  const reader = imap(mss);
  t.same(await bodies(reader, ref), ['r0', 'r1', 'r2', 'r3', 'r4'].map(x => cpim(x, x).toString()), 'each once, in order');
  t.same(await bodies(reader, other), [cpim('o0', 'o0').toString()]);
  await reader.close();
  await q.close();
});

t.test('a run object set aside, then the queue reopened before the run ends: one aside record, each object stored once', async t => {
  const path = `${t.testdir()}/q.mdb`;
  let down = false;
  let once = true;
  const keys = new Set<string>();
  const stored: string[] = [];
  const target: Pick<MessageStore, 'ensureSessionFolder' | 'append' | 'close'> = {
    ensureSessionFolder: async () => ({ created: true, infoUid: 1 }),
    append: async (_r, _ct, d, o) => {
      const x = d.toString();
      if (o?.retry && o.key !== undefined && keys.has(o.key)) return 0; // the idempotency check
      if (x === 'bad') throw new MssError('refused', true);
      if (down) throw new MssError('MSS down', false);
      stored.push(x);
      if (o?.key !== undefined) keys.add(o.key);
      if (x === 'a' && once) {
        down = true; // the MSS goes away after 'a'
        once = false;
      }
      return stored.length;
    },
    close: async () => undefined,
  };
  const ref = { conversationId: 'aside-twice', contributionId: 'c' };
  const q1 = new WriteQueue({ path, target, maxAttempts: 2, backoffMs: { first: 5, max: 10 }, closeWaitMs: 100 });
  await q1.appendMany(['a', 'bad', 'b'].map(x => ({ ref, contentType: 'message/cpim', data: Buffer.from(x) })));
  await statsUntil(q1, st => st.setAside === 1 && st.failures >= 1, 'bad set aside, the MSS down for b');
  await q1.close();
  down = false;
  const q2 = new WriteQueue({ path, target, maxAttempts: 2, backoffMs: { first: 5, max: 10 } });
  await q2.drained();
  t.same(stored, ['a', 'b'], 'each stored once');
  t.match(q2.stats(), { queued: 0, bytes: 0, setAside: 1 });
  await q2.close(); // every write of the file committed
  const q3 = new WriteQueue({ path, target });
  t.same(q3.asideEntries().map(a => Buffer.from((a.entry as { data: Uint8Array }).data).toString()), ['bad'], 'one aside record for bad');
  await q3.close();
});

t.test('appendMany: a Content-Type or key a run cannot hold is dropped alone, counters stay right', async t => {
  const q = new WriteQueue({ path: `${t.testdir()}/q.mdb`, target: imap(mss) });
  const ref = { conversationId: 'oversize', contributionId: 'c' };
  await q.ensureSessionFolder(ref, {});
  t.same(await q.appendMany([
    { ref, contentType: 'message/cpim', data: cpim('ok', 'ok') },
    { ref, contentType: 'x'.repeat(70_000), data: Buffer.from('y') },
    { ref, contentType: 'message/cpim', data: Buffer.from('z'), opts: { key: 'k'.repeat(70_000) } },
  ]), [true, false, false]);
  await q.drained();
  t.match(q.stats(), { queued: 0, bytes: 0, dropped: 2, written: 2 });
  await q.close();
});

t.test('an entry the MSS refuses for good is set aside; the rest go on', async t => {
  const q = new WriteQueue({ path: `${t.testdir()}/q.mdb`, target: imap(mss), maxAttempts: 2, backoffMs: { first: 5, max: 20 } });
  const bad = { conversationId: 'x'.repeat(500), contributionId: 'c' };
  const good = { conversationId: 'good', contributionId: 'c' };
  void q.ensureSessionFolder(bad, {});
  void q.ensureSessionFolder(good, {});
  void q.append(good, 'message/cpim', cpim('fine'));
  await q.drained();
  t.match(q.stats(), { setAside: 1, written: 2, queued: 0 });
  const aside = q.asideEntries();
  t.equal(aside.length, 1);
  t.match(aside[0]!.error, /more than 120/);
  const reader = imap(mss);
  t.same(await bodies(reader, good), [cpim('fine').toString()]);
  await reader.close();
  await q.close();
});

t.test('the relay side never waits on the MSS', async t => {
  let calls = 0;
  const never: Pick<MessageStore, 'ensureSessionFolder' | 'append' | 'close'> = {
    ensureSessionFolder: () => new Promise(() => undefined),
    append: () => new Promise(() => undefined),
    close: async () => undefined,
  };
  const q = new WriteQueue({ path: `${t.testdir()}/q.mdb`, target: { ...never, ensureSessionFolder: (...a) => { calls++; return never.ensureSessionFolder(...a); } }, closeWaitMs: 10 });
  const ref = { conversationId: 'slow', contributionId: 'c' };
  const accepted = await Promise.all([q.ensureSessionFolder(ref, {}), ...Array.from({ length: 100 }, (_, i) => q.append(ref, 'message/cpim', cpim(`s${i}`)))]);
  t.ok(accepted.every(Boolean), 'all 101 queued (on disk) while the MSS has not answered the first');
  t.equal(calls, 1, 'one write in flight');
  t.match(q.stats(), { state: 'writing', queued: 101 });
  await q.close();
  t.ok(new MssError('x', true).permanent);
});

t.test('worker state machine: legal moves only', async t => {
  const states: WorkerState[] = ['idle', 'writing', 'waiting', 'closed'];
  const legal = new Set(['idle>writing', 'idle>closed', 'writing>idle', 'writing>writing', 'writing>waiting', 'writing>closed', 'waiting>writing', 'waiting>closed']);
  for (const from of states) {
    for (const to of states) {
      const move = (): WorkerState => guardedTransition('history queue', WORKER_NEXT, from, to);
      if (legal.has(`${from}>${to}`)) t.equal(move(), to, `${from} -> ${to}`);
      else t.throws(move, IllegalTransition, `${from} -> ${to} is illegal`);
    }
  }
});
