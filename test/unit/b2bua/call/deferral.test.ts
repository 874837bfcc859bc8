/**
 * Deferral in the B2BUA call machine (CR 8.3.2.1 step 8 a ii, 8.3.2.1.1 "deferred
 * delivery"; docs/b2bua.md "Deferred sessions"), driven by event tables: each case is a
 * list of events and the effects and states they must give.
 */
import t from 'tap';
import {
  DEFER_NEXT, newCall, step, REASON_COMPLETED, REASON_ELSEWHERE, type Call, type CallEvent, type CallSettings, type Effect, type LegTarget,
  type MultiDevicePolicy,
} from '../../../../plugin/b2bua/call/machine.js';
import { IllegalTransition } from '../../../../lib/fsm.js';

const dev = (n: number): LegTarget => ({ kind: 'device', ruri: `sip:bob@example.net;gr=urn:uuid:${n}`, device: `d${n}` });

function settings(o: Partial<CallSettings> = {}, policy: MultiDevicePolicy = 'C'): CallSettings {
  return { policy, isfUri: null, maxRedirects: 3, deferral: true, ...o };
}

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

const start = (targets: readonly LegTarget[] = []): CallEvent => ({ kind: 'start', targets });
const ok = (leg: string): CallEvent => ({ kind: 'leg-answered', leg, media: 'ok' });
const fail = (leg: string, status: number): CallEvent => ({ kind: 'leg-failed', leg, status, contact: null });
const deferred: CallEvent = { kind: 'deferred' };
const ack: CallEvent = { kind: 'caller-ack' };
const avail = (n: number, fresh?: boolean): CallEvent => ({ kind: 'device-available', target: dev(n), ...(fresh === undefined ? {} : { fresh }) });
const delivered = (leg: string): CallEvent => ({ kind: 'delivered', leg });
const legBye = (leg: string): CallEvent => ({ kind: 'leg-bye', leg });
/** A call deferred at once (no device) and confirmed. */
const DEFERRED_UP: readonly CallEvent[] = [start(), deferred, ack];

interface Case {
  readonly name: string;
  readonly settings?: CallSettings;
  readonly events: readonly CallEvent[];
  /** Effects of the last event. */
  readonly last: readonly Effect[];
  readonly state: Call['state'];
  readonly deferred: Call['deferred'];
  readonly caller?: Call['caller'];
  readonly legs?: Readonly<Record<string, string>>;
}

const cases: readonly Case[] = [
  // ---- deferring
  { name: 'no target, deferral off: 480', settings: settings({ deferral: false }), events: [start()], last: [{ kind: 'reject', status: 480 }, { kind: 'relay-delete' }], state: 'ended', deferred: 'off' },
  { name: 'no target, deferral absent (old settings): 480', settings: { policy: 'C', isfUri: null, maxRedirects: 3 }, events: [start()], last: [{ kind: 'reject', status: 480 }, { kind: 'relay-delete' }], state: 'ended', deferred: 'off' },
  { name: 'step 8 a ii: no target, deferral on: ask the relay to store', events: [start()], last: [{ kind: 'defer' }], state: 'offering', deferred: 'asked', caller: 'invited' },
  { name: 'the relay took it: our 200 with no device', events: [start(), deferred], last: [{ kind: 'answer', leg: null }], state: 'answered', deferred: 'on', caller: 'up' },
  { name: 'the ACK confirms it; no leg does not end it', events: DEFERRED_UP, last: [], state: 'confirmed', deferred: 'on', caller: 'up' },
  {
    name: 'the relay refused (500) or was unreachable (503): that final to the caller',
    events: [start(), { kind: 'defer-failed', status: 503 }],
    last: [{ kind: 'reject', status: 503 }, { kind: 'relay-delete' }],
    state: 'ended',
    deferred: 'off',
  },
  {
    name: 'CANCEL while the relay is asked: 487; its late answer changes nothing',
    events: [start(), { kind: 'caller-cancel' }, deferred],
    last: [],
    state: 'ended',
    deferred: 'asked',
  },
  { name: 'a second start changes nothing', events: [start(), start([dev(1)])], last: [], state: 'offering', deferred: 'asked' },
  // ---- every leg failed
  {
    name: 'CR 8.3.2.1.1: every leg failed with 480/408/487/500/503/504: defer',
    events: [start([dev(1), dev(2)]), fail('L1', 480), fail('L2', 408)],
    last: [{ kind: 'defer' }],
    state: 'offering',
    deferred: 'asked',
  },
  {
    name: 'deferral comes before the ISF',
    settings: settings({ isfUri: 'sip:isf@example.net' }),
    events: [start([dev(1)]), fail('L1', 503)],
    last: [{ kind: 'defer' }],
    state: 'offering',
    deferred: 'asked',
  },
  {
    name: 'the ISF without deferral (unchanged)',
    settings: settings({ isfUri: 'sip:isf@example.net', deferral: false }),
    events: [start([dev(1)]), fail('L1', 503)],
    last: [{ kind: 'invite', leg: 'L2', target: { kind: 'isf', ruri: 'sip:isf@example.net' } }],
    state: 'offering',
    deferred: 'off',
  },
  {
    name: 'a 486 among them: the best error (RFC 3261 §16.7), no deferral',
    events: [start([dev(1), dev(2)]), fail('L1', 480), fail('L2', 486)],
    last: [{ kind: 'reject', status: 480 }, { kind: 'relay-delete' }],
    state: 'ended',
    deferred: 'off',
  },
  {
    name: 'a 603 from every device: 603, no deferral',
    events: [start([dev(1)]), fail('L1', 603)],
    last: [{ kind: 'reject', status: 603 }, { kind: 'relay-delete' }],
    state: 'ended',
    deferred: 'off',
  },
  {
    name: 'failed legs, then deferred: our 200',
    events: [start([dev(1)]), fail('L1', 480), deferred],
    last: [{ kind: 'answer', leg: null }],
    state: 'answered',
    deferred: 'on',
  },
  // ---- a device registers
  {
    name: 'device-available: a new device leg',
    events: [...DEFERRED_UP, avail(1)],
    last: [{ kind: 'invite', leg: 'L1', target: dev(1) }],
    state: 'confirmed',
    deferred: 'on',
  },
  {
    name: 'device-available before the ACK: a leg too',
    events: [start(), deferred, avail(1)],
    last: [{ kind: 'invite', leg: 'L1', target: dev(1) }],
    state: 'answered',
    deferred: 'on',
  },
  { name: 'the same device again while its INVITE is out: nothing', events: [...DEFERRED_UP, avail(1), avail(1)], last: [], state: 'confirmed', deferred: 'on' },
  {
    name: 'the same device again after its leg failed (a refresh of its binding): nothing',
    events: [...DEFERRED_UP, avail(1), fail('L1', 486), avail(1)],
    last: [],
    state: 'confirmed',
    deferred: 'on',
  },
  {
    name: 'a device that failed, registered anew: a new leg',
    events: [...DEFERRED_UP, avail(1), fail('L1', 480), avail(1, true)],
    last: [{ kind: 'invite', leg: 'L2', target: dev(1) }],
    state: 'confirmed',
    deferred: 'on',
  },
  {
    name: 'another device while one failed: invited',
    events: [...DEFERRED_UP, avail(1), fail('L1', 486), avail(2)],
    last: [{ kind: 'invite', leg: 'L2', target: dev(2) }],
    state: 'confirmed',
    deferred: 'on',
  },
  { name: 'device-available on a call not deferred: nothing', settings: settings({ deferral: false }), events: [start([dev(1)]), ok('L1'), ack, avail(2)], last: [], state: 'confirmed', deferred: 'off' },
  { name: 'device-available while the relay is asked: nothing', events: [start(), avail(1)], last: [], state: 'offering', deferred: 'asked' },
  {
    name: 'its 200: the relay flushes the backlog to it, still deferred',
    events: [...DEFERRED_UP, avail(1), ok('L1')],
    last: [],
    state: 'confirmed',
    deferred: 'flushing',
    legs: { L1: 'up' },
  },
  {
    name: 'the relay delivered the backlog to that leg: a normal call',
    events: [...DEFERRED_UP, avail(1), ok('L1'), delivered('L1')],
    last: [],
    state: 'confirmed',
    deferred: 'off',
  },
  {
    name: 'flushing: the caller\'s BYE ends it still deferred (the rest is handed over)',
    events: [...DEFERRED_UP, avail(1), ok('L1'), { kind: 'caller-bye' }],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'ending',
    deferred: 'on',
    caller: 'gone',
  },
  {
    name: 'flushing: the caller\'s BYE, then the leg\'s BYE answered: ended deferred',
    events: [...DEFERRED_UP, avail(1), ok('L1'), { kind: 'caller-bye' }, { kind: 'leg-bye-done', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }, { kind: 'relay-delete' }],
    state: 'ended',
    deferred: 'on',
  },
  {
    name: 'flushing: the leg\'s media failed: BYE it, deferred again, the caller stays',
    events: [...DEFERRED_UP, avail(1), ok('L1'), { kind: 'media-closed', leg: 'L1' }],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'confirmed',
    deferred: 'on',
    caller: 'up',
  },
  {
    name: 'flushing: the device\'s BYE: deferred again, no BYE to the caller',
    events: [...DEFERRED_UP, avail(1), ok('L1'), legBye('L1')],
    last: [{ kind: 'relay-drop', leg: 'L1' }],
    state: 'confirmed',
    deferred: 'on',
    caller: 'up',
  },
  {
    name: 'flushing: a delivered for another leg does not count',
    events: [...DEFERRED_UP, avail(1), avail(2), ok('L1'), delivered('L2')],
    last: [],
    state: 'confirmed',
    deferred: 'flushing',
  },
  {
    name: 'C: a second device up while flushing; the flushed one leaves: deferred again',
    events: [...DEFERRED_UP, avail(1), avail(2), ok('L1'), ok('L2'), legBye('L1')],
    last: [{ kind: 'relay-drop', leg: 'L1' }],
    state: 'confirmed',
    deferred: 'on',
    legs: { L1: 'closed', L2: 'up' },
  },
  {
    name: 'C: then the relay flushes to the other device: a normal call',
    events: [...DEFERRED_UP, avail(1), avail(2), ok('L1'), ok('L2'), legBye('L1'), delivered('L2')],
    last: [],
    state: 'confirmed',
    deferred: 'off',
  },
  {
    name: 'a delivered after the call began to end changes nothing (its leg released: deferred, handed over)',
    events: [...DEFERRED_UP, avail(1), ok('L1'), { kind: 'max-age' }, delivered('L1')],
    last: [],
    state: 'ending',
    deferred: 'on',
  },
  {
    name: 'A: the first device to answer keeps it, the other ringing one is cancelled',
    settings: settings({}, 'A'),
    events: [...DEFERRED_UP, avail(1), avail(2), ok('L2')],
    last: [{ kind: 'cancel', leg: 'L1', reason: REASON_ELSEWHERE }],
    state: 'confirmed',
    deferred: 'flushing',
  },
  {
    name: 'a normal call now: its last device leaving ends it',
    events: [...DEFERRED_UP, avail(1), ok('L1'), delivered('L1'), { kind: 'leg-bye', leg: 'L1' }],
    last: [{ kind: 'relay-drop', leg: 'L1' }, { kind: 'bye-caller' }],
    state: 'ending',
    deferred: 'off',
  },
  {
    name: 'its other failures (480, 486, 408): still deferred',
    events: [...DEFERRED_UP, avail(1), fail('L1', 486), avail(2), fail('L2', 408)],
    last: [],
    state: 'confirmed',
    deferred: 'on',
    legs: { L1: 'closed', L2: 'closed' },
  },
  {
    name: 'its media bad: BYE that device, still deferred',
    events: [...DEFERRED_UP, avail(1), { kind: 'leg-answered', leg: 'L1', media: 'bad' }],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'confirmed',
    deferred: 'on',
  },
  {
    name: 'CR 8.3.2.1.1 603: discard the stored messages, BYE the caller with "Call completed"',
    events: [...DEFERRED_UP, avail(1), fail('L1', 603)],
    last: [{ kind: 'relay-delete' }, { kind: 'relay-discard' }, { kind: 'bye-caller', reason: REASON_COMPLETED }],
    state: 'ending',
    deferred: 'off',
    caller: 'bye-sent',
  },
  {
    name: '603 while another device rings: that one is cancelled too',
    events: [...DEFERRED_UP, avail(1), avail(2), fail('L1', 603)],
    last: [{ kind: 'relay-delete' }, { kind: 'relay-discard' }, { kind: 'cancel', leg: 'L2' }, { kind: 'bye-caller', reason: REASON_COMPLETED }],
    state: 'ending',
    deferred: 'off',
  },
  {
    name: '603 before the ACK: the BYE waits for it, with the Reason',
    events: [start(), deferred, avail(1), fail('L1', 603), ack],
    last: [{ kind: 'bye-caller', reason: REASON_COMPLETED }],
    state: 'ending',
    deferred: 'off',
  },
  {
    name: '603 then the BYE answered: ended (the relay session went with the 603)',
    events: [...DEFERRED_UP, avail(1), fail('L1', 603), { kind: 'caller-bye-done' }],
    last: [],
    state: 'ended',
    deferred: 'off',
  },
  // ---- the caller leaves
  {
    name: 'the caller\'s BYE ends a deferred call, still deferred (its messages stay)',
    events: [...DEFERRED_UP, { kind: 'caller-bye' }],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
    deferred: 'on',
    caller: 'gone',
  },
  {
    name: 'the caller\'s BYE while a device rings: CANCEL it, ended once it is closed',
    events: [...DEFERRED_UP, avail(1), { kind: 'caller-bye' }, fail('L1', 487)],
    last: [{ kind: 'relay-delete' }],
    state: 'ended',
    deferred: 'on',
  },
  {
    name: 'a device\'s 200 crossing the caller\'s BYE: BYE it, still deferred',
    events: [...DEFERRED_UP, avail(1), { kind: 'caller-bye' }, ok('L1')],
    last: [{ kind: 'bye', leg: 'L1' }],
    state: 'ending',
    deferred: 'on',
  },
  { name: 'device-available after the caller left: nothing', events: [...DEFERRED_UP, avail(1), { kind: 'caller-bye' }, avail(2)], last: [], state: 'ending', deferred: 'on' },
  {
    name: 'the maximum age ends a deferred call, still deferred',
    events: [...DEFERRED_UP, { kind: 'max-age' }],
    last: [{ kind: 'bye-caller' }],
    state: 'ending',
    deferred: 'on',
  },
  {
    name: 'the caller\'s session timer ends a deferred call',
    events: [...DEFERRED_UP, { kind: 'timer-set', side: null, timer: { interval: 90, weRefresh: false } }, { kind: 'expired', side: null }],
    last: [{ kind: 'disarm', side: null }, { kind: 'bye-caller' }],
    state: 'ending',
    deferred: 'on',
  },
  {
    name: 'the caller\'s media closed: BYE, still deferred',
    events: [...DEFERRED_UP, { kind: 'media-closed', leg: null }],
    last: [{ kind: 'bye-caller' }],
    state: 'ending',
    deferred: 'on',
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { call, effects } = run(c.settings ?? settings(), c.events);
    t.same(effects.at(-1), c.last, 'effects of the last event');
    t.equal(call.state, c.state, 'call state');
    t.equal(call.deferred, c.deferred, 'deferral');
    if (c.caller) t.equal(call.caller, c.caller, 'caller side');
    if (c.legs) t.same(Object.fromEntries(call.legs.map((l) => [l.id, l.state])), c.legs, 'leg states');
  });
}

t.test('a deferred call that ended released the relay exactly once, and discarded only after a 603', async (t) => {
  for (const c of cases) {
    const { call, effects } = run(c.settings ?? settings(), c.events);
    const all = effects.flat();
    if (call.state === 'ended') t.equal(all.filter((e) => e.kind === 'relay-delete').length, 1, `${c.name}: one relay-delete`);
    const discards = all.filter((e) => e.kind === 'relay-discard').length;
    t.equal(discards, c.events.some((e) => e.kind === 'leg-failed' && e.status === 603) && c.events.some((e) => e.kind === 'deferred') ? 1 : 0, `${c.name}: discards`);
  }
});

t.test('the deferral moves are guarded', async (t) => {
  const moves: [Call['deferred'], Call['deferred'], boolean][] = [
    ['off', 'asked', true], ['off', 'on', false], ['asked', 'on', true], ['asked', 'off', true], ['on', 'off', true], ['on', 'asked', false],
    ['on', 'flushing', true], ['flushing', 'off', true], ['flushing', 'on', true], ['flushing', 'asked', false], ['off', 'flushing', false],
  ];
  for (const [from, to, legal] of moves) t.equal(DEFER_NEXT[from].includes(to), legal, `${from} -> ${to}`);
  t.ok(new IllegalTransition('B2BUA deferral', 'on', 'asked') instanceof Error);
});
