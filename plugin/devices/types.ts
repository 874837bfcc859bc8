/**
 * A registered CPM Client (device) of a served user, as captured at REGISTER time.
 * Kamailio's usrloc does not keep Contact feature tags (docs/deployment.md §6), so the
 * decision service keeps them here.
 */

/** A Contact feature parameter: `true` for a bare flag, else the unquoted value (RFC 3840 §9). */
export type FeatureValue = string | true;

export interface Device {
  /** Canonical served-user key (see config `identity`), e.g. `sip:bob@example.net`. */
  readonly aor: string;
  /** `+sip.instance` value without quotes, with angle brackets, e.g. `<urn:uuid:...>` (RFC 5626). */
  readonly instance: string | null;
  /** The Contact URI as registered. */
  readonly contact: string;
  /** Every Contact header parameter except `expires` and `q`; names lower-cased, values unquoted. */
  readonly params: Readonly<Record<string, FeatureValue>>;
  /** Contact `q` value, 0..1, default 1. */
  readonly q: number;
  /** Public GRUU the registrar assigned (RFC 5627), `<aor>;gr=<instance urn>`, or null. */
  readonly pubGruu: string | null;
  /** Where the REGISTER came from, `proto:ip:port`. */
  readonly received: string | null;
  /** Path header URIs of the REGISTER (RFC 3327), in order. */
  readonly path: readonly string[];
  readonly callId: string;
  readonly cseq: number;
  /** Epoch milliseconds. */
  readonly registeredAt: number;
  readonly expiresAt: number;
}
