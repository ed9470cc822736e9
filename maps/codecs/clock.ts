/** struct weir_clock_sample: what the program clock_sample writes over its test-run packet. */
import { layout } from './layout.js';

export const clockSampleLayout = layout('weir_clock_sample', [
  { name: 'jiffies', type: 'u64' },
  { name: 'mono_ns', type: 'u64' },
  { name: 'jiffies_after', type: 'u64' },
  { name: 'ns_per_tick', type: 'u64' },
] as const);

export interface ClockSample {
  /** The kernel's tick count (flow events' ts_jiffies) before and after the monotonic reading. */
  jiffies: bigint;
  /** CLOCK_MONOTONIC_COARSE: the monotonic clock as of the last tick. */
  monoNs: bigint;
  jiffiesAfter: bigint;
  /** 1e9 / CONFIG_HZ, rounded down; 0 when the loader did not know the tick rate. */
  nsPerTick: bigint;
}

export function decodeClockSample(buf: Buffer): ClockSample {
  const o = clockSampleLayout.offsets;
  return {
    jiffies: buf.readBigUInt64LE(o.jiffies),
    monoNs: buf.readBigUInt64LE(o.mono_ns),
    jiffiesAfter: buf.readBigUInt64LE(o.jiffies_after),
    nsPerTick: buf.readBigUInt64LE(o.ns_per_tick),
  };
}
