/**
 * applyHeaderEdits (the INVITE as forwarded after a proxy decision) is built from the
 * parsed INVITE; it must equal printing the edited text and parsing it again
 * (reparseHeaderEdits), header by header and for what the RFC 3841 matcher reads.
 */
import t from 'tap';
import { applyHeaderEdits, reparseHeaderEdits } from '../../../plugin/sip/edits.js';
import { editedRequest, parseSipMessage, MAX_SIP_MESSAGE_BYTES, type SipRequest } from '../../../plugin/sip/message.js';
import { selectForkTargets } from '../../../plugin/callerprefs/fork.js';
import { callerPrefsOf, dispositionOf } from '../../../plugin/callerprefs/match.js';
import type { Device } from '../../../plugin/devices/types.js';

const ICSI = 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session';
const BASE = [
  'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1',
  'f: <sip:alice@example.net>;tag=a1',
  'To: <sip:bob@example.net>',
  'i: 793-23424@127.0.0.1',
  'CSeq: 1 INVITE',
  'm: <sip:alice@127.0.0.1:5070>;+g.oma.sip-im',
  'P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session',
  'User-Agent: CPM-client/OMA2.2 RCS-client/UP_2.4',
  'Contribution-ID: 7d06c0ffee',
  'c: application/sdp',
];
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 7654 TCP/MSRP *\r\na=accept-types:message/cpim\r\n';

function invite(extra: readonly string[], o: { eol?: string; body?: string; start?: string } = {}): SipRequest {
  const eol = o.eol ?? '\r\n';
  const m = parseSipMessage([o.start ?? 'INVITE sip:bob@example.net SIP/2.0', ...BASE, ...extra, '', o.body ?? SDP].join(eol));
  if (m.kind !== 'request') throw new Error('not a request');
  return m;
}

const PAS = 'P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session\r\n';
const REJECT = 'Reject-Contact: *;+sip.instance="<urn:uuid:0000-1>"\r\n';
const DISP = 'Request-Disposition: fork, parallel\r\n';

const MESSAGES: Record<string, SipRequest> = {
  plain: invite([]),
  'accept-contact': invite([`Accept-Contact: *;+g.3gpp.icsi-ref="${ICSI}"`]),
  'compact a, j, d': invite([`a: *;+g.3gpp.icsi-ref="${ICSI}";require;explicit`, 'j: *;audio', 'd: sequential']),
  'two accept lines and a reject': invite([`Accept-Contact: *;+g.3gpp.icsi-ref="${ICSI}"`, 'Accept-Contact: *;+g.oma.sip-im', 'Reject-Contact: *;video']),
  'request-disposition': invite(['Request-Disposition: no-fork']),
  folded: invite(['Accept-Contact: *;+g.oma.sip-im,', '  *;+g.3gpp.icsi-ref="urn%3Ax"', 'X-Empty:']),
  'bare LF': invite([`Accept-Contact: *;+g.3gpp.icsi-ref="${ICSI}"`], { eol: '\n' }),
  'no body': invite(['Content-Length: 0'], { body: '' }),
  'lower-case method, body with blank lines': invite([], { start: 'invite sip:bob@example.net SIP/2.0', body: 'a\r\n\r\nb\n\nc' }),
  'inner CR in a value': invite(['X-Odd: a\rb']),
};

const EDITS: Record<string, { remove: string[]; hdrs: string }> = {
  none: { remove: [], hdrs: '' },
  proxy: { remove: ['P-Preferred-Service'], hdrs: `${PAS}${DISP}` },
  'proxy with Reject-Contact': { remove: ['P-Preferred-Service'], hdrs: `${PAS}${REJECT}${DISP}` },
  'remove compact and lower-case names': { remove: ['a', 'request-disposition', 'J'], hdrs: DISP },
  'remove everything the matcher reads': { remove: ['Accept-Contact', 'Reject-Contact', 'Request-Disposition'], hdrs: '' },
  'hdrs with compact names': { remove: [], hdrs: 'j: *;+sip.instance="<urn:uuid:0000-0>"\r\nd: no-fork\r\n' },
  'hdrs with odd spacing': { remove: ['X-Empty'], hdrs: 'Reject-Contact :   *;audio  \r\nX-Trailing: v\r\r\n' },
};

function view(m: SipRequest): unknown {
  return {
    method: m.method,
    ruri: m.ruri,
    headers: m.headers.map((h) => [h.name, h.value]),
    body: m.body,
    accept: m.getValues('Accept-Contact'),
    reject: m.getValues('reject-contact'),
    disposition: m.getValues('d'),
    // every field by name, and names that may have been removed
    all: [...new Set([...m.headers.map((h) => h.name), 'p-preferred-service', 'X-Empty', 'a', 'j', 'd'])].map((n) => [n, m.getAll(n), m.getValues(n)]),
    prefs: callerPrefsOf(m),
    dispositionOf: dispositionOf(m),
  };
}

/** The view of the result, or the parser's error code. */
function outcome(f: () => SipRequest): unknown {
  try {
    return view(f());
  } catch (err) {
    return { error: (err as { code?: unknown }).code };
  }
}

const NOW = 1_000_000;
function device(n: number, params: Record<string, string | true>): Device {
  return {
    aor: 'sip:bob@example.net',
    instance: `<urn:uuid:0000-${n}>`,
    contact: `sip:bob@127.0.0.1:${6000 + n};transport=tcp`,
    params: { ...params, '+sip.instance': `<urn:uuid:0000-${n}>` },
    q: 1,
    pubGruu: null,
    received: `tcp:127.0.0.1:${6000 + n}`,
    path: [],
    callId: `reg-${n}`,
    cseq: 1,
    registeredAt: 0,
    expiresAt: NOW + 60_000,
  };
}
const DEVICES = [
  device(0, { '+g.3gpp.icsi-ref': ICSI, '+g.oma.sip-im': true }),
  device(1, { '+g.3gpp.icsi-ref': ICSI, audio: true }),
  device(2, { '+g.oma.sip-im': true }),
];

t.test('the fast path equals the full re-parse on every INVITE x edit', async (t) => {
  for (const [mName, msg] of Object.entries(MESSAGES)) {
    for (const [eName, e] of Object.entries(EDITS)) {
      const fast = editedRequest(msg, e.remove, e.hdrs);
      t.ok(fast, `${mName} / ${eName}: fast path taken`);
      const slow = reparseHeaderEdits(msg, e.remove, e.hdrs);
      t.same(view(fast!), view(slow), `${mName} / ${eName}`);
      t.same(view(applyHeaderEdits(msg, e.remove, e.hdrs)), view(slow));
      const twice = editedRequest(fast!, ['Request-Disposition'], 'd: no-fork\r\n');
      t.same(view(twice!), view(reparseHeaderEdits(slow, ['Request-Disposition'], 'd: no-fork\r\n')), `${mName} / ${eName}: edited again`);
      t.same(selectForkTargets(fast!, DEVICES, NOW), selectForkTargets(slow, DEVICES, NOW), `${mName} / ${eName}: fork`);
    }
  }
});

t.test('edits the fast path does not take fall back to the re-parse, with its result or error', async (t) => {
  const msg = MESSAGES['accept-contact']!;
  const odd: Record<string, string> = {
    'no final CRLF': 'Request-Disposition: no-fork',
    'folded line': 'Request-Disposition: fork,\r\n  sequential\r\n',
    'bare LF line end': 'Request-Disposition: no-fork\nReject-Contact: *;audio\r\n',
    'empty line (starts the body)': `${DISP}\r\nX-After: 1\r\n`,
    'leading CRLF': `\r\n${DISP}`,
  };
  for (const [name, hdrs] of Object.entries(odd)) {
    t.equal(editedRequest(msg, [], hdrs), null, `${name}: no fast path`);
    t.same(outcome(() => applyHeaderEdits(msg, [], hdrs)), outcome(() => reparseHeaderEdits(msg, [], hdrs)), name);
  }
  // A line that is no header field: the re-parse (and so applyHeaderEdits) throws the same.
  t.equal(editedRequest(msg, [], 'no colon here\r\n'), null);
  t.throws(() => applyHeaderEdits(msg, [], 'no colon here\r\n'), { name: 'SipParseError', code: 'SIP_BAD_HEADER' });
  // Near the size limit the re-parse decides (it may refuse the edited text as too large).
  const big = invite([], { body: 'x'.repeat(MAX_SIP_MESSAGE_BYTES - 600) });
  t.equal(editedRequest(big, [], DISP), null);
  t.throws(() => applyHeaderEdits(big, [], `X-Pad: ${'y'.repeat(1000)}\r\n`), { code: 'SIP_TOO_LARGE' });
});

t.test('a header field named like an Object property is an ordinary header', async (t) => {
  const m = invite(['constructor: 1', 'toString: 2']);
  t.equal(m.get('constructor'), '1');
  t.same(m.headers.at(-1), { name: 'toString', value: '2' });
});
