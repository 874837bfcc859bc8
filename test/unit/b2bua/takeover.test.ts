// The takeover of a dead node's B2BUA calls (plugin/b2bua/takeover.ts): the pure choice of
// what to claim as case tables, then the sweeper on the in-memory store and leases with a
// fake clock and timers (docs/deployment.md §12).
import t from 'tap';
import pino from 'pino';
import { ownersToCheck, toTake, Takeover, type IntervalTimers } from '../../../plugin/b2bua/takeover.js';
import { MemoryCallStore, type OwnedRecord, type StoredCall } from '../../../plugin/b2bua/store.js';
import { LocalNodeLeases } from '../../../plugin/shared-state/owners.js';
import { storedCall } from './store-suite.js';

const rec = (callId: string, owner: string | null): OwnedRecord => ({ callId, owner });

t.test('ownersToCheck: every other node that owns a record, once', async (t) => {
  const cases: { name: string; records: OwnedRecord[]; want: string[] }[] = [
    { name: 'none', records: [], want: [] },
    { name: 'only mine', records: [rec('1', 'me'), rec('2', 'me')], want: [] },
    { name: 'others, once each, sorted', records: [rec('1', 'n2'), rec('2', 'me'), rec('3', 'n1'), rec('4', 'n2')], want: ['n1', 'n2'] },
    { name: 'no owner: not asked', records: [rec('1', null)], want: [] },
  ];
  for (const c of cases) t.same(ownersToCheck('me', c.records), c.want, c.name);
});

t.test('toTake: the records of nodes whose lease ran out', async (t) => {
  const records = [rec('a1', 'a'), rec('a2', 'a'), rec('b1', 'b'), rec('m1', 'me'), rec('x1', null), rec('u1', 'unread')];
  const cases: { name: string; alive: [string, boolean][]; fresh: boolean; want: string[] }[] = [
    { name: 'every node alive: nothing', alive: [['a', true], ['b', true], ['unread', true]], fresh: true, want: [] },
    { name: "a's lease ran out: a's records", alive: [['a', false], ['b', true]], fresh: true, want: ['a1', 'a2'] },
    { name: 'two dead nodes', alive: [['a', false], ['b', false]], fresh: true, want: ['a1', 'a2', 'b1'] },
    { name: "a lease not read (absent): left alone", alive: [['b', false]], fresh: true, want: ['b1'] },
    { name: 'my own lease not fresh: nothing (I may be the one cut off)', alive: [['a', false], ['b', false]], fresh: false, want: [] },
    { name: 'my records and ownerless ones never, even if "me" reads dead', alive: [['me', false], ['a', true]], fresh: true, want: [] },
  ];
  for (const c of cases) t.same(toTake('me', records, new Map(c.alive), c.fresh).map((r) => r.callId), c.want, c.name);
});

/** Timers run by hand: `tick()` runs every registered function once. */
function manualTimers(): IntervalTimers & { periods: number[] } {
  const fs: (() => void)[] = [];
  const periods: number[] = [];
  return {
    periods,
    every(ms, f) {
      periods.push(ms);
      fs.push(f);
      return () => fs.splice(fs.indexOf(f), 1);
    },
  };
}

t.test('the sweeper: a dead node\'s calls are claimed by one survivor and handed to end; a live node\'s are not', async (t) => {
  let now = 0;
  const clock = (): number => now;
  const records = new Map<string, string>();
  const leases = new LocalNodeLeases(clock);
  const log = pino({ level: 'silent' });
  const node = (id: string) => {
    const store = new MemoryCallStore(id, records);
    const ended: StoredCall[] = [];
    const timers = manualTimers();
    const tk = new Takeover({ node: id, store, leases, leaseMs: 3000, log, timers, clock, end: async (calls) => void ended.push(...calls) });
    return { store, ended, timers, tk };
  };
  const a = node('a');
  const b = node('b');
  const c = node('c');
  for (const n of [a, b, c]) await n.tk.start();
  t.same(a.timers.periods, [1000, 1500], 'beat every third of the TTL, sweep every half');
  a.store.put(storedCall('a-call'));
  b.store.put(storedCall('b-call'));

  t.same(await c.tk.sweep(), [], 'every lease held: nothing taken');
  // a dies: b and c beat on, a does not
  now = 2000;
  await b.tk.beat();
  await c.tk.beat();
  t.same(await c.tk.sweep(), [], "a's lease not run out yet");
  now = 3500;
  await b.tk.beat();
  await c.tk.beat();
  const [byB, byC] = await Promise.all([b.tk.sweep(), c.tk.sweep()]);
  t.same([...byB, ...byC].map((x) => x.callId), ['a-call'], 'one survivor took it');
  const winner = byB.length > 0 ? b : c;
  t.equal(winner.ended[0]?.owner, winner.store.node, 'handed to end as its own');
  t.same([...(byB.length > 0 ? c : b).ended], [], 'the other survivor ended nothing');
  t.equal((await c.store.owners()).find((o) => o.callId === 'b-call')?.owner, 'b', "the live node's call untouched");
  // the B2BUA deletes the record when the call has ended
  winner.store.delete('a-call');
  t.same((await c.store.owners()).map((o) => o.callId), ['b-call']);

  // a survivor whose own beats fail takes nothing
  now = 10_000;
  await b.tk.beat();
  t.same(await c.tk.sweep(), [], "b's lease held: nothing to take");
  now = 20_000;
  t.same(await c.tk.sweep(), [], "c's own lease is stale: it takes nothing, though b's ran out too");
  await c.tk.beat();
  t.same((await c.tk.sweep()).map((x) => x.callId), ['b-call'], 'once c beats again, it takes b\'s');
  for (const n of [a, b, c]) n.tk.stop();
});
