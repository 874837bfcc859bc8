/**
 * The call machine's session timers per side (RFC 4028 §10) and the expiry procedure of
 * CR 8.3.2.4, driven by event tables: each case lists events and the effects of the last.
 */
import t from 'tap';
import {
  newCall, step, REASON_EXPIRED, type Call, type CallEvent, type CallSettings, type Effect, type LegTarget, type SideTimer,
} from '../../../../plugin/b2bua/call/machine.js';

const dev = (n: number): LegTarget => ({ kind: 'device', ruri: `sip:bob@example.net;gr=urn:uuid:${n}`, device: `d${n}` });
const C: CallSettings = { policy: 'C', isfUri: null, maxRedirects: 3 };
const GROUP: CallSettings = { ...C, group: true };
const ISF: CallSettings = { ...C, isfUri: 'sip:isf@example.net' };

const start = (n = 2): CallEvent => ({ kind: 'start', targets: Array.from({ length: n }, (_, i) => dev(i + 1)) });
const ok = (leg: string): CallEvent => ({ kind: 'leg-answered', leg, media: 'ok' });
const theirs: SideTimer = { interval: 90, weRefresh: false };
const ours: SideTimer = { interval: 90, weRefresh: true };
const set = (side: string | null, timer: SideTimer | null = theirs): CallEvent => ({ kind: 'timer-set', side, timer });
const expired = (side: string | null): CallEvent => ({ kind: 'expired', side });
const ack: CallEvent = { kind: 'caller-ack' };
/** Two devices up, caller confirmed, a timer on each device leg (they refresh). */
const twoUp: CallEvent[] = [start(), ok('L1'), ok('L2'), ack, set('L1'), set('L2')];

function run(s: CallSettings, events: readonly CallEvent[]): { call: Call; last: readonly Effect[] } {
  let call = newCall(s);
  let last: readonly Effect[] = [];
  for (const ev of events) {
    const r = step(call, ev);
    call = r.call;
    last = r.effects;
  }
  return { call, last };
}

interface Case {
  readonly name: string;
  readonly settings?: CallSettings;
  readonly events: readonly CallEvent[];
  readonly last: readonly Effect[];
  readonly state?: Call['state'];
  readonly legs?: Readonly<Record<string, string>>;
}

const cases: readonly Case[] = [
  {
    name: 'a device that refreshes: we watch its expiry at interval - min(32, interval/3)',
    events: [start(1), ok('L1'), set('L1')],
    last: [{ kind: 'arm', side: 'L1', due: 'expire', seconds: 60 }],
  },
  {
    name: 'a 1800 s interval: expiry after 1768 s',
    events: [start(1), ok('L1'), set('L1', { interval: 1800, weRefresh: false })],
    last: [{ kind: 'arm', side: 'L1', due: 'expire', seconds: 1768 }],
  },
  {
    name: 'we refresh the caller: at half the interval',
    events: [start(1), ok('L1'), set(null, ours)],
    last: [{ kind: 'arm', side: null, due: 'refresh', seconds: 45 }],
  },
  {
    name: 'refresh due: a refresh goes out and the expiry is armed for the rest',
    events: [start(1), ok('L1'), ack, set(null, ours), { kind: 'refresh-due', side: null }],
    last: [{ kind: 'refresh', side: null }, { kind: 'arm', side: null, due: 'expire', seconds: 15 }],
  },
  {
    name: 'their refresh answered: the expiry starts again',
    events: [...twoUp, set('L1')],
    last: [{ kind: 'arm', side: 'L1', due: 'expire', seconds: 60 }],
  },
  {
    name: 'a refresh without a timer any more: disarmed',
    events: [...twoUp, set('L1', null)],
    last: [{ kind: 'disarm', side: 'L1' }],
  },
  {
    name: 'refresh-due on a side the other end refreshes: nothing',
    events: [...twoUp, { kind: 'refresh-due', side: 'L1' }],
    last: [],
  },
  {
    name: 'no timer for a leg that is not up (a later 200 under A is released first)',
    settings: { ...C, policy: 'A' },
    events: [start(), ok('L1'), ok('L2'), set('L2')],
    last: [],
  },
  {
    name: 'CR 8.3.2.4: one of two devices expires: BYE it, the session goes on',
    events: [...twoUp, expired('L1')],
    last: [{ kind: 'disarm', side: 'L1' }, { kind: 'bye', leg: 'L1', reason: REASON_EXPIRED }],
    state: 'confirmed',
    legs: { L1: 'releasing', L2: 'up' },
  },
  {
    name: '... its media goes once the BYE is answered',
    events: [...twoUp, expired('L1'), { kind: 'leg-bye-done', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }],
    state: 'confirmed',
  },
  {
    name: 'CR 8.3.2.4: the last device expires: BYE it and the caller',
    events: [...twoUp, expired('L1'), expired('L2')],
    last: [{ kind: 'disarm', side: 'L2' }, { kind: 'bye', leg: 'L2', reason: REASON_EXPIRED }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: 'CR 8.3.2.4: the last device of a group session: the Group State Object too',
    settings: GROUP,
    events: [start(1), ok('L1'), ack, set('L1'), expired('L1')],
    last: [
      { kind: 'disarm', side: 'L1' }, { kind: 'bye', leg: 'L1', reason: REASON_EXPIRED }, { kind: 'store-group-state' }, { kind: 'bye-caller' },
    ],
    state: 'ending',
  },
  {
    name: 'a group session with a device still up: no Group State Object yet',
    settings: GROUP,
    events: [...twoUp, expired('L2')],
    last: [{ kind: 'disarm', side: 'L2' }, { kind: 'bye', leg: 'L2', reason: REASON_EXPIRED }],
  },
  {
    name: 'the last device expires while another still rings: cancelled, BYE the caller',
    events: [start(), ok('L1'), ack, set('L1'), expired('L1')],
    last: [{ kind: 'disarm', side: 'L1' }, { kind: 'bye', leg: 'L1', reason: REASON_EXPIRED }, { kind: 'cancel', leg: 'L2' }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: 'CR 8.3.2.4 interworked: the ISF leg expires: BYE the ISF leg, then the caller',
    settings: ISF,
    events: [start(1), { kind: 'leg-failed', leg: 'L1', status: 480, contact: null }, ok('L2'), ack, set('L2'), expired('L2')],
    last: [{ kind: 'disarm', side: 'L2' }, { kind: 'bye', leg: 'L2', reason: REASON_EXPIRED }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: "the caller's side expires: BYE both sides",
    events: [...twoUp, set(null), expired(null)],
    last: [
      { kind: 'disarm', side: null }, { kind: 'disarm', side: 'L1' }, { kind: 'bye', leg: 'L1' }, { kind: 'disarm', side: 'L2' },
      { kind: 'bye', leg: 'L2' }, { kind: 'bye-caller' },
    ],
    state: 'ending',
  },
  {
    name: 'our refresh got 481: as expired',
    events: [start(1), ok('L1'), ack, set('L1', ours), { kind: 'refresh-failed', side: 'L1', status: 481 }],
    last: [{ kind: 'disarm', side: 'L1' }, { kind: 'bye', leg: 'L1', reason: REASON_EXPIRED }, { kind: 'bye-caller' }],
    state: 'ending',
  },
  {
    name: 'our refresh got 491 (their refresh crosses it): the expiry stays armed',
    events: [start(1), ok('L1'), ack, set('L1', ours), { kind: 'refresh-failed', side: 'L1', status: 491 }],
    last: [],
    state: 'confirmed',
  },
  {
    name: 'an expiry of a leg whose BYE is under way changes nothing',
    events: [...twoUp, expired('L1'), expired('L1')],
    last: [],
  },
  {
    name: 'a device BYE disarms its timer',
    events: [...twoUp, { kind: 'leg-bye', leg: 'L1' }],
    last: [{ kind: 'disarm', side: 'L1' }, { kind: 'relay-drop', leg: 'L1' }],
  },
  {
    name: "the caller's BYE crossing our refresh: its timer goes, every leg gets BYE",
    events: [start(1), ok('L1'), ack, set(null, ours), set('L1'), { kind: 'refresh-due', side: null }, { kind: 'caller-bye' }],
    last: [{ kind: 'disarm', side: null }, { kind: 'disarm', side: 'L1' }, { kind: 'bye', leg: 'L1' }],
    state: 'ending',
  },
  {
    name: '... and the answer to that refresh arriving after it sets no timer',
    events: [start(1), ok('L1'), ack, set(null, ours), { kind: 'refresh-due', side: null }, { kind: 'caller-bye' }, set(null, ours)],
    last: [],
  },
  {
    name: 'an expiry after the caller left is ignored',
    events: [start(1), ok('L1'), ack, set(null), { kind: 'caller-bye' }, expired(null)],
    last: [],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { call, last } = run(c.settings ?? C, c.events);
    t.same(last, c.last, 'effects of the last event');
    if (c.state) t.equal(call.state, c.state, 'call state');
    if (c.legs) t.same(Object.fromEntries(call.legs.map((l) => [l.id, l.state])), c.legs, 'leg states');
  });
}

t.test('a side that is over holds no timer', async (t) => {
  for (const c of cases) {
    const { call } = run(c.settings ?? C, c.events);
    for (const l of call.legs) if (l.state !== 'up') t.equal(l.timer, null, `${c.name}: ${l.id}`);
    if (call.caller !== 'up') t.equal(call.callerTimer, null, `${c.name}: caller`);
  }
});
