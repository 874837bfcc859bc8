// The deferred store interface suite (suite.ts) on the LMDB store.
import t from 'tap';
import { LmdbDeferredStore } from '../../../media/deferred/lmdb.js';
import { deferredSuite, SUITE_BOUNDS } from './suite.js';

t.test('lmdb', async t => {
  const path = `${t.testdir()}/deferred.mdb`;
  await deferredSuite(t, () => new LmdbDeferredStore({ path, bounds: SUITE_BOUNDS }));
});
