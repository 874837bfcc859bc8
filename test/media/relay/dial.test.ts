// The dial-out state machine (media/relay/dial.ts) with a scripted connector: every
// move of DIAL_NEXT, the backoff, failure after the last attempt, and cancel in each state.
import t from 'tap';
import { IllegalTransition } from '../../../lib/fsm.js';
import type { MsrpConnection } from '../../../media/msrp/index.js';
import { DIAL_NEXT, Dial, backoffDelay, dialSettings, moveDial, type Connector, type DialOutcome, type DialState } from '../../../media/relay/dial.js';

const TARGET = { host: '127.0.0.1', port: 9, tls: false };

/** A connector whose attempts the test settles by hand. */
function scripted(): {
  connect: Connector;
  attempts: Array<{ signal: AbortSignal; ok: (c: MsrpConnection) => void; fail: (e: Error) => void }>;
  } {
  const attempts: Array<{ signal: AbortSignal; ok: (c: MsrpConnection) => void; fail: (e: Error) => void }> = [];
  const connect: Connector = (_target, _timeout, signal) =>
    new Promise((resolve, reject) => {
      attempts.push({ signal, ok: resolve, fail: reject });
      signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
  return { connect, attempts };
}

function fakeConn(): MsrpConnection & { closedByDial: boolean } {
  const c = { closedByDial: false, close() { c.closedByDial = true; } };
  return c as unknown as MsrpConnection & { closedByDial: boolean };
}

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

t.test('DIAL_NEXT: every move', async t => {
  const states: DialState[] = ['connecting', 'backoff', 'connected', 'failed', 'cancelled'];
  const legal = new Set(['connecting>connected', 'connecting>backoff', 'connecting>failed', 'connecting>cancelled', 'backoff>connecting', 'backoff>cancelled']);
  for (const from of states) {
    for (const to of states) {
      const ok = legal.has(`${from}>${to}`);
      t.equal(DIAL_NEXT[from].includes(to), ok, `${from} -> ${to}`);
      const d = { state: from } as unknown as Dial;
      if (ok) moveDial(d, to);
      else t.throws(() => moveDial(d, to), IllegalTransition);
    }
  }
});

t.test('backoffDelay and dialSettings', async t => {
  const cases: Array<[number, number, number]> = [[2, 200, 200], [3, 200, 400], [4, 200, 800], [2, 0, 0]];
  for (const [next, base, expect] of cases) t.equal(backoffDelay(next, base), expect, `attempt ${next}, base ${base}`);
  t.same(dialSettings(), { attempts: 3, backoffMs: 200, timeoutMs: 3000 });
  t.same(dialSettings({ attempts: 0, backoffMs: -5, timeoutMs: 10 }), { attempts: 1, backoffMs: 0, timeoutMs: 10 });
});

t.test('fails twice, then connects', async t => {
  const { connect, attempts } = scripted();
  const outcomes: DialOutcome[] = [];
  const d = new Dial(TARGET, dialSettings({ attempts: 3, backoffMs: 1 }), connect, o => outcomes.push(o));
  t.equal(d.state, 'connecting');
  attempts[0]!.fail(new Error('ECONNREFUSED'));
  await tick();
  t.equal(d.state, 'backoff');
  t.ok(d.busy, 'a timer is held');
  await new Promise(resolve => setTimeout(resolve, 5));
  t.equal(attempts.length, 2);
  attempts[1]!.fail(new Error('ECONNREFUSED'));
  await new Promise(resolve => setTimeout(resolve, 10));
  const conn = fakeConn();
  attempts[2]!.ok(conn);
  await tick();
  t.equal(d.state, 'connected');
  t.equal(d.attempt, 3);
  t.same(outcomes, [{ conn }]);
  t.notOk(d.busy);
});

t.test('gives up after the last attempt, with the reason', async t => {
  const { connect, attempts } = scripted();
  const outcomes: DialOutcome[] = [];
  const d = new Dial(TARGET, dialSettings({ attempts: 1 }), connect, o => outcomes.push(o));
  attempts[0]!.fail(new Error('ECONNREFUSED'));
  await tick();
  t.equal(d.state, 'failed');
  t.same(outcomes, [{ error: 'connect to 127.0.0.1:9 failed after 1 attempt(s): ECONNREFUSED' }]);
  t.notOk(d.busy);
});

t.test('cancel while connecting aborts the attempt; while waiting clears the timer; nothing is reported', async t => {
  const a = scripted();
  const outcomes: DialOutcome[] = [];
  const d1 = new Dial(TARGET, dialSettings(), a.connect, o => outcomes.push(o));
  d1.cancel();
  t.equal(d1.state, 'cancelled');
  t.ok(a.attempts[0]!.signal.aborted, 'the socket attempt is aborted');
  t.notOk(d1.busy);
  d1.cancel(); // twice is harmless

  const b = scripted();
  const d2 = new Dial(TARGET, dialSettings({ backoffMs: 60_000 }), b.connect, o => outcomes.push(o));
  b.attempts[0]!.fail(new Error('ECONNREFUSED'));
  await tick();
  t.equal(d2.state, 'backoff');
  d2.cancel();
  t.equal(d2.state, 'cancelled');
  t.notOk(d2.busy, 'the backoff timer is gone');

  // A connect that completes just as the dial is cancelled is closed at once.
  const c = scripted();
  const d3 = new Dial(TARGET, dialSettings(), c.connect, o => outcomes.push(o));
  const conn = fakeConn();
  c.attempts[0]!.ok(conn);
  d3.cancel();
  await tick();
  t.equal(d3.state, 'cancelled');
  t.same(outcomes, [], 'a cancelled dial reports nothing');
  t.equal(b.attempts.length, 1, 'no attempt after cancel');
  t.ok(conn.closedByDial, 'the connection that came too late is closed');
});
