// The MessageStore interface tests (media/history/mss.ts), run against every store:
// the embedded LMDB store and the IMAP client on a live Dovecot (interface.test.ts).
import type { Test } from 'tap';
import {
  formatGroupState, GROUP_STATE_TYPE, SESSION_INFO_TYPE, type MessageStore,
} from '../../../media/history/mss.js';

export const cpim = (text: string, id = 'm1'): Buffer => Buffer.from(
  'From: <sip:alice@example.net>\r\nTo: <sip:bob@example.net>\r\nDateTime: 2026-11-24T01:00:00Z\r\n' +
  `NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: ${id}\r\n\r\nContent-Type: text/plain;charset=utf-8\r\n\r\n${text}`, 'utf8');

/** `open` gives a store on the same backing data each time (a restart). */
export async function interfaceSuite(t: Test, open: () => MessageStore): Promise<void> {
  const ref = { conversationId: 'conv-1', contributionId: 'contrib-1' };

  await t.test('folder, objects in order, reopen', async t => {
    let s = open();
    t.same(await s.ensureSessionFolder(ref, { from: 'sip:a@x', callId: 'c1' }), { created: true, infoUid: 1 });
    t.same(await s.ensureSessionFolder(ref, {}), { created: false, infoUid: 1 }, 'second call finds the folder (CR 8.5 step 8a)');
    const bin = Buffer.from([0, 0xff, 0xc3, 0xa9, 0x0a, 0x0d]);
    t.equal(await s.append(ref, 'message/cpim', bin), 2, 'binary object');
    t.equal(await s.append(ref, 'message/cpim', cpim('héllo ✓'), { direction: 'received' }), 3);
    t.equal(await s.append(ref, 'message/cpim', cpim('no final CRLF', 'm2'), { direction: 'sent' }), 4);
    await s.ensureSessionFolder({ conversationId: 'conv-1', contributionId: 'contrib-0' }, {});
    await s.ensureSessionFolder({ conversationId: 'conv-10', contributionId: 'x' }, {});
    await s.close();

    s = open();
    t.same(await s.ensureSessionFolder(ref, {}), { created: false, infoUid: 1 }, 'found after a restart');
    const objs = await s.list(ref);
    t.same(objs.map(o => [o.uid, o.contentType]),
      [[1, SESSION_INFO_TYPE], [2, 'message/cpim'], [3, 'message/cpim'], [4, 'message/cpim']]);
    t.ok(objs[1]!.data.equals(bin), 'binary object intact');
    t.ok(objs[2]!.data.equals(cpim('héllo ✓')), 'CPIM object byte for byte');
    t.ok(objs[3]!.data.equals(cpim('no final CRLF', 'm2')), 'object without a final CRLF intact');
    t.match(objs[0]!.data.toString(), /Contribution-ID: contrib-1\r\n/);
    t.match(objs[0]!.data.toString(), /Call-ID: c1\r\n/);
    t.ok(objs.every(o => !Number.isNaN(Date.parse(o.storedAt))), 'storedAt is a time');
    t.same(await s.sessions('conv-1'), ['contrib-0', 'contrib-1']);
    t.same(await s.sessions('conv-10'), ['x']);
    t.same(await s.sessions('nothing'), []);
    t.same(await s.list({ conversationId: 'conv-1', contributionId: 'none' }), [], 'no folder: no objects');
    t.equal(await s.append(ref, 'message/cpim', Buffer.from('five\r\n')), 5, 'UIDs continue after a restart');
    await s.close();
  });

  await t.test('appendMany: objects of two folders interleaved, each folder in order, UIDs in call order', async t => {
    const s = open();
    const a = { conversationId: 'conv-many', contributionId: 'a' };
    const b = { conversationId: 'conv-many', contributionId: 'b' };
    await s.ensureSessionFolder(a, {});
    await s.ensureSessionFolder(b, {});
    t.equal(await s.append(a, 'message/cpim', cpim('a1', 'a1')), 2);
    const uids = await s.appendMany([
      { ref: a, contentType: 'message/cpim', data: cpim('a2', 'a2'), opts: { direction: 'received' } },
      { ref: b, contentType: 'message/cpim', data: cpim('b1', 'b1') },
      { ref: a, contentType: 'message/cpim', data: cpim('a3', 'a3'), opts: { direction: 'sent' } },
      { ref: b, contentType: GROUP_STATE_TYPE, data: Buffer.from('<groupstate/>') },
    ]);
    t.same(uids, [3, 2, 4, 3], 'each folder counts on from its own last UID');
    t.same(await s.appendMany([]), [], 'nothing to append');
    t.equal(await s.append(a, 'message/cpim', cpim('a4', 'a4')), 5, 'single appends continue after a batch');
    const inA = await s.list(a);
    t.same(inA.slice(1).map(o => o.data.toString()), ['a1', 'a2', 'a3', 'a4'].map(x => cpim(x, x).toString()));
    t.same((await s.list(b)).map(o => o.contentType), [SESSION_INFO_TYPE, 'message/cpim', GROUP_STATE_TYPE]);
    // a retried batch with keys stores each object once
    const keyed = [
      { ref: b, contentType: 'message/cpim', data: cpim('k1', 'k1'), opts: { key: 'many-1@test' } },
      { ref: b, contentType: 'message/cpim', data: cpim('k2', 'k2'), opts: { key: 'many-2@test' } },
    ];
    const first = await s.appendMany(keyed);
    t.same(await s.appendMany(keyed.map(k => ({ ...k, opts: { ...k.opts, retry: true } }))), first, 'the same UIDs back');
    t.equal((await s.list(b)).length, 5, 'stored once');
    await s.close();
  });

  await t.test('idempotency key: a retry stores once', async t => {
    const s = open();
    const r = { conversationId: 'conv-2', contributionId: 'c' };
    await s.ensureSessionFolder(r, {});
    const a = await s.append(r, 'message/cpim', cpim('once', 'k'), { key: 'k-1@test' });
    t.equal(await s.append(r, 'message/cpim', cpim('once', 'k'), { key: 'k-1@test', retry: true }), a, 'same UID back');
    const b = await s.append(r, 'message/cpim', cpim('twice', 'k2'), { key: 'k-2@test', retry: true });
    t.ok(b > a, 'a new key is stored');
    const objs = await s.list(r);
    t.same(objs.map(o => o.key ?? null), [null, 'k-1@test', 'k-2@test']);
    await s.close();
  });

  await t.test('ids that are not legal mailbox names', async t => {
    const s = open();
    const odd = ['a.b/c', '%*&~', 'ünï cödé ✓', 'x=2E', '..', 'INBOX', 'a\r\nb'];
    for (const id of odd) {
      const r = { conversationId: `conv.${id}`, contributionId: id };
      t.same(await s.ensureSessionFolder(r, {}), { created: true, infoUid: 1 }, JSON.stringify(id));
      t.equal(await s.append(r, 'message/cpim', cpim(id)), 2);
      t.same(await s.sessions(`conv.${id}`), [id], `sessions gives ${JSON.stringify(id)} back`);
      t.ok((await s.list(r))[1]!.data.equals(cpim(id)));
    }
    t.same(await s.sessions('conv.a'), [], 'a dot in an id is not a hierarchy level');
    for (const inbox of ['INBOX', 'inbox']) {
      t.same(await s.ensureSessionFolder({ conversationId: inbox, contributionId: inbox }, {}), { created: true, infoUid: 1 },
        `${inbox}: a folder of its own (INBOX is case-insensitive in IMAP)`);
    }
    t.same(await s.sessions('INBOX'), ['INBOX']);
    t.same(await s.sessions('inbox'), ['inbox']);
    await s.close();
  });

  await t.test('group state object and a truncated CPIM object', async t => {
    const s = open();
    const r = { conversationId: 'conv-g', contributionId: 'g1' };
    await s.ensureSessionFolder(r, {});
    const gso = Buffer.from(formatGroupState({
      contributionId: 'g1', focus: 'sip:conf@pf.example.net',
      participants: [{ uri: 'sip:alice@example.net', name: 'A & "B"' }, { uri: 'tel:+15551234' }],
      at: new Date('2026-12-01T00:00:00Z'),
    }), 'utf8');
    await s.append(r, GROUP_STATE_TYPE, gso);
    const cut = cpim('whole').subarray(0, 40);
    await s.append(r, 'message/cpim', cut);
    const objs = await s.list(r);
    t.same(objs.map(o => o.contentType), [SESSION_INFO_TYPE, GROUP_STATE_TYPE, 'message/cpim']);
    t.ok(objs[1]!.data.equals(gso), 'group state object intact');
    t.match(objs[1]!.data.toString(), /name="A &amp; &quot;B&quot;"/);
    t.ok(objs[2]!.data.equals(cut), 'a truncated CPIM object is kept as it came');
    await s.close();
  });
}
