/** RFC 3840 §9 feature parameters: parsing Contact feature sets and Accept/Reject-Contact predicates. */
import type { FeatureValue } from '../devices/types.js';

/** One value of a feature tag (RFC 3840 §9 `tag-value` / `string-value`). */
export type FeatureAtom =
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'token'; readonly value: string } // lower-cased, percent-decoded
  | { readonly kind: 'string'; readonly value: string } // case-sensitive, without <>
  | { readonly kind: 'num'; readonly op: '=' | '<=' | '>='; readonly value: number }
  | { readonly kind: 'range'; readonly lo: number; readonly hi: number };

export interface FeatureTerm {
  readonly tag: string; // lower-cased
  /** Disjunction of values; `negated` values are satisfied by anything else. */
  readonly values: readonly { readonly atom: FeatureAtom; readonly negated: boolean }[];
}

/** A caller-preference predicate (one Accept-Contact / Reject-Contact value, RFC 3841 §9). */
export interface FeaturePredicate {
  readonly terms: readonly FeatureTerm[];
  readonly require: boolean;
  readonly explicit: boolean;
}

/** A contact's feature set: tag -> the values it has (RFC 3840 §9, one collection per value). */
export type FeatureSet = ReadonlyMap<string, readonly FeatureAtom[]>;

export function featureSetOf(_params: Readonly<Record<string, FeatureValue>>): FeatureSet {
  throw new Error('not implemented');
}

export function parsePredicate(_value: string): FeaturePredicate | null {
  throw new Error('not implemented');
}
