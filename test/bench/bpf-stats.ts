/**
 * The kernel's own count of the time BPF programs run (`kernel.bpf_stats_enabled`: every run of
 * every program adds its duration to the program's `run_time_ns` and one to its `run_cnt`), for
 * benches that account for what a tc dataplane costs per connection. Shared by the `services` and
 * `sidebyside` suites.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tcQuery, type TcPoint, type TcTarget } from '../../maps/tc.js';

/** Cumulative run time of BPF programs (kernel bpf_stats), ns, and how many runs. */
export interface ProgramTime {
  ns: number;
  runs: number;
}

const STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';

/**
 * Runs `f` with the kernel's BPF run-time statistics on (they cost every BPF program two clock
 * reads per run, so figures measured inside are not compared with the others), then restores the
 * setting as it was.
 */
export async function withBpfStats<T>(f: () => Promise<T>): Promise<T> {
  const was = readFileSync(STATS_SYSCTL, 'utf8').trim();
  writeFileSync(STATS_SYSCTL, '1');
  try {
    return await f();
  } finally {
    writeFileSync(STATS_SYSCTL, was);
  }
}

interface ProgInfo {
  run_time_ns?: number;
  run_cnt?: number;
}

async function programTime(id: number): Promise<ProgramTime> {
  const { stdout } = await promisify(execFile)('bpftool', ['prog', 'show', 'id', String(id), '--json']);
  const j = JSON.parse(stdout) as ProgInfo;
  return { ns: j.run_time_ns ?? 0, runs: j.run_cnt ?? 0 };
}

/**
 * Cumulative run time and runs of the programs on the given tc hooks of one interface, each
 * program counted once (one program on both hooks is one counter). The same programs are attached
 * on every pod's interface, so one interface's counts the runs on all of them.
 */
export async function hooksProgramTime(target: TcTarget, points: TcPoint[], what: string): Promise<ProgramTime> {
  const ids = new Set<number>();
  for (const point of points) {
    const id = tcQuery(target, point);
    if (id === undefined) throw new Error(`no program on the ${point} hook of ${what}`);
    ids.add(id);
  }
  const out = { ns: 0, runs: 0 };
  for (const id of ids) {
    const t = await programTime(id);
    out.ns += t.ns;
    out.runs += t.runs;
  }
  return out;
}

/**
 * What the programs ran per unit of work: the counters read before and after `f`, divided by
 * the units `f` reports (connections, say).
 */
export async function perUnit(
  read: () => Promise<ProgramTime>,
  f: () => Promise<number>,
): Promise<{ ns: number; runs: number }> {
  return withBpfStats(async () => {
    const t0 = await read();
    const units = await f();
    const t1 = await read();
    return { ns: (t1.ns - t0.ns) / units, runs: (t1.runs - t0.runs) / units };
  });
}
