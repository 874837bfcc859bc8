import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { blacklist, ICSI_GROUP, input, invite } from './fixtures/build.js';

const WARN = 'Warning: 399 pf.example.net "122 Function not allowed"\r\n';

t.test('CR step 3: blacklisted originator', async (t) => {
  const cases: { name: string; list: string[]; h: Record<string, string | string[] | null>; blocked: boolean }[] = [
    { name: 'not listed', list: ['sip:spam@example.net'], h: {}, blocked: false },
    { name: 'listed sip PAI', list: ['sip:alice@example.net'], h: {}, blocked: true },
    { name: 'host case-insensitive', list: ['sip:alice@EXAMPLE.net'], h: {}, blocked: true },
    { name: 'user case-sensitive', list: ['sip:Alice@example.net'], h: {}, blocked: false },
    { name: 'sips folds into sip', list: ['sips:alice@example.net'], h: {}, blocked: true },
    { name: 'URI params ignored', list: ['sip:alice@example.net;transport=tcp'], h: {}, blocked: true },
    { name: 'tel entry vs sip user=phone PAI', list: ['tel:+15550000002'], h: { 'P-Asserted-Identity': '<sip:+1-555-000-0002@example.net;user=phone>' }, blocked: true },
    { name: 'sip user=phone entry vs tel PAI', list: ['sip:+15550000002@other.net;user=phone'], h: { 'P-Asserted-Identity': '<tel:+1(555)000.0002>' }, blocked: true },
    { name: 'second PAI (tel) listed', list: ['tel:+15550000002'], h: { 'P-Asserted-Identity': ['<sip:alice@example.net>', '<tel:+15550000002>'] }, blocked: true },
    { name: 'two PAI values in one line', list: ['tel:+15550000002'], h: { 'P-Asserted-Identity': '<sip:alice@example.net>, <tel:+15550000002>' }, blocked: true },
    { name: 'different number', list: ['tel:+15550000003'], h: { 'P-Asserted-Identity': '<tel:+15550000002>' }, blocked: false },
    { name: 'missing PAI: From is used', list: ['sip:alice@example.net'], h: { 'P-Asserted-Identity': null }, blocked: true },
    { name: 'garbled PAI: From is used', list: ['sip:alice@example.net'], h: { 'P-Asserted-Identity': '"unterminated <sip:x@y>' }, blocked: true },
    { name: 'garbled PAI and garbled From', list: ['sip:alice@example.net'], h: { 'P-Asserted-Identity': '<<<', From: '>>>' }, blocked: false },
    { name: 'PAI of another scheme', list: ['sip:alice@example.net'], h: { 'P-Asserted-Identity': '<mailto:alice@example.net>' }, blocked: false },
    {
      name: 'group: Referred-By is the originator',
      list: ['sip:carol@example.net'],
      h: { 'P-Preferred-Service': ICSI_GROUP, 'P-Asserted-Identity': '<sip:conf@cf.example.net>', 'Referred-By': '<sip:carol@example.net>' },
      blocked: true,
    },
    {
      name: 'group: the Controlling Function itself is not checked when Referred-By is there',
      list: ['sip:conf@cf.example.net'],
      h: { 'P-Preferred-Service': ICSI_GROUP, 'P-Asserted-Identity': '<sip:conf@cf.example.net>', 'Referred-By': '<sip:carol@example.net>' },
      blocked: false,
    },
    {
      name: 'isfocus Contact makes it a group invitation',
      list: ['sip:carol@example.net'],
      h: { Contact: '<sip:conf@cf.example.net>;isfocus', 'Referred-By': '<sip:carol@example.net>' },
      blocked: true,
    },
    {
      name: '1-1: Referred-By is ignored',
      list: ['sip:carol@example.net'],
      h: { 'Referred-By': '<sip:carol@example.net>' },
      blocked: false,
    },
    {
      name: 'group with garbled Referred-By falls back to PAI',
      list: ['sip:alice@example.net'],
      h: { 'P-Preferred-Service': ICSI_GROUP, 'Referred-By': '<' },
      blocked: true,
    },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ msg: invite(c.h), docs: { blacklist: blacklist(c.list), ruleset: null } }));
    if (c.blocked) t.same(d, { action: 'reject', code: 403, reason: 'Forbidden', hdrs: WARN, stage: 'blacklist' }, c.name);
    else t.not(d.stage, 'blacklist', c.name);
  }
});

t.test('no blacklist document', async (t) => {
  t.not(decideInvite(input({ docs: { blacklist: null, ruleset: null } })).stage, 'blacklist');
});
