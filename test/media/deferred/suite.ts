// The DeferredStore interface tests (media/deferred/store.ts), written for any backend:
// interface.test.ts runs them on LMDB. `open` gives a store on the same backing data each
// time (a restart); `bounds` are the bounds the suite expects `open` to apply.
import type { Test } from 'tap';
import type { DeferredBounds, DeferredStore, NewItem, StoredItem } from '../../../media/deferred/store.js';

export const SUITE_BOUNDS: DeferredBounds = { maxItems: 50, maxBytes: 64 * 1024, maxItemBytes: 16 * 1024, maxItemsPerId: 20 };

export const idOf = (n: number): string => n.toString(16).padStart(32, '0');

export function item(text: string, over: Partial<NewItem> = {}): NewItem {
  return {
    payload: Buffer.from(`From: <sip:alice@example.net>\r\nTo: <sip:bob@example.net>\r\n\r\nContent-Type: text/plain\r\n\r\n${text}`, 'utf8'),
    contentType: 'message/cpim', negativeDelivery: false, expiresAt: Date.now() + 3_600_000, imdnMessageId: `imdn-${text}`,
    sender: 'sip:alice@example.net', ...over,
  };
}

const texts = (items: StoredItem[]): string[] => items.map(i => i.payload.toString('utf8').split('\r\n\r\n').pop()!);

export async function deferredSuite(t: Test, open: () => DeferredStore): Promise<void> {
  await t.test('append in order, pending, done, reopen', async t => {
    const id = idOf(1);
    let s = open();
    await s.putRecord(id, { callId: 'c1', servedUser: 'sip:bob@example.net', expiresAt: Date.now() + 3_600_000 });
    const bin = { ...item('x'), payload: Buffer.from([0, 0xff, 0x0d, 0x0a, 0xc3]) };
    const seqs: number[] = [];
    for (const x of [item('one'), item('two'), bin, item('three', { negativeDelivery: true })]) {
      const r = await s.append(id, 'messages', x);
      t.ok(r.ok, 'stored');
      if (r.ok) seqs.push(r.seq);
    }
    t.same([...seqs].sort((a, b) => a - b), seqs, 'seqs increase');
    t.ok((await s.append(id, 'notifications', item('n1'))).ok);
    await s.close();

    s = open();
    t.same(await s.record(id), { callId: 'c1', servedUser: 'sip:bob@example.net', expiresAt: (await s.record(id))!.expiresAt });
    const p = await s.pending(id, 'messages');
    t.same(p.map(i => i.seq), seqs, 'same order after a restart');
    t.ok(p[2]!.payload.equals(bin.payload), 'binary payload byte for byte');
    t.same(texts([p[0]!, p[1]!, p[3]!]), ['one', 'two', 'three']);
    t.match(p[3], { negativeDelivery: true, imdnMessageId: 'imdn-three', sender: 'sip:alice@example.net', contentType: 'message/cpim' });
    t.ok(p.every(i => typeof i.storedAt === 'number' && i.storedAt > 0));
    t.same((await s.pending(id, 'messages', 2)).map(i => i.seq), seqs.slice(0, 2), 'limit');
    t.same(texts(await s.pending(id, 'notifications')), ['n1'], 'the lists are apart');
    t.equal(await s.markDone(id, 'messages', seqs[0]!), true);
    t.equal(await s.markDone(id, 'messages', seqs[0]!), false, 'done twice: no longer there');
    t.equal(await s.markDone(id, 'notifications', seqs[1]!), false, 'a message seq is not a notification');
    await s.close();

    s = open();
    t.same((await s.pending(id, 'messages')).map(i => i.seq), seqs.slice(1), 'done stays done after a restart');
    t.match(await s.counts(id), { messages: 3, notifications: 1 });
    t.type((await s.counts(id)).oldest, 'number');
    t.same(await s.counts(idOf(999)), { messages: 0, notifications: 0 }, 'unknown id: zeros, no oldest');
    t.same(await s.pending(idOf(999), 'messages'), []);
    await s.close();
  });

  await t.test('discard: every item and the record, idempotent', async t => {
    const id = idOf(2);
    const s = open();
    await s.putRecord(id, { callId: 'c2', servedUser: 'sip:bob@example.net', expiresAt: Date.now() + 1000 });
    const before = await s.totals();
    await s.append(id, 'messages', item('a'));
    await s.append(id, 'messages', item('b'));
    await s.append(id, 'notifications', item('n'));
    t.equal(await s.discard(id), 2, 'messages counted');
    t.equal(await s.discard(id), 0, 'again: nothing');
    t.same(await s.counts(id), { messages: 0, notifications: 0 });
    t.equal(await s.record(id), undefined);
    t.same(await s.totals(), before, 'totals back');
    await s.close();
  });

  await t.test('bounds: too big, per id, whole store; nothing dropped silently', async t => {
    const s = open();
    const id = idOf(3);
    t.same(await s.append(id, 'messages', item('x'.repeat(SUITE_BOUNDS.maxItemBytes + 1))), { ok: false, reason: 'too-big' });
    for (let i = 0; i < SUITE_BOUNDS.maxItemsPerId; i++) t.ok((await s.append(id, 'messages', item(`m${i}`))).ok);
    t.same(await s.append(id, 'messages', item('over')), { ok: false, reason: 'full' }, 'per-id bound');
    t.same(await s.append(id, 'notifications', item('over')), { ok: false, reason: 'full' }, 'both lists count');
    t.ok((await s.append(id, 'notifications', item('sweep'), { unbounded: true })).ok, 'unbounded passes');
    t.equal((await s.pending(id, 'messages')).length, SUITE_BOUNDS.maxItemsPerId, 'what was taken stays');
    // the byte bound over several ids
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      const r = await s.append(idOf(100 + i), 'messages', item('y'.repeat(SUITE_BOUNDS.maxItemBytes - 200)));
      if (!r.ok) refused += 1;
    }
    t.ok(refused > 0, 'byte bound reached');
    t.ok((await s.totals()).bytes <= SUITE_BOUNDS.maxBytes);
    for (let i = 0; i < 10; i++) await s.discard(idOf(100 + i));
    await s.discard(id);
    t.ok((await s.append(id, 'messages', item('room again'))).ok, 'room once discarded');
    await s.discard(id);
    await s.close();
  });

  await t.test('expiry: removed, notices stored for the sender in the same write', async t => {
    const s = open();
    const id = idOf(4);
    const now = Date.now();
    await s.putRecord(id, { callId: 'c4', servedUser: 'sip:bob@example.net', expiresAt: now - 1 });
    await s.append(id, 'messages', item('old-neg', { expiresAt: now - 10, negativeDelivery: true }));
    await s.append(id, 'messages', item('old', { expiresAt: now - 5 }));
    await s.append(id, 'messages', item('young', { expiresAt: now + 60_000 }));
    await s.append(id, 'notifications', item('old-note', { expiresAt: now - 1 }));
    const seen: string[] = [];
    const batches = await s.expire(now, (m, rec) => {
      seen.push(`${texts([m])[0]} for ${rec?.servedUser}`);
      return m.negativeDelivery ? item(`failed ${m.imdnMessageId}`, { expiresAt: now + 60_000 }) : undefined;
    });
    t.same(seen, ['old-neg for sip:bob@example.net', 'old for sip:bob@example.net'], 'each expired message once, oldest expiry first');
    t.same(batches, [{ id, callId: 'c4', expired: 2, notifications: 1 }]);
    t.same(texts(await s.pending(id, 'messages')), ['young']);
    t.same(texts(await s.pending(id, 'notifications')), ['failed imdn-old-neg'], 'the expired notification went, the notice came');
    t.same(await s.expire(now, () => undefined), [], 'a second sweep: nothing');
    t.ok(await s.record(id), 'a record with items stays');
    await s.discard(id);
    // an expired record left empty goes
    const id2 = idOf(5);
    await s.putRecord(id2, { callId: 'c5', servedUser: 'sip:bob@example.net', expiresAt: now - 1 });
    await s.expire(now, () => undefined);
    t.equal(await s.record(id2), undefined);
    await s.close();
  });

  await t.test('expiry skips the ids being delivered (their item in flight stays for markDone)', async t => {
    const s = open();
    const busy = idOf(7);
    const idle = idOf(8);
    const now = Date.now();
    const seqs: number[] = [];
    for (const id of [busy, idle]) {
      await s.putRecord(id, { callId: `c-${id}`, servedUser: 'sip:bob@example.net', expiresAt: now - 1 });
      const r = await s.append(id, 'messages', item(`old ${id}`, { expiresAt: now - 10, negativeDelivery: true }));
      if (r.ok) seqs.push(r.seq);
    }
    const notice = (m: StoredItem): NewItem => item(`failed ${m.imdnMessageId}`, { expiresAt: now + 60_000 });
    t.same((await s.expire(now, notice, new Set([busy]))).map(b => b.id), [idle], 'only the idle id swept');
    t.same(texts(await s.pending(busy, 'messages')), [`old ${busy}`], 'the busy id keeps its expired item');
    t.same(await s.pending(busy, 'notifications'), [], 'and no failed notice for it');
    t.equal(await s.markDone(busy, 'messages', seqs[0]!), true, 'the delivery marks it done');
    t.same(await s.expire(now, notice), [], 'nothing left to expire once delivered');
    // not delivered after all: the next sweep without it busy takes it
    const r = await s.append(busy, 'messages', item('again', { expiresAt: now - 5 }));
    t.ok(r.ok);
    t.same(await s.expire(now, notice, new Set([busy])), [], 'still busy: skipped');
    t.match(await s.expire(now, notice), [{ id: busy, expired: 1 }], 'busy no more: swept');
    await s.discard(busy);
    await s.discard(idle);
    await s.close();
  });

  await t.test('concurrent appends keep the order they were called in', async t => {
    const s = open();
    const id = idOf(6);
    const rs = await Promise.all(Array.from({ length: 15 }, (_, i) => s.append(id, 'messages', item(`c${i}`))));
    t.ok(rs.every(r => r.ok));
    t.same(texts(await s.pending(id, 'messages')), Array.from({ length: 15 }, (_, i) => `c${i}`));
    await s.discard(id);
    await s.close();
  });
}
