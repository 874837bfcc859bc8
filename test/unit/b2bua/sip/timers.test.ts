import t from 'tap';
import { FakeClock, reliableTimers, SystemClock } from '../../../../plugin/b2bua/sip/timers.js';

t.test('RFC 3261 §17 timers over TCP, RFC 6026 L and M', async (t) => {
  const cases: [number, number | undefined, Record<string, number>][] = [
    [500, undefined, { T1: 500, T2: 4000, B: 32000, D: 0, F: 32000, H: 32000, I: 0, J: 0, K: 0, L: 32000, M: 32000 }],
    [100, 400, { T1: 100, T2: 400, B: 6400, D: 0, F: 6400, H: 6400, I: 0, J: 0, K: 0, L: 6400, M: 6400 }],
    [100, undefined, { T1: 100, T2: 4000, B: 6400, D: 0, F: 6400, H: 6400, I: 0, J: 0, K: 0, L: 6400, M: 6400 }],
    [5000, undefined, { T1: 5000, T2: 5000, B: 320000, D: 0, F: 320000, H: 320000, I: 0, J: 0, K: 0, L: 320000, M: 320000 }],
  ];
  for (const [T1, T2, want] of cases) t.same(reliableTimers(T1, T2), want, `T1=${T1}`);
  for (const [T1, T2] of [[0, 1], [-1, 1], [NaN, 1], [500, 100], [500, Infinity]] as const) {
    t.throws(() => reliableTimers(T1, T2), RangeError, `T1=${T1} T2=${T2} refused`);
  }
});

t.test('FakeClock fires due timers in time order, then set order', async (t) => {
  const c = new FakeClock();
  const log: string[] = [];
  c.setTimer(20, () => log.push('b@20'));
  c.setTimer(10, () => {
    log.push('a@10');
    c.setTimer(5, () => log.push('c@15 (set while advancing)'));
  });
  c.setTimer(20, () => log.push('d@20'));
  const cleared = c.setTimer(12, () => log.push('never'));
  c.clearTimer(cleared);
  c.advance(9);
  t.same(log, []);
  t.equal(c.now(), 9);
  c.advance(11);
  t.same(log, ['a@10', 'c@15 (set while advancing)', 'b@20', 'd@20']);
  t.equal(c.now(), 20);
  t.equal(c.pending, 0);
});

t.test('SystemClock timers fire and can be cleared', async (t) => {
  const c = new SystemClock();
  let fired = false;
  const h = c.setTimer(1, () => (fired = true));
  c.clearTimer(h);
  let other = false;
  c.setTimer(2, () => (other = true));
  // SystemClock's timers are unref'd (the socket keeps the process alive): wait on a ref'd one.
  await new Promise<void>((resolve) => setTimeout(resolve, 20));
  t.equal(fired, false, 'cleared');
  t.equal(other, true, 'fired');
  t.ok(c.now() > 0);
});
