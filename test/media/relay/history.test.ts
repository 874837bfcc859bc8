// The embedded history store: IMAP-like layout, persisted across a reopen.
import t from 'tap';
import { LmdbMessageStore, SESSION_INFO_TYPE } from '../../../media/history/store.js';

t.test('folders, objects and restart', async t => {
  const dir = `${t.testdir()}/history.mdb`;
  const ref = { conversationId: 'conv-1', contributionId: 'contrib-1' };
  let s = new LmdbMessageStore(dir);
  t.same(await s.ensureSessionFolder(ref, { from: 'sip:a@x', callId: 'c1' }), { created: true, infoUid: 1 });
  t.same(await s.ensureSessionFolder(ref, {}), { created: false, infoUid: 1 }, 'second call finds the folder');
  const bin = Buffer.from([0, 0xff, 0xc3, 0xa9]);
  t.equal(await s.append(ref, 'message/cpim', bin), 2);
  t.equal(await s.append(ref, 'message/cpim', Buffer.from('two')), 3);
  await s.ensureSessionFolder({ conversationId: 'conv-1', contributionId: 'contrib-0' }, {});
  await s.ensureSessionFolder({ conversationId: 'conv-10', contributionId: 'x' }, {});
  await s.close();

  s = new LmdbMessageStore(dir);
  const objs = await s.list(ref);
  t.same(objs.map(o => [o.uid, o.contentType]), [[1, SESSION_INFO_TYPE], [2, 'message/cpim'], [3, 'message/cpim']]);
  t.ok(objs[1]!.data.equals(bin), 'binary object intact after reopen');
  t.match(objs[0]!.data.toString(), /Contribution-ID: contrib-1/);
  t.same(await s.sessions('conv-1'), ['contrib-0', 'contrib-1']);
  t.equal(await s.append(ref, 'message/cpim', Buffer.from('four')), 4, 'UIDs continue after restart');
  await s.close();
});
