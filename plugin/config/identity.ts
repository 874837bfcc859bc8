/**
 * Served-user keys (config `identity`): how a Request-URI, To URI or XUI becomes the
 * key devices, sessions and XDM documents are stored under.
 * - `user`: any host is local; the key is `sip:<user>@<domain>` (lab default).
 * - `uri`: the key is `sip:<user>@<host>` (sips folded, port and parameters dropped).
 * A tel URI keeps its global number: `tel:+15550001`.
 */
import { parseUri } from '../sip/uri.js';

export type IdentityMode = 'user' | 'uri';

export function servedUserKey(raw: string, mode: IdentityMode, domain: string): string | null {
  let s = raw.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  const u = parseUri(s);
  if (!u) return null;
  if (u.scheme === 'tel') return `tel:${u.number}`;
  if (u.user === null || u.user === '') return null;
  const user = u.user.split(';')[0] ?? u.user;
  return mode === 'user' ? `sip:${user}@${domain.toLowerCase()}` : `sip:${user}@${u.host}`;
}
