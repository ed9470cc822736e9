/** Sizes of the side-by-side bench, from the environment. */
import { cpus } from 'node:os';

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

/**
 * WEIR_BENCH_QUICK=1: one round of one second per measurement.
 * Otherwise five rounds of one second at 10 and 10,000 rules (each round of each rule count costs
 * about a minute for the four modes, mostly tool start-up and programming; more, shorter rounds give
 * the goals' intervals more samples than fewer, longer ones). WEIR_BENCH_RULES (e.g. "10,1000,10000"),
 * WEIR_BENCH_ROUNDS, WEIR_BENCH_SECONDS and WEIR_BENCH_CHANGE_RATES (label changes/s offered to the
 * agent at scale, default "100,1000") override either. WEIR_BENCH_CPU pins the traffic tools.
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
  };
}
