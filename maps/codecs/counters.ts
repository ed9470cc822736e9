/** counters: per-CPU ARRAY of struct weir_counter indexed by counterIndex(direction, verdict, reason). */
import { layout } from './layout.js';

export const counterLayout = layout('weir_counter', [
  { name: 'packets', type: 'u64' },
  { name: 'bytes', type: 'u64' },
] as const);

export interface CounterValue {
  packets: bigint;
  bytes: bigint;
}

/** Sums the per-CPU values of one entry (`buf` holds one value per possible CPU, 8-byte aligned). */
export function sumPerCpuCounter(buf: Buffer, ncpus: number): CounterValue {
  let packets = 0n;
  let bytes = 0n;
  const stride = Math.ceil(counterLayout.size / 8) * 8;
  for (let c = 0; c < ncpus; c++) {
    packets += buf.readBigUInt64LE(c * stride + counterLayout.offsets.packets);
    bytes += buf.readBigUInt64LE(c * stride + counterLayout.offsets.bytes);
  }
  return { packets, bytes };
}
