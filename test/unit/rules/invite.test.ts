import t from 'tap';
import type { Decision } from '../../../plugin/rules/decision.js';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { blacklist, CPM_SERVICE, device, DND, input, invite, ruleset, TAGS } from './fixtures/build.js';

t.test('CR 8.3.2.1: steps run in order, the first failure decides', async (t) => {
  const everythingWrong = input({
    msg: invite({ 'User-Agent': 'CPM-client/OMA1.0', Privacy: 'id', 'P-Preferred-Service': 'urn:x' }, 'not sdp'),
    docs: { blacklist: blacklist(['sip:alice@example.net']), ruleset: ruleset(`<cp:conditions>${CPM_SERVICE}</cp:conditions>${DND}`) },
    devices: [],
    policy: { supportedVersions: ['OMA2.2'], allowAnonymity: false },
  });
  const order: [Partial<typeof everythingWrong>, string][] = [
    [{}, 'release-version'],
    [{ policy: { ...everythingWrong.policy, supportedVersions: [] } }, 'anonymity'],
    [{ policy: { ...everythingWrong.policy, supportedVersions: [], allowAnonymity: true } }, 'blacklist'],
    [{ policy: { ...everythingWrong.policy, supportedVersions: [], allowAnonymity: true }, docs: { ...everythingWrong.docs, blacklist: null } }, 'do-not-disturb'],
    [{ policy: { ...everythingWrong.policy, supportedVersions: [], allowAnonymity: true }, docs: { blacklist: null, ruleset: null } }, 'media-policy'],
  ];
  for (const [over, stage] of order) t.equal(decideInvite({ ...everythingWrong, ...over }).stage, stage, stage);
  const sdpOk = { ...everythingWrong, msg: invite({ Privacy: 'id', 'P-Preferred-Service': 'urn:x, urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session' }), policy: { ...everythingWrong.policy, supportedVersions: [], allowAnonymity: true }, docs: { blacklist: null, ruleset: null } };
  t.equal(decideInvite(sdpOk).stage, 'no-suitable-device');
  t.equal(decideInvite({ ...sdpOk, devices: [device('a', TAGS.cpm)] }).stage, 'service-identification');
  t.equal(decideInvite({ ...sdpOk, devices: [device('a', TAGS.cpm)], policy: { ...sdpOk.policy, foreignService: 'allow' } }).stage, 'proxy');
});

/** Structural check of a decision against docs/jsonrpc.md. */
function wellFormed(d: Decision): boolean {
  switch (d.action) {
    case 'reject':
      return Number.isInteger(d.code) && d.code >= 400 && d.code < 700 && d.reason.length > 0 && (d.hdrs === '' || d.hdrs.endsWith('\r\n'));
    case 'proxy':
      return d.hdrs.endsWith('\r\n') && Array.isArray(d.remove) && !/\r\n(?![A-Z])/.test(d.hdrs.slice(0, -2));
    case 'isf':
      return d.ruri.startsWith('sip');
    case 'pass':
      return d.stage === 'not-cpm';
    case 'b2bua':
      return d.targets.length > 0 && (d.service.hdrs === '' || d.service.hdrs.endsWith('\r\n'));
  }
}

t.test('garbled headers never throw past decideInvite', async (t) => {
  const garbage = ['', ' ', ';', ',', '<', '>', '"', '\\', '*', '*;', '*;=', '*;+a="', '<sip:', 'sip:@', '<tel:>', '"\\', ';;;;;', '%%%%', '#>=', '\u00e9\u0000\u0007', 'x'.repeat(5000), '<'.repeat(2000), '";'.repeat(2000)];
  const headers = ['P-Asserted-Identity', 'Privacy', 'Accept-Contact', 'Reject-Contact', 'Request-Disposition', 'Referred-By', 'P-Preferred-Service', 'P-Asserted-Service', 'Session-Replaces', 'User-Agent', 'Content-Type', 'Contact', 'From'];
  const policy = { supportedVersions: ['OMA2.2'], allowAnonymity: false, foreignService: 'allow' as const };
  const docs = { blacklist: blacklist(['sip:spam@example.net']), ruleset: ruleset(`<cp:conditions><ocp:other-identity/>${CPM_SERVICE}</cp:conditions><cp:actions/>`) };
  let n = 0;
  for (const h of headers) {
    for (const g of garbage) {
      const d = decideInvite(input({ msg: invite({ [h]: g }), docs, policy, sessionDevices: () => ['<urn:uuid:cpm1>'] }));
      if (!wellFormed(d)) t.fail(`${h}: ${JSON.stringify(g).slice(0, 30)} -> ${JSON.stringify(d)}`);
      n++;
    }
  }
  t.equal(n, headers.length * garbage.length);
});

t.test('a huge Reject-Contact list from the caller', async (t) => {
  const rc = Array.from({ length: 10_000 }, (_, i) => `*;+sip.instance="<urn:uuid:x${i}>"`).join(', ');
  const devices = Array.from({ length: 50 }, (_, i) => device(`x${i * 200}`, i % 2 ? TAGS.cpm : TAGS.mmtel));
  const d = decideInvite(input({ msg: invite({ 'Reject-Contact': rc }), devices }));
  // Every CPM device (odd i) is x<200*i>, rejected by the caller: nothing suitable.
  t.equal(d.stage, 'no-suitable-device');
});
