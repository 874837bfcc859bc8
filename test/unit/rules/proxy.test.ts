import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { device, ICSI, ICSI_GROUP, input, invite, NOW, TAGS } from './fixtures/build.js';

t.test('CR step 9: proxy decision (the shape docs/jsonrpc.md gives)', async (t) => {
  const devices = [device('phone', TAGS.cpm), device('tv', TAGS.mmtel)];
  const d = decideInvite(input({ devices, policy: { interworkingOnFailure: true, isfUri: 'sip:isf@127.0.0.1:5090' } }));
  t.same(d, {
    action: 'proxy',
    remove: ['P-Preferred-Service'],
    hdrs:
      `P-Asserted-Service: ${ICSI}\r\n` +
      'Reject-Contact: *;+sip.instance="<urn:uuid:tv>"\r\n' +
      'Request-Disposition: fork, parallel\r\n',
    failover: { codes: '^(480|408|487|500|503|504)$', statuses: [480, 408, 487, 500, 503, 504], ruri: 'sip:isf@127.0.0.1:5090' },
    stage: 'proxy',
  });
});

t.test('failover is null without interworking', async (t) => {
  const d = decideInvite(input());
  t.equal(d.action === 'proxy' ? d.failover : 'not proxy', null);
});

t.test("caller's Request-Disposition is replaced", async (t) => {
  const d = decideInvite(input({ msg: invite({ 'Request-Disposition': 'no-fork' }) }));
  if (d.action !== 'proxy') throw new Error('expected proxy');
  t.same(d.remove, ['P-Preferred-Service', 'Request-Disposition']);
  t.match(d.hdrs, /Request-Disposition: fork, parallel\r\n$/);
});

t.test('duplicate instances are excluded once; unsafe instance values are never echoed', async (t) => {
  const a = device('dup', TAGS.mmtel);
  const b = { ...device('dup', TAGS.mmtel), contact: 'sip:bob@127.0.0.2' };
  const evil = device('x', TAGS.mmtel, { instance: '<urn:x>"\r\nX-Evil: 1\r\n<' });
  const d = decideInvite(input({ devices: [device('ok', TAGS.cpm), a, b, evil] }));
  if (d.action !== 'proxy') throw new Error('expected proxy');
  t.equal(d.hdrs.match(/Reject-Contact/g)?.length, 1);
  t.notMatch(d.hdrs, /X-Evil/);
});

t.test('CR step 9: Session-Replaces', async (t) => {
  const devices = [device('s1', TAGS.cpmGroup), device('s2', TAGS.cpmGroup), device('s3', TAGS.cpmGroup), device('gone', TAGS.cpmGroup, { expiresAt: NOW - 1 })];
  const group = { 'P-Preferred-Service': ICSI_GROUP, 'Accept-Contact': `*;+g.3gpp.icsi-ref="${ICSI_GROUP.replace(/:/g, '%3A')}"`, 'Session-Replaces': 'contrib-1' };
  const lookup = (cid: string): readonly string[] | null => (cid === 'contrib-1' ? ['<urn:uuid:s2>', '<urn:uuid:gone>'] : null);

  const known = decideInvite(input({ msg: invite(group), devices, sessionDevices: lookup }));
  if (known.action !== 'proxy') throw new Error('expected proxy');
  t.equal(known.stage, 'session-replaces');
  t.match(known.hdrs, /Reject-Contact: \*;\+sip\.instance="<urn:uuid:s1>"/);
  t.match(known.hdrs, /Reject-Contact: \*;\+sip\.instance="<urn:uuid:s3>"/);
  t.notMatch(known.hdrs, /urn:uuid:s2/);

  const unknown = decideInvite(input({ msg: invite({ ...group, 'Session-Replaces': 'contrib-2' }), devices, sessionDevices: lookup }));
  t.equal(unknown.stage, 'proxy', 'unknown Contribution-ID: normal selection');
  t.same(
    (unknown.action === 'proxy' ? unknown.hdrs : '').split('\r\n').filter((l) => l.startsWith('Reject-Contact')),
    ['Reject-Contact: *;+sip.instance="<urn:uuid:gone>"'],
    'only the expired device is excluded',
  );

  const caseMatters = decideInvite(input({ msg: invite({ ...group, 'Session-Replaces': 'CONTRIB-1' }), devices, sessionDevices: lookup }));
  t.equal(caseMatters.stage, 'proxy', 'Contribution-IDs compare byte for byte');

  const allGone = decideInvite(input({ msg: invite(group), devices, sessionDevices: () => ['<urn:uuid:gone>'] }));
  t.equal(allGone.stage, 'proxy', 'no connected device still registered: normal selection');
});
