/**
 * A raw SIP-over-UDP client for REGISTERs and hand-made (also deliberately broken)
 * requests: send the text as given, collect responses until a final one.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { ICSI_GROUP, ICSI_SESSION, sipMessage } from './sip-fixtures.js';

export interface SipResponse {
  readonly raw: string;
  readonly status: number;
  readonly reason: string;
  /** Header lines by lower-cased name, in order (compact forms are not expanded). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  header(name: string): string | undefined;
}

export function parseResponse(raw: string): SipResponse {
  const [head = ''] = raw.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const list = headers.get(name) ?? [];
    list.push(line.slice(i + 1).trim());
    headers.set(name, list);
  }
  return {
    raw,
    status: m ? Number(m[1]) : 0,
    reason: m?.[2] ?? '',
    headers,
    header: (name) => headers.get(name.toLowerCase())?.[0],
  };
}

export const token = (n = 8): string => randomBytes(n).toString('hex');

/**
 * Send `build(localPort)` to 127.0.0.1:`port` over UDP and resolve with the final
 * response (and the provisional ones). `build` gets the local port for Via/Contact.
 */
export async function sipUdpRequest(
  port: number,
  build: (localPort: number) => string,
  timeoutMs = 5000,
  localPort = 0,
): Promise<{ final: SipResponse; provisional: SipResponse[] }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(localPort, '127.0.0.1', resolve);
  });
  const local = sock.address().port;
  try {
    return await new Promise((resolve, reject) => {
      const provisional: SipResponse[] = [];
      const timer = setTimeout(() => reject(new Error(`no final SIP response within ${timeoutMs} ms`)), timeoutMs);
      sock.on('message', (buf) => {
        const r = parseResponse(buf.toString('utf8'));
        if (r.status >= 100 && r.status < 200) {
          provisional.push(r);
          return;
        }
        clearTimeout(timer);
        resolve({ final: r, provisional });
      });
      sock.send(build(local), port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

export interface RegisterOptions {
  user: string;
  /** Contact URI port: where the device (a sipp UAS) listens. */
  contactPort: number;
  instance?: string;
  /** Contact parameters after the URI, e.g. `;+g.oma.sip-im;+g.3gpp.icsi-ref="..."`. */
  params?: string;
  expires?: number;
  gruu?: boolean;
  domain?: string;
  callId?: string;
  cseq?: number;
  /** Replaces the whole Contact header value (bad-input tests). */
  rawContact?: string;
  /**
   * Send from this local port (the device's own SIP port, before its sipp binds it):
   * the registrar and the service then see the device's real source address.
   */
  fromPort?: number;
  /** Wait this long for the final response (default 5000 ms). */
  timeoutMs?: number;
}

export function buildRegister(o: RegisterOptions, localPort: number): string {
  const domain = o.domain ?? 'example.net';
  const aor = `sip:${o.user}@${domain}`;
  const inst = o.instance ? `;+sip.instance="<${o.instance}>"` : '';
  const contact = o.rawContact ?? `<sip:${o.user}@127.0.0.1:${o.contactPort}>${inst}${o.params ?? ''};expires=${o.expires ?? 600}`;
  return sipMessage(`REGISTER sip:${domain} SIP/2.0`, [
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${token()};rport`,
    `Max-Forwards: 70`,
    `From: <${aor}>;tag=${token(4)}`,
    `To: <${aor}>`,
    `Call-ID: ${o.callId ?? token()}`,
    `CSeq: ${o.cseq ?? 1} REGISTER`,
    ...(o.gruu === false ? [] : ['Supported: gruu, path, outbound']),
    `Contact: ${contact}`,
    `User-Agent: CPM-client/OMA2.2`,
  ]);
}

export function register(sipPort: number, o: RegisterOptions): Promise<SipResponse> {
  return sipUdpRequest(sipPort, (lp) => buildRegister(o, lp), o.timeoutMs ?? 5000, o.fromPort ?? 0).then((r) => r.final);
}

/** The CPM feature tags (docs/policy.md "On the wire"). */
export { ICSI_GROUP, ICSI_SESSION };
export const icsiTag = (icsi: string): string => `+g.3gpp.icsi-ref="${encodeURIComponent(icsi)}"`;
/** Contact params of a CPM chat device (session + group ICSI, OMA SIMPLE IM). */
export const CPM_DEVICE_PARAMS = `;+g.oma.sip-im;${icsiTag(ICSI_SESSION)}`;
/** Contact params of an MMTEL-only device (no CPM feature tag). */
export const MMTEL_DEVICE_PARAMS = `;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel";audio`;
