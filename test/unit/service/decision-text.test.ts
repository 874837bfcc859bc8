import t from 'tap';
import { proxyDecisionText } from '../../../plugin/rpc/decision-text.js';
import type { ProxyDecision } from '../../../plugin/rules/decision.js';
import type { ForkResult } from '../../../plugin/callerprefs/fork.js';

const PAS = 'P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session\r\n';
const RD = 'Request-Disposition: fork, parallel\r\n';
const base: ProxyDecision = { action: 'proxy', remove: ['P-Preferred-Service'], hdrs: PAS + RD, failover: null, stage: 'proxy' };
const fork: ForkResult = { code: 200, rtjson: { version: '1.0', routing: 'parallel', routes: [{ uri: 'sip:bob@127.0.0.1:6000;transport=tcp', dst_uri: 'sip:127.0.0.1:6000;transport=tcp' }] } };
const failover = { codes: '^(480|408)$', statuses: [480, 408], ruri: 'sip:isf@127.0.0.1:5090' };
const rc = 'Reject-Contact: *;+sip.instance="<urn:uuid:tv>"\r\n';

// [name, decision, fork, expected text or null (JSON form)]
const cases: Array<[string, ProxyDecision, ForkResult | undefined, string | null]> = [
  ['usual, with fork', base, fork, `proxy|proxy|P-Preferred-Service|||${JSON.stringify(fork)}|${PAS}${RD}`],
  ['without fork', base, undefined, `proxy|proxy|P-Preferred-Service||||${PAS}${RD}`],
  ['no removal, Reject-Contact with quotes', { ...base, remove: [], hdrs: PAS + rc + RD }, undefined, `proxy|proxy|||||${PAS}${rc}${RD}`],
  ['two removals, failover, session-replaces', { ...base, remove: ['P-Preferred-Service', 'Request-Disposition'], failover, stage: 'session-replaces' }, fork,
    `proxy|session-replaces|P-Preferred-Service,Request-Disposition|480,408|sip:isf@127.0.0.1:5090|${JSON.stringify(fork)}|${PAS}${RD}`],
  ['fork 480', base, { code: 480, reason: 'Temporarily Unavailable' }, `proxy|proxy|P-Preferred-Service|||{"code":480,"reason":"Temporarily Unavailable"}|${PAS}${RD}`],
  ['a | in a header value', { ...base, hdrs: 'X-A: a|b\r\n' }, undefined, null],
  ['a | in the fork', base, { code: 200, rtjson: { ...fork.rtjson, routes: [{ uri: 'sip:a|b@h' }] } }, null],
  ['a backslash in the fork', base, { code: 200, rtjson: { ...fork.rtjson, routes: [{ uri: 'sip:a\\b@h' }] } }, null],
  ['non-ASCII in a header', { ...base, hdrs: 'X-A: é\r\n' }, undefined, null],
  ['a lone LF in hdrs', { ...base, hdrs: 'X-A: a\nX-B: b\r\n' }, undefined, null],
  ['hdrs without the final CRLF', { ...base, hdrs: 'X-A: a' }, undefined, null],
  ['a TAB in hdrs', { ...base, hdrs: 'X-A: a\tb\r\n' }, undefined, null],
  ['a | in the ISF URI', { ...base, failover: { ...failover, ruri: 'sip:i|sf@h' } }, undefined, null],
  ['a comma in a removed name', { ...base, remove: ['A,B'] }, undefined, null],
];
for (const [name, d, f, want] of cases) t.equal(proxyDecisionText(d, f), want, name);

t.test('the text survives JSON and the two replacements pf.cfg makes', async (t) => {
  const text = proxyDecisionText({ ...base, remove: [], hdrs: PAS + rc + RD, failover }, fork)!;
  const wire = JSON.stringify(text);
  const inner = wire.slice(1, -1).replaceAll('\\"', '"').replaceAll('\\r\\n', '\r\n');
  t.equal(inner, text);
  t.notOk(inner.includes('\\'));
  const f = inner.split('|');
  t.equal(f.length, 7);
  t.same(JSON.parse(f[5]!), fork);
  t.equal(f[6], PAS + rc + RD);
});
