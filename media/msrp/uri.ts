// MSRP URIs, RFC 4975 §6 (syntax §9) and §6.1 comparison.
import { isIP } from 'node:net';
import { MsrpError } from './errors.js';
import type { MsrpUri } from './types.js';

// msrp-URI = msrp-scheme "://" authority ["/" session-id] ";" transport *( ";" URI-parameter)
const URI_RE =
  /^(msrps?):\/\/(?:([A-Za-z0-9\-._~!$&'()*+,=:%]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,=]+)(?::([0-9]{1,5}))?(?:\/([A-Za-z0-9\-._~+=/%]+))?;([A-Za-z0-9]+)((?:;[A-Za-z0-9\-._~!%*+`'|]+(?:=[A-Za-z0-9\-._~!%*+`'|]+)?)*)$/i;

export function parseMsrpUri(s: string): MsrpUri {
  const m = URI_RE.exec(s);
  if (!m) throw new MsrpError('MSRP_BAD_URI', 'malformed MSRP URI');
  let host = m[3]!;
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) throw new MsrpError('MSRP_BAD_URI', 'bad IPv6 address in MSRP URI');
  }
  const uri: MsrpUri = {
    scheme: m[1]!.toLowerCase() === 'msrps' ? 'msrps' : 'msrp',
    host,
    transport: m[6]!,
    params: [],
  };
  if (m[2] !== undefined) uri.user = m[2];
  if (m[4] !== undefined) {
    const port = Number(m[4]);
    if (port > 65535) throw new MsrpError('MSRP_BAD_URI', 'port out of range');
    uri.port = port;
  }
  if (m[5] !== undefined) uri.sessionId = m[5];
  for (const p of m[7]!.split(';').slice(1)) {
    const eq = p.indexOf('=');
    uri.params.push(eq === -1 ? { name: p } : { name: p.slice(0, eq), value: p.slice(eq + 1) });
  }
  return uri;
}

export function tryParseMsrpUri(s: string): MsrpUri | undefined {
  try {
    return parseMsrpUri(s);
  } catch {
    return undefined;
  }
}

export function formatMsrpUri(u: MsrpUri): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  let s = `${u.scheme}://`;
  if (u.user !== undefined) s += `${u.user}@`;
  s += host;
  if (u.port !== undefined) s += `:${u.port}`;
  if (u.sessionId !== undefined) s += `/${u.sessionId}`;
  s += `;${u.transport}`;
  for (const p of u.params) s += p.value === undefined ? `;${p.name}` : `;${p.name}=${p.value}`;
  return s;
}

function canonicalHost(h: string): string {
  if (isIP(h) === 6) return new URL(`http://[${h}]/`).hostname;
  return h.toLowerCase();
}

/**
 * RFC 4975 §6.1: scheme case-insensitive; IP hosts compared as addresses, names
 * case-insensitively; an explicit port must match (explicit never equals absent);
 * session-id case-sensitive (absent never equals present); transport
 * case-insensitive; userinfo and other parameters are not compared.
 */
export function msrpUriEquals(a: MsrpUri | string, b: MsrpUri | string): boolean {
  const x = typeof a === 'string' ? tryParseMsrpUri(a) : a;
  const y = typeof b === 'string' ? tryParseMsrpUri(b) : b;
  if (x === undefined || y === undefined) return false;
  return (
    x.scheme.toLowerCase() === y.scheme.toLowerCase() &&
    canonicalHost(x.host) === canonicalHost(y.host) &&
    x.port === y.port &&
    x.sessionId === y.sessionId &&
    x.transport.toLowerCase() === y.transport.toLowerCase()
  );
}
