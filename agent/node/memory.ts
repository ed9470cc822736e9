/**
 * The node agent's process memory: how much of what it frees V8 and glibc's malloc keep.
 *
 * Measured on the agent itself (docs/benchmarks.md, "Node agent memory"): at 10,000 pods the live
 * heap is about 50 MiB, yet with V8's and glibc's defaults the process holds 200-300 MiB, because
 * - V8 grows its young generation to 2 x 16 MiB while the first sync allocates, and keeps it;
 *   `--max-semi-space-size=1` keeps it at 2 x 1 MiB (measured: no more CPU). V8 reads it only when
 *   the process starts, so the DaemonSet starts the agent with it (AGENT_NODE_OPTIONS, the
 *   chart's NODE_OPTIONS);
 * - V8 grows the old generation well ahead of the live heap; `--optimize-for-size` makes it grow
 *   by small steps, at the cost of more garbage collections: the first full sync took 2.5x the
 *   CPU with it at 100,000 pods, so it is set only once that sync is enforced (`settleMemory`),
 *   together with one full collection of the sync's garbage;
 * - glibc raises its mmap threshold each time a large block is freed, so later list pages and
 *   JSON buffers (hundreds of KiB to MiBs) come from the brk heap, which it rarely returns; a
 *   fixed threshold keeps large blocks mmapped, and unmapped when freed.
 *
 * V8 reads the old generation's flags whenever it sizes it, so the agent sets those itself at run
 * time. WEIR_AGENT_V8_FLAGS="" keeps V8's defaults after the first sync (less CPU per change,
 * 1.5-2x the RSS); other V8 flags in it are set at start instead.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import koffi from 'koffi';

/** Node's options the DaemonSet starts the agent with (charts/weir sets them as NODE_OPTIONS). */
export const AGENT_NODE_OPTIONS = '--max-semi-space-size=1';
/** V8 flags the node agent adds once the first full sync is enforced. */
export const STEADY_V8_FLAGS = '--optimize-for-size';
/** Set (even empty) to keep V8's defaults: "" sets no V8 flag. */
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
 * After the first full sync: V8's lean flags for the steady state, one full collection (the
 * list pages, their parsed objects and the first compile's scratch are garbage now) and malloc's
 * free pages back to the kernel. Returns what was set, for the log.
 */
export function settleMemory(env: NodeJS.ProcessEnv = process.env): string[] {
  const set: string[] = [];
  if (env[V8_FLAGS_ENV] === undefined) {
    v8.setFlagsFromString(STEADY_V8_FLAGS);
    set.push(`V8 ${STEADY_V8_FLAGS}`);
    if (!collect) {
      // Node's documented way to reach V8's gc() without starting the process with --expose-gc
      v8.setFlagsFromString('--expose-gc');
      collect = vm.runInNewContext('gc') as () => void;
    }
    collect();
    set.push("collected the first sync's garbage");
  }
  malloc()?.trim(0);
  return set;
}
