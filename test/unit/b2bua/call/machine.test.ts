/**
 * The B2BUA call machine (CR 8.3.2.1 step 8, the 200 OK procedure, 8.3.2.1.1) driven by
 * event tables, with no sockets: each case is a list of events and the effects and
 * states they must give.
 */
import t from 'tap';
import {
  newCall, step, liveLegs, REASON_ELSEWHERE, REASON_RELAY_GONE, type Call, type CallEvent, type CallSettings, type Effect, type LegTarget,
  type MultiDevicePolicy,
} from '../../../../plugin/b2bua/call/machine.js';

const dev = (n: number): LegTarget => ({ kind: 'device', ruri: `sip:bob@example.net;gr=urn:uuid:${n}`, device: `d${n}` });
const THREE = [dev(1), dev(2), dev(3)];

function settings(policy: MultiDevicePolicy, o: Partial<CallSettings> = {}): CallSettings {
  return { policy, isfUri: null, maxRedirects: 3, ...o };
}

/** Run events; return the call and the effects of each step. */
function run(s: CallSettings, events: readonly CallEvent[]): { call: Call; effects: Effect[][] } {
  let call = newCall(s);
  const effects: Effect[][] = [];
  for (const ev of events) {
    const r = step(call, ev);
    call = r.call;
    effects.push([...r.effects]);
  }
  return { call, effects };
}

const start = (targets: readonly LegTarget[] = THREE): CallEvent => ({ kind: 'start', targets });
const ok = (leg: string): CallEvent => ({ kind: 'leg-answered', leg, media: 'ok' });
const fail = (leg: string, status: number, contact: string | null = null): CallEvent => ({ kind: 'leg-failed', leg, status, contact });

interface Case {
  readonly name: string;
  readonly settings: CallSettings;
  readonly events: readonly CallEvent[];
  /** Effects of the last event. */
  readonly last: readonly Effect[];
  readonly state: Call['state'];
  readonly legs?: Readonly<Record<string, string>>;
}

const cases: readonly Case[] = [
  {
    name: 'step 8: one INVITE per suitable device',
    settings: settings('C'),
    events: [start()],
    last: THREE.map((target, i) => ({ kind: 'invite', leg: `L${i + 1}`, target })),
    state: 'offering',
  },
  {
    name: 'the first 180 rings the caller once',
    settings: settings('C'),
    events: [start(), { kind: 'leg-provisional', leg: 'L1', status: 180 }, { kind: 'leg-provisional', leg: 'L2', status: 180 }],
    last: [],
    state: 'offering',
    legs: { L1: 'early', L2: 'early', L3: 'calling' },
  },
  {
    name: 'first 200: our 200 to the caller; under C the others keep ringing',
    settings: settings('C'),
    events: [start(), ok('L2')],
    last: [{ kind: 'answer', leg: 'L2' }],
    state: 'answered',
    legs: { L1: 'calling', L2: 'up', L3: 'calling' },
  },
  {
    name: 'A: first 200 wins, the others are cancelled',
    settings: settings('A'),
    events: [start(), ok('L1')],
    last: [
      { kind: 'answer', leg: 'L1' },
      { kind: 'cancel', leg: 'L2', reason: REASON_ELSEWHERE },
      { kind: 'cancel', leg: 'L3', reason: REASON_ELSEWHERE },
    ],
    state: 'answered',
  },
  {
    name: 'A: a 200 crossing the CANCEL gets BYE (the relay refused its media)',
    settings: settings('A'),
    events: [start(), ok('L1'), { kind: 'leg-answered', leg: 'L2', media: 'refused' }],
    last: [{ kind: 'bye', leg: 'L2', reason: REASON_ELSEWHERE }],
    state: 'answered',
    legs: { L1: 'up', L2: 'releasing', L3: 'cancelling' },
  },
  {
    name: 'B: later 200s join until one is active',
    settings: settings('B'),
    events: [start(), ok('L1'), { kind: 'caller-ack' }, ok('L3')],
    last: [],
    state: 'confirmed',
    legs: { L1: 'up', L2: 'calling', L3: 'up' },
  },
  {
    name: 'B: the first active device keeps the session; the others get BYE or CANCEL with the Reason',
    settings: settings('B'),
    events: [start(), ok('L1'), { kind: 'caller-ack' }, ok('L3'), { kind: 'first-active', leg: 'L3' }],
    last: [
      { kind: 'bye', leg: 'L1', reason: REASON_ELSEWHERE },
      { kind: 'cancel', leg: 'L2', reason: REASON_ELSEWHERE },
    ],
    state: 'confirmed',
    legs: { L1: 'releasing', L2: 'cancelling', L3: 'up' },
  },
  {
    name: 'B: the loser\'s media leg goes once its BYE is answered',
    settings: settings('B'),
    events: [start([dev(1), dev(2)]), ok('L1'), { kind: 'caller-ack' }, ok('L2'), { kind: 'first-active', leg: 'L2' }, { kind: 'leg-bye-done', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }],
    state: 'confirmed',
    legs: { L1: 'closed', L2: 'up' },
  },
  {
    name: 'B: a 200 after the choice gets BYE',
    settings: settings('B'),
    events: [start(), ok('L1'), { kind: 'first-active', leg: 'L1' }, ok('L2')],
    last: [{ kind: 'bye', leg: 'L2', reason: REASON_ELSEWHERE }],
    state: 'answered',
    legs: { L1: 'up', L2: 'releasing', L3: 'cancelling' },
  },
  {
    name: 'C: first-active changes nothing',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), ok('L2'), { kind: 'first-active', leg: 'L2' }],
    last: [],
    state: 'answered',
    legs: { L1: 'up', L2: 'up' },
  },
  {
    name: 'every leg fails: the best error (RFC 3261 §16.7), then the relay session goes',
    settings: settings('C'),
    events: [start(), fail('L1', 486), fail('L2', 603), fail('L3', 480)],
    last: [{ kind: 'reject', status: 603 }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: '480/408/487/500/503/504 from every leg with interworking: the ISF',
    settings: settings('C', { isfUri: 'sip:isf@example.net' }),
    events: [start([dev(1), dev(2)]), fail('L1', 480), fail('L2', 503)],
    last: [{ kind: 'invite', leg: 'L3', target: { kind: 'isf', ruri: 'sip:isf@example.net' } }],
    state: 'offering',
  },
  {
    name: 'with interworking, a 486 among the errors: no ISF (the first 4xx is the best, §16.7)',
    settings: settings('C', { isfUri: 'sip:isf@example.net' }),
    events: [start([dev(1), dev(2)]), fail('L1', 480), fail('L2', 486)],
    last: [{ kind: 'reject', status: 480 }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'the ISF is tried once',
    settings: settings('C', { isfUri: 'sip:isf@example.net' }),
    events: [start([dev(1)]), fail('L1', 480), fail('L2', 503)],
    last: [{ kind: 'reject', status: 480 }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: '302: the Contact gets the INVITE',
    settings: settings('C'),
    events: [start([dev(1)]), fail('L1', 302, 'sip:bob@elsewhere.net')],
    last: [{ kind: 'invite', leg: 'L2', target: { kind: 'redirect', ruri: 'sip:bob@elsewhere.net' } }],
    state: 'offering',
  },
  {
    name: '302 back to a URI already tried: no loop, the 302 is the answer',
    settings: settings('C'),
    events: [start([dev(1)]), fail('L1', 302, 'sip:x@a.net'), fail('L2', 302, dev(1).ruri)],
    last: [{ kind: 'reject', status: 302 }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: '302 beyond the redirect limit',
    settings: settings('C', { maxRedirects: 1 }),
    events: [start([dev(1)]), fail('L1', 302, 'sip:x@a.net'), fail('L2', 302, 'sip:y@a.net')],
    last: [{ kind: 'reject', status: 302 }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'CANCEL while ringing: every leg cancelled, 487 to the caller',
    settings: settings('C'),
    events: [start(), { kind: 'leg-provisional', leg: 'L1', status: 180 }, { kind: 'caller-cancel' }],
    last: [
      { kind: 'cancel', leg: 'L1' }, { kind: 'cancel', leg: 'L2' }, { kind: 'cancel', leg: 'L3' }, { kind: 'reject', status: 487 },
    ],
    state: 'ending',
  },
  {
    name: 'CANCEL: the session ends when the last leg has its 487',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), { kind: 'caller-cancel' }, fail('L1', 487), fail('L2', 487)],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'CANCEL crossed by a 200: ACKed (by the driver) and BYE',
    settings: settings('C'),
    events: [start([dev(1)]), { kind: 'caller-cancel' }, ok('L1')],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'ending',
    legs: { L1: 'releasing' },
  },
  {
    name: 'CANCEL after our 200: too late, nothing',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-cancel' }],
    last: [],
    state: 'answered',
  },
  {
    name: 'caller BYE: BYE every answered leg, CANCEL the ringing ones',
    settings: settings('C'),
    events: [start(), ok('L1'), { kind: 'caller-ack' }, ok('L2'), { kind: 'caller-bye' }],
    last: [{ kind: 'bye', leg: 'L1' }, { kind: 'bye', leg: 'L2' }, { kind: 'cancel', leg: 'L3' }],
    state: 'ending',
  },
  {
    name: 'caller BYE: the relay session goes once every BYE is answered',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'caller-bye' }, { kind: 'leg-bye-done', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'a BYE that overtakes the ACK ends the session all the same',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-bye' }, { kind: 'leg-bye-done', leg: 'L1' }, { kind: 'caller-ack' }],
    last: [],
    state: 'ended',
  },
  {
    name: 'the last device hangs up: BYE to the caller',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'leg-bye', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: '... and the session ends when the caller answers that BYE',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'leg-bye', leg: 'L1' }, { kind: 'caller-bye-done' }],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'the last device hangs up before the caller ACKed our 200: our BYE waits for the ACK (RFC 3261 §15.1.1)',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'leg-bye', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }],
    state: 'ending',
  },
  {
    name: '... and goes with the ACK',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'leg-bye', leg: 'L1' }, { kind: 'caller-ack' }],
    last: [{ kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: '... or once our 2xx retransmission gave up',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'leg-bye', leg: 'L1' }, { kind: 'caller-no-ack' }],
    last: [{ kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: '... or never, when the caller BYEs first',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'leg-bye', leg: 'L1' }, { kind: 'caller-bye' }],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'maximum session age before the ACK: BYE to the legs, the caller\'s BYE held',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'max-age' }],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'ending',
  },
  {
    name: '... and the session ends once the ACK came and both BYEs are answered',
    settings: settings('C'),
    events: [
      start([dev(1)]), ok('L1'), { kind: 'max-age' }, { kind: 'leg-bye-done', leg: 'L1' }, { kind: 'caller-ack' }, { kind: 'caller-bye-done' },
    ],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'the caller BYEs the early dialog of our 180: the legs cancelled, 487 to the INVITE (RFC 3261 §15.1.2)',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), { kind: 'leg-provisional', leg: 'L1', status: 180 }, { kind: 'caller-bye' }],
    last: [{ kind: 'cancel', leg: 'L1' }, { kind: 'cancel', leg: 'L2' }, { kind: 'reject', status: 487 }],
    state: 'ending',
  },
  {
    name: '... and the session ends with the legs\' finals',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), { kind: 'leg-provisional', leg: 'L1', status: 180 }, { kind: 'caller-bye' }, fail('L1', 487), fail('L2', 487)],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: "the relay closed a device's media: BYE to that device only (no drop: the relay's leg is gone)",
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), ok('L2'), { kind: 'caller-ack' }, { kind: 'media-closed', leg: 'L1' }],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'confirmed',
    legs: { L1: 'releasing', L2: 'up' },
  },
  {
    name: "... the last one's: BYE to it and to the caller",
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'media-closed', leg: 'L1' }],
    last: [{ kind: 'bye', leg: 'L1' }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: "... and the echo of our own drop changes nothing",
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), ok('L2'), { kind: 'leg-bye', leg: 'L1' }, { kind: 'media-closed', leg: 'L1' }],
    last: [],
    state: 'answered',
  },
  {
    name: "the caller's media closed: BYE every leg and the caller",
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'media-closed', leg: null }],
    last: [{ kind: 'bye', leg: 'L1' }, { kind: 'cancel', leg: 'L2' }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: "the caller's media closed before any answer (the relay could not dial it): 488",
    settings: settings('C'),
    events: [start([dev(1)]), { kind: 'leg-provisional', leg: 'L1', status: 180 }, { kind: 'media-closed', leg: null }],
    last: [{ kind: 'cancel', leg: 'L1' }, { kind: 'reject', status: 488 }],
    state: 'ending',
  },
  {
    name: 'the relay lost the session: BYE every leg and the caller with the Reason, nothing dropped at the relay',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'relay-lost' }],
    last: [{ kind: 'bye', leg: 'L1', reason: REASON_RELAY_GONE }, { kind: 'cancel', leg: 'L2', reason: REASON_RELAY_GONE }, { kind: 'bye-caller', reason: REASON_RELAY_GONE }],
    state: 'ending',
  },
  {
    name: 'the relay lost the session before any answer: 503 to the caller, ringing legs cancelled',
    settings: settings('C'),
    events: [start([dev(1)]), { kind: 'leg-provisional', leg: 'L1', status: 180 }, { kind: 'relay-lost' }],
    last: [{ kind: 'cancel', leg: 'L1', reason: REASON_RELAY_GONE }, { kind: 'reject', status: 503 }],
    state: 'ending',
  },
  {
    name: 'the relay lost the session, then the legs answer their BYE: ended, no relay-drop',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'relay-lost' }, { kind: 'leg-bye-done', leg: 'L1' }, { kind: 'caller-bye-done' }],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'one of two devices hangs up: the session goes on',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), ok('L2'), { kind: 'leg-bye', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }],
    state: 'answered',
  },
  {
    name: 'our 200 never ACKed: BYE the caller and every leg',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L1'), { kind: 'caller-no-ack' }],
    last: [{ kind: 'bye', leg: 'L1' }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: 'a device 200 with bad SDP: BYE, and it counts as a 488',
    settings: settings('C'),
    events: [start([dev(1)]), { kind: 'leg-answered', leg: 'L1', media: 'bad' }],
    last: [{ kind: 'bye', leg: 'L1' }, { kind: 'reject', status: 488 }],
    state: 'ending',
  },
  {
    name: '... and the relay session goes once that BYE is answered',
    settings: settings('C'),
    events: [start([dev(1)]), { kind: 'leg-answered', leg: 'L1', media: 'bad' }, { kind: 'leg-bye-done', leg: 'L1' }],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'a later 200 with bad SDP gets a plain BYE (it lost to nobody)',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), { kind: 'leg-answered', leg: 'L2', media: 'bad' }],
    last: [{ kind: 'bye', leg: 'L2' }],
    state: 'answered',
  },
  {
    name: 'maximum session age: everything ends',
    settings: settings('C'),
    events: [start([dev(1), dev(2)]), ok('L1'), { kind: 'caller-ack' }, { kind: 'max-age' }],
    last: [{ kind: 'bye', leg: 'L1' }, { kind: 'cancel', leg: 'L2' }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: 'no target at all: 480',
    settings: settings('C'),
    events: [start([])],
    last: [{ kind: 'reject', status: 480 }, { kind: 'relay-delete' }],
    state: 'ended',
  },
  {
    name: 'events after the end change nothing',
    settings: settings('C'),
    events: [start([dev(1)]), fail('L1', 486), ok('L1'), { kind: 'caller-bye' }],
    last: [],
    state: 'ended',
  },
  {
    name: 'events for unknown legs are ignored',
    settings: settings('C'),
    events: [start([dev(1)]), ok('L9'), fail('L7', 500), { kind: 'leg-bye', leg: 'L8' }],
    last: [],
    state: 'offering',
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { call, effects } = run(c.settings, c.events);
    t.same(effects.at(-1), c.last, 'effects of the last event');
    t.equal(call.state, c.state, 'call state');
    if (c.legs) t.same(Object.fromEntries(call.legs.map((l) => [l.id, l.state])), c.legs, 'leg states');
  });
}

t.test('a session that ended has no live leg and released the relay exactly once', async (t) => {
  for (const c of cases.filter((x) => x.state === 'ended')) {
    const { call, effects } = run(c.settings, c.events);
    t.equal(liveLegs(call), 0, c.name);
    t.equal(effects.flat().filter((e) => e.kind === 'relay-delete').length, 1, `${c.name}: one relay-delete`);
  }
});

t.test('every effect names a leg the call has', async (t) => {
  for (const c of cases) {
    const { call, effects } = run(c.settings, c.events);
    const ids = new Set(call.legs.map((l) => l.id));
    for (const e of effects.flat()) if ('leg' in e && e.leg !== null) t.ok(ids.has(e.leg), `${c.name}: ${e.kind} ${e.leg}`);
  }
});
