import t from 'tap';
import { sdpOffer } from '../../../plugin/sip/sdp.js';
import { CHAT_SDP, FT_SDP, invite } from '../rules/fixtures/build.js';

t.test('streams of an MSRP offer', async (t) => {
  t.same(sdpOffer(invite({}, CHAT_SDP)), {
    kind: 'ok',
    streams: [{ media: 'message', port: 7654, proto: 'TCP/MSRP', acceptTypes: ['message/cpim', 'application/im-iscomposing+xml'], fileTransfer: false }],
  });
  const ft = sdpOffer(invite({}, FT_SDP));
  t.equal(ft.kind === 'ok' && ft.streams[0]?.fileTransfer, true);
  const two = sdpOffer(invite({}, `${CHAT_SDP.replace(/\r\n/g, '\n')}m=audio 0 RTP/AVP 0\n`));
  t.same(two.kind === 'ok' && two.streams.map((s) => [s.media, s.port, s.acceptTypes]), [
    ['message', 7654, ['message/cpim', 'application/im-iscomposing+xml']],
    ['audio', 0, null],
  ], 'bare LF line ends');
});

t.test('missing and malformed', async (t) => {
  const cases: [Record<string, string | null>, string, string][] = [
    [{}, '', 'missing'],
    [{ 'Content-Type': null }, CHAT_SDP, 'missing'],
    [{ 'Content-Type': 'text/plain' }, CHAT_SDP, 'missing'],
    [{ 'Content-Type': 'Application/SDP; charset=utf-8' }, CHAT_SDP, 'ok'],
    [{}, 'v=1\r\n', 'malformed'],
    [{}, 'v=0\r\nm=message 1 TCP/MSRP *\r\n', 'malformed'],
    [{}, `${CHAT_SDP}${'a=x\r\n'.repeat(20000)}`, 'malformed'],
    [{}, CHAT_SDP.replace('m=message 7654', 'm=message port'), 'malformed'],
  ];
  for (const [h, body, kind] of cases) t.equal(sdpOffer(invite(h, body)).kind, kind, `${JSON.stringify(h)} ${JSON.stringify(body.slice(0, 30))}`);
});
