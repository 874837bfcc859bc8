/**
 * The highest rate at which a load step passes (bench:proxy, bench:proxy:nodes,
 * bench:b2bua): up the rates until one fails, then `refine` bisection probes between the
 * last good rate and the failed one, each rounded to `grain` calls/s, so that a ratio of
 * two searches is not quantised by the step list.
 */

export interface Ramp<R> {
  /** The highest rate that passed (0: none). */
  readonly best: number;
  /** That step's result, or null. */
  readonly bestResult: R | null;
  /** The lowest rate that failed (0: none failed). */
  readonly failedAt: number;
}

/** `probe(rate, refining)` runs one step; the rates are tried in order until one fails. */
export async function highestPassing<R extends { readonly ok: boolean }>(
  rates: Iterable<number>,
  refine: number,
  grain: number,
  probe: (rate: number, refining: boolean) => Promise<R>,
): Promise<Ramp<R>> {
  let best = 0;
  let bestResult: R | null = null;
  let failedAt = 0;
  for (const rate of rates) {
    const r = await probe(rate, false);
    if (!r.ok) {
      failedAt = rate;
      break;
    }
    best = rate;
    bestResult = r;
  }
  for (let i = 0; i < refine && failedAt > 0; i++) {
    const mid = Math.round((best + failedAt) / 2 / grain) * grain;
    if (mid <= best || mid >= failedAt) break;
    const r = await probe(mid, true);
    if (r.ok) {
      best = mid;
      bestResult = r;
    } else failedAt = mid;
  }
  return { best, bestResult, failedAt };
}

/** start, start x factor, ... (each rounded to 10), while at most `max`. */
export function* geometricRates(start: number, factor: number, max: number): Generator<number> {
  for (let rate = start; rate <= max; rate = Math.round((rate * factor) / 10) * 10) yield rate;
}
