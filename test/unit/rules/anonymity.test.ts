import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { input, invite } from './fixtures/build.js';

const WARN = 'Warning: 399 pf.example.net "119 Anonymity not allowed"\r\n';

t.test('CR step 2: anonymity requested and policy forbids it', async (t) => {
  const cases: { name: string; h: Record<string, string | string[] | null>; anonymous: boolean }[] = [
    { name: 'no Privacy', h: {}, anonymous: false },
    { name: 'Privacy: id', h: { Privacy: 'id' }, anonymous: true },
    { name: 'Privacy: user', h: { Privacy: 'user' }, anonymous: true },
    { name: 'Privacy: header;id (list)', h: { Privacy: 'header;id' }, anonymous: true },
    { name: 'Privacy: ID (case)', h: { Privacy: 'ID' }, anonymous: true },
    { name: 'Privacy: none', h: { Privacy: 'none' }, anonymous: false },
    { name: 'Privacy: header', h: { Privacy: 'header' }, anonymous: false },
    { name: 'Privacy: garbled', h: { Privacy: ';;;\u0001==' }, anonymous: false },
    { name: 'Privacy: empty', h: { Privacy: '' }, anonymous: false },
    { name: 'anonymous PAI', h: { 'P-Asserted-Identity': '<sip:anonymous@anonymous.invalid>' }, anonymous: true },
    { name: 'anonymous PAI with display name', h: { 'P-Asserted-Identity': '"Anonymous" <sip:anonymous@anonymous.invalid>' }, anonymous: true },
    { name: 'display name Anonymous only', h: { 'P-Asserted-Identity': 'Anonymous <sip:x@anonymous.invalid>' }, anonymous: true },
    { name: 'no PAI, anonymous From', h: { 'P-Asserted-Identity': null, From: '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1' }, anonymous: true },
    { name: 'no PAI, normal From', h: { 'P-Asserted-Identity': null }, anonymous: false },
    { name: 'garbled PAI, normal From', h: { 'P-Asserted-Identity': '<sip:alice@' }, anonymous: false },
  ];
  for (const c of cases) {
    const forbid = decideInvite(input({ msg: invite(c.h), policy: { allowAnonymity: false } }));
    if (c.anonymous) t.same(forbid, { action: 'reject', code: 403, reason: 'Forbidden', hdrs: WARN, stage: 'anonymity' }, c.name);
    else t.not(forbid.stage, 'anonymity', c.name);
    const allow = decideInvite(input({ msg: invite(c.h), policy: { allowAnonymity: true } }));
    t.not(allow.stage, 'anonymity', `${c.name} (allowed)`);
  }
});
