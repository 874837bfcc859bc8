/** RFC 3841 §7.2 matching of caller preferences against contact feature sets. */
import type { FeaturePredicate, FeatureSet } from './features.js';

export interface CallerPrefs {
  readonly accept: readonly FeaturePredicate[];
  readonly reject: readonly FeaturePredicate[];
}

export interface Disposition {
  readonly fork: boolean;
  readonly parallel: boolean;
}

export function predicateMatches(_p: FeaturePredicate, _set: FeatureSet): boolean {
  throw new Error('not implemented');
}
