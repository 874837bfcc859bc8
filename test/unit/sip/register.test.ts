import t from 'tap';
import { parseSipMessage } from '../../../plugin/sip/message.js';
import { aorKey, parseRegister, type RegisterOptions } from '../../../plugin/sip/register.js';
import { deviceKey } from '../../../plugin/devices/identity.js';

const NOW = 1_700_000_000_000;
const OPTS: RegisterOptions = { defaultExpires: 3600, maxExpires: 7200, identity: 'uri', domain: 'example.net' };

function register(headers: string[]): string {
  return ['REGISTER sip:example.net SIP/2.0', 'Via: SIP/2.0/TCP 127.0.0.1:6001;branch=z9hG4bK-r', 'From: <sip:bob@example.net>;tag=r1', 'To: <sip:bob@example.net>', 'Call-ID: reg-1', 'CSeq: 7 REGISTER', ...headers, 'Content-Length: 0', '', ''].join('\r\n');
}

t.test('contacts with instance, feature tags, GRUU, path, q and expires', async (t) => {
  const msg = parseSipMessage(
    register([
      'Supported: path, gruu',
      'Path: <sip:edge1.example.net;lr>, <sip:edge2.example.net;lr>',
      'Expires: 600',
      'Contact: <sip:bob@127.0.0.1:6001;transport=tcp>;+sip.instance="<urn:uuid:0001>";reg-id=1;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session";+g.oma.sip-im;q=0.7',
      'm: <sip:bob@127.0.0.1:6002>;expires=99999;+sip.instance="urn:uuid:0002"',
      'Contact: <sip:bob@127.0.0.1:6003>;expires=0;+sip.instance="<urn:uuid:0003>"',
      'Contact: <sip:bob@127.0.0.1:6004>',
    ]),
  );
  const u = parseRegister(msg, 'tcp:127.0.0.1:40000', NOW, OPTS);
  if (u.kind !== 'update') throw new Error(`expected update, got ${u.kind}`);
  t.equal(u.aor, 'sip:bob@example.net');
  t.same(u.remove, ['<urn:uuid:0003>']);
  t.equal(u.upsert.length, 3);
  const [a, b, c] = u.upsert;
  t.same(a, {
    aor: 'sip:bob@example.net',
    instance: '<urn:uuid:0001>',
    contact: 'sip:bob@127.0.0.1:6001;transport=tcp',
    params: {
      '+sip.instance': '<urn:uuid:0001>',
      'reg-id': '1',
      '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session',
      '+g.oma.sip-im': true,
    },
    q: 0.7,
    pubGruu: 'sip:bob@example.net;gr=urn:uuid:0001',
    received: 'tcp:127.0.0.1:40000',
    path: ['sip:edge1.example.net;lr', 'sip:edge2.example.net;lr'],
    callId: 'reg-1',
    cseq: 7,
    registeredAt: NOW,
    expiresAt: NOW + 600_000,
  });
  t.equal(b?.instance, '<urn:uuid:0002>', 'instance without brackets gets them');
  t.equal(b?.expiresAt, NOW + 7_200_000, 'capped at maxExpires');
  t.equal(c?.instance, null);
  t.equal(c?.pubGruu, null);
  t.equal(c && deviceKey(c), 'sip:bob@127.0.0.1:6004', 'no instance: keyed by Contact URI');
});

t.test('no GRUU without Supported: gruu; default expiry', async (t) => {
  const u = parseRegister(parseSipMessage(register(['Contact: <sip:bob@127.0.0.1:6001>;+sip.instance="<urn:uuid:1>"'])), null, NOW, OPTS);
  if (u.kind !== 'update') throw new Error('expected update');
  t.equal(u.upsert[0]?.pubGruu, null);
  t.equal(u.upsert[0]?.expiresAt, NOW + 3_600_000);
  t.equal(u.upsert[0]?.received, null);
});

t.test('fetch and wildcard removal', async (t) => {
  t.same(parseRegister(parseSipMessage(register([])), null, NOW, OPTS), { kind: 'fetch', aor: 'sip:bob@example.net' });
  t.same(parseRegister(parseSipMessage(register(['Contact: *', 'Expires: 0'])), null, NOW, OPTS), { kind: 'remove-all', aor: 'sip:bob@example.net', callId: 'reg-1', cseq: 7 });
});

t.test('identity "user": any host maps to the configured domain', async (t) => {
  const raw = register(['Contact: <sip:bob@127.0.0.1>']).replace('To: <sip:bob@example.net>', 'To: "Bob" <sip:bob@127.0.0.1:5060;transport=udp>');
  const u = parseRegister(parseSipMessage(raw), null, NOW, { ...OPTS, identity: 'user', domain: 'Lab.Example' });
  t.equal(u.aor, 'sip:bob@lab.example');
  t.equal(aorKey('sip:bob@HOST.net', { identity: 'uri', domain: 'x' }), 'sip:bob@host.net');
  t.equal(aorKey('tel:+1555', { identity: 'uri', domain: 'x' }), null);
});

t.test('coded errors', async (t) => {
  const cases: [string, string][] = [
    ['INVITE sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n', 'REGISTER_NOT_A_REGISTER'],
    [register(['Contact: <sip:x>']).replace('To: <sip:bob@example.net>\r\n', ''), 'REGISTER_MISSING_HEADER'],
    [register(['Contact: <sip:x>']).replace('To: <sip:bob@example.net>', 'To: <tel:+1555>'), 'REGISTER_BAD_TO'],
    [register(['Contact: <sip:x>']).replace('To: <sip:bob@example.net>', 'To: garbage <'), 'REGISTER_BAD_TO'],
    [register(['Contact: <sip:x>']).replace('Call-ID: reg-1\r\n', ''), 'REGISTER_MISSING_HEADER'],
    [register(['Contact: <sip:x>']).replace('CSeq: 7 REGISTER', 'CSeq: x REGISTER'), 'REGISTER_BAD_CSEQ'],
    [register(['Contact: <sip:x>']).replace('CSeq: 7 REGISTER', 'CSeq: 7 INVITE'), 'REGISTER_BAD_CSEQ'],
    [register(['Contact: *']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: *, <sip:x>', 'Expires: 0']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: <sip:x']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: <sip:x>;expires=soon']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: <sip:x>;q=2']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: <sip:x>;q=abc']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: <sip:x>', 'Expires: -1']), 'REGISTER_BAD_CONTACT'],
    [register(['Contact: <sip:x>', 'Path: <sip:p']), 'REGISTER_BAD_CONTACT'],
  ];
  for (const [raw, code] of cases) t.throws(() => parseRegister(parseSipMessage(raw), null, NOW, OPTS), { name: 'RegisterError', code }, code);
});

t.test('minExpires: a shorter non-zero expiry is raised to it, 0 still removes (Kamailio min_expires)', async (t) => {
  const opts: RegisterOptions = { ...OPTS, minExpires: 60 };
  const u = parseRegister(
    parseSipMessage(
      register([
        'Contact: <sip:bob@127.0.0.1:6001>;+sip.instance="<urn:uuid:1>";expires=5',
        'Contact: <sip:bob@127.0.0.1:6002>;+sip.instance="<urn:uuid:2>";expires=0',
        'Contact: <sip:bob@127.0.0.1:6003>;+sip.instance="<urn:uuid:3>";expires=61',
      ]),
    ),
    null,
    NOW,
    opts,
  );
  if (u.kind !== 'update') throw new Error('expected update');
  t.same(
    u.upsert.map((d) => d.expiresAt - NOW),
    [60_000, 61_000],
  );
  t.same(u.remove, ['<urn:uuid:2>']);
});
