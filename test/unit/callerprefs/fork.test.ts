import t from 'tap';
import { parseSipMessage, type SipRequest } from '../../../plugin/sip/message.js';
import { receivedToUri, selectForkTargets } from '../../../plugin/callerprefs/fork.js';
import { device, NOW, TAGS } from '../rules/fixtures/build.js';

function req(headers: string[]): SipRequest {
  const m = parseSipMessage(`INVITE sip:bob@example.net SIP/2.0\r\nCall-ID: f\r\n${headers.join('\r\n')}\r\n\r\n`);
  if (m.kind !== 'request') throw new Error('not a request');
  return m;
}

const phone = device('phone', TAGS.cpm, { contact: 'sip:bob@127.0.0.1:6001', received: 'udp:127.0.0.1:6001', q: 0.5 });
const tablet = device('tablet', TAGS.simpleIm, { contact: 'sip:bob@127.0.0.1:6002;transport=tcp', received: 'tcp:127.0.0.1:41000', path: ['sip:edge.example.net;lr'] });
const tv = device('tv', TAGS.mmtel, { contact: 'sip:bob@127.0.0.1:6003', received: null });
const old = device('old', TAGS.cpm, { contact: 'sip:bob@127.0.0.1:6004', expiresAt: NOW });

t.test('core.fork: PF exclusions applied, parallel by default', async (t) => {
  const msg = req(['Reject-Contact: *;+sip.instance="<urn:uuid:tv>"', 'Request-Disposition: fork, parallel']);
  t.same(selectForkTargets(msg, [phone, tablet, tv, old], NOW), {
    code: 200,
    rtjson: {
      version: '1.0',
      routing: 'parallel',
      routes: [
        { uri: 'sip:bob@127.0.0.1:6002;transport=tcp', dst_uri: 'sip:127.0.0.1:41000;transport=tcp', path: '<sip:edge.example.net;lr>' },
        { uri: 'sip:bob@127.0.0.1:6001', dst_uri: 'sip:127.0.0.1:6001' },
      ],
    },
  });
});

t.test('Accept-Contact orders by Qa before q; sequential; no-fork', async (t) => {
  const ac = 'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"';
  const seq = selectForkTargets(req([ac, 'Request-Disposition: sequential']), [tablet, phone], NOW);
  t.equal(seq.code === 200 && seq.rtjson.routing, 'serial');
  t.same(seq.code === 200 && seq.rtjson.routes.map((r) => r.uri), ['sip:bob@127.0.0.1:6001', 'sip:bob@127.0.0.1:6002;transport=tcp']);
  const one = selectForkTargets(req([ac, 'Request-Disposition: no-fork']), [tablet, phone], NOW);
  t.same(one.code === 200 && one.rtjson.routes.map((r) => r.uri), ['sip:bob@127.0.0.1:6001']);
});

t.test('B2BUA-style targeting: explicit;require on an instance', async (t) => {
  const r = selectForkTargets(req(['Accept-Contact: *;+sip.instance="<urn:uuid:tablet>";explicit;require']), [phone, tablet, tv], NOW);
  t.same(r.code === 200 && r.rtjson.routes.map((x) => x.uri), ['sip:bob@127.0.0.1:6002;transport=tcp']);
});

t.test('a public GRUU reaches only its instance (RFC 5627 §5.1)', async (t) => {
  const to = (ruri: string): SipRequest => {
    const m = parseSipMessage(`INVITE ${ruri} SIP/2.0\r\nCall-ID: f\r\n\r\n`);
    if (m.kind !== 'request') throw new Error('not a request');
    return m;
  };
  const r = selectForkTargets(to('sip:bob@example.net;gr=urn:uuid:tablet'), [phone, tablet, tv], NOW);
  t.same(r.code === 200 && r.rtjson.routes.map((x) => x.uri), ['sip:bob@127.0.0.1:6002;transport=tcp']);
  t.same(selectForkTargets(to('sip:bob@example.net;gr=urn:uuid:gone'), [phone, tablet], NOW), { code: 480, reason: 'Temporarily Unavailable' }, 'an unknown instance: nobody');
  const all = selectForkTargets(to('sip:bob@example.net;gr'), [phone, tablet, tv], NOW);
  t.equal(all.code === 200 && all.rtjson.routes.length, 3, 'a bare gr names no instance');
});

t.test('nothing left: 480', async (t) => {
  t.same(selectForkTargets(req([]), [], NOW), { code: 480, reason: 'Temporarily Unavailable' });
  t.same(selectForkTargets(req([]), [old], NOW), { code: 480, reason: 'Temporarily Unavailable' });
  t.same(selectForkTargets(req(['Reject-Contact: *;+sip.instance="<urn:uuid:phone>"']), [phone], NOW), { code: 480, reason: 'Temporarily Unavailable' });
});

t.test('received to dst_uri', async (t) => {
  const cases: [string | null, string | null][] = [
    ['udp:127.0.0.1:5060', 'sip:127.0.0.1:5060'],
    ['TLS:10.0.0.1:5061', 'sip:10.0.0.1:5061;transport=tls'],
    ['tcp:::1:5060', 'sip:[::1]:5060;transport=tcp'],
    ['tcp:[::1]:5060', 'sip:[::1]:5060;transport=tcp'],
    ['garbage', null],
    [null, null],
  ];
  for (const [v, want] of cases) t.equal(receivedToUri(v), want, String(v));
});
