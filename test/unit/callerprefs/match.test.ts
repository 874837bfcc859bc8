import t from 'tap';
import { parseSipMessage, type SipRequest } from '../../../plugin/sip/message.js';
import { acceptScore, callerPrefsOf, dispositionOf, rankContacts, rejects } from '../../../plugin/callerprefs/match.js';
import { featureSetOf, parsePredicate, type FeaturePredicate } from '../../../plugin/callerprefs/features.js';

const p = (s: string): FeaturePredicate => {
  const r = parsePredicate(s);
  if (!r) throw new Error(`bad predicate ${s}`);
  return r;
};

function req(headers: string[], method = 'INVITE'): SipRequest {
  const m = parseSipMessage(`${method} sip:bob@example.net SIP/2.0\r\n${headers.join('\r\n')}\r\nCall-ID: x\r\n\r\n`);
  if (m.kind !== 'request') throw new Error('not a request');
  return m;
}

const CPM = { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session', '+sip.instance': '<urn:uuid:a>' };
const IM = { '+g.oma.sip-im': true as const, '+sip.instance': '<urn:uuid:b>' };
const MMTEL = { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel', '+sip.instance': '<urn:uuid:c>', audio: true as const };
const AC_CPM = '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"';

t.test('RFC 3841 §7.2.4 Reject-Contact: all predicate tags must be present', async (t) => {
  const cases: [string, Record<string, string | true>, boolean][] = [
    ['*;+sip.instance="<urn:uuid:a>"', CPM, true],
    ['*;+sip.instance="<urn:uuid:a>"', IM, false],
    ['*;+sip.instance="<urn:uuid:A>"', CPM, false], // string values are case-sensitive
    ['*;audio', MMTEL, true],
    ['*;audio', CPM, false], // tag absent: not rejected
    ['*;audio;+g.oma.sip-im', IM, false], // audio absent from IM
    ['*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel,urn%3Ax"', MMTEL, true],
    ['*;+g.3gpp.icsi-ref="!urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"', MMTEL, false],
    ['*;+g.3gpp.icsi-ref="!urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"', CPM, true],
    ['*', CPM, false], // empty predicate rejects nothing
  ];
  for (const [pred, params, want] of cases) t.equal(rejects(p(pred), featureSetOf(params)), want, `${pred} vs ${JSON.stringify(params)}`);
});

t.test('RFC 3841 §7.2.4 Accept-Contact scores, explicit and require', async (t) => {
  const cases: [string[], Record<string, string | true>, number | null][] = [
    [[AC_CPM], CPM, 1],
    [[AC_CPM], IM, 0], // tag absent, not explicit: kept with score 0
    [[AC_CPM], MMTEL, 0], // tag present, mismatched, no require: left out, nothing matched
    [[AC_CPM, '*;audio'], MMTEL, 1], // the mismatched predicate is left out of the mean
    [[`${AC_CPM};require`], MMTEL, null], // mismatched + require: dropped
    [[`${AC_CPM};require`], IM, 0], // absent tag is not a mismatch
    [[`${AC_CPM};explicit;require`], IM, null], // explicit needs the tag
    [[`${AC_CPM};explicit`], IM, 0],
    [[`${AC_CPM};explicit`, '*;+g.oma.sip-im'], IM, 0.5], // explicit miss scores 0 but counts
    [[`${AC_CPM};+g.oma.sip-im`], CPM, 0.5], // one of two tags present
    [[`${AC_CPM};+g.oma.sip-im;explicit`], CPM, 0], // explicit with partial coverage: no match
    [[AC_CPM, '*;+g.oma.sip-im'], IM, 0.5], // mean of two predicates
    [['*;+sip.instance="<urn:uuid:a>";explicit;require'], CPM, 1],
    [['*;+sip.instance="<urn:uuid:a>";explicit;require'], IM, null],
    [['*;methods="INVITE,MESSAGE"'], { methods: 'INVITE', '+x': true }, 1],
    [['*;+num="#>=3"'], { '+num': '#5' }, 1],
    [['*;+num="#>=3";require'], { '+num': '#2' }, null],
    [['*;+num="#1:3";require'], { '+num': '#2' }, 1],
    [['*;+s="<Exact>";require'], { '+s': '<exact>' }, null],
    [['*;+t="tok";require'], { '+t': 'TOK' }, 1], // tokens are case-insensitive
    [['*;+b="FALSE";require'], { '+b': true }, null],
    [[], CPM, 1],
  ];
  for (const [preds, params, want] of cases) {
    t.equal(acceptScore(preds.map(p), featureSetOf(params)), want, `${preds.join(' | ')} vs ${JSON.stringify(params)}`);
  }
});

t.test('ranking: removal, Qa then q then order; immune contacts have Qa 1', async (t) => {
  const contacts = [
    { name: 'im', params: IM, q: 1 },
    { name: 'cpm-low', params: { ...CPM, '+sip.instance': '<urn:uuid:d>' }, q: 0.5 },
    { name: 'cpm', params: CPM, q: 0.9 },
    { name: 'mmtel', params: MMTEL, q: 1 },
    { name: 'plain', params: {}, q: 1 },
  ];
  const prefs = callerPrefsOf(req([`Accept-Contact: ${AC_CPM}`, 'Reject-Contact: *;audio']));
  t.same(rankContacts(prefs, contacts).map((r) => [r.item.name, r.qa]), [
    ['plain', 1],
    ['cpm', 1],
    ['cpm-low', 1],
    ['im', 0],
  ]);
});

t.test('implicit method preference (§7.2.2.1)', async (t) => {
  const contacts: { name: string; params: Record<string, string | true>; q: number }[] = [
    { name: 'msg-only', params: { methods: 'MESSAGE', '+x': true }, q: 1 },
    { name: 'invite', params: { methods: 'INVITE,MESSAGE', '+x': true }, q: 1 },
    { name: 'unsaid', params: { '+x': true }, q: 1 },
  ];
  t.same(rankContacts(callerPrefsOf(req([])), contacts).map((r) => r.item.name), ['invite', 'unsaid']);
  t.same(rankContacts(callerPrefsOf(req([], 'MESSAGE')), contacts).map((r) => r.item.name), ['msg-only', 'invite', 'unsaid']);
});

t.test('garbled Accept-Contact / Reject-Contact values are skipped and counted', async (t) => {
  const prefs = callerPrefsOf(req(['Accept-Contact: audio', 'Accept-Contact: *;+x="unterminated', 'Reject-Contact: <sip:x>', 'Reject-Contact: *;+y']));
  t.equal(prefs.ignored, 3);
  t.equal(prefs.accept.length, 0);
  t.equal(prefs.reject.length, 1);
});

t.test('Request-Disposition (RFC 3841 §7.1, §9.1)', async (t) => {
  const cases: [string[], { fork: boolean; parallel: boolean }][] = [
    [[], { fork: true, parallel: true }],
    [['Request-Disposition: fork, parallel'], { fork: true, parallel: true }],
    [['Request-Disposition: no-fork'], { fork: false, parallel: true }],
    [['Request-Disposition: sequential, proxy, cancel'], { fork: true, parallel: false }],
    [['d: SEQUENTIAL'], { fork: true, parallel: false }],
    [['Request-Disposition: ,,,garbage;;;=='], { fork: true, parallel: true }],
  ];
  for (const [h, want] of cases) t.same(dispositionOf(req(h)), want, h.join());
});

t.test('10,000 Reject-Contact values stay linear', async (t) => {
  const rc: string[] = [];
  for (let i = 0; i < 10_000; i++) rc.push(`*;+sip.instance="<urn:uuid:${i}>"`);
  const msg = req([`Reject-Contact: ${rc.join(', ')}`]);
  const prefs = callerPrefsOf(msg);
  t.equal(prefs.reject.length, 10_000);
  const contacts = Array.from({ length: 50 }, (_, i) => ({ params: { '+sip.instance': `<urn:uuid:${i * 400}>`, '+g.oma.sip-im': true as const }, q: 1 }));
  const kept = rankContacts(prefs, contacts);
  t.equal(kept.length, 25, 'instances 0..9999 in steps of 400: 25 of 50 rejected');
});
