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
  open(mapFd: number, onRecords: (batch: Buffer[]) => void, maxBatch?: number): AddonReader;
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

/**
 * Calls `onRecords` with copies of the records of the BPF_MAP_TYPE_RINGBUF map
 * `mapFd`, at most `maxBatch` (default 4096) per call. Keep the returned reader
 * and close it when done; the map fd stays owned by the caller.
 */
export function openRingBuffer(mapFd: number, onRecords: (batch: Buffer[]) => void, maxBatch?: number): RingBufferReader {
  const r = loadAddon().open(mapFd, onRecords, maxBatch);
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      r.close();
    },
  };
}
