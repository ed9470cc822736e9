/**
 * Runs agent-scale.js as its own process inside a bench network namespace and reads its
 * result: the weir agent at 10,000 pods (startup, label-change latency under load, RSS).
 */
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './exec.js';
import type { ScaleOptions, ScaleResult } from './agent-scale.js';

export interface ScaleRun {
  netns: string;
  pinRoot: string;
  rates: number[];
  seconds: number;
}

export async function runAgentAtScale(r: ScaleRun): Promise<ScaleResult> {
  const worker = join(dirname(fileURLToPath(import.meta.url)), 'agent-scale.js');
  const opts: ScaleOptions = {
    pinRoot: r.pinRoot,
    rates: r.rates,
    seconds: r.seconds,
    ifPrefix: 'wbn-e',
    saturatedAfterMs: 1000,
  };
  await run('ip', ['netns', 'del', r.netns]).catch(() => undefined);
  await run('ip', ['netns', 'add', r.netns]);
  try {
    // nsenter (not `ip netns exec`) keeps bpffs visible to the agent.
    const { stdout } = await run(
      'nsenter',
      [`--net=/var/run/netns/${r.netns}`, process.execPath, worker, JSON.stringify(opts)],
      {
        timeoutMs: 15 * 60_000,
      },
    );
    const line = stdout.trim().split('\n').pop() ?? '';
    return JSON.parse(line) as ScaleResult;
  } finally {
    await run('ip', ['netns', 'del', r.netns]).catch(() => undefined);
    rmSync(r.pinRoot, { recursive: true, force: true });
  }
}
