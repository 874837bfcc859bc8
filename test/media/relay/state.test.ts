// Leg and session state machines (media/relay/leg.ts, session.ts): every move, legal and illegal.
import t from 'tap';
import { IllegalTransition } from '../../../lib/fsm.js';
import { parseMsrpUri } from '../../../media/msrp/index.js';
import { LEG_NEXT, moveLeg, newLeg, type LegState } from '../../../media/relay/leg.js';
import { SESSION_NEXT, moveSession, newSession, type SessionState } from '../../../media/relay/session.js';

const URI = 'msrp://127.0.0.1:9/x;tcp';

function legIn(state: LegState): ReturnType<typeof newLeg> {
  const leg = newLeg('d1', 'device', [parseMsrpUri(URI)], [URI], URI, false);
  if (state === 'connected' || state === 'closed') moveLeg(leg, 'connected');
  if (state === 'closed') moveLeg(leg, 'closed');
  return leg;
}

function sessionIn(state: SessionState): ReturnType<typeof newSession> {
  const originator = newLeg('originator', 'originator', [parseMsrpUri(URI)], [URI], URI, false);
  const s = newSession({ callId: 'c1', policy: 'C', directDelivery: false, record: false, origId: 'o', devId: 'd', origUri: URI, devUri: URI, originator });
  if (state === 'active' || state === 'deleted') moveSession(s, 'active');
  if (state === 'deleted') moveSession(s, 'deleted');
  return s;
}

t.test('leg: waiting -> connected -> closed', async t => {
  const cases: Array<[LegState, LegState, boolean]> = [
    ['waiting', 'waiting', false],
    ['waiting', 'connected', true],
    ['waiting', 'closed', true],
    ['connected', 'waiting', false],
    ['connected', 'connected', true], // a new connection from the same peer
    ['connected', 'closed', true],
    ['closed', 'waiting', false],
    ['closed', 'connected', false], // no reconnect without new SDP
    ['closed', 'closed', false],
  ];
  for (const [from, to, legal] of cases) {
    const leg = legIn(from);
    t.equal(LEG_NEXT[from].includes(to), legal, `table: ${from} -> ${to}`);
    if (legal) {
      moveLeg(leg, to);
      t.equal(leg.state, to, `${from} -> ${to}`);
    } else {
      t.throws(() => moveLeg(leg, to), IllegalTransition, `${from} -> ${to} refused`);
      t.equal(leg.state, from, `${from} unchanged`);
    }
  }
});

t.test('session: offered -> active -> deleted', async t => {
  const cases: Array<[SessionState, SessionState, boolean]> = [
    ['offered', 'offered', false],
    ['offered', 'active', true],
    ['offered', 'deleted', true],
    ['active', 'offered', false],
    ['active', 'active', false],
    ['active', 'deleted', true],
    ['deleted', 'offered', false],
    ['deleted', 'active', false],
    ['deleted', 'deleted', false],
  ];
  for (const [from, to, legal] of cases) {
    const s = sessionIn(from);
    t.equal(SESSION_NEXT[from].includes(to), legal, `table: ${from} -> ${to}`);
    if (legal) {
      moveSession(s, to);
      t.equal(s.state, to, `${from} -> ${to}`);
    } else {
      t.throws(() => moveSession(s, to), IllegalTransition, `${from} -> ${to} refused`);
      t.equal(s.state, from, `${from} unchanged`);
    }
  }
});
