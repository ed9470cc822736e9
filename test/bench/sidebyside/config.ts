/** Sizes of the side-by-side bench, from the environment. */
import { cpus } from 'node:os';
import type { Mode } from './dataplane.js';

/** Every mode, in the order of the report's tables. */
export const MODES: Mode[] = ['none', 'empty', 'weir', 'weir-noflows', 'iptables', 'nftables'];

export interface SideBySideConfig {
  /** Rule counts to compare at. */
  ruleCounts: number[];
  /** Rounds per rule count; each round runs every mode once, in a rotated order. */
  rounds: number;
  /** Seconds per traffic measurement (whole seconds). */
  seconds: number;
  /** Rules per NetworkPolicy. */
  rulesPerPolicy: number;
  /** CPU the traffic tools are pinned to (client and server alike); undefined: not pinned. */
  cpu: number | undefined;
  /** Offered pod label changes per second for the control plane at scale. */
  scaleRates: number[];
  /** Seconds of changes per rate. */
  scaleSeconds: number;
  /**
   * Back-to-back pairs of connection runs (no filtering, weir) per round at the highest rule count,
   * in alternating order (ABBA), for the goal weir / no filtering of connections/s; 0: none.
   */
  connPairs: number;
  /** Seconds of each connection run of those pairs. */
  pairSeconds: number;
  /** Modes measured (none always among them). */
  modes: Mode[];
  /** A pass with bpf_stats on after each connection measurement of a BPF dataplane. */
  bpfStats: boolean;
  /** Runs the control plane at scale after the datapath. */
  scale: boolean;
  quick: boolean;
}

function intList(v: string | undefined, name: string): number[] | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 1))
    throw new Error(`${name} must be a comma-separated list of positive integers (got "${v}")`);
  return xs;
}

function int(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new Error(`${name} must be an integer >= ${min} (got "${v}")`);
  return x;
}

/** WEIR_BENCH_CPU: a CPU number, or "none"; default the machine's last CPU. */
function cpuFromEnv(v: string | undefined): number | undefined {
  if (v === 'none') return undefined;
  if (v === undefined || v.trim() === '') return cpus().length - 1;
  const x = Number(v);
  if (!Number.isInteger(x) || x < 0 || x >= cpus().length)
    throw new Error(`WEIR_BENCH_CPU must be "none" or a CPU number 0..${cpus().length - 1} (got "${v}")`);
  return x;
}

function modesFromEnv(v: string | undefined): Mode[] {
  if (v === undefined || v.trim() === '') return MODES;
  const xs = v.split(',').map((x) => x.trim());
  const bad = xs.filter((x) => !(MODES as string[]).includes(x));
  if (bad.length > 0 || !xs.includes('none'))
    throw new Error(`WEIR_BENCH_SIDEBYSIDE_MODES must list modes of ${MODES.join(', ')}, none included (got "${v}")`);
  return MODES.filter((m) => xs.includes(m));
}

/**
 * WEIR_BENCH_QUICK=1: one round of one second per measurement.
 * Otherwise five rounds of one second at 10 and 10,000 rules (each round of each rule count costs
 * about 25 s for the six modes, three quarters of it the measurements themselves; more, shorter
 * rounds give the goals' intervals more samples than fewer, longer ones). WEIR_BENCH_RULES (e.g. "10,1000,10000"),
 * WEIR_BENCH_ROUNDS, WEIR_BENCH_SECONDS and WEIR_BENCH_CHANGE_RATES (label changes/s offered to the
 * agent at scale, default "100,1000") override either. WEIR_BENCH_CPU pins the traffic tools.
 * WEIR_BENCH_SIDEBYSIDE_MODES (e.g. "none,empty,weir") measures only those modes,
 * WEIR_BENCH_BPF_STATS=0 skips the bpf_stats passes, WEIR_BENCH_SCALE=0 the control plane at scale.
 * WEIR_BENCH_CONN_PAIRS: pairs of half-second connection runs (no filtering, weir) per round at the
 * highest rule count (default 6, quick 2; 0 skips them).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): SideBySideConfig {
  const quick = env.WEIR_BENCH_QUICK === '1';
  return {
    quick,
    ruleCounts: intList(env.WEIR_BENCH_RULES, 'WEIR_BENCH_RULES') ?? [10, 10000],
    rounds: int(env.WEIR_BENCH_ROUNDS, 'WEIR_BENCH_ROUNDS', 1) ?? (quick ? 1 : 5),
    seconds: int(env.WEIR_BENCH_SECONDS, 'WEIR_BENCH_SECONDS', 1) ?? 1,
    rulesPerPolicy: 10,
    cpu: cpuFromEnv(env.WEIR_BENCH_CPU),
    scaleRates: intList(env.WEIR_BENCH_CHANGE_RATES, 'WEIR_BENCH_CHANGE_RATES') ?? [100, 1000],
    scaleSeconds: int(env.WEIR_BENCH_SECONDS, 'WEIR_BENCH_SECONDS', 1) ?? (quick ? 1 : 5),
    connPairs: int(env.WEIR_BENCH_CONN_PAIRS, 'WEIR_BENCH_CONN_PAIRS', 0) ?? (quick ? 2 : 6),
    pairSeconds: 0.5,
    modes: modesFromEnv(env.WEIR_BENCH_SIDEBYSIDE_MODES),
    bpfStats: env.WEIR_BENCH_BPF_STATS !== '0',
    scale: env.WEIR_BENCH_SCALE !== '0',
  };
}
