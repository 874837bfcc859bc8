import t from 'tap';
import { applicableRules, combinedActions } from '../../../plugin/rules/common-policy.js';
import { CPM_SERVICE, NOW, ruleset } from './fixtures/build.js';

const ALICE = { anonymous: false, originator: { keys: ['sip:alice@example.net'], domain: 'example.net', source: 'p-asserted-identity' as const } };

t.test('applicable rules and OR-combined actions (RFC 4745 §10.2)', async (t) => {
  const rs = ruleset(
    `<cp:conditions>${CPM_SERVICE}</cp:conditions><cp:actions><oxe:allow-offline-storage>true</oxe:allow-offline-storage></cp:actions>`,
    `<cp:conditions><ocp:other-identity/>${CPM_SERVICE}</cp:conditions><cp:actions><oxe:allow-do-not-disturb>false</oxe:allow-do-not-disturb></cp:actions>`,
    `<cp:conditions><ocp:anonymous-request/></cp:conditions><cp:actions><oxe:allow-do-not-disturb>true</oxe:allow-do-not-disturb></cp:actions>`,
  );
  const cpm = applicableRules(rs, ALICE, NOW, 'CPM');
  t.same(cpm.map((r) => r.id), ['r0', 'r1']);
  t.same(combinedActions(cpm), { allowDoNotDisturb: false, allowOfflineStorage: true });
  const any = applicableRules(rs, { anonymous: true, originator: null }, NOW, null);
  t.same(any.map((r) => r.id), ['r0', 'r2'], 'without an enabler filter, rules without a service-list count');
  t.same(combinedActions(any), { allowDoNotDisturb: true, allowOfflineStorage: true });
  t.same(applicableRules(rs, ALICE, NOW, 'cpm').map((r) => r.id), ['r0', 'r1'], 'enabler compared case-insensitively');
});
