// The PendingDeliveries interface tests (plugin/b2bua/deferred/pending-store.ts), run
// against every backend (pending-store.test.ts): the map, LMDB across a reopen, Redis (one
// server, a 3-master cluster); the claim cases (plugin/b2bua/deferred/claim.ts) through
// takeClaim/releaseClaim with a fake lease table.
import type { Test } from 'tap';
import { NOTIFICATION_TTL_MS, newEntry, type PendingDeliveries } from '../../../../plugin/b2bua/deferred/pending-store.js';
import { releaseClaim, takeClaim, type AliveCheck } from '../../../../plugin/b2bua/deferred/claim.js';
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

  await t.test('expiry: an entry with notifications for the sender is swept only once the relay would have dropped them', async (t) => {
    const U = 'sip:bob5@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const r = record(U, { expiresAt: 100 });
    await store.put({ ...newEntry(r, 1), notifications: true });
    t.notOk((await store.sweep(150)).includes(r.deferredId), 'past expiresAt: kept');
    t.ok(await store.get(r.deferredId));
    t.ok((await store.sweep(100 + NOTIFICATION_TTL_MS)).includes(r.deferredId), 'past the notifications\' 7 days: swept');
  });

  await t.test('concurrent writes of different entries all land', async (t) => {
    const U = 'sip:bob4@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const rs = Array.from({ length: 20 }, () => record(U));
    await Promise.all(rs.map((r, i) => store.put(newEntry(r, 100 + i))));
    t.same((await store.forUser(U, 0)).map((x) => x.record.deferredId), rs.map((r) => r.deferredId));
  });

  await t.test('claim: compare-and-set, one holder at a time, durable across a reopen', async (t) => {
    let { store, close } = await open();
    const id = record('sip:claim1@example.net').deferredId;
    t.equal(await store.claimant(id), null, 'no claim at first');
    t.notOk(await store.casClaim(id, 'node-b', 'node-a'), 'a stale expectation loses');
    t.ok(await store.casClaim(id, null, 'node-a'));
    t.equal(await store.claimant(id), 'node-a');
    t.notOk(await store.casClaim(id, null, 'node-b'), 'taken: another node cannot set it from none');
    await close();
    ({ store, close } = await open());
    t.teardown(close);
    t.equal(await store.claimant(id), 'node-a', 'the claim survives a reopen');
    t.ok(await store.casClaim(id, 'node-a', null));
    t.equal(await store.claimant(id), null, 'released');
  });

  await t.test('claim: take, refused while the holder lives, taken over once its lease ran out, released', async (t) => {
    const { store, close } = await open();
    t.teardown(close);
    const id = record('sip:claim2@example.net').deferredId;
    const alive = new Map<string, boolean>([['node-a', true], ['node-b', true]]);
    const leases: AliveCheck = { alive: async (n) => alive.get(n) ?? false };
    t.same(await takeClaim(store, leases, id, 'node-a'), { ok: true, why: 'free', from: null });
    t.same(await takeClaim(store, leases, id, 'node-a'), { ok: true, why: 'own', from: 'node-a' }, 'its own claim again');
    t.same(await takeClaim(store, leases, id, 'node-b'), { ok: false, holder: 'node-a' });
    await releaseClaim(store, id, 'node-b');
    t.equal(await store.claimant(id), 'node-a', 'another node cannot release it');
    alive.set('node-a', false);
    t.same(await takeClaim(store, leases, id, 'node-b'), { ok: true, why: 'takeover', from: 'node-a' });
    t.equal(await store.claimant(id), 'node-b');
    await releaseClaim(store, id, 'node-b');
    t.equal(await store.claimant(id), null);
  });

  await t.test('claim: many nodes at once, exactly one takes it', async (t) => {
    const { store, close } = await open();
    t.teardown(close);
    const leases: AliveCheck = { alive: async () => true };
    for (let round = 0; round < 5; round++) {
      const id = record('sip:claim3@example.net').deferredId;
      const nodes = Array.from({ length: 8 }, (_, i) => `node-${i}`);
      const results = await Promise.all(nodes.map((n) => takeClaim(store, leases, id, n)));
      const winners = nodes.filter((_, i) => results[i]?.ok === true);
      t.equal(winners.length, 1, `round ${round}: one winner`);
      t.equal(await store.claimant(id), winners[0]);
    }
  });

  await t.test('claim: removing the entry removes its claim; the sweep too', async (t) => {
    const U = 'sip:claim4@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const kept = record(U);
    const old = record(U, { expiresAt: 100 });
    await store.put(newEntry(kept, 1));
    await store.put(newEntry(old, 2));
    t.ok(await store.casClaim(kept.deferredId, null, 'node-a'));
    t.ok(await store.casClaim(old.deferredId, null, 'node-a'));
    await store.remove(kept.deferredId);
    t.equal(await store.claimant(kept.deferredId), null);
    t.ok((await store.sweep(150)).includes(old.deferredId));
    t.equal(await store.claimant(old.deferredId), null);
  });
}
