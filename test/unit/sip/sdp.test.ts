import t from 'tap';
import sdpTransform from 'sdp-transform';
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

/** The offer as read from sdp-transform's parse of the WHOLE body (sdpOffer parses only the lines it reads). */
function fullParseReference(body: string): unknown {
  const parsed = sdpTransform.parse(body);
  if (!parsed.origin) return 'no origin';
  if (parsed.media.length === 0) return 'no media';
  const attr = (invalid: readonly { value: string }[] | undefined, name: string): string | null => {
    for (const a of invalid ?? []) if (a.value.toLowerCase().startsWith(`${name}:`)) return a.value.slice(name.length + 1);
    return null;
  };
  return parsed.media.map((m) => {
    if (typeof m.type !== 'string' || typeof m.protocol !== 'string' || !Number.isInteger(m.port)) return 'unreadable m=';
    const accept = attr(m.invalid, 'accept-types');
    return {
      media: m.type.toLowerCase(),
      port: m.port,
      proto: m.protocol,
      acceptTypes: accept === null ? null : accept.trim().toLowerCase().split(/\s+/).filter(Boolean),
      fileTransfer: attr(m.invalid, 'file-selector') !== null,
    };
  });
}

function asReference(o: ReturnType<typeof sdpOffer>): unknown {
  if (o.kind === 'ok') return o.streams;
  if (o.why === 'SDP without o=') return 'no origin';
  if (o.why === 'SDP without m=') return 'no media';
  if (o.why === 'unreadable m= line') return ['unreadable m='];
  return o.why;
}

t.test('the offer equals the one read from a parse of the whole SDP', async (t) => {
  const head = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n';
  const bodies: Record<string, string> = {
    chat: CHAT_SDP,
    'file transfer': FT_SDP,
    'many other attributes': `${head}m=message 7654 TCP/MSRP *\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=path:msrp://x\r\na=type:x\r\na=Accept-Types:Message/CPIM  text/plain\r\na=accept-types:late/one\r\na=setup:active\r\n`,
    'session-level accept-types': `${head}a=accept-types:text/plain\r\nm=message 7654 TCP/MSRP *\r\n`,
    'o= only after m=': 'v=0\r\ns=-\r\nm=message 7654 TCP/MSRP *\r\no=- 1 1 IN IP4 127.0.0.1\r\n',
    'unreadable o=': 'v=0\r\no=nonsense\r\nm=message 7654 TCP/MSRP *\r\n',
    'lone CR starts a line for sdp-transform': `${head}m=message 7654 TCP/MSRP *\r\na=x\ra=accept-types:hidden/type\rm=audio 0 RTP/AVP 0\r\n`,
    'numeric media, empty port': `${head}m=123 5 TCP/MSRP *\r\n`,
    'empty port': `${head}m=message  TCP/MSRP *\r\n`,
    'line separator in a value': `${head}m=message 7654 TCP/MSRP *\r\na=accept-types:a/b\u2028c/d\r\na=file-selector\r\na=file-selector:name:"x"\r\n`,
    'accept-types twice, file-selector first, odd case': `${head}m=message 7654 TCP/MSRP *\r\na=FILE-Selector:type:x\r\na=accept-TYPES:\r\na=accept-types:second/one\r\na=accept-wrapped-types:*\r\n`,
    'attribute names alike but not the same': `${head}m=message 7654 TCP/MSRP *\r\na=accept-types\r\na=accept-typesx:y/z\r\na=file-selectors:q\r\na=x-accept-types:a/b\r\n`,
    'two sections': `${head}m=message 7654 TCP/MSRP *\r\na=accept-types:message/cpim\r\nm=video 0 RTP/AVP 96\r\na=accept-types:x/y\r\na=file-selector:size:1\r\n`,
  };
  for (const [name, body] of Object.entries(bodies)) {
    t.same(asReference(sdpOffer(invite({}, body))), fullParseReference(body), name);
  }
});
