// Certificate fingerprints of msrps legs (RFC 4975 §14.1, RFC 8122 §5): a peer that put
// a=fingerprint in its SDP must present, on its TLS connection, a certificate whose hash
// under that function is that value; otherwise the connection is refused. The relay asks
// every TLS peer for its certificate without checking it against a CA (self-signed
// certificates are the norm for MSRP: the fingerprint is what authenticates them).

import { createHash, type X509Certificate } from 'node:crypto';

/** RFC 8122 §5 hash functions -> node's names. md2 and md5 are refused (RFC 8122 §5: MUST NOT). */
const HASHES: Readonly<Record<string, string>> = {
  'sha-1': 'sha1', 'sha-224': 'sha224', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512',
};

/** An a=fingerprint value: hash function (lower case) and the hex octets, upper case with colons. */
export interface Fingerprint {
  readonly hash: string;
  readonly value: string;
}

/** `sha-256 AB:cd:…` -> Fingerprint; undefined when it is not one (RFC 8122 §5 grammar). */
export function parseFingerprint(text: string): Fingerprint | undefined {
  const m = /^\s*([A-Za-z0-9-]+)\s+((?:[0-9A-Fa-f]{2}:)*[0-9A-Fa-f]{2})\s*$/.exec(text);
  if (!m) return undefined;
  return { hash: m[1]!.toLowerCase(), value: m[2]!.toUpperCase() };
}

/** The fingerprint of `cert` under `hash`, as a=fingerprint writes it; undefined for an unknown hash. */
export function certificateFingerprint(cert: X509Certificate, hash: string): string | undefined {
  const alg = HASHES[hash];
  if (alg === undefined) return undefined;
  return createHash(alg).update(cert.raw).digest('hex').toUpperCase().match(/.{2}/g)!.join(':');
}

/** Why `cert` does not match the peer's a=fingerprint; undefined when it does. */
export function fingerprintMismatch(expected: Fingerprint, cert: X509Certificate | undefined): string | undefined {
  if (cert === undefined) return 'the peer presented no certificate, its SDP has a=fingerprint';
  const got = certificateFingerprint(cert, expected.hash);
  if (got === undefined) return `a=fingerprint hash function ${expected.hash} is not supported`;
  return got === expected.value ? undefined : `the peer's certificate does not match its a=fingerprint (${expected.hash})`;
}
