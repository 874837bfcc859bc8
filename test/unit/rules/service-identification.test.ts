import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { ICSI, ICSI_GROUP, input, invite, device, TAGS } from './fixtures/build.js';

const WARN = 'Warning: 399 pf.example.net "122 Function not allowed"\r\n';
const MMTEL = 'urn:urn-7:3gpp-service.ims.icsi.mmtel';

t.test('CR step 7: service identification', async (t) => {
  const cases: { name: string; h: Record<string, string | string[] | null>; foreign?: 'reject' | 'allow'; remove?: string[]; pas?: string | null; reject?: boolean }[] = [
    { name: 'PPS 1-1 -> PAS 1-1', h: {}, remove: ['P-Preferred-Service'], pas: ICSI },
    { name: 'PPS group -> PAS group', h: { 'P-Preferred-Service': ICSI_GROUP }, remove: ['P-Preferred-Service'], pas: ICSI_GROUP },
    { name: 'PAS kept', h: { 'P-Preferred-Service': null, 'P-Asserted-Service': ICSI }, remove: [], pas: null },
    { name: 'PPS and PAS both CPM: PPS removed, no duplicate PAS', h: { 'P-Asserted-Service': ICSI }, remove: ['P-Preferred-Service'], pas: null },
    { name: 'no service headers (CPM by Accept-Contact)', h: { 'P-Preferred-Service': null }, remove: [], pas: null },
    { name: 'foreign PPS value, policy reject', h: { 'P-Preferred-Service': [ICSI, MMTEL] }, reject: true },
    { name: 'foreign PAS value, policy reject', h: { 'P-Preferred-Service': null, 'P-Asserted-Service': MMTEL }, reject: true },
    { name: 'foreign PAS value, policy allow', h: { 'P-Preferred-Service': null, 'P-Asserted-Service': MMTEL }, foreign: 'allow', remove: [], pas: null },
    { name: 'foreign + CPM PPS, policy allow', h: { 'P-Preferred-Service': `${MMTEL}, ${ICSI}` }, foreign: 'allow', remove: ['P-Preferred-Service'], pas: ICSI },
    { name: 'PPS case-insensitive', h: { 'P-Preferred-Service': ICSI.toUpperCase() }, remove: ['P-Preferred-Service'], pas: ICSI },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ msg: invite(c.h), devices: [device('both', TAGS.cpmGroup)], policy: { foreignService: c.foreign ?? 'reject' } }));
    if (c.reject) {
      t.same(d, { action: 'reject', code: 403, reason: 'Forbidden', hdrs: WARN, stage: 'service-identification' }, c.name);
      continue;
    }
    if (d.action !== 'proxy') {
      t.fail(`${c.name}: expected proxy, got ${JSON.stringify(d)}`);
      continue;
    }
    t.same(d.remove, c.remove, `${c.name}: remove`);
    const pas = d.hdrs.split('\r\n').filter((l) => l.startsWith('P-Asserted-Service:'));
    t.same(pas, c.pas ? [`P-Asserted-Service: ${c.pas}`] : [], `${c.name}: P-Asserted-Service`);
  }
});

t.test('an INVITE that is not a CPM session invitation passes', async (t) => {
  const cases: Record<string, string | null>[] = [
    { 'P-Preferred-Service': MMTEL, 'Accept-Contact': '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"' },
    { 'P-Preferred-Service': null, 'Accept-Contact': null },
    { 'P-Preferred-Service': null, 'Accept-Contact': '*;audio' },
  ];
  for (const h of cases) t.same(decideInvite(input({ msg: invite(h), devices: [device('x', TAGS.mmtel)] })), { action: 'pass', stage: 'not-cpm' });
  const im = decideInvite(input({ msg: invite({ 'P-Preferred-Service': null, 'Accept-Contact': '*;+g.oma.sip-im' }) }));
  t.equal(im.action, 'proxy', 'SIMPLE IM Accept-Contact counts as a CPM 1-1 invitation');
});
