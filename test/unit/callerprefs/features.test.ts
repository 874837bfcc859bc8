import t from 'tap';
import { featureSetOf, isFeatureTag, parseFeatureValue, parsePredicate } from '../../../plugin/callerprefs/features.js';

t.test('RFC 3840 §9 feature values', async (t) => {
  const cases: [string | true, unknown][] = [
    [true, [{ atom: { kind: 'bool', value: true }, negated: false }]],
    ['TRUE', [{ atom: { kind: 'bool', value: true }, negated: false }]],
    ['false', [{ atom: { kind: 'bool', value: false }, negated: false }]],
    ['INVITE,MESSAGE', [{ atom: { kind: 'token', value: 'invite' }, negated: false }, { atom: { kind: 'token', value: 'message' }, negated: false }]],
    ['!video', [{ atom: { kind: 'token', value: 'video' }, negated: true }]],
    ['#>=3', [{ atom: { kind: 'num', op: '>=', value: 3 }, negated: false }]],
    ['#<=2.5', [{ atom: { kind: 'num', op: '<=', value: 2.5 }, negated: false }]],
    ['#=4', [{ atom: { kind: 'num', op: '=', value: 4 }, negated: false }]],
    ['#4', [{ atom: { kind: 'num', op: '=', value: 4 }, negated: false }]],
    ['#1:5', [{ atom: { kind: 'range', lo: 1, hi: 5 }, negated: false }]],
    ['#-3:-1', [{ atom: { kind: 'range', lo: -3, hi: -1 }, negated: false }]],
    ['<urn:uuid:AbC>', [{ atom: { kind: 'string', value: 'urn:uuid:AbC' }, negated: false }]],
    ['urn%3Aurn-7%3Ax', [{ atom: { kind: 'token', value: 'urn:urn-7:x' }, negated: false }]],
    ['a%2Cb', [{ atom: { kind: 'token', value: 'a' }, negated: false }, { atom: { kind: 'token', value: 'b' }, negated: false }]],
    ['bad%ZZ', [{ atom: { kind: 'token', value: 'bad%zz' }, negated: false }]],
    ['#>=x', null],
    ['#', null],
    ['<unterminated', null],
    ['', null],
    [',,', null],
  ];
  for (const [v, want] of cases) t.same(parseFeatureValue(v), want, JSON.stringify(v));
});

t.test('feature tags', async (t) => {
  t.ok(isFeatureTag('+g.3gpp.icsi-ref'));
  t.ok(isFeatureTag('audio'));
  t.ok(isFeatureTag('isfocus'));
  t.notOk(isFeatureTag('+'));
  t.notOk(isFeatureTag('expires'));
  t.notOk(isFeatureTag('reg-id'));
  const set = featureSetOf({ '+sip.instance': '<urn:uuid:1>', audio: true, 'reg-id': '1', methods: 'INVITE,MESSAGE', '+bad': '#>=' });
  t.same([...set.keys()].sort(), ['+sip.instance', 'audio', 'methods']);
});

t.test('Accept-Contact / Reject-Contact predicates', async (t) => {
  t.same(parsePredicate('*;+g.3gpp.icsi-ref="urn%3Aurn-7%3Ax";require;explicit'), {
    terms: [{ tag: '+g.3gpp.icsi-ref', values: [{ atom: { kind: 'token', value: 'urn:urn-7:x' }, negated: false }] }],
    require: true,
    explicit: true,
  });
  t.same(parsePredicate('*;audio;q=0.5'), { terms: [{ tag: 'audio', values: [{ atom: { kind: 'bool', value: true }, negated: false }] }], require: false, explicit: false }, 'generic params ignored');
  t.same(parsePredicate('*'), { terms: [], require: false, explicit: false });
  t.same(parsePredicate(' * ; +sip.instance="<urn:uuid:x>"')?.terms[0]?.values[0]?.atom, { kind: 'string', value: 'urn:uuid:x' });
  for (const bad of ['', 'audio', '<sip:x>', '*;+a="unterminated', '*;+a="#>="', '*x', '*;=1']) t.equal(parsePredicate(bad), null, JSON.stringify(bad));
});

t.test('parsePredicate: the same value gives the same (shared) predicate; long values are parsed too', async (t) => {
  const v = '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session";require';
  const a = parsePredicate(v);
  t.ok(a);
  t.equal(parsePredicate(v), a);
  t.same(parsePredicate(` ${v}`), a, 'another spelling parses alike');
  t.equal(parsePredicate('garbage'), null);
  t.equal(parsePredicate('garbage'), null, 'unreadable values are remembered as unreadable');
  const long = `*;+g.oma.sip-im;+x.pad="${'p'.repeat(600)}"`;
  t.same(parsePredicate(long)?.terms.map((x) => x.tag), ['+g.oma.sip-im', '+x.pad']);
  for (let i = 0; i < 1100; i++) parsePredicate(`*;+x.n${i}`);
  t.same(parsePredicate(v), a, 'still right after the cache turned over');
});
