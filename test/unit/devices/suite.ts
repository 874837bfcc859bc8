// The DeviceStore interface tests (plugin/devices/store.ts), run against every backend:
// the embedded lmdb store and the Redis store on a Redis Cluster (interface.test.ts).
import type { Test } from 'tap';
import type { DeviceStore } from '../../../plugin/devices/store.js';
import { device } from '../service/fixtures/helpers.js';

export interface Opened {
  readonly store: DeviceStore;
  close(): Promise<void>;
}

/** `open` gives a store on the same backing data each time (a restart, or another instance). */
export type OpenStore = (opts?: { readonly maxDevices?: number }) => Promise<Opened>;

const I1 = '<urn:uuid:00000000-0000-0000-0000-000000000001>';
const I2 = '<urn:uuid:00000000-0000-0000-0000-000000000002>';

/** Each subtest uses its own user, so one backing store serves them all. */
export async function deviceStoreSuite(t: Test, open: OpenStore): Promise<void> {
  await t.test('add, refresh, per-contact removal, remove-all', async (t) => {
    const AOR = 'sip:bob@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const a = device({ aor: AOR, contact: 'sip:bob@10.0.0.1:5060', instance: I1, params: { '+g.oma.sip-im': true } });
    const b = device({ aor: AOR, contact: 'sip:bob@10.0.0.2:5060', instance: I2 });
    const c = device({ aor: AOR, contact: 'sip:bob@10.0.0.3:5060' });

    t.same(await store.apply({ kind: 'update', aor: AOR, upsert: [a, b, c], remove: [] }, 0), {
      devices: 3, added: 3, refreshed: 0, removed: 0,
    });
    // same instance, new contact URI (re-registration from another address) replaces it
    const a2 = { ...a, contact: 'sip:bob@10.0.0.9:5060', cseq: 2 };
    t.same(await store.apply({ kind: 'update', aor: AOR, upsert: [a2], remove: [] }, 10), {
      devices: 3, added: 0, refreshed: 1, removed: 0,
    });
    t.equal(store.list(AOR, 10).find((d) => d.instance === I1)?.contact, 'sip:bob@10.0.0.9:5060');

    // RFC 3261 §10.3 step 7: same Call-ID and a CSeq not higher is ignored
    const stale = { ...a, contact: 'sip:bob@stale', cseq: 1 };
    await store.apply({ kind: 'update', aor: AOR, upsert: [stale], remove: [] }, 20);
    t.equal(store.list(AOR, 20).find((d) => d.instance === I1)?.contact, 'sip:bob@10.0.0.9:5060');

    // per-contact expires=0 (by device key: instance, or the Contact URI without one)
    t.same(await store.apply({ kind: 'update', aor: AOR, upsert: [], remove: [I2, 'sip:bob@10.0.0.3:5060'] }, 30), {
      devices: 1, added: 0, refreshed: 0, removed: 2,
    });
    // a binding that arrives already expired removes the device
    await store.apply({ kind: 'update', aor: AOR, upsert: [b], remove: [] }, 40);
    t.equal(store.list(AOR, 40).length, 2);
    await store.apply({ kind: 'update', aor: AOR, upsert: [{ ...b, cseq: 5, expiresAt: 40 }], remove: [] }, 40);
    t.equal(store.list(AOR, 40).length, 1);

    t.same(await store.apply({ kind: 'fetch', aor: AOR }, 50), { devices: 1, added: 0, refreshed: 0, removed: 0 });
    t.same(await store.apply({ kind: 'remove-all', aor: AOR }, 60), { devices: 0, added: 0, refreshed: 0, removed: 1 });
    t.same(store.list(AOR, 60), []);
    t.notOk(store.users().includes(AOR), 'no longer a user');
  });

  await t.test('expiry hides devices at once', async (t) => {
    const AOR = 'sip:expiry@example.net';
    const { store, close } = await open();
    t.teardown(close);
    await store.apply({
      kind: 'update', aor: AOR, remove: [],
      upsert: [
        device({ aor: AOR, contact: 'sip:short@h', expiresAt: 1000 }),
        device({ aor: AOR, contact: 'sip:long@h', expiresAt: 5000 }),
      ],
    }, 0);
    t.equal(store.list(AOR, 999).length, 2);
    t.same(store.list(AOR, 1000).map((d) => d.contact), ['sip:long@h']);
    t.same(store.list(AOR, 5000), []);
  });

  await t.test('a restart loses nothing: reopen the store', async (t) => {
    const AOR = 'sip:restart@example.net';
    const first = await open();
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

    const second = await open();
    t.teardown(second.close);
    t.same(second.store.list(AOR, 1), [d]);
    t.ok(second.store.users().includes(AOR));
  });

  await t.test('a REGISTER over the device cap stores nothing', async (t) => {
    const AOR = 'sip:cap@example.net';
    const { store, close } = await open({ maxDevices: 2 });
    t.teardown(close);
    const mk = (n: number) => device({ aor: AOR, contact: `sip:bob@10.0.0.${n}` });
    await store.apply({ kind: 'update', aor: AOR, upsert: [mk(1), mk(2)], remove: [] }, 0);
    await t.rejects(store.apply({ kind: 'update', aor: AOR, upsert: [mk(3)], remove: [] }, 0), {
      code: 'REGISTER_TOO_MANY_CONTACTS',
    });
    t.same(store.list(AOR, 0).map((d) => d.contact), ['sip:bob@10.0.0.1', 'sip:bob@10.0.0.2']);
    // replacing one within the same REGISTER stays under the cap
    t.same((await store.apply({ kind: 'update', aor: AOR, upsert: [mk(3)], remove: ['sip:bob@10.0.0.1'] }, 0)).devices, 2);
  });

  await t.test('concurrent REGISTERs of one user all land', async (t) => {
    const AOR = 'sip:many@example.net';
    const { store, close } = await open();
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

  await t.test('users with odd characters in their URI are kept apart', async (t) => {
    const { store, close } = await open();
    t.teardown(close);
    const aors = [
      'sip:{odd}@example.net', 'sip:odd}@example.net', 'sip:a%7Bb@example.net', 'sip:a:b@example.net',
      'sip:ünï©ødé@example.net', 'tel:+1-555-0100;phone-context=example.net', 'sip:sp ace@example.net', 'sip:*@example.net',
    ];
    for (const [i, aor] of aors.entries()) {
      await store.apply({ kind: 'update', aor, upsert: [device({ aor, contact: `sip:d${i}@10.0.2.1` })], remove: [] }, 0);
    }
    for (const [i, aor] of aors.entries()) t.same(store.list(aor, 1).map((d) => d.contact), [`sip:d${i}@10.0.2.1`], aor);
    for (const aor of aors) t.ok(store.users().includes(aor), `listed: ${aor}`);
    const again = await open();
    t.teardown(again.close);
    for (const [i, aor] of aors.entries()) t.same(again.store.list(aor, 1).map((d) => d.contact), [`sip:d${i}@10.0.2.1`], `reopened: ${aor}`);
  });
}
