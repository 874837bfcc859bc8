// The embedded history store: IMAP-like layout, persisted across a reopen.
import t from 'tap';
import { LmdbMessageStore, SESSION_INFO_TYPE } from '../../../media/history/store.js';
import type { HistoryWriter } from '../../../media/history/mss.js';
import { Body } from '../../../media/relay/frames.js';
import { HistoryRecorder } from '../../../media/relay/history-recorder.js';
import type { Session } from '../../../media/relay/session.js';

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

// The recorder gathers objects and hands them over in one appendMany (docs/history.md
// "Where the cost of history goes"): after batchMs, at once past 4 MiB, and on flush or a
// folder opening, always in call order.
t.test('recorder: gathering, byte bound, order', async t => {
  const calls: string[] = [];
  const writer: HistoryWriter = {
    ensureSessionFolder: async ref => { calls.push(`folder ${ref.contributionId}`); },
    append: async () => { throw new Error('the recorder writes through appendMany'); },
    appendMany: async items => { calls.push(items.map(i => i.data.length > 100 ? `${i.data.length >> 20}MiB` : i.data.subarray(-1).toString()).join(',')); },
    close: async () => undefined,
  };
  const session = (contributionId: string): Session =>
    ({ record: true, conversationId: 'conv', contributionId, callId: `call-${contributionId}` }) as unknown as Session;
  const rec = new HistoryRecorder(writer, undefined, 8 * 1024 * 1024, 30);
  const a = session('a');
  const b = session('b');
  const chat = (text: string): Buffer => Buffer.from(`From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\n${text}`);
  const send = (s: Session, data: Buffer): void => {
    const h = rec.wants(s, 'originator', 'message/cpim')!;
    rec.record(s, h, { body: new Body([data], data.length), flag: '$' });
  };
  send(a, chat('1'));
  send(b, chat('2'));
  await new Promise(r => setTimeout(r, 5));
  send(a, chat('3'));
  t.same(calls, [], 'nothing written before batchMs');
  await new Promise(r => setTimeout(r, 60));
  t.same(calls, ['1,2,3'], 'one write for the three, in order');
  calls.length = 0;
  send(a, chat('4'));
  rec.openFolder(session('c'));
  t.same(calls, ['4', 'folder c'], 'a folder opening first hands over what was gathered');
  calls.length = 0;
  send(a, Buffer.alloc(3 << 20, 0x41));
  t.same(calls, [], 'under 4 MiB: gathered');
  send(a, Buffer.alloc(2 << 20, 0x41));
  t.same(calls, ['3MiB,2MiB'], 'past 4 MiB: written at once');
  send(a, chat('5'));
  await rec.flush();
  t.equal(calls.length, 2, 'flush writes what is gathered');
  const iscomposing = Buffer.from('From: <sip:a@x>\r\n\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n<c/>');
  send(b, iscomposing);
  await rec.flush();
  t.equal(calls.length, 2, 'isComposing is not recorded');
});
