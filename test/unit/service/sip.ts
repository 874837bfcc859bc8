/** SIP texts for the service tests (what Kamailio would send in `msg`). */

export const ICSI = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session';
const ICSI_TAG = `+g.3gpp.icsi-ref="${ICSI.replace(/:/g, '%3A')}"`;

export const CHAT_SDP = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=message 7654 TCP/MSRP *',
  'a=path:msrp://127.0.0.1:7654/s1a2b3;tcp',
  'a=accept-types:message/cpim application/im-iscomposing+xml',
  'a=setup:active',
  '',
].join('\r\n');

function message(start: string, headers: readonly string[], body = ''): string {
  return `${[start, ...headers, `Content-Length: ${Buffer.byteLength(body)}`].join('\r\n')}\r\n\r\n${body}`;
}

export function registerText(opts: {
  user?: string;
  instance?: string | null;
  port?: number;
  expires?: number;
  cseq?: number;
  callId?: string;
  contact?: string;
}): string {
  const user = opts.user ?? 'bob';
  const inst = opts.instance === undefined ? '00000000-0000-0000-0000-000000000001' : opts.instance;
  const contact =
    opts.contact ??
    `<sip:${user}@127.0.0.1:${opts.port ?? 6001};transport=tcp>;${ICSI_TAG};+g.oma.sip-im` +
      (inst ? `;+sip.instance="<urn:uuid:${inst}>"` : '') +
      (opts.expires !== undefined ? `;expires=${opts.expires}` : '');
  return message(`REGISTER sip:example.net SIP/2.0`, [
    'Via: SIP/2.0/TCP 127.0.0.1:6001;branch=z9hG4bK-r1',
    `From: <sip:${user}@example.net>;tag=r1`,
    `To: <sip:${user}@example.net>`,
    `Call-ID: ${opts.callId ?? `reg-${user}-${inst ?? 'x'}`}`,
    `CSeq: ${opts.cseq ?? 1} REGISTER`,
    'Supported: gruu, path',
    `Contact: ${contact}`,
  ]);
}

export function inviteText(opts: { to?: string; from?: string; extra?: readonly string[]; contributionId?: string } = {}): string {
  const to = opts.to ?? 'bob';
  const from = opts.from ?? 'alice';
  return message(
    `INVITE sip:${to}@example.net SIP/2.0`,
    [
      'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-i1',
      `From: <sip:${from}@example.net>;tag=a1`,
      `To: <sip:${to}@example.net>`,
      'Call-ID: c1@127.0.0.1',
      'CSeq: 1 INVITE',
      `Contact: <sip:${from}@127.0.0.1:5070>`,
      `P-Asserted-Identity: <sip:${from}@example.net>`,
      `P-Preferred-Service: ${ICSI}`,
      `Accept-Contact: *;${ICSI_TAG}`,
      'Conversation-ID: f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
      `Contribution-ID: ${opts.contributionId ?? 'abcdef-1234'}`,
      'User-Agent: CPM-client/OMA2.2 RCS-client/UP_2.4',
      'Content-Type: application/sdp',
      ...(opts.extra ?? []),
    ],
    CHAT_SDP,
  );
}
