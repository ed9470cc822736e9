/** The side-by-side bench's connection pairs: each pair's ratio, and which figure decides the goal. */
import { decidePairs, pairsReport, tasksRatio, wallRatio, type ConnPair } from '../bench/sidebyside/conn-pairs.js';

/** Pairs of `rounds` rounds, weir at `w` and `tasks` of no filtering's rate/CPU, with a drift within each round. */
function pairs(rounds: number, perRound: number, w: (r: number, k: number) => number, tasks = w): ConnPair[] {
  const out: ConnPair[] = [];
  for (let r = 0; r < rounds; r++)
    for (let k = 0; k < perRound; k++) {
      const none = 22000 * (1 + 0.05 * r) * (1 - 0.002 * k); // the baseline moves 5% between rounds
      out.push({
        round: r,
        pair: k,
        first: (k + r) % 2 === 0 ? 'none' : 'weir',
        noneConnPerSec: none,
        weirConnPerSec: none * w(r, k),
        noneTasksUsPerConn: 45,
        weirTasksUsPerConn: 45 / tasks(r, k),
      });
    }
  return out;
}

describe('connection pairs', () => {
  it('a pair gives weir / none on wall time and none / weir on CPU per connection', () => {
    const [p] = pairs(1, 1, () => 0.96);
    expect(wallRatio(p!)).toBeCloseTo(0.96, 10);
    expect(tasksRatio(p!)).toBeCloseTo(0.96, 10);
  });

  it('decides on wall time when its interval clears the target, whatever the baseline does between rounds', () => {
    const d = decidePairs(
      pairs(5, 8, (r, k) => 0.965 + 0.004 * ((r + k) % 3)),
      0.95,
    );
    expect(d.pairs).toBe(40);
    expect(d.rounds).toBe(5);
    expect(d.wall.lo).toBeGreaterThanOrEqual(0.95);
    expect(d.decidedOn).toBe('wall time: met');
    expect(d.roundMedians).toHaveLength(5);
  });

  it('a missed goal is missed', () => {
    const d = decidePairs(
      pairs(5, 8, (r, k) => 0.9 + 0.01 * ((r * 3 + k) % 4)),
      0.95,
    );
    expect(d.wall.hi).toBeLessThan(0.95);
    expect(d.decidedOn).toBe('wall time: **missed**');
  });

  it("falls back to the tasks' CPU time when wall time straddles the target, and says so when neither decides", () => {
    const wall = (r: number): number => [0.93, 0.97, 0.94, 0.96, 0.95][r]!;
    const onCpu = decidePairs(
      pairs(5, 6, wall, () => 0.97),
      0.95,
    );
    expect(onCpu.decidedOn).toBe('CPU time (tasks): met');
    const neither = decidePairs(pairs(5, 6, wall), 0.95);
    expect(neither.decidedOn).toBe('undecided on wall and on CPU time');
  });

  it('shows a drift within rounds as a difference between the two orders', () => {
    // the pair's second run is 2% slower than its first (the machine slowing within the round)
    const d = decidePairs(
      pairs(4, 8, (r, k) => ((k + r) % 2 === 0 ? 0.96 * 0.98 : 0.96 / 0.98)),
      0.95,
    );
    expect(d.noneFirst).toBeLessThan(0.95);
    expect(d.weirFirst).toBeGreaterThan(0.97);
    // ABBA: the median of all pairs sits between the two orders
    expect(d.wall.estimate).toBeGreaterThan(d.noneFirst);
    expect(d.wall.estimate).toBeLessThan(d.weirFirst);
  });

  it('the report says how the ratio was measured and decided, and when CPU time disagrees', () => {
    const goal = 'weir new connections/s / no filtering';
    const agree = pairsReport(
      decidePairs(
        pairs(5, 6, () => 0.96),
        0.95,
      ),
      goal,
      0.95,
      6,
      0.5,
    ).join('\n');
    expect(agree).toContain('6 pairs of back-to-back 0.5 s connection runs');
    expect(agree).toContain('median of all 30 pairs');
    expect(agree).toContain('resamples rounds, each with all its pairs');
    expect(agree).toMatch(/Outcome for .* ≥ 0.95: \*\*wall time: met\*\*/);
    expect(agree).not.toContain('says otherwise');
    const cpuMisses = decidePairs(
      pairs(
        5,
        6,
        () => 0.96,
        () => 0.94,
      ),
      0.95,
    );
    expect(pairsReport(cpuMisses, goal, 0.95, 6, 0.5).join('\n')).toContain(
      "The tasks' CPU time of the same pairs says otherwise",
    );
    const onCpu = pairsReport(
      decidePairs(
        pairs(
          5,
          6,
          (r) => [0.93, 0.97, 0.94, 0.96, 0.95][r]!,
          () => 0.93,
        ),
        0.95,
      ),
      goal,
      0.95,
      6,
      0.5,
    ).join('\n');
    expect(onCpu).toContain('**CPU time (tasks): missed**');
  });
});
