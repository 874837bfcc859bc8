import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { CHAT_SDP, input, invite } from './fixtures/build.js';

const warn = (text: string): string => `Warning: 399 pf.example.net "${text}"\r\n`;

t.test('CR step 5: media policy', async (t) => {
  const audio = CHAT_SDP + 'm=audio 4000 RTP/AVP 0\r\n';
  const cases: { name: string; body: string; ct?: string | null; acceptTypes?: string[] | null; expect: [number, string] | null }[] = [
    { name: 'MSRP chat', body: CHAT_SDP, expect: null },
    { name: 'TCP/TLS/MSRP', body: CHAT_SDP.replace('TCP/MSRP', 'TCP/TLS/MSRP'), expect: null },
    { name: 'proto case-insensitive', body: CHAT_SDP.replace('TCP/MSRP', 'tcp/msrp'), expect: null },
    { name: 'm=audio added', body: audio, expect: [488, 'Media not allowed'] },
    { name: 'm=audio disabled (port 0) is fine', body: CHAT_SDP + 'm=audio 0 RTP/AVP 0\r\n', expect: null },
    { name: 'every stream disabled', body: CHAT_SDP.replace('m=message 7654', 'm=message 0'), expect: [488, 'No active media'] },
    { name: 'wrong proto', body: CHAT_SDP.replace('TCP/MSRP', 'UDP/MSRP'), expect: [488, 'Media not allowed'] },
    { name: 'MSRP without accept-types', body: CHAT_SDP.replace(/a=accept-types:[^\r]*\r\n/, ''), expect: [488, 'Accept-types not allowed'] },
    { name: 'accept-types within policy', body: CHAT_SDP, acceptTypes: ['message/cpim', 'application/*'], expect: null },
    { name: 'accept-types outside policy', body: CHAT_SDP, acceptTypes: ['message/cpim'], expect: [488, 'Accept-types not allowed'] },
    { name: 'accept-types * with a limited policy', body: CHAT_SDP.replace(/a=accept-types:[^\r]*/, 'a=accept-types:*'), acceptTypes: ['message/cpim'], expect: [488, 'Accept-types not allowed'] },
    { name: 'policy */*', body: CHAT_SDP, acceptTypes: ['*/*'], expect: null },
    { name: 'no body', body: '', expect: [488, 'SDP offer required'] },
    { name: 'no Content-Type', body: CHAT_SDP, ct: null, expect: [488, 'SDP offer required'] },
    { name: 'body of another type', body: '<xml/>', ct: 'application/resource-lists+xml', expect: [488, 'SDP offer required'] },
    { name: 'not SDP at all', body: 'hello world\r\n', expect: [400, 'Malformed SDP'] },
    { name: 'SDP without m=', body: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n', expect: [400, 'Malformed SDP'] },
    { name: 'SDP with junk line', body: CHAT_SDP + 'this is not sdp\r\n', expect: [400, 'Malformed SDP'] },
    { name: 'SDP without o=', body: CHAT_SDP.replace(/o=[^\r]*\r\n/, ''), expect: [400, 'Malformed SDP'] },
    { name: 'binary garbage', body: '\u0000\u00ff\u0001v=0', expect: [400, 'Malformed SDP'] },
    {
      name: 'multipart with SDP and resource-lists (group INVITE)',
      ct: 'multipart/mixed;boundary="b1"',
      body: `--b1\r\nContent-Type: application/sdp\r\n\r\n${CHAT_SDP}\r\n--b1\r\nContent-Type: application/resource-lists+xml\r\n\r\n<x/>\r\n--b1--\r\n`,
      expect: null,
    },
    {
      name: 'multipart without SDP',
      ct: 'multipart/mixed;boundary=b1',
      body: '--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n',
      expect: [488, 'SDP offer required'],
    },
    { name: 'multipart without boundary', ct: 'multipart/mixed', body: CHAT_SDP, expect: [488, 'SDP offer required'] },
  ];
  for (const c of cases) {
    const msg = invite(c.ct === undefined ? {} : { 'Content-Type': c.ct }, c.body);
    const d = decideInvite(input({ msg, policy: { media: { allowed: [{ media: 'message', protos: ['TCP/MSRP', 'TCP/TLS/MSRP'] }], acceptTypes: c.acceptTypes ?? null } } }));
    if (c.expect === null) t.not(d.stage, 'media-policy', c.name);
    else {
      const [code, text] = c.expect;
      t.same(d, { action: 'reject', code, reason: code === 400 ? 'Bad Request' : 'Not Acceptable Here', hdrs: warn(text), stage: 'media-policy' }, c.name);
    }
  }
});

t.test('policy may allow audio', async (t) => {
  const msg = invite({}, CHAT_SDP + 'm=audio 4000 RTP/AVP 0\r\n');
  const d = decideInvite(input({ msg, policy: { media: { allowed: [{ media: 'message', protos: ['TCP/MSRP'] }, { media: 'audio', protos: ['RTP/AVP'] }], acceptTypes: null } } }));
  // Allowed by policy, but bob's only device has no `audio` tag: step 6 decides.
  t.equal(d.stage, 'no-suitable-device');
});
