import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { CPM_SERVICE, DND, input, invite, NOW, ruleset } from './fixtures/build.js';

const cond = (...c: string[]): string => `<cp:conditions>${c.join('')}</cp:conditions>`;
const ALICE = '<cp:identity><cp:one id="sip:alice@example.net"/></cp:identity>';
const OTHER = '<ocp:other-identity/>';
const ANON = '<ocp:anonymous-request/>';
const iso = (ms: number): string => new Date(ms).toISOString();

t.test('CR step 4: do not disturb (RFC 4745 rule matching)', async (t) => {
  const cases: { name: string; rules: string[]; h?: Record<string, string | null>; dnd: boolean }[] = [
    { name: 'no rules', rules: [], dnd: false },
    { name: 'docs/policy.md example: other-identity + CPM', rules: [cond(OTHER, CPM_SERVICE) + DND], dnd: true },
    { name: 'allow-do-not-disturb false', rules: [cond(OTHER, CPM_SERVICE) + DND.replace('true<', 'false<')], dnd: false },
    { name: 'xs:boolean 1', rules: [cond(OTHER, CPM_SERVICE) + DND.replace('true<', '1<')], dnd: true },
    { name: 'rule without service-list does not count', rules: [cond(OTHER) + DND], dnd: false },
    { name: 'service-list for another enabler', rules: [cond(OTHER, CPM_SERVICE.replace('CPM', 'IM')) + DND], dnd: false },
    { name: 'all-services counts', rules: [cond(OTHER, '<oxe:service-list><oxe:all-services/></oxe:service-list>') + DND], dnd: true },
    { name: 'no conditions except service-list: applies to all', rules: [cond(CPM_SERVICE) + DND], dnd: true },
    { name: 'identity one matches', rules: [cond(ALICE, CPM_SERVICE) + DND], dnd: true },
    { name: 'identity one does not match', rules: [cond(ALICE.replace('alice', 'carol'), CPM_SERVICE) + DND], dnd: false },
    { name: 'tel one id vs sip user=phone PAI', rules: [cond('<cp:identity><cp:one id="tel:+15550001"/></cp:identity>', CPM_SERVICE) + DND], h: { 'P-Asserted-Identity': '<sip:+15550001@example.net;user=phone>' }, dnd: true },
    { name: 'many with domain', rules: [cond('<cp:identity><cp:many domain="example.net"/></cp:identity>', CPM_SERVICE) + DND], dnd: true },
    { name: 'many with other domain', rules: [cond('<cp:identity><cp:many domain="other.net"/></cp:identity>', CPM_SERVICE) + DND], dnd: false },
    { name: 'many without domain', rules: [cond('<cp:identity><cp:many/></cp:identity>', CPM_SERVICE) + DND], dnd: true },
    { name: 'many except id', rules: [cond('<cp:identity><cp:many domain="example.net"><cp:except id="sip:alice@example.net"/></cp:many></cp:identity>', CPM_SERVICE) + DND], dnd: false },
    { name: 'many except domain', rules: [cond('<cp:identity><cp:many><cp:except domain="example.net"/></cp:many></cp:identity>', CPM_SERVICE) + DND], dnd: false },
    { name: 'many except another id', rules: [cond('<cp:identity><cp:many><cp:except id="sip:carol@example.net"/></cp:many></cp:identity>', CPM_SERVICE) + DND], dnd: true },
    {
      name: 'other-identity does not match when another rule named the originator',
      rules: [cond(ALICE, CPM_SERVICE), cond(OTHER, CPM_SERVICE) + DND],
      dnd: false,
    },
    {
      name: 'other-identity matches when another rule names someone else',
      rules: [cond(ALICE.replace('alice', 'carol'), CPM_SERVICE), cond(OTHER, CPM_SERVICE) + DND],
      dnd: true,
    },
    { name: 'anonymous-request, anonymous request', rules: [cond(ANON, CPM_SERVICE) + DND], h: { Privacy: 'id' }, dnd: true },
    { name: 'anonymous-request, normal request', rules: [cond(ANON, CPM_SERVICE) + DND], dnd: false },
    { name: 'other-identity, anonymous request', rules: [cond(OTHER, CPM_SERVICE) + DND], h: { Privacy: 'id' }, dnd: false },
    { name: 'identity, anonymous request', rules: [cond(ALICE, CPM_SERVICE) + DND], h: { Privacy: 'id' }, dnd: false },
    { name: 'identity, no identity at all', rules: [cond(ALICE, CPM_SERVICE) + DND], h: { 'P-Asserted-Identity': null, From: '<>;tag=1' }, dnd: false },
    {
      name: 'validity now inside',
      rules: [cond(OTHER, CPM_SERVICE, `<cp:validity><cp:from>${iso(NOW - 1000)}</cp:from><cp:until>${iso(NOW + 1000)}</cp:until></cp:validity>`) + DND],
      dnd: true,
    },
    {
      name: 'validity expired',
      rules: [cond(OTHER, CPM_SERVICE, `<cp:validity><cp:from>${iso(NOW - 2000)}</cp:from><cp:until>${iso(NOW - 1000)}</cp:until></cp:validity>`) + DND],
      dnd: false,
    },
    { name: 'sphere: never applies', rules: [cond(OTHER, CPM_SERVICE, '<cp:sphere value="work"/>') + DND], dnd: false },
    { name: 'unknown condition: never applies', rules: [cond(OTHER, CPM_SERVICE, '<x:media-list xmlns:x="urn:x"/>') + DND], dnd: false },
    { name: 'OR over rules', rules: [cond(ALICE.replace('alice', 'carol'), CPM_SERVICE) + DND, cond(ALICE, CPM_SERVICE) + DND], dnd: true },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ msg: invite(c.h ?? {}), docs: { blacklist: null, ruleset: ruleset(...c.rules) } }));
    if (c.dnd) t.same(d, { action: 'reject', code: 480, reason: 'Temporarily Unavailable', hdrs: '', stage: 'do-not-disturb' }, c.name);
    else t.not(d.stage, 'do-not-disturb', c.name);
  }
});
