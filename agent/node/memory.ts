/**
 * The node agent's process memory: how much of what it frees V8 and glibc's malloc keep.
 *
 * Measured on the agent itself (docs/benchmarks.md, "Node agent memory"): at 10,000 pods the live
 * heap is about 50 MiB, yet with V8's and glibc's defaults the process holds 200-300 MiB, because
 * - V8 grows its young generation to 2 x 16 MiB while the first sync allocates, and keeps it.
 *   `--max-semi-space-size=1` (read only when the process starts: NODE_OPTIONS) keeps it at
 *   2 x 1 MiB, 15-60 MiB less at 10,000 pods at no measurable CPU; at 100,000 pods it cost 20%
 *   more CPU for the first sync and more promotion into the old generation, so it is an option for
 *   small clusters (SMALL_CLUSTER_NODE_OPTIONS, through the chart's agent.extraEnv), not the default;
 * - V8 grows the old generation well ahead of the live heap, and the first sync leaves hundreds of
 *   MiB of garbage at 100,000 pods: once it is enforced (`settleMemory`) the agent collects it at
 *   once (one pause at readiness) instead of holding it until V8 next marks. `--optimize-for-size`
 *   (the old generation grows by small steps) cut the RSS further at 10,000 pods, but at 100,000
 *   pods it took the first sync's CPU 2.5x and, set after the sync, made label changes wait for
 *   full collections of a 360 MiB heap (p99 0.7 s instead of 15 ms): it is not the default, only
 *   available through WEIR_AGENT_V8_FLAGS (V8 flags set at start);
 * - glibc raises its mmap threshold each time a large block is freed, so later list pages and
 *   JSON buffers (hundreds of KiB to MiBs) come from the brk heap, which it rarely returns; a
 *   fixed threshold keeps large blocks mmapped, and unmapped when freed.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
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
  return set;
}

let collect: (() => void) | undefined;

/**
 * After the first full sync: one full collection (the list pages, their parsed objects and the
 * first compile's scratch are garbage now) and malloc's free pages back to the kernel.
 */
export function settleMemory(): void {
  if (!collect) {
    // Node's documented way to reach V8's gc() without starting the process with --expose-gc
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  malloc()?.trim(0);
}
