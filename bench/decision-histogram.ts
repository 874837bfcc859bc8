/**
 * The service's decision histogram (`pf_decision_duration_seconds`, /metrics) as the
 * benchmarks read it: one method's cumulative buckets, the difference of two readings,
 * and a quantile interpolated within its bucket. Used by bench:proxy and soak:proxy.
 */

export interface Hist {
  bounds: number[];
  cum: number[];
  count: number;
}

/** One method's pf_decision_duration_seconds buckets (cumulative). */
export function histogram(text: string, method: string): Hist {
  const rows: [number, number][] = [];
  for (const m of text.matchAll(/^pf_decision_duration_seconds_bucket\{([^}]*)\} (\d+)/gm)) {
    const labels = m[1] ?? '';
    if (!labels.includes(`method="${method}"`)) continue;
    const le = /le="([^"]+)"/.exec(labels)?.[1] ?? '';
    rows.push([le === '+Inf' ? Infinity : Number(le), Number(m[2])]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return { bounds: rows.map((r) => r[0]), cum: rows.map((r) => r[1]), count: rows.at(-1)?.[1] ?? 0 };
}

/** a − b; a restarted service (counts went down) gives a alone. */
export function histMinus(a: Hist, b: Hist): Hist {
  if (a.count < b.count || b.bounds.length !== a.bounds.length) return a;
  return { bounds: a.bounds, cum: a.cum.map((c, i) => c - (b.cum[i] ?? 0)), count: a.count - b.count };
}

/** Quantile in ms, interpolated within the bucket (Prometheus histogram_quantile). */
export function quantileMs(h: Hist, q: number): number {
  if (h.count === 0) return NaN;
  const rank = q * h.count;
  for (let i = 0; i < h.bounds.length; i++) {
    const c = h.cum[i] ?? 0;
    if (c >= rank) {
      const hi = h.bounds[i] ?? Infinity;
      const lo = i === 0 ? 0 : (h.bounds[i - 1] ?? 0);
      const prev = i === 0 ? 0 : (h.cum[i - 1] ?? 0);
      if (hi === Infinity) return lo * 1000;
      return (lo + ((hi - lo) * (rank - prev)) / Math.max(1, c - prev)) * 1000;
    }
  }
  return NaN;
}
