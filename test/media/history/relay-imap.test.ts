// The relay records through the configured store (docs/history.md): with history-store imap,
// the write queue in front of a live Dovecot. The objects land in the session's folder with
// the header a CPM client sorts by (Message-Direction from the served user's view).
import t from 'tap';
import { ImapFlow } from 'imapflow';
import { buildCpim } from '../../../media/client/peer.js';
import { readConfig } from '../../../media/config/load.js';
import { openHistory } from '../../../media/history/open.js';
import { WriteQueue } from '../../../media/history/queue.js';
import { ImapMessageStore } from '../../../media/history/imap-store.js';
import { SESSION_INFO_TYPE } from '../../../media/history/mss.js';
import { dovecotInFreshDir } from '../../../lab/dovecot.js';
import { world } from '../relay/helpers.js';

t.test('relay -> write queue -> Dovecot', async t => {
  const { mss, dispose } = await dovecotInFreshDir(`${t.testdirName}-dovecot`);
  t.teardown(dispose);
  const cfg = readConfig(['--history-store', 'imap', '--mss-host', mss.host, '--mss-port', String(mss.port),
    '--mss-user', mss.user, '--mss-tls', 'none', '--history-queue', `${t.testdir()}/q.mdb`], { MSS_PASSWORD: mss.password });
  const store = openHistory(cfg);
  if (!(store instanceof WriteQueue)) throw new Error('expected the write queue');
  const w = await world(1, {
    policy: 'B', record: true, 'conversation-id': 'conv.1/ü', 'contribution-id': 'contrib-1', 'served-user': 'sip:bob@example.net',
  }, { store });
  const dev = w.devices[0]!;
  const chat = buildCpim({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', body: 'hello 😀' });
  const s1 = await w.origin.sendMessage(chat, { chunkSize: 10 });
  await dev.waitForMessage(m => m.messageId === s1.messageId);
  const reply = buildCpim({ from: 'sip:bob@example.net', to: 'sip:alice@example.net', body: 'hi back' });
  const s2 = await dev.sendMessage(reply);
  await w.origin.waitForMessage(m => m.messageId === s2.messageId);
  await w.relay.flushHistory();
  await store.drained();
  await w.close();

  const ref = { conversationId: 'conv.1/ü', contributionId: 'contrib-1' };
  const reader = new ImapMessageStore({ host: mss.host, port: mss.port, user: mss.user, password: mss.password, tls: 'none' });
  const objs = await reader.list(ref);
  t.same(objs.map(o => o.contentType), [SESSION_INFO_TYPE, 'message/cpim', 'message/cpim']);
  t.ok(objs[1]!.data.equals(chat), 'chat as the sender sent it');
  t.ok(objs[2]!.data.equals(reply), 'reply as the device sent it (without the injected Message-Direction)');
  t.match(objs[0]!.data.toString(), /To: sip:bob@example.net\r\n/);
  await reader.close();

  // The header a CPM client reads, straight from the server.
  const c = new ImapFlow({ host: mss.host, port: mss.port, secure: false, doSTARTTLS: false, auth: { user: mss.user, pass: mss.password }, logger: false });
  await c.connect();
  const path = (await c.list()).find(m => m.name === 'contrib-1')!.path;
  t.equal(path, 'conv=2E1=2F=C3=BC.contrib-1', 'ids encoded into the folder name');
  const lock = await c.getMailboxLock(path);
  const heads: string[] = [];
  for await (const m of c.fetch('1:*', { uid: true, headers: true })) heads.push(m.headers?.toString() ?? '');
  lock.release();
  await c.logout();
  t.match(heads[1], /Conversation-ID: conv\.1\/ü\r\nContribution-ID: contrib-1\r\n/);
  t.match(heads[1], /Message-Direction: received\r\n/);
  t.match(heads[2], /Message-Direction: sent\r\n/);
  t.match(heads[1], /Message-ID: <[0-9a-f-]{36}@cpm-pf>\r\n/);
  t.match(heads[1], /Content-Type: message\/cpim\r\n/);
  await store.close();
});

t.test('config: history-store', async t => {
  t.notOk('mss' in readConfig([], {}), 'lmdb by default, no MSS');
  const base = ['--history-store', 'imap', '--mss-host', 'mss.example.net', '--mss-user', 'pf'];
  t.same(readConfig(base, { MSS_PASSWORD: 's' }).mss, {
    host: 'mss.example.net', port: 143, user: 'pf', password: 's', tls: 'starttls', connections: 4,
    queue: { path: 'run/history-queue.mdb', maxEntries: 100_000, maxBytes: 256 * 1024 * 1024 },
  });
  t.match(readConfig([...base, '--mss-tls', 'tls', '--mss-connections', '1'], { MSS_PASSWORD: 's' }).mss, { port: 993, tls: 'tls', connections: 1 });
  t.throws(() => readConfig([...base, '--mss-connections', '0'], { MSS_PASSWORD: 's' }), /mss-connections/);
  t.notOk('mss' in readConfig([...base, '--history', 'off'], {}), 'history off: no MSS, no password needed');
  t.throws(() => readConfig(base, {}), /MSS_PASSWORD/);
  t.throws(() => readConfig(['--history-store', 'imap'], { MSS_PASSWORD: 's' }), /mss-host and mss-user/);
  t.throws(() => readConfig(['--history-store', 'pop3'], {}), /history-store/);
  t.throws(() => readConfig([...base, '--mss-tls', 'maybe'], { MSS_PASSWORD: 's' }), /mss-tls/);
  t.match(readConfig(base, { MSS_PASSWORD: 's', MSS_PORT: '1143', RELAY_HISTORY_QUEUE_MAX_ENTRIES: '10' }).mss,
    { port: 1143, queue: { maxEntries: 10 } }, 'environment');
});

t.test('config: history-batch-ms', async t => {
  t.notOk('historyBatchMs' in readConfig([], {}), 'the default (20 ms) is not repeated');
  t.equal(readConfig(['--history-batch-ms', '0'], {}).historyBatchMs, 0, '0: each event-loop turn');
  t.equal(readConfig([], { RELAY_HISTORY_BATCH_MS: '50' }).historyBatchMs, 50, 'environment');
  t.throws(() => readConfig(['--history-batch-ms', '-1'], {}), /history-batch-ms/);
  t.throws(() => readConfig(['--history-batch-ms', '5000'], {}), /history-batch-ms/, 'at most 1 s');
});
