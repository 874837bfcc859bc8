// One interface suite (suite.ts), two stores: the embedded LMDB store and the IMAP client
// against a private Dovecot started here (lab/dovecot.ts).
import t from 'tap';
import { LmdbMessageStore } from '../../../media/history/store.js';
import { ImapMessageStore } from '../../../media/history/imap-store.js';
import { startDovecot } from '../../../lab/dovecot.js';
import { interfaceSuite } from './suite.js';

t.test('lmdb', async t => {
  const path = `${t.testdir()}/h.mdb`;
  await interfaceSuite(t, () => new LmdbMessageStore(path));
});

t.test('imap (Dovecot)', async t => {
  const mss = await startDovecot({ dir: `${t.testdir()}/dovecot` });
  t.teardown(() => mss.stop());
  await interfaceSuite(t, () => new ImapMessageStore({
    host: mss.host, port: mss.port, user: mss.user, password: mss.password, tls: 'none',
  }));
});
