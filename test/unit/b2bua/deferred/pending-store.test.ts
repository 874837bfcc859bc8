// One interface suite (pending-suite.ts), two backends: the map and LMDB (reopened
// between steps, as after a restart); and a damaged LMDB entry reported and skipped.
import t from 'tap';
import { MemoryPendingDeliveries, newEntry, openLmdbPendingDeliveries, parseEntry } from '../../../../plugin/b2bua/deferred/pending-store.js';
import { tempDir } from '../../service/fixtures/helpers.js';
import { pendingSuite, record } from './pending-suite.js';

t.test('memory', async (t) => {
  const store = new MemoryPendingDeliveries();
  await pendingSuite(t, async () => ({ store, close: async () => {} }));
});

t.test('lmdb', async (t) => {
  const dir = tempDir(t);
  await pendingSuite(t, async () => {
    const store = openLmdbPendingDeliveries(dir);
    return { store, close: () => store.close() };
  });
});

t.test('a damaged entry is reported and skipped', async (t) => {
  const bad: string[] = [];
  const store = new MemoryPendingDeliveries((k, why) => bad.push(`${k}: ${why}`));
  const r = record('sip:dam@example.net');
  await store.put(newEntry(r, 1));
  store.records.set('junk', '{"v":1');
  store.records.set('other', JSON.stringify({ v: 1, record: { deferredId: 'x' } }));
  t.same((await store.all(0)).map((e) => e.record.deferredId), [r.deferredId]);
  t.equal(bad.length, 2);
  t.notOk(parseEntry('[]').ok);
});
