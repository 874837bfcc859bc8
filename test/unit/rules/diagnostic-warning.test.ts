/**
 * Policy `diagnosticWarning` (docs/policy.md): with it, a rejection that the CR leaves
 * without a Warning names the stage that decided; rejections with their own Warning and
 * every other decision are unchanged. Off (the default): nothing changes.
 */
import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { withDiagnosticWarning } from '../../../plugin/rules/stages/reject.js';
import type { Decision } from '../../../plugin/rules/decision.js';
import { blacklist, CPM_SERVICE, device, DND, input, invite, PF_HOST, ruleset, TAGS } from './fixtures/build.js';

const W = (text: string): string => `Warning: 399 ${PF_HOST} "${text}"\r\n`;
const dnd = { blacklist: null, ruleset: ruleset(`<cp:conditions>${CPM_SERVICE}</cp:conditions>${DND}`) };

type Case = [name: string, over: Parameters<typeof input>[0], on: Partial<Decision>, off: Partial<Decision>];
const cases: Case[] = [
  ['do-not-disturb (step 4)', { docs: dnd }, { code: 480, hdrs: W('do-not-disturb') }, { code: 480, hdrs: '' }],
  ['no device (step 6)', { devices: [] }, { code: 480, hdrs: W('no-suitable-device') }, { code: 480, hdrs: '' }],
  ['MMTEL-only device (step 6)', { devices: [device('tv', TAGS.mmtel)] }, { code: 480, hdrs: W('no-suitable-device') }, { code: 480, hdrs: '' }],
  [
    'blacklist keeps its own Warning (step 3)',
    { docs: { blacklist: blacklist(['sip:alice@example.net']), ruleset: null } },
    { code: 403, hdrs: W('122 Function not allowed') },
    { code: 403, hdrs: W('122 Function not allowed') },
  ],
  ['a proxy decision is unchanged', {}, { action: 'proxy', stage: 'proxy' }, { action: 'proxy', stage: 'proxy' }],
  [
    'a non-CPM INVITE passes unchanged',
    { msg: invite({ 'Accept-Contact': null, 'P-Preferred-Service': null }) },
    { action: 'pass' },
    { action: 'pass' },
  ],
];

for (const [name, over, on, off] of cases) {
  t.test(name, async (t) => {
    t.match(decideInvite(input({ ...over, policy: { diagnosticWarning: true } })), on, 'switch on');
    t.match(decideInvite(input({ ...over, policy: { diagnosticWarning: false } })), off, 'switch off');
    t.match(decideInvite(input(over)), off, 'default: off');
  });
}

t.test('withDiagnosticWarning keeps other header lines and adds one Warning', async (t) => {
  const d: Decision = { action: 'reject', code: 480, reason: 'Temporarily Unavailable', hdrs: 'Retry-After: 60\r\n', stage: 'do-not-disturb' };
  t.same(withDiagnosticWarning(d, PF_HOST), { ...d, hdrs: `Retry-After: 60\r\n${W('do-not-disturb')}` });
});
