/**
 * SIP/tel URI and name-addr helpers (RFC 3261 §19.1, §20.10, §25.1; RFC 3966).
 * All scanners are single-pass and linear: header values come from untrusted peers.
 */

export type ParamValue = string | true;

export interface NameAddr {
  /** Display name without quotes, or null. */
  readonly display: string | null;
  /** The URI inside `<...>` (or the bare addr-spec). */
  readonly uri: string;
  /** Header parameters after the URI; names lower-cased, values unquoted. */
  readonly params: Readonly<Record<string, ParamValue>>;
}

/**
 * Read a quoted-string from just after its opening quote at `start` (RFC 3261 §25.1
 * quoted-pair: a backslash takes the next character as it is). Returns the unquoted
 * value and the index after the closing quote, or null when the quote is unterminated.
 */
function readQuoted(s: string, start: number): { value: string; end: number } | null {
  let v = '';
  let i = start;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length) {
      v += s[i + 1];
      i += 2;
      continue;
    }
    if (ch === '"') return { value: v, end: i + 1 };
    v += ch;
    i++;
  }
  return null;
}

/**
 * Parse `;name=value;flag` parameters (RFC 3261 §25.1 generic-param). Quoted values are
 * unquoted (backslash escapes removed); names are lower-cased. Returns null on an
 * unterminated quote or an empty name.
 */
export function parseParams(s: string): Record<string, ParamValue> | null {
  // A literal is much faster than Object.create(null); `__proto__` is dropped below.
  const out: Record<string, ParamValue> = {};
  let i = 0;
  const n = s.length;
  while (i < n) {
    // skip separators and whitespace
    while (i < n && (s[i] === ';' || s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= n) break;
    const nameStart = i;
    while (i < n && s[i] !== '=' && s[i] !== ';') i++;
    const name = s.slice(nameStart, i).trim().toLowerCase();
    if (!name) return null;
    if (name === '__proto__') {
      while (i < n && s[i] !== ';') i++;
      continue;
    }
    if (i >= n || s[i] === ';') {
      out[name] = true;
      continue;
    }
    i++; // '='
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
    if (s[i] === '"') {
      i++;
      // Fast path: no escapes before the closing quote.
      const close = s.indexOf('"', i);
      const bs = s.indexOf('\\', i);
      if (close !== -1 && (bs === -1 || bs > close)) {
        out[name] = s.slice(i, close);
        i = close + 1;
        while (i < n && s[i] !== ';') i++;
        continue;
      }
      const q = readQuoted(s, i);
      if (!q) return null;
      out[name] = q.value;
      i = q.end;
      while (i < n && s[i] !== ';') i++;
    } else {
      const vStart = i;
      while (i < n && s[i] !== ';') i++;
      out[name] = s.slice(vStart, i).trim();
    }
  }
  return out;
}

/**
 * Parse a name-addr or addr-spec header value (From, To, Contact, P-Asserted-Identity,
 * Referred-By, Path ...). Returns null when it cannot be read.
 */
export function parseNameAddr(value: string): NameAddr | null {
  const v = value.trim();
  if (!v) return null;
  let display: string | null = null;
  let i = 0;
  if (v[0] === '"') {
    const q = readQuoted(v, 1);
    if (!q) return null;
    display = q.value;
    i = q.end;
  }
  const lt = v.indexOf('<', i);
  if (lt !== -1) {
    const gt = v.indexOf('>', lt + 1);
    if (gt === -1) return null;
    if (display === null) {
      const d = v.slice(i, lt).trim();
      display = d || null;
    } else if (v.slice(i, lt).trim()) return null;
    const uri = v.slice(lt + 1, gt).trim();
    if (!uri) return null;
    const params = parseParams(v.slice(gt + 1));
    if (!params) return null;
    return { display, uri, params };
  }
  if (display !== null) return null; // a quoted display name needs <uri>
  // addr-spec: parameters after the first ';' are header params (RFC 3261 §20.10).
  const semi = v.indexOf(';');
  const uri = (semi === -1 ? v : v.slice(0, semi)).trim();
  if (!uri || /\s/.test(uri)) return null;
  const params = semi === -1 ? {} : parseParams(v.slice(semi));
  if (!params) return null;
  return { display: null, uri, params };
}

export interface SipUri {
  readonly scheme: 'sip' | 'sips';
  /** User part, percent-decoded (case-sensitive), or null. */
  readonly user: string | null;
  /** Host, lower-cased. */
  readonly host: string;
  readonly port: number | null;
  readonly params: Readonly<Record<string, ParamValue>>;
}

export interface TelUri {
  readonly scheme: 'tel';
  /** The number with visual separators removed, e.g. `+15550001`. */
  readonly number: string;
  readonly params: Readonly<Record<string, ParamValue>>;
}

export type Uri = SipUri | TelUri;

/** Percent-decode; malformed escapes leave the text as it is. */
export function pctDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const VISUAL = /[-.()]/g;
const GLOBAL_NUMBER = /^\+[0-9]+$/;

/** RFC 3966 §5.1.1: drop visual separators. */
export function stripVisual(n: string): string {
  return n.replace(VISUAL, '');
}

/** Parse a sip:, sips: or tel: URI. Other schemes and garbage give null. */
export function parseUri(raw: string): Uri | null {
  const s = raw.trim();
  const colon = s.indexOf(':');
  if (colon <= 0) return null;
  const scheme = s.slice(0, colon).toLowerCase();
  const rest = s.slice(colon + 1);
  if (scheme === 'tel') {
    const semi = rest.indexOf(';');
    const num = stripVisual(semi === -1 ? rest : rest.slice(0, semi));
    if (!num || !/^\+?[0-9*#a-fA-F]+$/.test(num)) return null;
    const params = semi === -1 ? {} : parseParams(rest.slice(semi));
    if (!params) return null;
    return { scheme: 'tel', number: num, params };
  }
  if (scheme !== 'sip' && scheme !== 'sips') return null;
  const q = rest.indexOf('?');
  const noHeaders = q === -1 ? rest : rest.slice(0, q);
  const at = noHeaders.lastIndexOf('@');
  let user: string | null = null;
  let hostPart = noHeaders;
  if (at !== -1) {
    const userinfo = noHeaders.slice(0, at);
    const pw = userinfo.indexOf(':');
    user = pctDecode(pw === -1 ? userinfo : userinfo.slice(0, pw));
    hostPart = noHeaders.slice(at + 1);
  }
  const semi = hostPart.indexOf(';');
  const hostport = semi === -1 ? hostPart : hostPart.slice(0, semi);
  const params = semi === -1 ? {} : parseParams(hostPart.slice(semi));
  if (!params) return null;
  let host = hostport;
  let port: number | null = null;
  const portMatch = /^(.*):([0-9]{1,5})$/.exec(hostport);
  if (portMatch && !hostport.endsWith(']')) {
    host = portMatch[1]!;
    port = Number(portMatch[2]);
  }
  if (!host || /[\s<>"]/.test(host)) return null;
  return { scheme, user, host: host.toLowerCase(), port, params };
}

/**
 * The key two identities are compared by (CR step 3, RFC 4745 `<one id>`):
 * - a global number, from `tel:` or from a SIP URI whose user part is `+digits`
 *   (with or without `user=phone`), becomes `tel:+digits`, visual separators removed;
 * - any other SIP URI becomes `sip:user@host[:port]`: user case-sensitive, host
 *   lower-cased, `sips` folded into `sip`, URI parameters ignored (RFC 3261 §19.1.4
 *   compares them only when both sides carry them; identities do not).
 * Null for anything else.
 */
export function identityKey(raw: string): string | null {
  const u = parseUri(raw);
  if (!u) return null;
  if (u.scheme === 'tel') return u.number.startsWith('+') ? `tel:${u.number}` : `tel:${u.number};local`;
  if (u.user !== null) {
    const userNoParams = u.user.split(';')[0]!;
    const digits = stripVisual(userNoParams);
    if (GLOBAL_NUMBER.test(digits) && (u.params['user'] === 'phone' || u.params['user'] === undefined)) {
      return `tel:${digits}`;
    }
  }
  const port = u.port === null ? '' : `:${u.port}`;
  return u.user === null ? `sip:${u.host}${port}` : `sip:${u.user}@${u.host}${port}`;
}

/** Domain of an identity (for RFC 4745 `<many domain>`), lower-cased, or null for numbers. */
export function identityDomain(raw: string): string | null {
  const u = parseUri(raw);
  if (!u || u.scheme === 'tel') return null;
  return u.host;
}

/** RFC 3323 §4.1.1.3 / RFC 3325: the anonymous URI forms. */
export function isAnonymousIdentity(na: NameAddr): boolean {
  const u = parseUri(na.uri);
  if (u && u.scheme !== 'tel') {
    if (u.host === 'anonymous.invalid') return true;
    if (u.user !== null && u.user.toLowerCase() === 'anonymous') return true;
  }
  return na.display !== null && na.display.trim().toLowerCase() === 'anonymous';
}
