/**
 * `core.fork` (docs/jsonrpc.md): RFC 3841 target selection for the lab's SIP/IP core,
 * returned as a routing document for Kamailio's `rtjson` module
 * (`{"version":"1.0","routing":"serial"|"parallel","routes":[{"uri","dst_uri","path"}]}`).
 */
import type { Device } from '../devices/types.js';
import type { SipRequest } from '../sip/message.js';
import { callerPrefsOf, dispositionOf, rankContacts } from './match.js';
import { parseUri } from '../sip/uri.js';

export interface RtjsonRoute {
  readonly uri: string;
  readonly dst_uri?: string;
  /** Path header value to add (RFC 3327), e.g. `<sip:p1>,<sip:p2>`. */
  readonly path?: string;
}

export interface Rtjson {
  readonly version: '1.0';
  readonly routing: 'serial' | 'parallel';
  readonly routes: readonly RtjsonRoute[];
}

export type ForkResult =
  | { readonly code: 200; readonly rtjson: Rtjson }
  | { readonly code: 480; readonly reason: string };

const RECEIVED = /^(udp|tcp|tls|sctp|ws|wss):(.+):([0-9]{1,5})$/i;

/** `proto:ip:port` (Device.received) as a SIP URI for dst_uri, or null. */
export function receivedToUri(received: string | null): string | null {
  if (!received) return null;
  const m = RECEIVED.exec(received);
  if (!m) return null;
  const proto = m[1]!.toLowerCase();
  let host = m[2]!;
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  return proto === 'udp' ? `sip:${host}:${m[3]}` : `sip:${host}:${m[3]};transport=${proto}`;
}

/** The `+sip.instance` (`<urn:...>`) a public GRUU Request-URI names (its `gr` parameter), or null. */
function gruuInstance(ruri: string): string | null {
  const u = parseUri(ruri);
  const gr = u && u.scheme !== 'tel' ? u.params['gr'] : undefined;
  return typeof gr === 'string' && gr !== '' ? `<${gr}>` : null;
}

/**
 * Pick the contacts an INVITE (or other request) forks to: unexpired devices, filtered
 * and ordered by the caller's preferences (RFC 3841 §7.2), then Request-Disposition:
 * `no-fork` keeps the best one only, `sequential` gives serial routing, else parallel.
 * `dst_uri` is where the REGISTER came from (so a client behind NAT or on TCP is reached
 * over its own flow); `path` is its Path set (RFC 3327).
 */
export function selectForkTargets(msg: SipRequest, devices: readonly Device[], now: number): ForkResult {
  const gruu = gruuInstance(msg.ruri);
  // RFC 5627 §5.1: a public GRUU reaches only the contacts of its instance
  const live = devices.filter((d) => d.expiresAt > now && (gruu === null || d.instance === gruu));
  const ranked = rankContacts(callerPrefsOf(msg), live);
  if (ranked.length === 0) return { code: 480, reason: 'Temporarily Unavailable' };
  const disp = dispositionOf(msg);
  const chosen = disp.fork ? ranked : ranked.slice(0, 1);
  const routes = chosen.map(({ item: d }): RtjsonRoute => {
    const dst = receivedToUri(d.received);
    return {
      uri: d.contact,
      ...(dst ? { dst_uri: dst } : {}),
      ...(d.path.length ? { path: d.path.map((p) => `<${p}>`).join(',') } : {}),
    };
  });
  return { code: 200, rtjson: { version: '1.0', routing: disp.parallel ? 'parallel' : 'serial', routes } };
}
