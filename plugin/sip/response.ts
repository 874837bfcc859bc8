/**
 * RFC 3261 §16.7 steps 5-6: the best final response of a forking proxy. On the proxy
 * path Kamailio's tm picks it; this is for the coming B2BUA (plugin/b2bua), which forks
 * itself and answers the caller with the best of its branches' finals. No caller yet.
 */

/** 4xx responses that help the caller resubmit (RFC 3261 §16.7 step 6). */
const RESUBMIT_INFO = new Set([401, 407, 415, 420, 484]);

/**
 * The status code to send upstream, given every branch's final status (in arrival order).
 * - a 2xx wins (it is forwarded at once, §16.7 step 5);
 * - no final response at all -> 408 (§16.7 step 6);
 * - any 6xx -> the first 6xx;
 * - else the lowest class; within 4xx prefer 401, 407, 415, 420, 484; else the first;
 * - a chosen 503 becomes 500 (a 503 would claim the proxy itself is unavailable).
 * Codes outside 200..699 (provisional or garbage) are ignored.
 */
export function chooseBestResponse(codes: readonly number[]): number {
  const finals = codes.filter((c) => Number.isInteger(c) && c >= 200 && c <= 699);
  if (finals.length === 0) return 408;
  const ok = finals.find((c) => c < 300);
  if (ok !== undefined) return ok;
  const global = finals.find((c) => c >= 600);
  if (global !== undefined) return global;
  const lowestClass = finals.reduce((m, c) => Math.min(m, Math.floor(c / 100)), 9);
  const inClass = finals.filter((c) => Math.floor(c / 100) === lowestClass);
  if (lowestClass === 4) {
    const info = inClass.find((c) => RESUBMIT_INFO.has(c));
    if (info !== undefined) return info;
  }
  if (lowestClass === 5) {
    const not503 = inClass.find((c) => c !== 503);
    return not503 ?? 500;
  }
  return inClass[0]!;
}
