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

t.test('add, refresh, per-contact removal, remove-all', async (t) => {
  const { store, close } = openStore(tempDir(t));
  t.teardown(close);
  const a = device({ aor: AOR, contact: 'sip:bob@10.0.0.1:5060', instance: I1, params: { '+g.oma.sip-im': true } });
  const b = device({ aor: AOR, contact: 'sip:bob@10.0.0.2:5060', instance: I2 });
  const c = device({ aor: AOR, contact: 'sip:bob@10.0.0.3:5060' });

  t.same(await store.apply({ kind: 'update', aor: AOR, upsert: [a, b, c], remove: [] }, 0), {
    devices: 3,
    added: 3,
    refreshed: 0,
    removed: 0,
  });
  // same instance, new contact URI (re-registration from another address) replaces it
  const a2 = { ...a, contact: 'sip:bob@10.0.0.9:5060', cseq: 2 };
  t.same(await store.apply({ kind: 'update', aor: AOR, upsert: [a2], remove: [] }, 10), {
    devices: 3,
    added: 0,
    refreshed: 1,
    removed: 0,
  });
  t.equal(store.list(AOR, 10).find((d) => d.instance === I1)?.contact, 'sip:bob@10.0.0.9:5060');

  // RFC 3261 §10.3 step 7: same Call-ID and a CSeq not higher is ignored
  const stale = { ...a, contact: 'sip:bob@stale', cseq: 1 };
  await store.apply({ kind: 'update', aor: AOR, upsert: [stale], remove: [] }, 20);
  t.equal(store.list(AOR, 20).find((d) => d.instance === I1)?.contact, 'sip:bob@10.0.0.9:5060');

  // per-contact expires=0 (by device key: instance, or the Contact URI without one)
  t.same(await store.apply({ kind: 'update', aor: AOR, upsert: [], remove: [I2, 'sip:bob@10.0.0.3:5060'] }, 30), {
    devices: 1,
    added: 0,
    refreshed: 0,
    removed: 2,
  });
  // a binding that arrives already expired removes the device
  await store.apply({ kind: 'update', aor: AOR, upsert: [b], remove: [] }, 40);
  t.equal(store.list(AOR, 40).length, 2);
  await store.apply({ kind: 'update', aor: AOR, upsert: [{ ...b, cseq: 5, expiresAt: 40 }], remove: [] }, 40);
  t.equal(store.list(AOR, 40).length, 1);

  t.same(await store.apply({ kind: 'fetch', aor: AOR }, 50), { devices: 1, added: 0, refreshed: 0, removed: 0 });
  t.same(await store.apply({ kind: 'remove-all', aor: AOR }, 60), { devices: 0, added: 0, refreshed: 0, removed: 1 });
  t.same(store.list(AOR, 60), []);
  t.same(store.users(), []);
});

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

t.test('a restart loses nothing: reopen the store', async (t) => {
  const dir = tempDir(t);
  const first = openStore(dir);
  const d = device({
    aor: AOR,
    contact: 'sip:bob@10.0.0.1:5060;transport=tcp',
    instance: I1,
    params: { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session', '+g.oma.sip-im': true },
    pubGruu: `${AOR};gr=urn:uuid:00000000-0000-0000-0000-000000000001`,
    path: ['sip:edge@127.0.0.1;lr'],
    received: 'tcp:127.0.0.1:40000',
  });
  await first.store.apply({ kind: 'update', aor: AOR, upsert: [d], remove: [] }, 0);
  await first.close();
  await t.rejects(first.store.apply({ kind: 'fetch', aor: AOR }, 0), /closed/);

  const second = openStore(dir);
  t.teardown(second.close);
  t.same(second.store.list(AOR, 1), [d]);
  t.same(second.store.users(), [AOR]);
});

t.test('a REGISTER over the device cap stores nothing', async (t) => {
  const root = open({ path: tempDir(t), maxDbs: 4 });
  const store = new LmdbDeviceStore(root.openDB<readonly Device[], string>({ name: 'devices' }), 2);
  t.teardown(() => root.close());
  const mk = (n: number) => device({ aor: AOR, contact: `sip:bob@10.0.0.${n}` });
  await store.apply({ kind: 'update', aor: AOR, upsert: [mk(1), mk(2)], remove: [] }, 0);
  await t.rejects(store.apply({ kind: 'update', aor: AOR, upsert: [mk(3)], remove: [] }, 0), {
    code: 'REGISTER_TOO_MANY_CONTACTS',
  });
  t.same(
    store.list(AOR, 0).map((d) => d.contact),
    ['sip:bob@10.0.0.1', 'sip:bob@10.0.0.2'],
  );
  // replacing one within the same REGISTER stays under the cap
  t.same((await store.apply({ kind: 'update', aor: AOR, upsert: [mk(3)], remove: ['sip:bob@10.0.0.1'] }, 0)).devices, 2);
});

t.test('concurrent REGISTERs of one user all land (one transaction each)', async (t) => {
  const { store, close } = openStore(tempDir(t));
  t.teardown(close);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      store.apply(
        { kind: 'update', aor: AOR, upsert: [device({ aor: AOR, contact: `sip:bob@10.0.1.${i}`, instance: `<urn:uuid:${i}>` })], remove: [] },
        0,
      ),
    ),
  );
  t.same(results.map((r) => r.added), Array(20).fill(1));
  t.equal(store.list(AOR, 0).length, 20);
  t.same(
    results.map((r) => r.devices).sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i + 1),
    'each saw the ones before it',
  );
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
