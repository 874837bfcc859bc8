import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { defaultPolicy, deferralFor, PolicySchema, type Policy } from '../../../plugin/rules/policy.js';
import { CPM_SERVICE, device, ICSI, input, invite, ruleset, TAGS } from './fixtures/build.js';

const BOB = 'sip:bob@example.net';
const CAROL = 'sip:carol@example.net';
const SERVICE = { remove: ['P-Preferred-Service'], hdrs: `P-Asserted-Service: ${ICSI}\r\n` };
const cond = (...c: string[]): string => `<cp:conditions>${c.join('')}</cp:conditions>`;
const STORE = (v: string): string => `<cp:actions><oxe:allow-offline-storage>${v}</oxe:allow-offline-storage></cp:actions>`;
const ALICE = '<cp:identity><cp:one id="sip:alice@example.net"/></cp:identity>';

t.test('deferralFor: the per-user entry, else policy.deferredDelivery', async (t) => {
  const cases: [Pick<Policy, 'deferredDelivery' | 'deferredDeliveryByUser'>, string, boolean][] = [
    [{ deferredDelivery: false, deferredDeliveryByUser: {} }, BOB, false],
    [{ deferredDelivery: true, deferredDeliveryByUser: {} }, BOB, true],
    [{ deferredDelivery: false, deferredDeliveryByUser: { [BOB]: true } }, BOB, true],
    [{ deferredDelivery: true, deferredDeliveryByUser: { [BOB]: false } }, BOB, false],
    [{ deferredDelivery: false, deferredDeliveryByUser: { [BOB]: true } }, CAROL, false],
    [{ deferredDelivery: false, deferredDeliveryByUser: {} }, '__proto__', false],
    [{ deferredDelivery: false, deferredDeliveryByUser: {} }, 'constructor', false],
  ];
  for (const [p, user, want] of cases) t.equal(deferralFor({ ...defaultPolicy, ...p }, user), want, `${JSON.stringify(p)} ${user}`);
});

t.test('PolicySchema: the deferral and recording fields', async (t) => {
  t.same(
    [defaultPolicy.deferredDelivery, defaultPolicy.deferredDeliveryByUser, defaultPolicy.deferredTtlS, defaultPolicy.recordHistory],
    [false, {}, 604_800, false],
    'defaults: off, nobody, 7 days, off',
  );
  const cases: [Partial<Policy> | Record<string, unknown>, boolean][] = [
    [{ deferredDeliveryByUser: { [BOB]: true, [CAROL]: false } }, true],
    [{ deferredDeliveryByUser: { bob: true } }, false],
    [{ deferredDeliveryByUser: { [BOB]: 'yes' } }, false],
    [{ deferredTtlS: 59 }, false],
    [{ deferredTtlS: 60 }, true],
    [{ deferredTtlS: 1.5 }, false],
    [{ deferredDelivery: 'true' }, false],
    [{ recordHistory: true }, true],
  ];
  for (const [over, ok] of cases) t.equal(Value.Check(PolicySchema, { ...defaultPolicy, ...over }), ok, JSON.stringify(over));
});

t.test('CR step 8 a ii: no suitable device with deferral on defers, in any mode, before the 480 and the ISF', async (t) => {
  const phone = device('phone', TAGS.cpm);
  const tv = device('tv', TAGS.mmtel);
  const bare = device('bare', TAGS.cpm, { instance: null, params: TAGS.cpm });
  const defer = { action: 'b2bua', stage: 'b2bua', targets: [], service: SERVICE, defer: true, deferral: true, record: false };
  const cases: { name: string; policy: Partial<Policy>; devices: ReturnType<typeof device>[]; want: unknown }[] = [
    { name: 'proxy mode, no device, deferral off: 480', policy: {}, devices: [], want: ['reject', 'no-suitable-device', 480] },
    { name: 'proxy mode, no device, deferral on: the B2BUA', policy: { deferredDelivery: true }, devices: [], want: defer },
    { name: 'b2bua mode, no device, deferral on', policy: { mode: 'b2bua', deferredDelivery: true }, devices: [], want: defer },
    { name: 'only unsuitable devices', policy: { deferredDelivery: true }, devices: [tv], want: defer },
    { name: 'b2bua mode, none addressable alone', policy: { mode: 'b2bua', deferredDelivery: true }, devices: [bare], want: defer },
    { name: 'proxy mode forks to the bare device: no deferral', policy: { deferredDelivery: true }, devices: [bare], want: ['proxy', 'proxy', null] },
    { name: 'deferral precedes the ISF', policy: { deferredDelivery: true, noSuitableDevice: 'isf' }, devices: [], want: defer },
    { name: 'deferral off for bob', policy: { deferredDelivery: true, deferredDeliveryByUser: { [BOB]: false }, noSuitableDevice: 'isf' }, devices: [], want: ['isf', 'no-suitable-device', null] },
    { name: 'deferral on for bob only', policy: { deferredDeliveryByUser: { [BOB]: true } }, devices: [], want: defer },
    { name: 'deferral on for carol only', policy: { deferredDeliveryByUser: { [CAROL]: true } }, devices: [], want: ['reject', 'no-suitable-device', 480] },
    { name: 'a suitable device: proxy mode proxies', policy: { deferredDelivery: true }, devices: [phone], want: ['proxy', 'proxy', null] },
    {
      name: 'a suitable device: b2bua mode invites it, deferral kept for the legs',
      policy: { mode: 'b2bua', deferredDelivery: true },
      devices: [phone],
      want: { action: 'b2bua', stage: 'b2bua', targets: [phone], service: SERVICE, defer: false, deferral: true, record: false },
    },
    { name: 'recordHistory records', policy: { deferredDelivery: true, recordHistory: true }, devices: [], want: { ...defer, record: true } },
    { name: 'diagnosticWarning leaves it alone', policy: { deferredDelivery: true, diagnosticWarning: true }, devices: [], want: defer },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ devices: c.devices, policy: c.policy }));
    if (Array.isArray(c.want)) t.same([d.action, d.stage, d.action === 'reject' ? d.code : null], c.want, c.name);
    else t.same(d, c.want, c.name);
  }
});

t.test('steps 1-5 and 7 still decide before a deferral', async (t) => {
  const cases: { name: string; over: Parameters<typeof input>[0]; stage: string; code: number }[] = [
    { name: 'release version', over: { policy: { supportedVersions: ['OMA9.9'] } }, stage: 'release-version', code: 403 },
    { name: 'anonymity', over: { msg: invite({ Privacy: 'id' }), policy: { allowAnonymity: false } }, stage: 'anonymity', code: 403 },
    {
      name: 'do not disturb',
      over: { docs: { blacklist: null, ruleset: ruleset(cond(CPM_SERVICE) + '<cp:actions><oxe:allow-do-not-disturb>true</oxe:allow-do-not-disturb></cp:actions>') } },
      stage: 'do-not-disturb',
      code: 480,
    },
    { name: 'media policy', over: { msg: invite({}, 'v=0\r\n') }, stage: 'media-policy', code: 400 },
    { name: 'foreign service (step 7)', over: { msg: invite({ 'P-Preferred-Service': `urn:x, ${ICSI}` }) }, stage: 'service-identification', code: 403 },
  ];
  for (const c of cases) {
    const over = { ...c.over, devices: [], policy: { ...c.over?.policy, deferredDelivery: true } };
    const d = decideInvite(input(over));
    t.same([d.action, d.stage, d.action === 'reject' ? d.code : null], ['reject', c.stage, c.code], c.name);
  }
});

t.test('record: the served user\'s <allow-offline-storage> over the rules that apply (RFC 4745 §10.2), or recordHistory', async (t) => {
  const phone = device('phone', TAGS.cpm);
  const cases: { name: string; rules: string[]; recordHistory?: boolean; h?: Record<string, string>; record: boolean }[] = [
    { name: 'no rules', rules: [], record: false },
    { name: 'no rules, recordHistory', rules: [], recordHistory: true, record: true },
    { name: 'a CPM rule with allow-offline-storage true', rules: [cond(CPM_SERVICE) + STORE('true')], record: true },
    { name: 'false', rules: [cond(CPM_SERVICE) + STORE('false')], record: false },
    { name: 'false, recordHistory', rules: [cond(CPM_SERVICE) + STORE('false')], recordHistory: true, record: true },
    { name: 'rule without a service-list does not count', rules: [cond() + STORE('true')], record: false },
    { name: 'for the originator', rules: [cond(ALICE, CPM_SERVICE) + STORE('1')], record: true },
    { name: 'for someone else', rules: [cond(ALICE.replace('alice', 'carol'), CPM_SERVICE) + STORE('true')], record: false },
    { name: 'OR over the rules', rules: [cond(CPM_SERVICE) + STORE('false'), cond(ALICE, CPM_SERVICE) + STORE('true')], record: true },
  ];
  for (const c of cases) {
    for (const [mode, devices] of [['b2bua', [phone]], ['proxy', []]] as const) {
      const d = decideInvite(input({
        msg: invite(c.h ?? {}), devices: [...devices], docs: { blacklist: null, ruleset: ruleset(...c.rules) },
        policy: { mode, deferredDelivery: true, ...(c.recordHistory ? { recordHistory: true } : {}) },
      }));
      t.same([d.action, d.action === 'b2bua' ? d.record : null], ['b2bua', c.record], `${c.name} (${mode}${devices.length ? '' : ', deferred'})`);
    }
  }
});
