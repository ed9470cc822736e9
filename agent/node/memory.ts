/**
 * The node agent's process memory: how much of what it frees V8 and glibc's malloc keep.
 *
 * Measured on the agent itself (docs/benchmarks.md, "Node agent memory"): at 10,000 pods the live
 * heap is about 50 MiB, yet with V8's and glibc's defaults the process holds 200-300 MiB, because
 * - V8 grows its young generation to 2 x 16 MiB while the first sync (or a burst of changes)
 *   allocates, and keeps it; and it grows the old generation well ahead of the live heap, and the
 *   first sync leaves hundreds of MiB of garbage at 100,000 pods. Once the first sync is enforced,
 *   and whenever the agent goes quiet after a burst of changes, the agent tells V8 what Chrome
 *   tells it for an idle tab: critical memory pressure (`MemoryPressureNotification`, through the
 *   addon's `v8heap`), one full collection that compacts the old generation, shrinks the young
 *   generation back to its smallest and frees V8's pooled pages; then malloc's free pages go back
 *   to the kernel (`malloc_trim`). It is a pause of the main loop (measured in the `agentmem`
 *   bench and counted in the agent's status), so never in the middle of a burst: only after
 *   QUIET_MS without a change, and only after at least MIN_CHANGES of them;
 * - `--max-semi-space-size=1` (read only when the process starts: NODE_OPTIONS) keeps the young
 *   generation at 2 x 1 MiB during bursts too; at 100,000 pods it cost 20% more CPU for the first
 *   sync and more promotion into the old generation, so it is an option for small clusters
 *   (SMALL_CLUSTER_NODE_OPTIONS, through the chart's agent.extraEnv), not the default.
 *   `--optimize-for-size` (the old generation grows by small steps) at 100,000 pods took the first
 *   sync's CPU 2.5x and, set after the sync, made label changes wait for full collections of a
 *   360 MiB heap (p99 0.7 s instead of 15 ms): only available through WEIR_AGENT_V8_FLAGS;
 * - glibc raises its mmap threshold each time a large block is freed, so later list pages and
 *   JSON buffers (hundreds of KiB to MiBs) come from the brk heap, which it rarely returns; a
 *   fixed threshold keeps large blocks mmapped, and unmapped when freed.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import koffi from 'koffi';

/** NODE_OPTIONS that cut the agent's RSS in a small cluster (measured at 10,000 pods; not the chart's default). */
export const SMALL_CLUSTER_NODE_OPTIONS = '--max-semi-space-size=1';
/** V8 flags the agent sets at start (none unless given), e.g. "--optimize-for-size" for a small cluster. */
export const V8_FLAGS_ENV = 'WEIR_AGENT_V8_FLAGS';

/** glibc's mallopt parameter for the mmap threshold (malloc.h M_MMAP_THRESHOLD). */
export const M_MMAP_THRESHOLD = -3;
/** Blocks of this size and larger are mmapped (and unmapped when freed): glibc's default before it adapts. */
export const MMAP_THRESHOLD_BYTES = 128 * 1024;

interface Libc {
  mallopt: (param: number, value: number) => number;
  trim: (pad: number) => number;
}
let libc: Libc | null | undefined;

/** glibc's malloc controls, or null where the C library has none (musl). */
function malloc(): Libc | null {
  if (libc === undefined) {
    try {
      const lib = koffi.load('libc.so.6');
      libc = {
        mallopt: lib.func('int mallopt(int param, int value)') as Libc['mallopt'],
        trim: lib.func('int malloc_trim(size_t pad)') as Libc['trim'],
      };
    } catch {
      libc = null;
    }
  }
  return libc;
}

/** At start, before the cluster is read: malloc's threshold. Returns what was set, for the log. */
export function leanStart(env: NodeJS.ProcessEnv = process.env): string[] {
  const set: string[] = [];
  if (env[V8_FLAGS_ENV]?.trim()) {
    v8.setFlagsFromString(env[V8_FLAGS_ENV]!);
    set.push(`V8 ${env[V8_FLAGS_ENV]!.trim()} (${V8_FLAGS_ENV})`);
  }
  const c = malloc();
  if (c && c.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) === 1)
    set.push(`malloc mmap threshold ${MMAP_THRESHOLD_BYTES} bytes`);
  set.push(
    heapAddon()
      ? "settles by V8's memory-pressure notification"
      : "settles by a plain full collection (the addon's v8heap is not built: V8 keeps its room)",
  );
  return set;
}

/** V8's memory pressure levels (v8::MemoryPressureLevel). */
export const PRESSURE_CRITICAL = 2;

interface V8Heap {
  memoryPressure: (level: number) => void;
}
let v8heap: V8Heap | null | undefined;

/** The addon's V8 notifications, or null where it is not built (then a plain full collection). */
function heapAddon(): V8Heap | null {
  if (v8heap === undefined) {
    try {
      v8heap = createRequire(import.meta.url)('@weir/ringbuf/v8heap.cjs') as V8Heap;
    } catch {
      v8heap = null;
    }
  }
  return v8heap;
}

let collect: (() => void) | undefined;

/** One full collection: by the pressure notification (memory reduced), else V8's gc(). */
function collectGarbage(): void {
  const addon = heapAddon();
  if (addon) return addon.memoryPressure(PRESSURE_CRITICAL);
  if (!collect) {
    // Node's documented way to reach V8's gc() without starting the process with --expose-gc
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
}

/**
 * After the first full sync, and when the agent is quiet after a burst: V8 collects with memory
 * reduction (the list pages, their parsed objects and a burst's garbage go; the young and old
 * generations give back their room), then malloc's free pages go back to the kernel.
 */
export function settleMemory(): void {
  collectGarbage();
  malloc()?.trim(0);
}

/** Without a change applied for this long, the agent is quiet. */
export const QUIET_MS = 1500;
/** A burst worth settling after: fewer changes leave little to give back, not worth a pause. */
export const MIN_CHANGES = 50;

/** What the settles cost: each is a pause of the agent's main loop. */
export interface SettleStats {
  /** Settles since start (the first sync's one included). */
  count: number;
  /** The last and the longest pause, ms. */
  lastPauseMs: number;
  maxPauseMs: number;
}

/**
 * When to settle memory: once the first sync is enforced, and after a burst of at least
 * `minChanges` changes once `quietMs` passed without one (each change re-arms the wait, so a
 * settle never sits in a burst).
 */
export class MemorySettler {
  private pending = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly s: SettleStats = { count: 0, lastPauseMs: 0, maxPauseMs: 0 };

  constructor(
    private readonly settle: () => void = settleMemory,
    private readonly opts: { quietMs: number; minChanges: number } = { quietMs: QUIET_MS, minChanges: MIN_CHANGES },
  ) {}

  /** The first full sync is enforced: settle now. */
  firstSync(): void {
    this.run();
  }

  /** Changes are being applied: no settle until they are done. */
  busy(): void {
    clearTimeout(this.timer);
  }

  /** `n` changes were applied. */
  changed(n: number): void {
    if (this.stopped || n <= 0) return;
    this.pending += n;
    clearTimeout(this.timer);
    if (this.pending < this.opts.minChanges) return;
    this.timer = setTimeout(() => this.run(), this.opts.quietMs);
    this.timer.unref();
  }

  stats(): SettleStats {
    return { ...this.s };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private run(): void {
    this.timer = undefined;
    this.pending = 0;
    const t = performance.now();
    this.settle();
    const ms = performance.now() - t;
    this.s.count++;
    this.s.lastPauseMs = Math.round(ms * 10) / 10;
    this.s.maxPauseMs = Math.max(this.s.maxPauseMs, this.s.lastPauseMs);
  }
}
