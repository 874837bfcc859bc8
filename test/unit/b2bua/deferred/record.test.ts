// deliverParamsOf (plugin/b2bua/deferred/record.ts): relay `deliver` params of a delivery
// call; `record` and the ids only for a messages delivery of a recorded session (CR 8.5).
import t from 'tap';
import { deliverParamsOf, isDeferredRecord, type DeferredRecord } from '../../../../plugin/b2bua/deferred/record.js';

const ID = 'ab'.repeat(16);
const base: DeferredRecord = {
  deferredId: ID, servedUser: 'sip:bob@example.net', callId: 'orig@x', from: '<sip:alice@example.net>', pAssertedIdentity: [],
  to: '<sip:bob@example.net>', conversationId: 'conv-1', contributionId: 'contrib-1', inReplyToContributionId: null, group: false,
  focus: null, expiresAt: 1e15,
};
const plain = { 'call-id': 'delivery;d1', 'deferred-id': ID, 'served-user': 'sip:bob@example.net' };

const cases: { name: string; over: Partial<DeferredRecord>; what: 'messages' | 'notifications'; want: Record<string, unknown> }[] = [
  { name: 'recorded, messages: record and both ids', over: { record: true }, what: 'messages',
    want: { ...plain, what: 'messages', record: true, 'conversation-id': 'conv-1', 'contribution-id': 'contrib-1' } },
  { name: 'recorded, notifications (to the sender): nothing recorded', over: { record: true }, what: 'notifications', want: { ...plain, what: 'notifications' } },
  { name: 'not recorded', over: { record: false }, what: 'messages', want: { ...plain, what: 'messages' } },
  { name: 'stored before `record` existed: not recorded', over: {}, what: 'messages', want: { ...plain, what: 'messages' } },
  { name: 'recorded, no ids in the INVITE: record alone (the relay warns, history off)', over: { record: true, conversationId: null, contributionId: null },
    what: 'messages', want: { ...plain, what: 'messages', record: true } },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = { ...base, ...c.over };
    t.ok(isDeferredRecord(r), 'a record of the schema');
    t.same(deliverParamsOf(r, c.what, 'delivery;d1'), c.want);
  });
}
