// Run records (media/history/run.ts): round trip, and damaged bytes never throw.
import t from 'tap';
import { open } from 'lmdb';
import { decodeRun, encodeRun, runCount, type RunObject } from '../../../media/history/run.js';
import { LmdbMessageStore } from '../../../media/history/store.js';
import { rng } from '../../../bench/rng.js';
import { cpim } from './suite.js';

const objects: RunObject[] = [
  { contentType: 'message/cpim', data: cpim('héllo ✓'), direction: 'received', at: Date.UTC(2026, 11, 6, 1, 2, 3, 4) },
  { contentType: 'application/group-state-object+xml', data: Buffer.from('<groupstate/>'), at: 0 },
  { contentType: 'message/cpim', data: Buffer.alloc(0), key: 'k-1@test', direction: 'sent', at: 1.5 },
  { contentType: 'message/cpim', data: Buffer.from([0, 0xff, 0x0d, 0x0a]), at: 8.64e15 },
];

t.test('round trip', async t => {
  const cases: { name: string; objects: RunObject[] }[] = [
    { name: 'none', objects: [] },
    { name: 'one', objects: objects.slice(0, 1) },
    { name: 'all fields, empty and binary data', objects },
  ];
  for (const c of cases) {
    const buf = encodeRun(c.objects);
    t.equal(runCount(buf), c.objects.length, `${c.name}: count`);
    t.same(decodeRun(buf), { count: c.objects.length, objects: c.objects }, c.name);
  }
  t.throws(() => encodeRun([{ contentType: 'x'.repeat(70_000), data: Buffer.alloc(0), at: 0 }]), RangeError, 'a Content-Type over 65535 bytes');
});

t.test('truncated: every prefix decodes to a prefix of the objects, never throws', async t => {
  const buf = encodeRun(objects);
  for (let n = 0; n < buf.length; n++) {
    const r = decodeRun(buf.subarray(0, n));
    if (r.objects.length >= objects.length || !r.objects.every((o, i) => Buffer.compare(o.data, objects[i]!.data) === 0)) {
      t.fail(`prefix of ${n} bytes`);
      return;
    }
  }
  t.pass(`${buf.length} prefixes`);
});

t.test('a time no Date can hold ends the readable part', async t => {
  for (const at of [NaN, Infinity, -Infinity, 8.64e15 + 1]) {
    const buf = encodeRun([objects[0]!, { ...objects[1]!, at }, objects[2]!]);
    const r = decodeRun(buf);
    t.equal(r.count, 3);
    t.equal(r.objects.length, 1, `time ${at}: the objects before it only`);
  }
});

t.test('fuzz: random and mutated bytes never throw', async t => {
  const next = rng(61206);
  const base = encodeRun(objects);
  for (let i = 0; i < 5000; i++) {
    const b = i % 2 === 0 ? Buffer.from(base) : Buffer.from(Array.from({ length: Math.floor(next() * 80) }, () => Math.floor(next() * 256)));
    if (i % 2 === 0) for (let k = 0; k < 3; k++) b[Math.floor(next() * b.length)] = Math.floor(next() * 256);
    if (i % 2 === 1 && b.length > 0) b[0] = 1; // past the version byte
    const r = decodeRun(b);
    if (r.objects.length > r.count) {
      t.fail(`more objects than counted: ${b.toString('hex')}`);
      return;
    }
  }
  t.pass('5000 inputs');
});

t.test('the store reports the objects a damaged run no longer holds', async t => {
  const dir = t.testdir();
  const ref = { conversationId: 'conv-d', contributionId: 'c' };
  const s1 = new LmdbMessageStore(`${dir}/h.mdb`);
  await s1.ensureSessionFolder(ref, {});
  t.same(await s1.appendMany(objects.slice(0, 3).map(o => ({ ref, contentType: o.contentType, data: o.data }))), [2, 3, 4]);
  await s1.close();
  // cut the run record after its first object
  const db = open<Uint8Array, (string | number)[]>({ path: `${dir}/h.mdb`, compression: false });
  const run = db.get(['run', 'conv-d', 'c', 2])!;
  const one = encodeRun([{ contentType: objects[0]!.contentType, data: objects[0]!.data, at: 0 }]).length;
  await db.put(['run', 'conv-d', 'c', 2], Buffer.from(run).subarray(0, one + 3));
  await db.close();
  const s2 = new LmdbMessageStore(`${dir}/h.mdb`);
  const list = await s2.list(ref);
  t.same(list.map(o => [o.uid, o.problem ?? 'ok']), [[1, 'ok'], [2, 'ok'], [3, 'malformed'], [4, 'malformed']]);
  t.ok(list[1]!.data.equals(objects[0]!.data), 'the whole object before the damage is read');
  t.equal(await s2.append(ref, 'message/cpim', cpim('after')), 5, 'UIDs go on');
  await s2.close();
});

t.test('the store does not trust a damaged run count beyond the folder', async t => {
  const dir = t.testdir();
  const ref = { conversationId: 'conv-c', contributionId: 'c' };
  const s1 = new LmdbMessageStore(`${dir}/h.mdb`);
  await s1.ensureSessionFolder(ref, {});
  await s1.appendMany(objects.slice(0, 2).map(o => ({ ref, contentType: o.contentType, data: o.data })));
  await s1.append(ref, 'message/cpim', cpim('later'));
  await s1.close();
  // the run at UID 2 claims 0xffffffff objects
  const db = open<Uint8Array, (string | number)[]>({ path: `${dir}/h.mdb`, compression: false });
  const run = Buffer.from(db.get(['run', 'conv-c', 'c', 2])!);
  run.writeUInt32BE(0xffffffff, 1);
  await db.put(['run', 'conv-c', 'c', 2], run);
  await db.close();
  const s2 = new LmdbMessageStore(`${dir}/h.mdb`);
  const list = await s2.list(ref);
  t.same(list.map(o => [o.uid, o.problem ?? 'ok']), [[1, 'ok'], [2, 'ok'], [3, 'ok'], [4, 'ok']], 'no invented UIDs, none beyond the folder');
  await s2.close();
});
