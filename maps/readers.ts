/** Readers for the metrics side: verdict counters (summed over CPUs) and lost flow events. */
import { BpfMap } from './bpf-map.js';
import { sumPerCpuCounter } from './codecs/counters.js';
import {
  COUNTER_ENTRIES,
  DROP_MAX,
  Direction,
  LbCounter,
  directionName,
  verdictName,
  matchName,
  dropReasonName,
  Verdict,
} from './abi.js';

export interface CounterRow {
  direction: number;
  verdict: number;
  /** WEIR_MATCH_* when forwarded, WEIR_DROP_* when dropped. */
  reason: number;
  /** "INGRESS" / "EGRESS" */
  directionName: string;
  /** "FORWARDED" / "DROPPED" */
  verdictName: string;
  /** Match name when forwarded ("L3_L4", "ESTABLISHED", ...), drop reason name when dropped ("POLICY_DENIED", ...). */
  reasonName: string;
  packets: bigint;
  bytes: bigint;
}

function keyOf(i: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(i);
  return k;
}

/** Every non-zero counter, summed over CPUs. */
export function readCounters(counters: BpfMap): CounterRow[] {
  const rows: CounterRow[] = [];
  const ncpus = counters.valueBytes / 16;
  for (let i = 0; i < COUNTER_ENTRIES; i++) {
    const v = counters.lookup(keyOf(i));
    if (!v) continue;
    const { packets, bytes } = sumPerCpuCounter(v, ncpus);
    if (packets === 0n && bytes === 0n) continue;
    const reason = i % DROP_MAX;
    const verdict = Math.floor(i / DROP_MAX) % 2;
    const direction = Math.floor(i / (DROP_MAX * 2));
    rows.push({
      direction,
      verdict,
      reason,
      directionName: directionName(direction),
      verdictName: verdictName(verdict),
      reasonName: verdict === Verdict.DROPPED ? dropReasonName(reason) : matchName(reason),
      packets,
      bytes,
    });
  }
  return rows;
}

/**
 * Conntrack misses of established-looking packets (bpf/lib/counters.h weir_count_ct_miss): TCP
 * packets without SYN, of a known endpoint, that found no conntrack entry in either direction —
 * what an LRU eviction looks like from the datapath, plus connections older than the datapath
 * and stray or crafted segments. Per direction (WEIR_DIR_*), summed over CPUs.
 */
export function readCtMisses(miss: BpfMap): { ingress: bigint; egress: bigint } {
  const sum = (dir: number): bigint => {
    const v = miss.lookup(keyOf(dir));
    let n = 0n;
    if (v) for (let off = 0; off + 8 <= v.length; off += 8) n += v.readBigUInt64LE(off);
    return n;
  };
  return { ingress: sum(Direction.INGRESS), egress: sum(Direction.EGRESS) };
}

/** Flow events the datapath could not put into the ring buffer (it was full), summed over CPUs. */
export function readLostEvents(lost: BpfMap): bigint {
  const v = lost.lookup(keyOf(0));
  if (!v) return 0n;
  let n = 0n;
  for (let off = 0; off + 8 <= v.length; off += 8) n += v.readBigUInt64LE(off);
  return n;
}

/** Service translation counters (weir_lb_counters), summed over CPUs, by LbCounter name. */
export type ServiceCounters = Record<keyof typeof LbCounter, bigint>;

export function readServiceCounters(counters: BpfMap): ServiceCounters {
  const out = {} as ServiceCounters;
  for (const [name, i] of Object.entries(LbCounter) as Array<[keyof typeof LbCounter, number]>) {
    const v = counters.lookup(keyOf(i));
    let n = 0n;
    if (v) for (let off = 0; off + 8 <= v.length; off += 8) n += v.readBigUInt64LE(off);
    out[name] = n;
  }
  return out;
}
