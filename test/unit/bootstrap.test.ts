/** The bench's bootstrap interval against a known answer. */
import { bootstrap, median } from '../bench/sidebyside/stats.js';

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
