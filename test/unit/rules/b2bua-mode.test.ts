import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { defaultPolicy, modeFor, PolicySchema, type Policy } from '../../../plugin/rules/policy.js';
import { printRequest, printResponse, type Header } from '../../../plugin/b2bua/sip/build.js';
import { deviceInvite } from '../../../plugin/rules/stages/device-invites.js';
import { callerAnswer } from '../../../plugin/rules/stages/b2bua-answer.js';
import { device, ICSI, ICSI_GROUP, input, invite, NOW, TAGS } from './fixtures/build.js';

const BOB = 'sip:bob@example.net';
const SERVICE = { remove: ['P-Preferred-Service'], hdrs: `P-Asserted-Service: ${ICSI}\r\n` };
/** A b2bua decision's deferral and recording fields with the default policy (test/unit/rules/deferred-delivery.test.ts varies them). */
const PLAIN = { defer: false, deferral: false, record: false };

t.test('modeFor: the per-user entry, else policy.mode', async (t) => {
  const cases: [Pick<Policy, 'mode' | 'modeByUser'>, string, string][] = [
    [{ mode: 'proxy', modeByUser: {} }, BOB, 'proxy'],
    [{ mode: 'b2bua', modeByUser: {} }, BOB, 'b2bua'],
    [{ mode: 'proxy', modeByUser: { [BOB]: 'b2bua' } }, BOB, 'b2bua'],
    [{ mode: 'b2bua', modeByUser: { [BOB]: 'proxy' } }, BOB, 'proxy'],
    [{ mode: 'proxy', modeByUser: { [BOB]: 'b2bua' } }, 'sip:carol@example.net', 'proxy'],
    [{ mode: 'proxy', modeByUser: { [BOB]: 'b2bua' } }, 'sip:BOB@example.net', 'proxy'],
    [{ mode: 'proxy', modeByUser: {} }, 'constructor', 'proxy'],
    [{ mode: 'proxy', modeByUser: {} }, '__proto__', 'proxy'],
  ];
  for (const [p, user, want] of cases) t.equal(modeFor({ ...defaultPolicy, ...p }, user), want, `${JSON.stringify(p)} ${user}`);
});

t.test('PolicySchema: modeByUser keys are served-user keys, values modes', async (t) => {
  const cases: [unknown, boolean][] = [
    [{}, true],
    [{ [BOB]: 'b2bua', 'sip:carol@example.net': 'proxy' }, true],
    [{ bob: 'b2bua' }, false],
    [{ 'sip:bob@example.net:5060': 'b2bua' }, false],
    [{ 'tel:+15550001': 'b2bua' }, false],
    [{ [BOB]: 'relay' }, false],
    [[], false],
  ];
  for (const [modeByUser, ok] of cases) t.equal(Value.Check(PolicySchema, { ...defaultPolicy, modeByUser }), ok, JSON.stringify(modeByUser));
  t.same(defaultPolicy.modeByUser, {}, 'default: nobody differs');
});

t.test('CR step 8: the b2bua decision (suitable devices, best first, step 7 edit)', async (t) => {
  const low = device('low', TAGS.cpm, { q: 0.3, pubGruu: 'sip:bob@example.net;gr=urn:uuid:low' });
  const high = device('high', TAGS.cpm, { q: 0.9 });
  const tv = device('tv', TAGS.mmtel);
  const old = device('old', TAGS.cpm, { expiresAt: NOW - 1 });
  const d = decideInvite(input({ devices: [low, tv, high, old], policy: { mode: 'b2bua' } }));
  t.same(d, { action: 'b2bua', stage: 'b2bua', targets: [high, low], service: SERVICE, ...PLAIN });
});

t.test('mode and modeByUser pick the decision', async (t) => {
  const cases: { name: string; policy: Partial<Policy>; servedUser?: string; action: string }[] = [
    { name: 'default: proxy', policy: {}, action: 'proxy' },
    { name: 'mode b2bua', policy: { mode: 'b2bua' }, action: 'b2bua' },
    { name: 'proxy, bob listed b2bua', policy: { modeByUser: { [BOB]: 'b2bua' } }, action: 'b2bua' },
    { name: 'b2bua, bob listed proxy', policy: { mode: 'b2bua', modeByUser: { [BOB]: 'proxy' } }, action: 'proxy' },
    { name: 'proxy, another user listed b2bua', policy: { modeByUser: { 'sip:carol@example.net': 'b2bua' } }, action: 'proxy' },
    { name: 'b2bua for carol, the INVITE is for carol', policy: { modeByUser: { 'sip:carol@example.net': 'b2bua' } }, servedUser: 'sip:carol@example.net', action: 'b2bua' },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ policy: c.policy, ...(c.servedUser ? { servedUser: c.servedUser } : {}) }));
    t.equal(d.action, c.action, c.name);
  }
});

t.test('steps 1-7 decide first in B2BUA mode too', async (t) => {
  const cases: { name: string; over: Parameters<typeof input>[0]; stage: string; code: number }[] = [
    { name: 'release version', over: { policy: { mode: 'b2bua', supportedVersions: ['OMA9.9'] } }, stage: 'release-version', code: 403 },
    { name: 'anonymity', over: { msg: invite({ Privacy: 'id' }), policy: { mode: 'b2bua', allowAnonymity: false } }, stage: 'anonymity', code: 403 },
    { name: 'media policy', over: { msg: invite({}, 'v=0\r\n'), policy: { mode: 'b2bua' } }, stage: 'media-policy', code: 400 },
    { name: 'no device', over: { devices: [], policy: { mode: 'b2bua' } }, stage: 'no-suitable-device', code: 480 },
    { name: 'foreign service', over: { msg: invite({ 'P-Preferred-Service': `urn:x, ${ICSI}` }), policy: { mode: 'b2bua' } }, stage: 'service-identification', code: 403 },
  ];
  for (const c of cases) {
    const d = decideInvite(input(c.over));
    t.same([d.action, d.stage, d.action === 'reject' ? d.code : null], ['reject', c.stage, c.code], c.name);
  }
});

t.test('a device the B2BUA cannot address alone is no target (docs/policy.md "Step 8")', async (t) => {
  const bare = device('bare', TAGS.cpm, { instance: null, params: TAGS.cpm });
  const named = device('named', TAGS.cpm);
  const mixed = decideInvite(input({ devices: [bare, named], policy: { mode: 'b2bua' } }));
  t.same(mixed.action === 'b2bua' ? mixed.targets : mixed, [named], 'only the addressable one');

  const onlyBare = decideInvite(input({ devices: [bare], policy: { mode: 'b2bua' } }));
  t.same([onlyBare.action, onlyBare.stage], ['reject', 'no-suitable-device'], 'none addressable: step 6, 480');
  const toIsf = decideInvite(input({ devices: [bare], policy: { mode: 'b2bua', noSuitableDevice: 'isf' } }));
  t.same([toIsf.action, toIsf.stage], ['isf', 'no-suitable-device'], 'none addressable: step 6, the ISF when policy says so');

  const proxy = decideInvite(input({ devices: [bare] }));
  t.equal(proxy.action, 'proxy', 'proxy mode still forks to it');
});

t.test('CR step 8: Session-Replaces', async (t) => {
  const s1 = device('s1', TAGS.cpmGroup);
  const s2 = device('s2', TAGS.cpmGroup);
  const s3 = device('s3', TAGS.cpmGroup, { pubGruu: 'sip:bob@example.net;gr=urn:uuid:s3' });
  const bare = device('bare', TAGS.cpmGroup, { instance: null, params: TAGS.cpmGroup, contact: 'sip:bob@10.0.0.1' });
  const gone = device('gone', TAGS.cpmGroup, { expiresAt: NOW - 1 });
  const devices = [s1, s2, s3, bare, gone];
  const group = { 'P-Preferred-Service': ICSI_GROUP, 'Accept-Contact': `*;+g.3gpp.icsi-ref="${ICSI_GROUP.replace(/:/g, '%3A')}"`, 'Session-Replaces': 'contrib-1' };
  const groupService = { remove: ['P-Preferred-Service'], hdrs: `P-Asserted-Service: ${ICSI_GROUP}\r\n` };
  const cases: { name: string; lookup: readonly string[] | null; sr?: string; stage: string; targets: unknown[] }[] = [
    { name: 'known session: only its devices', lookup: ['<urn:uuid:s3>', '<urn:uuid:s1>', '<urn:uuid:gone>'], stage: 'session-replaces', targets: [s1, s3] },
    { name: 'unknown session: the suitable devices', lookup: null, stage: 'b2bua', targets: [s1, s2, s3] },
    { name: 'its devices all expired: the suitable devices', lookup: ['<urn:uuid:gone>'], stage: 'b2bua', targets: [s1, s2, s3] },
    { name: 'its only device not addressable: the suitable devices', lookup: ['sip:bob@10.0.0.1'], stage: 'b2bua', targets: [s1, s2, s3] },
    { name: 'Contribution-IDs compare byte for byte', lookup: ['<urn:uuid:s2>'], sr: 'CONTRIB-1', stage: 'b2bua', targets: [s1, s2, s3] },
  ];
  for (const c of cases) {
    const lookup = (cid: string): readonly string[] | null => (cid === 'contrib-1' ? c.lookup : null);
    const d = decideInvite(input({ msg: invite({ ...group, 'Session-Replaces': c.sr ?? 'contrib-1' }), devices, sessionDevices: lookup, policy: { mode: 'b2bua' } }));
    t.same(d, { action: 'b2bua', stage: c.stage, targets: c.targets, service: groupService, ...PLAIN }, c.name);
  }
});

t.test('diagnosticWarning leaves a b2bua decision alone', async (t) => {
  const phone = device('phone', TAGS.cpm);
  t.same(decideInvite(input({ devices: [phone], policy: { mode: 'b2bua', diagnosticWarning: true } })), { action: 'b2bua', stage: 'b2bua', targets: [phone], service: SERVICE, ...PLAIN });
});

t.test('garbled headers and bodies never throw in B2BUA mode, and what comes out prints', async (t) => {
  const garbage = ['', ' ', ';', ',', '<', '"', '\\', 'multipart/mixed', 'multipart/mixed;boundary=', 'multipart/mixed;boundary="', `multipart/mixed;boundary=${'b'.repeat(80)}`, 'timer;refresher=', '99999999999;refresher=uas', 'x'.repeat(5000), '<'.repeat(2000)];
  const headers = ['Content-Type', 'Supported', 'Session-Expires', 'Min-SE', 'Require', 'Accept-Contact', 'Session-Replaces', 'Conversation-ID'];
  const bodies = ['', '--b\r\n', '--b\r\n\r\n--b--', `--b\r\nContent-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n\r\n<x\r\n--b--\r\n`];
  const phone = device('phone', TAGS.cpm, { pubGruu: 'sip:bob@example.net;gr=urn:uuid:phone' });
  const layer: Header[] = [['Via', 'SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bKx'], ['From', '<sip:a@x>;tag=1'], ['To', '<sip:bob@example.net>'], ['Call-ID', 'c'], ['CSeq', '1 INVITE']];
  let n = 0;
  for (const h of headers) {
    for (const g of garbage) {
      for (const body of [undefined, ...bodies]) {
        const msg = invite({ [h]: g }, body);
        decideInvite(input({ msg, devices: [phone], policy: { mode: 'b2bua' } }));
        const leg = deviceInvite({ original: msg, servedUser: BOB, device: phone, service: SERVICE, offerSdp: 'v=0\r\n', contact: 'sip:b2bua@h', sessionExpires: 1800, userAgent: 'CPM-serv/OMA2.2' });
        printRequest('INVITE', leg.ruri, [...layer, ...leg.headers, ['Content-Type', leg.contentType]], leg.body);
        const ok = callerAnswer({ original: msg, contact: 'sip:b2bua@h', sessionExpires: 1800, userAgent: 'CPM-serv/OMA2.2', answerSdp: 'v=0\r\n' });
        printResponse(200, 'OK', [...layer, ...ok.headers, ['Content-Type', ok.contentType]], ok.body);
        n++;
      }
    }
  }
  t.equal(n, headers.length * garbage.length * (bodies.length + 1));
});
