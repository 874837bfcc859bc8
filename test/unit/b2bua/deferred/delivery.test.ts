// The delivery machine (plugin/b2bua/deferred/delivery.ts) driven through case tables:
// each row a sequence of events from a new delivery, the state, outcome and effects after.
import t from 'tap';
import { guardedTransition, IllegalTransition } from '../../../../lib/fsm.js';
import {
  DELIVERY_NEXT, newDelivery, stepDelivery, type Delivery, type DeliveryEffect, type DeliveryEvent, type DeliveryState,
} from '../../../../plugin/b2bua/deferred/delivery.js';

const E = {
  ok: { kind: 'deliver-ok' },
  nothing: { kind: 'deliver-failed', nothing: true },
  refused: { kind: 'deliver-failed', nothing: false },
  ring: { kind: 'provisional' },
  answered: { kind: 'answered' },
  r603: { kind: 'rejected', status: 603 },
  r480: { kind: 'rejected', status: 480 },
  r408: { kind: 'rejected', status: 408 },
  r503: { kind: 'rejected', status: 503 },
  r487: { kind: 'rejected', status: 487 },
  noAnswer: { kind: 'no-answer' },
  relayOk: { kind: 'relay-answered', ok: true },
  relayNo: { kind: 'relay-answered', ok: false },
  delivered: { kind: 'delivered' },
  linger: { kind: 'linger-over' },
  closed: { kind: 'media-closed' },
  lost: { kind: 'relay-lost' },
  stalled: { kind: 'stalled' },
  peerBye: { kind: 'peer-bye' },
  byeDone: { kind: 'bye-done' },
  discarded: { kind: 'discard-done' },
} satisfies Record<string, DeliveryEvent>;
type Ev = keyof typeof E;

interface Row {
  readonly name: string;
  readonly events: readonly Ev[];
  readonly state: DeliveryState;
  readonly outcome: Delivery['outcome'];
  /** Every effect of the whole sequence, kinds only (finish with its outcome). */
  readonly effects: readonly string[];
}

const fx = (e: DeliveryEffect): string => (e.kind === 'finish' ? `finish:${e.outcome}` : e.kind);

const rows: Row[] = [
  { name: 'the happy path', events: ['ok', 'ring', 'answered', 'relayOk', 'delivered', 'linger', 'byeDone'], state: 'done', outcome: 'delivered', effects: ['invite', 'relay-answer', 'arm-linger', 'bye', 'relay-delete', 'finish:delivered'] },
  { name: 'delivered overtakes the answer reply', events: ['ok', 'answered', 'delivered', 'relayOk', 'linger', 'byeDone'], state: 'done', outcome: 'delivered', effects: ['invite', 'relay-answer', 'arm-linger', 'bye', 'relay-delete', 'finish:delivered'] },
  { name: 'the relay has nothing stored', events: ['nothing'], state: 'done', outcome: 'empty', effects: ['finish:empty'] },
  { name: 'the relay refused (busy, unreachable)', events: ['refused'], state: 'done', outcome: 'kept', effects: ['finish:kept'] },
  { name: '603: discard, no BYE (the caller is gone)', events: ['ok', 'ring', 'r603', 'discarded'], state: 'done', outcome: 'discarded', effects: ['invite', 'relay-delete', 'discard', 'finish:discarded'] },
  { name: '480: kept', events: ['ok', 'r480'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-delete', 'finish:kept'] },
  { name: '408 (timeout): kept', events: ['ok', 'r408'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-delete', 'finish:kept'] },
  { name: '503: kept', events: ['ok', 'r503'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-delete', 'finish:kept'] },
  { name: 'rings too long: CANCEL, 487, kept', events: ['ok', 'ring', 'noAnswer', 'r487'], state: 'done', outcome: 'kept', effects: ['invite', 'cancel', 'relay-delete', 'finish:kept'] },
  { name: 'relay refuses the answer: BYE, kept', events: ['ok', 'answered', 'relayNo', 'byeDone'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-answer', 'bye', 'relay-delete', 'finish:kept'] },
  { name: 'leg-closed while sending: BYE, kept', events: ['ok', 'answered', 'relayOk', 'closed', 'byeDone'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-answer', 'bye', 'relay-delete', 'finish:kept'] },
  { name: 'relay lost while sending: BYE, kept', events: ['ok', 'answered', 'relayOk', 'lost', 'byeDone'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-answer', 'bye', 'relay-delete', 'finish:kept'] },
  { name: 'stalled: BYE, kept', events: ['ok', 'answered', 'relayOk', 'stalled', 'byeDone'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-answer', 'bye', 'relay-delete', 'finish:kept'] },
  { name: 'relay lost while ringing: CANCEL; its 200 then gets BYE', events: ['ok', 'lost', 'answered', 'byeDone'], state: 'done', outcome: 'kept', effects: ['invite', 'cancel', 'bye', 'relay-delete', 'finish:kept'] },
  { name: 'the device hangs up mid-way: kept', events: ['ok', 'answered', 'relayOk', 'peerBye'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-answer', 'relay-delete', 'finish:kept'] },
  { name: 'the device hangs up while we linger: delivered', events: ['ok', 'answered', 'relayOk', 'delivered', 'peerBye'], state: 'done', outcome: 'delivered', effects: ['invite', 'relay-answer', 'arm-linger', 'relay-delete', 'finish:delivered'] },
  { name: 'leg-closed while lingering: BYE, delivered', events: ['ok', 'answered', 'relayOk', 'delivered', 'closed', 'byeDone'], state: 'done', outcome: 'delivered', effects: ['invite', 'relay-answer', 'arm-linger', 'bye', 'relay-delete', 'finish:delivered'] },
  { name: 'BYE crossing the peer BYE', events: ['ok', 'answered', 'relayOk', 'delivered', 'linger', 'peerBye', 'byeDone'], state: 'done', outcome: 'delivered', effects: ['invite', 'relay-answer', 'arm-linger', 'bye', 'relay-delete', 'finish:delivered'] },
  { name: 'late events after the end are ignored', events: ['ok', 'r480', 'delivered', 'answered', 'peerBye', 'linger'], state: 'done', outcome: 'kept', effects: ['invite', 'relay-delete', 'finish:kept'] },
  { name: 'events a state does not expect are ignored', events: ['linger', 'delivered', 'ok', 'byeDone', 'discarded', 'relayOk'], state: 'inviting', outcome: null, effects: ['invite'] },
];

for (const r of rows) {
  t.test(r.name, async (t) => {
    let d = newDelivery('messages');
    const effects: string[] = [];
    for (const e of r.events) {
      const s = stepDelivery(d, E[e]);
      d = s.delivery;
      effects.push(...s.effects.map(fx));
    }
    t.equal(d.state, r.state);
    t.equal(d.outcome, r.outcome);
    t.same(effects, r.effects);
  });
}

t.test('the NEXT table: done is terminal, every state can end', async (t) => {
  t.same(DELIVERY_NEXT.done, []);
  for (const s of Object.keys(DELIVERY_NEXT) as DeliveryState[]) if (s !== 'done') t.ok(DELIVERY_NEXT[s].includes('done'), s);
  t.throws(() => guardedTransition('delivery', DELIVERY_NEXT, 'done', 'inviting'), IllegalTransition);
  t.throws(() => guardedTransition('delivery', DELIVERY_NEXT, 'preparing', 'sending'), IllegalTransition);
});
