/**
 * Who may use the operator HTTP interface and the XCAP store (docs/deployment.md "Threat model"):
 *
 * - the operator: `Authorization: Bearer <http.operatorToken>` (RFC 6750 §2.1), compared in
 *   constant time; may use every protected route and every user's XCAP documents;
 * - a user, on the XCAP routes only: the identity an Aggregation Proxy asserts in
 *   `X-3GPP-Asserted-Identity` or `X-XCAP-Asserted-Identity` (OMA XDM, 3GPP TS 24.623 §5.2.3),
 *   taken only from a trusted proxy (`xdm.trustedProxies` by address, or
 *   `xdm.trustedProxyCertificates` by client certificate over HTTPS); such a user may read
 *   and write the documents under their own XUI only (RFC 4825 §5.1).
 *
 * `access()` is the decision, pure; `operatorOnly` and the XCAP routes apply it in an
 * onRequest hook. A missing credential is 401 with `WWW-Authenticate: Bearer`, a wrong
 * token 401 with `error="invalid_token"` (RFC 6750 §3), a user outside their documents or
 * an identity from an untrusted peer 403. The token is never logged (plugin/http/server.ts
 * redacts the header).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { peerAllowed } from '../../wire/server.js';

export const ASSERTED_IDENTITY_HEADERS = ['x-3gpp-asserted-identity', 'x-xcap-asserted-identity'] as const;

/** The credentials of one request, as read from it. */
export interface Credentials {
  /** The Authorization header: absent, a bearer token, or something else (another scheme). */
  readonly authorization: { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'other' };
  /** The first asserted identity, raw (`"sip:bob@example.net"`, `<sip:bob@…>`); null when none. */
  readonly asserted: string | null;
  /** The peer is a trusted proxy (address or client certificate). */
  readonly trustedPeer: boolean;
}

export type Access =
  | { readonly ok: true; readonly who: 'operator' }
  | { readonly ok: true; readonly who: 'user'; readonly user: string }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string; readonly invalidToken?: true };

/** `Authorization` -> credentials kind (RFC 6750 §2.1: `Bearer` then one token68). */
export function readAuthorization(h: string | undefined): Credentials['authorization'] {
  if (h === undefined || h.trim() === '') return { kind: 'none' };
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(h);
  return m ? { kind: 'bearer', token: m[1] as string } : { kind: 'other' };
}

/** The first value of an asserted identity header: `"Bob" <sip:bob@x>`, `<sip:bob@x>`, `sip:bob@x`, quoted. */
export function firstIdentity(h: string | string[] | undefined): string | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined) return null;
  const angle = /<([^>]*)>/.exec(v)?.[1];
  const bare = (angle ?? v.split(',')[0] ?? '').trim().replace(/^"(.*)"$/, '$1').trim();
  return bare === '' ? null : bare;
}

/** Constant-time token comparison (hash first, so different lengths take the same time). */
export function tokenMatches(given: string, expected: string): boolean {
  if (expected === '') return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The decision. `target` is the XUI's served-user key for an XCAP document route, null for
 * a route only the operator may use (or the XCAP capabilities, when `anyUser`).
 * `userKey` turns an asserted identity into a served-user key (null: not a user).
 */
export function access(
  c: Credentials,
  operatorToken: string,
  target: { readonly xui: string | null; readonly anyUser: boolean } | null,
  userKey: (identity: string) => string | null,
): Access {
  if (c.authorization.kind === 'bearer') {
    return tokenMatches(c.authorization.token, operatorToken)
      ? { ok: true, who: 'operator' }
      : { ok: false, status: 401, reason: 'invalid token', invalidToken: true };
  }
  if (c.authorization.kind === 'other') return { ok: false, status: 401, reason: 'unsupported authorization scheme' };
  if (c.asserted !== null && target !== null) {
    if (!c.trustedPeer) return { ok: false, status: 403, reason: 'asserted identity from a peer that is not a trusted proxy' };
    const user = userKey(c.asserted);
    if (user === null) return { ok: false, status: 403, reason: 'asserted identity is not a user' };
    if (target.anyUser || target.xui === user) return { ok: true, who: 'user', user };
    return { ok: false, status: 403, reason: "another user's documents" };
  }
  return { ok: false, status: 401, reason: 'credentials required' };
}

export interface TrustedProxies {
  /** Addresses or CIDR blocks (wire/server.ts peerList). */
  readonly addresses: BlockList;
  /** SHA-256 fingerprints of client certificates, upper-case hex with colons (X509Certificate.fingerprint256). */
  readonly certificates: ReadonlySet<string>;
}

/** `AB:cd:…` or `abcd…` -> `AB:CD:…` (the form X509Certificate.fingerprint256 gives). */
export function normaliseFingerprint(fp: string): string {
  const hex = fp.replace(/^sha-256\s+/i, '').replace(/:/g, '').toUpperCase();
  return hex.match(/.{2}/g)?.join(':') ?? '';
}

/** The credentials of a request. */
export function credentialsOf(req: FastifyRequest, trusted: TrustedProxies): Credentials {
  let asserted: string | null = null;
  for (const h of ASSERTED_IDENTITY_HEADERS) {
    asserted ??= firstIdentity(req.headers[h]);
  }
  let trustedPeer = peerAllowed(trusted.addresses, req.socket.remoteAddress);
  if (!trustedPeer && trusted.certificates.size > 0 && 'getPeerX509Certificate' in req.socket) {
    const cert = (req.socket as TLSSocket).getPeerX509Certificate();
    trustedPeer = cert !== undefined && trusted.certificates.has(cert.fingerprint256);
  }
  return { authorization: readAuthorization(req.headers.authorization), asserted, trustedPeer };
}

/** Send the refusal: JSON for the operator routes (the XCAP routes send an XCAP error body). */
export function challenge(reply: FastifyReply, a: Extract<Access, { ok: false }>): FastifyReply {
  if (a.status === 401) {
    void reply.header('www-authenticate', a.invalidToken ? 'Bearer realm="pf", error="invalid_token"' : 'Bearer realm="pf"');
  }
  return reply.code(a.status);
}

/** An onRequest hook that lets only the operator through (JSON refusal). */
export function operatorHook(operatorToken: string, open: readonly string[] = []): onRequestAsyncHookHandler {
  return async (req, reply) => {
    if (open.includes(req.routeOptions.url ?? '')) return;
    const c: Credentials = { authorization: readAuthorization(req.headers.authorization), asserted: null, trustedPeer: false };
    const a = access(c, operatorToken, null, () => null);
    if (a.ok) return;
    req.log.info({ route: req.routeOptions.url, reason: a.reason }, 'http request refused');
    await challenge(reply, a).send({ error: a.reason });
  };
}

export interface OperatorOnlyOptions {
  readonly operatorToken: string;
  /** Route URLs of the group left open (the live view's static page: its data is not). */
  readonly open?: readonly string[];
}

/**
 * An encapsulated fastify plugin whose onRequest hook lets only the operator through;
 * `routes` registers the route groups it protects (plugin/app.ts).
 */
export function operatorOnly(routes: FastifyPluginAsync): FastifyPluginAsync<OperatorOnlyOptions> {
  return async (scope, opts) => {
    scope.addHook('onRequest', operatorHook(opts.operatorToken, opts.open));
    await scope.register(routes);
  };
}
