/**
 * Where a bench suite's wall time goes: each phase (set-up, programming, measuring, tear-down, …)
 * timed and summed, so that the cost that is not measurement shows next to the measurement itself.
 * Phases must not nest (a nested phase would be counted twice).
 */
import { performance } from 'node:perf_hooks';

export class PhaseClock {
  private readonly ms = new Map<string, number>();
  private readonly start = performance.now();

  /** Runs `f`, adding its wall time to `phase`. */
  async time<T>(phase: string, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.ms.set(phase, (this.ms.get(phase) ?? 0) + performance.now() - t0);
    }
  }

  /** Seconds per phase since the clock started, largest first, the untimed rest as "other". */
  seconds(): Array<[string, number]> {
    const total = performance.now() - this.start;
    const timed = [...this.ms.values()].reduce((a, b) => a + b, 0);
    return [...this.ms, ['other', Math.max(0, total - timed)] as [string, number]]
      .map(([k, v]): [string, number] => [k, v / 1000])
      .sort((a, b) => b[1] - a[1]);
  }

  /** "measuring 150 s, programming 30 s, …, other 4 s (of 200 s)". */
  summary(): string {
    const xs = this.seconds();
    const total = xs.reduce((a, [, v]) => a + v, 0);
    return `${xs.map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')} (of ${total.toFixed(0)} s)`;
  }
}
