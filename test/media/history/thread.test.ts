// History from a worker thread (media/history/thread.ts): the writes reach the store in
// the order they were made, each promise settles once its write is on disk, and a closed
// thread refuses further writes with a clear error.
import t from 'tap';
import { HistoryThread } from '../../../media/history/thread.js';
import { LmdbMessageStore, SESSION_INFO_TYPE } from '../../../media/history/store.js';

t.test('the embedded store through the thread: in order, durable once resolved, then closed', async (t) => {
  const path = `${t.testdir()}/h.mdb`;
  const h = new HistoryThread({ history: path, logLevel: 'silent' });
  const ref = { conversationId: 'conv-1', contributionId: 'contrib-1' };
  const writes: Promise<unknown>[] = [h.ensureSessionFolder(ref, { callId: 'c1', startedAt: '2026-12-06T00:00:00Z' })];
  for (let i = 0; i < 500; i++) {
    writes.push(h.append(ref, 'message/cpim', Buffer.from(`message ${i}`), { direction: 'received', date: new Date(1_800_000_000_000 + i) }));
    if (i % 37 === 0) await new Promise((r) => setImmediate(r)); // over several turns
  }
  await Promise.all(writes);
  await h.close();
  await t.rejects(h.append(ref, 'message/cpim', Buffer.from('late')), /history thread closed/, 'a write after close is refused');

  const store = new LmdbMessageStore(path);
  t.teardown(() => store.close());
  const objects = await store.list(ref);
  t.equal(objects.length, 501, 'the session info object and the 500 messages');
  t.equal(objects[0]?.contentType, SESSION_INFO_TYPE, 'the session info object first');
  t.same(objects.slice(1).map((o) => o.data.toString()), Array.from({ length: 500 }, (_, i) => `message ${i}`), 'in the order written');
  t.same(objects.map((o) => o.uid), Array.from({ length: 501 }, (_, i) => i + 1), 'UIDs 1..501');
});

t.test('two sessions interleaved keep their own order and UIDs', async (t) => {
  const path = `${t.testdir()}/h.mdb`;
  const h = new HistoryThread({ history: path, logLevel: 'silent' });
  const a = { conversationId: 'conv', contributionId: 'a' };
  const b = { conversationId: 'conv', contributionId: 'b' };
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 50; i++) {
    writes.push(h.append(a, 'message/cpim', Buffer.from(`a${i}`)), h.append(b, 'message/cpim', Buffer.from(`b${i}`)));
  }
  await Promise.all(writes);
  await h.close();
  const store = new LmdbMessageStore(path);
  t.teardown(() => store.close());
  t.same((await store.list(a)).map((o) => o.data.toString()), Array.from({ length: 50 }, (_, i) => `a${i}`));
  t.same((await store.list(b)).map((o) => o.uid), Array.from({ length: 50 }, (_, i) => i + 1));
});
