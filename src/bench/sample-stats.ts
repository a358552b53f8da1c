/** Summary of repeated runs: the figures benchmarks.md quotes (median, spread, standard error). */
export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** Standard error of the mean as a percentage of the mean. */
  readonly sePercent: number;
}

export function summarize(samples: readonly number[]): Summary {
  const n = samples.length;
  if (n === 0) return { n: 0, median: NaN, mean: NaN, min: NaN, max: NaN, sePercent: NaN };
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = n >> 1;
  const median = n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const mean = samples.reduce((s, x) => s + x, 0) / n;
  const variance = n > 1 ? samples.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1) : 0;
  const se = Math.sqrt(variance / n);
  return { n, median, mean, min: sorted[0], max: sorted[n - 1], sePercent: mean === 0 ? 0 : (se / mean) * 100 };
}

/** Formats a rate like 1.23 M/s or 45.6 k/s. */
export function formatRate(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}

/** A table's min–max cell: how far the runs spread around the median. */
export function minMax(s: Summary, format: (x: number) => string = formatRate): string {
  return `${format(s.min)}–${format(s.max)}`;
}

/** minMax, or '—' where a single run has no spread to show. */
export function spread(s: Summary, format: (x: number) => string = formatRate): string {
  return s.n > 1 ? minMax(s, format) : '—';
}
