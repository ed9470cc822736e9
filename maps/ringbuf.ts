/**
 * Ring-buffer reader over the N-API addon (maps/addon): the addon watches the
 * ring buffer with uv_poll and hands records over in bounded batches, one batch
 * per event-loop turn, so the loop stays responsive under a flood of events.
 */
import { createRequire } from 'node:module';

interface AddonReader {
  close(): void;
}
interface RingbufAddon {
  /** `data` holds a batch's records back to back; `ends` where each ends (little-endian u32). */
  open(
    mapFd: number,
    onBatch: (data: Buffer, ends: Buffer, count: number) => void,
    maxBatch?: number,
    pollMs?: number,
  ): AddonReader;
}

let addon: RingbufAddon | undefined;

function loadAddon(): RingbufAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  try {
    addon = require('@weir/ringbuf') as RingbufAddon;
  } catch (err) {
    throw new Error(
      `the ring-buffer addon is not built (${err instanceof Error ? err.message : String(err)}): run "make build" (needs g++, make, python3 and libbpf-dev)`,
    );
  }
  return addon;
}

export interface RingBufferReader {
  close(): void;
}

export interface RingBufferOptions {
  /** Most records per callback (default 4096). */
  maxBatch?: number;
  /**
   * Also drain every this many ms (default 20). The datapath submits events
   * without waking the reader until a backlog builds up, so this bounds how
   * late a lone event is seen. 0 = only on wakeups.
   */
  pollIntervalMs?: number;
}

export const DEFAULT_POLL_INTERVAL_MS = 20;

/** The records of one batch as views of its single copy (no copy, no allocation but the view). */
export function splitBatch(data: Buffer, ends: Buffer, count: number): Buffer[] {
  const out = new Array<Buffer>(count);
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = ends.readUInt32LE(i * 4);
    out[i] = data.subarray(start, end);
    start = end;
  }
  return out;
}

/**
 * Calls `onBatch` with each batch of the BPF_MAP_TYPE_RINGBUF map `mapFd` as the addon hands it
 * over: one copy, its records back to back, `ends` where each ends (little-endian u32). The
 * buffers are the callee's (the next batch is a new copy). The map fd stays owned by the caller.
 */
export function openRingBufferBatches(
  mapFd: number,
  onBatch: (data: Buffer, ends: Buffer, count: number) => void,
  opts: RingBufferOptions = {},
): RingBufferReader {
  const r = loadAddon().open(mapFd, onBatch, opts.maxBatch ?? 4096, opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      r.close();
    },
  };
}
