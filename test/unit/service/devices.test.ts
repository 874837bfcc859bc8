// The lmdb device store's own behaviour (purge, decoded-value reuse); the DeviceStore
// interface tests run on every backend in test/unit/devices/interface.test.ts.
import t from 'tap';
import { isDeepStrictEqual } from 'node:util';
import { open } from 'lmdb';
import { LmdbDeviceStore } from '../../../plugin/devices/store.js';
import type { Device } from '../../../plugin/devices/types.js';
import { device, tempDir } from './fixtures/helpers.js';
import { until } from '../../../lab/proc.js';

const AOR = 'sip:bob@example.net';
const I1 = '<urn:uuid:00000000-0000-0000-0000-000000000001>';
const I2 = '<urn:uuid:00000000-0000-0000-0000-000000000002>';

function openStore(dir: string) {
  const root = open({ path: dir, maxDbs: 4 });
  const store = new LmdbDeviceStore(root.openDB<readonly Device[], string>({ name: 'devices' }));
  return {
    store,
    close: async () => {
      await store.close();
      await root.close();
    },
  };
}

t.test('expiry hides devices at once; purge deletes them', async (t) => {
  const { store, close } = openStore(tempDir(t));
  t.teardown(close);
  await store.apply(
    {
      kind: 'update',
      aor: AOR,
      upsert: [
        device({ aor: AOR, contact: 'sip:short@h', expiresAt: 1000 }),
        device({ aor: AOR, contact: 'sip:long@h', expiresAt: 5000 }),
      ],
      remove: [],
    },
    0,
  );
  t.equal(store.list(AOR, 999).length, 2);
  t.same(
    store.list(AOR, 1000).map((d) => d.contact),
    ['sip:long@h'],
  );
  t.equal(await store.purge(1000), 1);
  t.equal(await store.purge(1000), 0);
  t.equal(await store.purge(5000), 1);
  t.same(store.users(), []);
});

t.test('reads reuse a decoded list only while the stored bytes are the same', async (t) => {
  const dir = tempDir(t);
  const { store, close } = openStore(dir);
  t.teardown(close);
  const a = device({ aor: AOR, contact: 'sip:bob@10.0.0.1:5060', instance: I1, params: { '+g.oma.sip-im': true } });
  const b = device({ aor: AOR, contact: 'sip:bob@10.0.0.2:5060', instance: I2 });
  await store.apply({ kind: 'update', aor: AOR, upsert: [a], remove: [] }, 0);
  const first = store.list(AOR, 1);
  t.same(first, [a]);
  t.equal(store.list(AOR, 1), first, 'same bytes: the decoded list again');
  // Another writer (another service instance on the same dataDir) changes the value.
  const other = open({ path: dir, maxDbs: 4 });
  const raw = other.openDB<readonly Device[], string>({ name: 'devices' });
  // lmdb-js renews a reader's snapshot between event-loop turns: another process's
  // commit is seen a turn or a few ms later (polled here, for at most 1 s)
  const seen = async (want: readonly Device[], msg: string): Promise<void> => {
    await until(async () => (isDeepStrictEqual(store.list(AOR, 1), want) ? true : undefined), 1000, msg, 1);
    t.same(store.list(AOR, 1), want, msg);
  };
  await raw.put(AOR, [a, b]);
  await seen([a, b], 'the other writer is seen');
  await raw.put(AOR, [{ ...a, q: 0.5 }]);
  await seen([{ ...a, q: 0.5 }], 'a changed value is decoded again');
  await raw.remove(AOR);
  await seen([], 'a removed one is gone');
  t.same(store.list('sip:nobody@example.net', 1), []);
  await other.close();
});

t.test('a commit the disk refuses (full): apply and purge reject, nothing is left unhandled, the store goes on', async (t) => {
  const root = open({ path: tempDir(t), maxDbs: 4 });
  const db = root.openDB<readonly Device[], string>({ name: 'devices' });
  const store = new LmdbDeviceStore(db);
  t.teardown(async () => {
    await store.close();
    await root.close();
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  const full = (): Error => Object.assign(new Error('MDB_DISK_FULL: No space left on device'), { code: 'ENOSPC' });
  // the transaction runs its action, then its commit fails; each write's promise with it (as lmdb-js does)
  const realTransaction = db.transaction.bind(db);
  const realPut = db.put.bind(db);
  const realRemove = db.remove.bind(db);
  db.transaction = (async (action: () => unknown) => {
    action();
    throw full();
  }) as typeof db.transaction;
  db.put = (() => Promise.reject(full())) as typeof db.put;
  db.remove = (() => Promise.reject(full())) as typeof db.remove;
  const change = { kind: 'update' as const, aor: AOR, upsert: [device({ aor: AOR, contact: 'sip:a@h', expiresAt: 5000 })], remove: [] };
  await t.rejects(store.apply(change, 0), /No space left/, 'the REGISTER write fails with the disk error');
  await t.rejects(store.purge(0), /No space left/);
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  t.same(unhandled, [], 'no unhandled rejection (it would end the service)');
  db.transaction = realTransaction;
  db.put = realPut;
  db.remove = realRemove;
  await store.apply(change, 0);
  t.equal(store.list(AOR, 0).length, 1, 'once the disk has room, writes succeed again');
});
