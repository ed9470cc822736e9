/**
 * Wall-clock time for datapath timestamps. The kernel stamps flow events with
 * bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC as of the last tick); Node's process.hrtime
 * reads the same clock, so the offset to the wall clock is measured once and re-measured
 * every few seconds to follow clock adjustments.
 */
import type { Timestamp } from './types.js';

const RESAMPLE_NS = 5_000_000_000n;

export class MonotonicClock {
  private offsetNs = 0n;
  private offSec = 0;
  private offNanos = 0;
  private sampledAt = -RESAMPLE_NS;
  private lastMono = -1n;
  private lastTs: Timestamp | undefined;

  constructor(
    private readonly monoNow: () => bigint = () => process.hrtime.bigint(),
    private readonly wallNowMs: () => number = () => Date.now(),
  ) {}

  /** Re-measures the offset when it is older than a few seconds; call once per batch. */
  refresh(): void {
    const now = this.monoNow();
    if (now - this.sampledAt >= RESAMPLE_NS) {
      this.offsetNs = BigInt(this.wallNowMs()) * 1_000_000n - now;
      this.offSec = Number(this.offsetNs / 1_000_000_000n);
      this.offNanos = Number(this.offsetNs % 1_000_000_000n);
      this.sampledAt = now;
      this.lastTs = undefined;
    }
  }

  /** Wall-clock nanoseconds since the epoch for a CLOCK_MONOTONIC reading. */
  wallNs(monoNs: bigint): bigint {
    if (this.sampledAt < 0n) this.refresh();
    return monoNs + this.offsetNs;
  }

  /**
   * Wall-clock time of a CLOCK_MONOTONIC reading, in number arithmetic (no BigInt per call).
   * Frozen, and the same object for the same reading until the offset is measured again: flows
   * of one kernel tick share their time.
   */
  timestamp(monoNs: bigint): Timestamp {
    if (this.sampledAt < 0n) this.refresh();
    if (monoNs === this.lastMono && this.lastTs !== undefined) return this.lastTs;
    const ts = this.convert(monoNs);
    this.lastMono = monoNs;
    this.lastTs = ts;
    return ts;
  }

  private convert(monoNs: bigint): Timestamp {
    const mono = Number(monoNs);
    const monoSec = Math.floor(mono / 1e9);
    let seconds = monoSec + this.offSec;
    let nanos = mono - monoSec * 1e9 + this.offNanos;
    if (nanos >= 1e9) {
      nanos -= 1e9;
      seconds += 1;
    } else if (nanos < 0) {
      nanos += 1e9;
      seconds -= 1;
    }
    return Object.freeze({ seconds, nanos });
  }
}

export function nsToTimestamp(ns: bigint): Timestamp {
  return { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) };
}

export function timestampToMs(t: Timestamp): number {
  return t.seconds * 1000 + Math.floor(t.nanos / 1e6);
}

export function msToTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** -1, 0 or 1 as a is before, equal to or after b. */
export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.seconds !== b.seconds) return a.seconds < b.seconds ? -1 : 1;
  if (a.nanos !== b.nanos) return a.nanos < b.nanos ? -1 : 1;
  return 0;
}

/** RFC 3339 with nanoseconds, as protobuf's JSON mapping writes a Timestamp. */
export function timestampToRfc3339(t: Timestamp): string {
  const base = new Date(t.seconds * 1000).toISOString().slice(0, 19);
  return `${base}.${String(t.nanos).padStart(9, '0')}Z`;
}
