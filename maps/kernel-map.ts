/**
 * The small interface every writer of map contents uses: the libbpf maps (`BpfMap`) and
 * the in-memory `FakeMap` (maps/fake-map.ts) both implement it, so the syncer is tested
 * without root and against the kernel alike.
 */
export interface KernelMap {
  /** The map's name (weir_policy, ...), as errors and metrics show it. */
  readonly name: string;
  /** Capacity: how many entries the map can hold. */
  readonly maxEntries: number;
  lookup(key: Buffer): Buffer | undefined;
  /** Creates or replaces one entry; throws `MapFullError` when a new key finds no room. */
  update(key: Buffer, value: Buffer): void;
  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean;
  /**
   * Writes entries in order; on an error the entries before the failing one may be written
   * (as the kernel's batch update leaves them), so callers must not assume all or nothing.
   */
  updateBatch(entries: Array<[Buffer, Buffer]>): void;
  /** Deletes keys; missing keys are ignored. Returns how many were deleted. */
  deleteBatch(keys: Buffer[]): number;
  /** Every (key, value) pair the map holds now. */
  entries(): Iterable<[Buffer, Buffer]>;
  /** How many entries the map holds now, where it can count without reading them out one object each. */
  count?(): number;
}
