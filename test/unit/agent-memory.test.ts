/**
 * The node agent's memory settings (agent/node/memory.ts): malloc's threshold fixed at start, V8
 * flags only from WEIR_AGENT_V8_FLAGS, the first sync's garbage collected once it is enforced.
 * What they save is measured on the real agent process by the `agentmem` bench
 * (docs/benchmarks.md).
 */
import v8 from 'node:v8';
import { leanStart, MMAP_THRESHOLD_BYTES, settleMemory, V8_FLAGS_ENV } from '../../agent/node/memory.js';

describe('agent memory settings', () => {
  it('fixes the malloc threshold at start and sets V8 flags only as asked', () => {
    expect(leanStart({})).toEqual([`malloc mmap threshold ${MMAP_THRESHOLD_BYTES} bytes`]);
    expect(leanStart({ [V8_FLAGS_ENV]: '--stack-trace-limit=20' })).toEqual([
      `V8 --stack-trace-limit=20 (${V8_FLAGS_ENV})`,
      `malloc mmap threshold ${MMAP_THRESHOLD_BYTES} bytes`,
    ]);
  });

  it('after the first sync collects the garbage at once', () => {
    let garbage: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }));
    const before = v8.getHeapStatistics().used_heap_size;
    garbage = undefined;
    settleMemory();
    expect(garbage).toBeUndefined();
    expect(v8.getHeapStatistics().used_heap_size).toBeLessThan(before - 10 * 2 ** 20);
  });
});
