/**
 * Flow events carry the kernel's tick count; TickClock turns it into CLOCK_MONOTONIC ns from
 * clock_sample's readings (here scripted: the kernel's own are checked in test/kernel/verdicts).
 */
import { TickClock } from '../../maps/clock.js';
import type { ClockSample } from '../../maps/codecs/clock.js';

/** A kernel at `hz` whose tick count was `j0` at monotonic `m0`, read at monotonic time `now()`. */
function kernel(hz: bigint, j0: bigint, m0: bigint, now: () => bigint, known = true) {
  const ns = 1_000_000_000n / hz;
  return (): ClockSample => {
    const j = j0 + (now() - m0) / ns;
    return { jiffies: j, monoNs: m0 + (j - j0) * ns, jiffiesAfter: j, nsPerTick: known ? ns : 0n };
  };
}

describe('TickClock', () => {
  it('turns a tick count into the monotonic time of that tick, before and after the sample', () => {
    let t = 5_000_000_000n;
    const c = new TickClock(
      kernel(250n, 4_294_000_000n, 1_000_000_000n, () => t),
      () => t,
    );
    c.refresh();
    // 4 ms per tick: the tick at 5 s is 4,294,000,000 + 1,000
    expect(c.toMonoNs(4_294_001_000n)).toBe(5_000_000_000n);
    expect(c.toMonoNs(4_294_000_999n)).toBe(4_996_000_000n);
    t += 2_000_000_000n;
    c.refresh();
    expect(c.toMonoNs(4_294_001_500n)).toBe(7_000_000_000n);
  });

  it("reads a record of an older build's programs (CLOCK_MONOTONIC_COARSE ns) as the time it is", () => {
    const t = 3_600_000_000_000n; // an hour after boot
    const c = new TickClock(
      kernel(250n, 4_294_000_000n, 1_000_000_000n, () => t),
      () => t,
    );
    c.refresh();
    expect(c.toMonoNs(t - 4_000_000n)).toBe(t - 4_000_000n);
    // a tick count from just before the anchor is still a tick count
    expect(c.toMonoNs(4_294_000_000n + 899_749n)).toBe(t - 4_000_000n);
  });

  it('drops samples a tick split and anchors on the others', () => {
    const t = 10_000_000_000n;
    const good = kernel(1000n, 1_000n, 0n, () => t);
    let n = 0;
    const sample = (): ClockSample => {
      const s = good();
      // every other sample straddles a tick, its monotonic reading a tick ahead
      return n++ % 2 ? { ...s, monoNs: s.monoNs + 1_000_000n, jiffiesAfter: s.jiffies + 1n } : s;
    };
    const c = new TickClock(sample, () => t);
    c.refresh();
    expect(c.toMonoNs(1_000n + 10_000n)).toBe(10_000_000_000n);
  });

  it('measures an unknown tick rate once and rounds it to a rate Linux is built with', () => {
    let t = 1_000_000_000n;
    let slept = 0;
    const c = new TickClock(
      kernel(300n, 0n, 0n, () => t, false),
      () => t,
      (ms) => {
        slept += ms;
        t += BigInt(ms) * 1_000_000n + 1_700_000n; // the sleep overshoots
      },
    );
    c.refresh();
    expect(slept).toBe(100);
    // 1e9 / 300 rounded down, as the kernel-side scale would be
    expect(c.toMonoNs(300n) - c.toMonoNs(0n)).toBe(300n * 3_333_333n);
  });

  it('keeps its anchor when a later sampling fails', () => {
    let t = 5_000_000_000n;
    let fail = false;
    const good = kernel(250n, 0n, 0n, () => t);
    const c = new TickClock(
      () => {
        if (fail) throw new Error('BPF_PROG_TEST_RUN failed');
        return good();
      },
      () => t,
    );
    c.refresh();
    fail = true;
    t += 10_000_000_000n;
    expect(() => c.refresh()).not.toThrow();
    expect(c.toMonoNs(3_000n)).toBe(12_000_000_000n);
  });

  it('refuses a clock whose tick count moves during every sample', () => {
    const c = new TickClock(() => ({ jiffies: 1n, monoNs: 0n, jiffiesAfter: 2n, nsPerTick: 4_000_000n }));
    expect(() => c.refresh()).toThrow(/moved during every sample/);
  });
});
