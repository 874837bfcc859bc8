// REPORT routing memory (RFC 4975 §7.1.2): the relay remembers, per session, where the
// REPORTs of forwarded messages go back to, bounded by maxTracked, oldest forgotten first.
import t from 'tap';
import { buildCpim } from '../../../media/client/peer.js';
import { buildRequest } from '../../../media/msrp/index.js';
import { world } from './helpers.js';

const ALICE = 'sip:alice@example.net';
const BOB = 'sip:bob@example.net';

t.test('maxTracked 4: REPORTs for the 3 newest of 5 messages come back, the 2 oldest are dropped', async t => {
  const w = await world(1, {}, { maxTracked: 4 });
  t.teardown(() => w.close());
  const dev = w.devices[0]!;
  const ids: string[] = [];
  for (let i = 1; i <= 5; i++) {
    // No Success-Report: the device sends no REPORT of its own; Failure-Report: yes.
    const r = await w.origin.sendMessage(buildCpim({ from: ALICE, to: BOB, body: `m${i}` }));
    t.same(r.statuses, [200]);
    ids.push(r.messageId);
  }
  await dev.waitForMessage(m => m.messageId === ids[4]);
  // The device reports a failure on all five, oldest first, on its one connection.
  for (const id of ids) {
    dev.send(buildRequest({
      method: 'REPORT', toPath: dev.remotePath!, fromPath: dev.localUri,
      headers: [{ name: 'Message-ID', value: id }, { name: 'Byte-Range', value: '1-2/2' }, { name: 'Status', value: '000 415 Unsupported Media Type' }],
    }));
  }
  // REPORTs are relayed in order: once the last one is back, any earlier one would be too.
  await w.origin.waitForReport(ids[4]);
  const back = new Set(w.origin.reports.map(r => r.messageId));
  t.notOk(back.has(ids[0]!), 'm1 forgotten');
  t.notOk(back.has(ids[1]!), 'm2 forgotten');
  t.ok(back.has(ids[2]!), 'm3 kept');
  t.ok(back.has(ids[3]!), 'm4 kept');
  t.equal(w.origin.reports.length, 3, 'three REPORTs relayed');
});
