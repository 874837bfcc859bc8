// The PendingDeliveries interface tests (plugin/b2bua/deferred/pending-store.ts), run
// against every backend (pending-store.test.ts): the map, and LMDB across a reopen.
import type { Test } from 'tap';
import { newEntry, type PendingDeliveries } from '../../../../plugin/b2bua/deferred/pending-store.js';
import type { DeferredRecord } from '../../../../plugin/b2bua/deferred/record.js';

export interface Opened {
  readonly store: PendingDeliveries;
  close(): Promise<void>;
}
/** `open` gives a store on the same backing data each time (a restart). */
export type OpenStore = () => Promise<Opened>;

let n = 0;
export function record(servedUser: string, over: Partial<DeferredRecord> = {}): DeferredRecord {
  n++;
  return {
    deferredId: n.toString(16).padStart(32, '0'), servedUser, callId: `call-${n}@x`, from: '<sip:alice@example.net>',
    pAssertedIdentity: ['<sip:alice@example.net>'], to: `<${servedUser}>`, conversationId: 'conv', contributionId: `contrib-${n}`,
    inReplyToContributionId: null, group: false, focus: null, expiresAt: 1_000_000, ...over,
  };
}

/** Each subtest uses its own users, so one backing store serves them all. */
export async function pendingSuite(t: Test, open: OpenStore): Promise<void> {
  await t.test('put, get, replace, remove; durable across a reopen', async (t) => {
    const U = 'sip:bob1@example.net';
    let { store, close } = await open();
    const r = record(U);
    t.equal(await store.get(r.deferredId), null);
    const e = newEntry(r, 10);
    await store.put(e);
    t.same(await store.get(r.deferredId), e);
    const changed = { ...e, messages: false, notifications: true, conference: { version: 2, participants: [{ uri: 'sip:c@x', name: 'C' }] } };
    await store.put(changed);
    t.same(await store.get(r.deferredId), changed);
    t.same((await store.forUser(U, 0)).map((x) => x.record.deferredId), [r.deferredId], 'replaced, not added');
    await close();
    ({ store, close } = await open());
    t.teardown(close);
    t.same(await store.get(r.deferredId), changed, 'the entry survives a reopen');
    await store.remove(r.deferredId);
    await store.remove(r.deferredId);
    t.equal(await store.get(r.deferredId), null, 'remove is idempotent');
    t.same(await store.forUser(U, 0), []);
  });

  await t.test('one user, creation order; other users apart', async (t) => {
    const U = 'sip:bob2@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const a = record(U);
    const b = record(U);
    const c = record(U);
    const other = record('sip:bob2@example.net.other');
    await store.put(newEntry(c, 30));
    await store.put(newEntry(a, 10));
    await store.put(newEntry(other, 5));
    await store.put(newEntry(b, 20));
    t.same((await store.forUser(U, 0)).map((x) => x.record.deferredId), [a, b, c].map((x) => x.deferredId));
    t.same((await store.forUser(other.servedUser, 0)).map((x) => x.record.deferredId), [other.deferredId]);
    const all = (await store.all(0)).map((x) => x.record.deferredId);
    for (const x of [a, b, c, other]) t.ok(all.includes(x.deferredId));
  });

  await t.test('expiry: not listed once expired, swept', async (t) => {
    const U = 'sip:bob3@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const soon = record(U, { expiresAt: 100 });
    const later = record(U, { expiresAt: 200 });
    await store.put(newEntry(soon, 1));
    await store.put(newEntry(later, 2));
    t.same((await store.forUser(U, 50)).length, 2);
    t.same((await store.forUser(U, 150)).map((x) => x.record.deferredId), [later.deferredId], 'an expired entry is not delivered');
    const gone = await store.sweep(150);
    t.ok(gone.includes(soon.deferredId));
    t.notOk(gone.includes(later.deferredId));
    t.equal(await store.get(soon.deferredId), null);
    t.ok(await store.get(later.deferredId));
  });

  await t.test('concurrent writes of different entries all land', async (t) => {
    const U = 'sip:bob4@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const rs = Array.from({ length: 20 }, () => record(U));
    await Promise.all(rs.map((r, i) => store.put(newEntry(r, 100 + i))));
    t.same((await store.forUser(U, 0)).map((x) => x.record.deferredId), rs.map((r) => r.deferredId));
  });
}
