import t from 'tap';
import { SessionTracker } from '../../../plugin/sessions/tracker.js';

const AOR = 'sip:bob@example.net';
const entry = (n: number, over: Partial<Parameters<SessionTracker['confirmed']>[0]> = {}) => ({
  aor: AOR,
  contributionId: 'cid-1',
  device: `<urn:uuid:${n}>`,
  callId: `call-${n}`,
  fromTag: `f${n}`,
  toTag: `t${n}`,
  confirmedAt: 0,
  ...over,
});

t.test('confirmed adds, terminated removes', async (t) => {
  const s = new SessionTracker({ max: 100, staleMs: 10_000 });
  s.confirmed(entry(1));
  s.confirmed(entry(2));
  s.confirmed(entry(3, { contributionId: 'cid-2' }));
  t.same(s.devicesIn(AOR, 'cid-1', 1), ['<urn:uuid:1>', '<urn:uuid:2>']);
  // Contribution-IDs compare byte for byte
  t.equal(s.devicesIn(AOR, 'CID-1', 1), null);
  t.equal(s.devicesIn('sip:alice@example.net', 'cid-1', 1), null);
  t.ok(s.terminated({ callId: 'call-1', fromTag: 'f1', toTag: 't1' }));
  t.notOk(s.terminated({ callId: 'call-1', fromTag: 'f1', toTag: 't1' }));
  t.same(s.devicesIn(AOR, 'cid-1', 1), ['<urn:uuid:2>']);
  t.ok(s.terminated({ callId: 'call-2', fromTag: 'f2', toTag: 't2' }));
  t.equal(s.devicesIn(AOR, 'cid-1', 1), null);
  t.equal(s.size, 1);
});

t.test('a re-confirmed dialog is not counted twice; one device in two dialogs is listed once', async (t) => {
  const s = new SessionTracker({ max: 100, staleMs: 10_000 });
  s.confirmed(entry(1));
  s.confirmed(entry(1));
  s.confirmed(entry(2, { device: '<urn:uuid:1>' }));
  t.equal(s.size, 2);
  t.same(s.devicesIn(AOR, 'cid-1', 0), ['<urn:uuid:1>']);
});

t.test('cap drops the oldest; stale entries expire', async (t) => {
  const s = new SessionTracker({ max: 2, staleMs: 1000 });
  s.confirmed(entry(1, { contributionId: 'a' }));
  s.confirmed(entry(2, { contributionId: 'b', confirmedAt: 500 }));
  s.confirmed(entry(3, { contributionId: 'c', confirmedAt: 600 }));
  t.equal(s.size, 2);
  t.equal(s.devicesIn(AOR, 'a', 600), null);
  t.same(s.devicesIn(AOR, 'b', 1500), ['<urn:uuid:2>']);
  t.equal(s.devicesIn(AOR, 'b', 1501), null, 'stale on read');
  t.equal(s.purge(1601), 1);
  t.equal(s.size, 0);
});
