/**
 * Served-user keys (config `identity`): how a Request-URI, To URI or XUI becomes the key
 * devices, sessions and XDM documents are stored under. One definition for the whole
 * service: the REGISTER parser's `aorKey` (plugin/sip/register.ts).
 * - `user`: any host is local; the key is `sip:<user>@<domain>` (lab default).
 * - `uri`: the key is `sip:<user>@<host>` (sips folded, port and parameters dropped).
 */
import { aorKey } from '../sip/register.js';

export type IdentityMode = 'user' | 'uri';

export function servedUserKey(raw: string, mode: IdentityMode, domain: string): string | null {
  let s = raw.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  return aorKey(s, { identity: mode, domain });
}
