// Small statistics for the benchmark harness: medians, percentiles and ranges over repeated runs.

export function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Percentile by linear interpolation between closest ranks (p in [0, 100]). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo] + (s[hi] - s[lo]) * (rank - lo);
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export function min(xs: readonly number[]): number {
  return xs.length ? Math.min(...xs) : NaN;
}

export function max(xs: readonly number[]): number {
  return xs.length ? Math.max(...xs) : NaN;
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/**
 * Overhead of paired runs: the ratio of medians (with / without), and the range of the per-pair ratios
 * (each "with" run divided by the "without" run it alternated with), which shows how noisy the pairs were.
 */
export function overheadRatio(withNs: readonly number[], withoutNs: readonly number[]): { ratio: number; min: number; max: number } {
  const pairs = Math.min(withNs.length, withoutNs.length);
  const perPair: number[] = [];
  for (let i = 0; i < pairs; i++) perPair.push(withNs[i] / withoutNs[i]);
  return { ratio: median(withNs) / median(withoutNs), min: min(perPair), max: max(perPair) };
}
