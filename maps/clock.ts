/**
 * Flow events carry the kernel's tick count (bpf_jiffies64(): inlined, where
 * bpf_ktime_get_coarse_ns() is a helper call per event). The program clock_sample reads the tick
 * count and CLOCK_MONOTONIC_COARSE back to back under BPF_PROG_TEST_RUN; from that, a tick count
 * becomes CLOCK_MONOTONIC ns at the tick resolution the coarse clock had anyway.
 */
import { testRun } from './test-run.js';
import { clockSampleLayout, decodeClockSample, type ClockSample } from './codecs/clock.js';

/** Runs clock_sample once. */
export function runClockSample(clockSampleFd: number): ClockSample {
  const r = testRun(clockSampleFd, Buffer.alloc(Math.max(64, clockSampleLayout.size)));
  if (r.retval !== 0) throw new Error(`clock_sample returned ${r.retval}: its packet is too short`);
  return decodeClockSample(r.dataOut);
}

/** Tick rates Linux is configured with (CONFIG_HZ). */
const TICK_RATES = [100n, 250n, 300n, 1000n];
const ESTIMATE_MS = 100;
const SAMPLES = 5;
const RESAMPLE_NS = 5_000_000_000n;

interface Anchor {
  jiffies: bigint;
  monoNs: bigint;
}

/**
 * Tick count -> CLOCK_MONOTONIC ns. The anchor is the median of a few samples, each within one
 * tick (a sample whose two tick counts differ is taken again), so a sample that a tick splits
 * between the jiffies update and the timekeeping update does not decide it; taken again every few
 * seconds. Where the loader did not know the tick rate, it is measured once over 100 ms and
 * rounded to the nearest rate Linux is built with.
 */
export class TickClock {
  private nsPerTick = 0n;
  private anchor: Anchor = { jiffies: 0n, monoNs: 0n };
  private sampledAt = -RESAMPLE_NS;
  private maxJiffies = 0n;

  constructor(
    private readonly sample: () => ClockSample,
    private readonly monoNow: () => bigint = () => process.hrtime.bigint(),
    private readonly sleepMs: (ms: number) => void = (ms) =>
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms),
  ) {}

  /**
   * CLOCK_MONOTONIC ns of a tick count (call refresh() once per batch of events first). A value
   * beyond any tick count yet (more than a resample period past the tick count now) is a record of an
   * older build's programs, still attached while an upgrade replaces them, which stamped
   * CLOCK_MONOTONIC_COARSE ns: it is that time already (ns since boot pass the tick count, which
   * starts near 2^32, within seconds of boot).
   */
  toMonoNs(jiffies: bigint): bigint {
    if (jiffies > this.maxJiffies) return jiffies;
    return this.anchor.monoNs + (jiffies - this.anchor.jiffies) * this.nsPerTick;
  }

  /**
   * Samples again when the anchor is older than a few seconds; cheap otherwise. Only the first
   * sampling throws: a later one that fails keeps the anchor it has (tried again next time).
   */
  refresh(): void {
    const now = this.monoNow();
    if (now - this.sampledAt >= RESAMPLE_NS) {
      if (this.sampledAt < 0n) this.resample(now);
      else {
        try {
          this.resample(now);
        } catch {
          /* the previous anchor still holds: the two clocks drift apart by far less than a tick in seconds */
        }
      }
    }
    this.maxJiffies = this.anchor.jiffies + (now - this.anchor.monoNs + RESAMPLE_NS) / this.nsPerTick;
  }

  private resample(now: bigint): void {
    const samples: ClockSample[] = [];
    for (let tries = 0; samples.length < SAMPLES && tries < SAMPLES * 4; tries++) {
      const s = this.sample();
      if (s.jiffies === s.jiffiesAfter) samples.push(s);
    }
    if (samples.length === 0) throw new Error('clock_sample: the tick count moved during every sample');
    if (this.nsPerTick === 0n) this.nsPerTick = samples[0]!.nsPerTick || this.measureNsPerTick(samples[0]!);
    // the anchor: the sample whose offset (mono - ticks x ns per tick) is the median
    const offset = (s: ClockSample) => s.monoNs - s.jiffies * this.nsPerTick;
    samples.sort((a, b) => (offset(a) < offset(b) ? -1 : offset(a) > offset(b) ? 1 : 0));
    const mid = samples[Math.floor(samples.length / 2)]!;
    this.anchor = { jiffies: mid.jiffies, monoNs: mid.monoNs };
    this.sampledAt = now;
  }

  private measureNsPerTick(first: ClockSample): bigint {
    this.sleepMs(ESTIMATE_MS);
    let s = this.sample();
    for (let tries = 0; s.jiffies !== s.jiffiesAfter && tries < SAMPLES; tries++) s = this.sample();
    const ticks = s.jiffies - first.jiffies;
    if (ticks <= 0n) throw new Error('clock_sample: the tick count did not move in 100 ms');
    const hz = (ticks * 1_000_000_000n) / (s.monoNs - first.monoNs);
    const nearest = TICK_RATES.reduce((a, b) => (abs(b - hz) < abs(a - hz) ? b : a));
    return 1_000_000_000n / nearest;
  }
}

const abs = (x: bigint): bigint => (x < 0n ? -x : x);
