/**
 * The node agent's memory settings (agent/node/memory.ts): malloc's threshold fixed at start, V8
 * flags only from WEIR_AGENT_V8_FLAGS, memory settled (V8's critical memory pressure through the
 * addon, then malloc_trim) once the first sync is enforced and when the agent is quiet after a
 * burst. What they save is measured on the real agent process by the `agentmem` bench
 * (docs/benchmarks.md).
 */
import v8 from 'node:v8';
import { leanStart, MemorySettler, MMAP_THRESHOLD_BYTES, settleMemory, V8_FLAGS_ENV } from '../../agent/node/memory.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const newSpace = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

describe('agent memory settings', () => {
  it('fixes the malloc threshold at start and sets V8 flags only as asked', () => {
    const settles = "settles by V8's memory-pressure notification";
    expect(leanStart({})).toEqual([`malloc mmap threshold ${MMAP_THRESHOLD_BYTES} bytes`, settles]);
    expect(leanStart({ [V8_FLAGS_ENV]: '--stack-trace-limit=20' })).toEqual([
      `V8 --stack-trace-limit=20 (${V8_FLAGS_ENV})`,
      `malloc mmap threshold ${MMAP_THRESHOLD_BYTES} bytes`,
      settles,
    ]);
  });

  it('collects the garbage at once and gives the young generation its room back', () => {
    let keep: unknown[] = [];
    // short-lived garbage by the million grows the young generation to its largest
    for (let r = 0; r < 20; r++) keep = Array.from({ length: 100_000 }, (_, i) => ({ i, s: `x${i}` }));
    const grown = newSpace();
    const before = v8.getHeapStatistics().used_heap_size;
    keep = [];
    settleMemory();
    expect(keep).toEqual([]);
    expect(v8.getHeapStatistics().used_heap_size).toBeLessThan(before - 5 * 2 ** 20);
    // V8's young generation grows to 2 x 16 MiB under allocation; memory reduction shrinks it
    expect(grown).toBeGreaterThanOrEqual(8 * 2 ** 20);
    expect(newSpace()).toBeLessThanOrEqual(grown / 4);
  });
});

describe('when memory is settled', () => {
  it('at the first sync, then only once a burst is over and quiet', async () => {
    let settles = 0;
    const m = new MemorySettler(() => settles++, { quietMs: 60, minChanges: 10 });
    m.firstSync();
    expect(settles).toBe(1);
    // a burst: a change every 10 ms for 200 ms never leaves 60 ms of quiet
    for (let i = 0; i < 20; i++) {
      m.busy();
      await sleep(10);
      m.changed(1);
    }
    expect(settles).toBe(1);
    await sleep(150);
    expect(settles).toBe(2);
    expect(m.stats().count).toBe(2);
    // too few changes to be worth a pause
    m.changed(9);
    await sleep(150);
    expect(settles).toBe(2);
    // changes being applied hold the settle back
    m.changed(1);
    m.busy();
    await sleep(150);
    expect(settles).toBe(2);
    m.changed(0);
    m.changed(1);
    m.stop();
    await sleep(150);
    expect(settles).toBe(2);
  });

  it('counts the pause each settle takes', () => {
    const m = new MemorySettler(
      () => {
        const end = performance.now() + 20;
        while (performance.now() < end);
      },
      { quietMs: 10, minChanges: 1 },
    );
    m.firstSync();
    const s = m.stats();
    expect(s.count).toBe(1);
    expect(s.lastPauseMs).toBeGreaterThanOrEqual(20);
    expect(s.maxPauseMs).toBe(s.lastPauseMs);
  });
});
