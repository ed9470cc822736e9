/** The bench's bootstrap interval against a known answer. */
import { bootstrap, groupedBootstrap, median } from '../bench/sidebyside/stats.js';

describe('bootstrap confidence interval', () => {
  it('covers the true median of a known distribution and narrows with more rounds', () => {
    let s = 7;
    const normal = (): number => {
      // Box-Muller over a small LCG: independent of the bootstrap's own PRNG
      s = (s * 1103515245 + 12345) % 2147483648;
      const u = (s + 1) / 2147483649;
      s = (s * 1103515245 + 12345) % 2147483648;
      const v = (s + 1) / 2147483649;
      return 100 + 10 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    };
    const few = Array.from({ length: 10 }, normal);
    const many = Array.from({ length: 400 }, normal);
    const a = bootstrap(few, median);
    const b = bootstrap(many, median);
    expect(a.lo).toBeLessThanOrEqual(a.estimate);
    expect(a.hi).toBeGreaterThanOrEqual(a.estimate);
    expect(b.lo).toBeLessThan(100);
    expect(b.hi).toBeGreaterThan(100);
    expect(b.hi - b.lo).toBeLessThan((a.hi - a.lo) / 2);
    // deterministic for the same data
    expect(bootstrap(few, median)).toEqual(a);
    // a single round has no interval
    expect(Number.isNaN(bootstrap([1], median).lo)).toBe(true);
  });
});

describe('grouped (cluster) bootstrap', () => {
  it('takes the median of all samples pooled and resamples whole groups', () => {
    // each group sits at its own level: samples within a group agree, groups disagree
    const groups = [
      [0.9, 0.901, 0.902, 0.903],
      [1.0, 1.001, 1.002, 1.003],
      [0.95, 0.951, 0.952, 0.953],
      [0.97, 0.971, 0.972, 0.973],
      [0.92, 0.921, 0.922, 0.923],
    ];
    const g = groupedBootstrap(groups);
    expect(g.estimate).toBe(median(groups.flat()));
    // resampling the 20 samples as if independent gives a narrower interval than the groups allow
    const naive = bootstrap(groups.flat(), median);
    expect(naive.estimate).toBe(g.estimate);
    expect(g.hi - g.lo).toBeGreaterThan(naive.hi - naive.lo);
    // every resample is a median of whole groups: its bounds lie within the groups' range
    expect(g.lo).toBeGreaterThanOrEqual(0.9);
    expect(g.hi).toBeLessThanOrEqual(1.003);
    expect(g.lo).toBeLessThan(0.95);
    expect(g.hi).toBeGreaterThan(0.95);
    expect(groupedBootstrap(groups)).toEqual(g);
  });

  it('narrows when the groups agree, and one group gives no interval', () => {
    const tight = [
      [0.96, 0.97, 0.98],
      [0.965, 0.97, 0.975],
      [0.96, 0.971, 0.98],
      [0.962, 0.969, 0.979],
    ];
    const g = groupedBootstrap(tight);
    expect(g.lo).toBeGreaterThanOrEqual(0.965);
    expect(g.hi).toBeLessThanOrEqual(0.975);
    expect(Number.isNaN(groupedBootstrap([[1, 2, 3]]).lo)).toBe(true);
  });
});
