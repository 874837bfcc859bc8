/**
 * CR 8.3.2.1 step 5, media policy: the SDP offer must conform to policy -> else 488.
 * Our readings (docs/policy.md "Step 5"):
 * - no SDP offer (no body, or no application/sdp part) -> 488, Warning "SDP offer required";
 * - a body that is not SDP / cannot be parsed -> 400, Warning "Malformed SDP";
 * - a stream (port != 0) whose media+proto is not allowed -> 488, Warning "Media not allowed";
 * - an MSRP stream without a=accept-types (RFC 4975 §8.6 requires it), or, when policy
 *   lists accept-types, offering a type outside the list -> 488 "Accept-types not allowed";
 * - every stream disabled (port 0) -> 488.
 */
import type { RejectDecision } from '../decision.js';
import type { Policy } from '../policy.js';
import type { SdpOffer, SdpStream } from '../../sip/sdp.js';
import { reject } from './reject.js';

interface CompiledMedia {
  readonly allowed: ReadonlySet<string>; // `media proto`, lower-cased
  readonly exact: ReadonlySet<string> | null;
  readonly prefixes: readonly string[]; // `type/` for `type/*`
  readonly any: boolean;
}

const cache = new WeakMap<Policy['media'], CompiledMedia>();

function compile(media: Policy['media']): CompiledMedia {
  let c = cache.get(media);
  if (c) return c;
  const allowed = new Set<string>();
  for (const r of media.allowed) for (const p of r.protos) allowed.add(`${r.media.toLowerCase()} ${p.toLowerCase()}`);
  const types = media.acceptTypes?.map((t) => t.toLowerCase()) ?? null;
  c = {
    allowed,
    exact: types ? new Set(types.filter((t) => !t.endsWith('/*'))) : null,
    prefixes: types ? types.filter((t) => t.endsWith('/*') && t !== '*/*').map((t) => t.slice(0, -1)) : [],
    any: types === null || types.includes('*') || types.includes('*/*'),
  };
  cache.set(media, c);
  return c;
}

function typeAllowed(c: CompiledMedia, t: string): boolean {
  if (c.any) return true;
  if (t === '*') return false; // "anything" offered, but policy limits types
  if (c.exact?.has(t)) return true;
  return c.prefixes.some((p) => t.startsWith(p));
}

function streamProblem(c: CompiledMedia, s: SdpStream): string | null {
  if (!c.allowed.has(`${s.media} ${s.proto.toLowerCase()}`)) return 'Media not allowed';
  if (s.proto.toUpperCase().includes('MSRP')) {
    if (s.acceptTypes === null || s.acceptTypes.length === 0) return 'Accept-types not allowed';
    if (!s.acceptTypes.every((t) => typeAllowed(c, t))) return 'Accept-types not allowed';
  }
  return null;
}

export function checkMediaPolicy(offer: SdpOffer, policy: Policy, pfHost: string): RejectDecision | null {
  if (offer.kind === 'missing') return reject('media-policy', 488, pfHost, 'SDP offer required');
  if (offer.kind === 'malformed') return reject('media-policy', 400, pfHost, 'Malformed SDP');
  const c = compile(policy.media);
  let active = 0;
  for (const s of offer.streams) {
    if (s.port === 0) continue; // a disabled stream offers nothing (RFC 3264 §5.1)
    active++;
    const problem = streamProblem(c, s);
    if (problem) return reject('media-policy', 488, pfHost, problem);
  }
  return active === 0 ? reject('media-policy', 488, pfHost, 'No active media') : null;
}
