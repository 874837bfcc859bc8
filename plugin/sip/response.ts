/** RFC 3261 §16.7 step 6: choosing the best final response of a forking proxy. */

/** The status code to forward, or null when `codes` is empty. */
export function chooseBestResponse(_codes: readonly number[]): number | null {
  throw new Error('not implemented');
}
