/** Small statistics over the rounds of one measurement. */
import { mulberry32 as prng } from '../../prng.js'; // deterministic: a bootstrap gives the same interval for the same data

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

/** (max - min) / median: how much one figure moved between rounds. */
export function spread(xs: number[]): number {
  if (xs.length < 2) return 0;
  return (Math.max(...xs) - Math.min(...xs)) / median(xs);
}

/** Formats a number with a precision that suits its size. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  return x.toPrecision(digits);
}

export function ratio(a: number, b: number): number {
  return b === 0 ? Number.NaN : a / b;
}

export interface Interval {
  estimate: number;
  lo: number;
  hi: number;
}

/**
 * Percentile bootstrap confidence interval of `stat` over `samples` (one sample per round):
 * the rounds are resampled with replacement `iterations` times. With paired rounds (both figures
 * of a ratio measured in the same round), pass the per-round values together so the pairing is kept.
 */
export function bootstrap<T>(
  samples: T[],
  stat: (xs: T[]) => number,
  opts: { iterations?: number; level?: number; seed?: number } = {},
): Interval {
  const { iterations = 2000, level = 0.95, seed = 1 } = opts;
  const estimate = stat(samples);
  if (samples.length < 2) return { estimate, lo: Number.NaN, hi: Number.NaN };
  const rnd = prng(seed);
  const stats: number[] = [];
  const pick: T[] = new Array<T>(samples.length);
  for (let i = 0; i < iterations; i++) {
    for (let j = 0; j < samples.length; j++) pick[j] = samples[Math.floor(rnd() * samples.length)]!;
    const v = stat(pick);
    if (Number.isFinite(v)) stats.push(v);
  }
  const a = (1 - level) / 2;
  return { estimate, lo: percentile(stats, a * 100), hi: percentile(stats, (1 - a) * 100) };
}

/**
 * Bootstrap interval of `stat` over the values of all groups pooled, resampling whole groups (a
 * cluster bootstrap): for samples that come in groups sharing a state the samples of one group are
 * not independent of each other (e.g. several pairs of runs within one round of a bench, which share
 * that round's machine load), so the groups, not the samples, are drawn with replacement.
 */
export function groupedBootstrap(
  groups: number[][],
  stat: (xs: number[]) => number = median,
  opts: { iterations?: number; level?: number; seed?: number } = {},
): Interval {
  return bootstrap(groups, (gs) => stat(gs.flat()), opts);
}

/** met / missed only when the whole interval is on one side of the target; else undecided. */
export function decide(x: Interval, target: number, atLeast: boolean): string {
  if (!Number.isFinite(x.lo)) return 'undecided: one round gives no interval';
  if (atLeast ? x.lo >= target : x.hi <= target) return 'met';
  if (atLeast ? x.hi < target : x.lo > target) return '**missed**';
  return `undecided: the interval straddles ${target}`;
}
