/**
 * One ratio measured finely: weir's new connections/s / no filtering's at the highest rule count.
 * Between rounds the baseline itself moves by about as much as the goal's margin, so within each
 * round short connection runs of the two modes go back to back in pairs, in alternating order
 * (none weir | weir none | none weir ...: ABBA, so that a drift within the round biases the pairs
 * of one order one way and the pairs of the other order the other way), each pair giving one ratio.
 * A mode switch happens only inside a pair (the runs at a pair boundary are of the same mode).
 */
import type { CpuMeter } from '../cpu-time.js';
import type { PhaseClock } from '../phases.js';
import type { Dataplane } from './dataplane.js';
import type { RuleSet } from './rules.js';
import { bootstrap, decide, fmt, groupedBootstrap, median, ratio, type Interval } from './stats.js';
import type { Pod } from './topology.js';
import * as traffic from './traffic.js';

export interface ConnPair {
  round: number;
  /** Index of the pair within its round. */
  pair: number;
  /** The mode whose run came first. */
  first: 'none' | 'weir';
  noneConnPerSec: number;
  weirConnPerSec: number;
  /** CPU time of the connections' tasks per connection (client, server, ksoftirqd, bench process), µs. */
  noneTasksUsPerConn: number;
  weirTasksUsPerConn: number;
}

export interface PairRun {
  client: Pod;
  target: Pod;
  port: number;
  connrate: string;
  seconds: number;
  cpu: CpuMeter;
  clock: PhaseClock;
}

async function connections(r: PairRun): Promise<{ perSecond: number; tasksUsPerConn: number }> {
  const m0 = r.cpu.snapshot();
  const con = await traffic.measureConnections(r.client, r.target, r.port, r.seconds, r.connrate);
  const m1 = r.cpu.since(m0);
  const conns = Math.max(1, con.connections);
  if (con.connections === 0) throw new Error('a connection run of the pairs made no connection');
  return { perSecond: con.perSecond, tasksUsPerConn: (m1.tasksNs / 1000 + con.cpuSeconds * 1e6) / conns };
}

/**
 * `pairs` back-to-back pairs of connection runs of `none` and `weir` with `set` programmed; round
 * `round` starts with none when even, with weir when odd, so the pairs of either order are as many.
 * Leaves both planes disabled.
 */
export async function measurePairs(
  r: PairRun,
  planes: { none: Dataplane; weir: Dataplane },
  set: RuleSet,
  round: number,
  pairs: number,
): Promise<ConnPair[]> {
  const out: ConnPair[] = [];
  let on: Dataplane | undefined;
  const use = async (p: Dataplane): Promise<void> => {
    if (on === p) return;
    if (on) await on.disable();
    on = undefined;
    await p.enable(set);
    on = p;
  };
  try {
    for (let k = 0; k < pairs; k++) {
      const first = (k + round) % 2 === 0 ? 'none' : 'weir';
      const order = first === 'none' ? (['none', 'weir'] as const) : (['weir', 'none'] as const);
      const got: Record<string, { perSecond: number; tasksUsPerConn: number }> = {};
      for (const m of order) {
        await r.clock.time('connection pairs: switching', () => use(planes[m]));
        got[m] = await r.clock.time('connection pairs', () => connections(r));
      }
      out.push({
        round,
        pair: k,
        first,
        noneConnPerSec: got.none!.perSecond,
        weirConnPerSec: got.weir!.perSecond,
        noneTasksUsPerConn: got.none!.tasksUsPerConn,
        weirTasksUsPerConn: got.weir!.tasksUsPerConn,
      });
    }
  } finally {
    const last = on;
    if (last) await r.clock.time('connection pairs: switching', () => last.disable());
  }
  return out;
}

/** Per pair: weir's connections/s / none's (wall), and none's CPU time per connection / weir's (tasks). */
export const wallRatio = (p: ConnPair): number => ratio(p.weirConnPerSec, p.noneConnPerSec);
export const tasksRatio = (p: ConnPair): number => ratio(p.noneTasksUsPerConn, p.weirTasksUsPerConn);

export interface PairsDecision {
  pairs: number;
  rounds: number;
  /** Median over all pairs, interval resampling rounds with their pairs (decides). */
  wall: Interval;
  tasks: Interval;
  /** The same median, interval resampling the pairs as if independent (shown for comparison). */
  wallByPair: Interval;
  tasksByPair: Interval;
  /** Median of the pairs of each order: a drift within rounds shows as a difference. */
  noneFirst: number;
  weirFirst: number;
  /** Each round's median pair ratio (wall). */
  roundMedians: number[];
  /** What decides, and the outcome. */
  decidedOn: string;
}

function byRound(pairs: ConnPair[], pick: (p: ConnPair) => number): number[][] {
  const rounds = [...new Set(pairs.map((p) => p.round))].sort((a, b) => a - b);
  return rounds.map((r) => pairs.filter((p) => p.round === r).map(pick));
}

/** The goal weir / none ≥ `target` decided on the pairs: on wall time where its interval decides, else on the tasks' CPU time. */
export function decidePairs(pairs: ConnPair[], target: number): PairsDecision {
  const wall = groupedBootstrap(byRound(pairs, wallRatio));
  const tasks = groupedBootstrap(byRound(pairs, tasksRatio));
  const onWall = decide(wall, target, true);
  const onTasks = decide(tasks, target, true);
  return {
    pairs: pairs.length,
    rounds: new Set(pairs.map((p) => p.round)).size,
    wall,
    tasks,
    wallByPair: bootstrap(pairs.map(wallRatio), median),
    tasksByPair: bootstrap(pairs.map(tasksRatio), median),
    noneFirst: median(pairs.filter((p) => p.first === 'none').map(wallRatio)),
    weirFirst: median(pairs.filter((p) => p.first === 'weir').map(wallRatio)),
    roundMedians: byRound(pairs, wallRatio).map((xs) => median(xs)),
    decidedOn: !onWall.startsWith('undecided')
      ? `wall time: ${onWall}`
      : !onTasks.startsWith('undecided')
        ? `CPU time (tasks): ${onTasks}`
        : `undecided on wall and on CPU time`,
  };
}

/** Wall time and the tasks' CPU time both decide, the opposite way. */
function disagree(d: PairsDecision, target: number): boolean {
  const w = decide(d.wall, target, true);
  const t = decide(d.tasks, target, true);
  return !w.startsWith('undecided') && !t.startsWith('undecided') && w !== t;
}

/** Four digits: an interval's bound this near the target must not round onto it. */
const f4 = (x: number): string => fmt(x, 4);
const ci = (x: Interval): string => `${f4(x.estimate)} [${f4(x.lo)}, ${f4(x.hi)}]`;

/** The report's lines: how the ratio was measured and decided, and the outcome. */
export function pairsReport(
  d: PairsDecision,
  goal: string,
  target: number,
  pairsPerRound: number,
  seconds: number,
): string[] {
  return [
    '',
    `**${goal}, in connection pairs.** Between rounds the no-filtering runs alone move by about as much as this goal's margin, ` +
      `so the goal is decided on a finer measurement: in each of the ${d.rounds} rounds at the highest rule count, after the modes above, ` +
      `${pairsPerRound} pairs of back-to-back ${seconds} s connection runs, one with no filtering and one with weir (rules programmed, ` +
      `allowed flows on), in alternating order (none weir, weir none, none weir, ...; ABBA, rounds starting with either mode in turn), ` +
      `so a drift within a round biases the pairs of the two orders in opposite directions; a switch of mode happens only inside a pair. ` +
      `Each pair gives one ratio, weir's connections/s / no filtering's; the goal takes the median of all ${d.pairs} pairs. ` +
      `The pairs of one round run within seconds of each other and share that round's state of the machine (its other load, ` +
      `clock and caches), so they are not independent: the 95% interval resamples rounds, each with all its pairs (2,000 resamples, ` +
      `the median of the pooled pairs each time); the interval resampling pairs as if independent is shown beside it and does not decide. ` +
      `Decided on wall time when that interval lies on one side of ${target}, else on the tasks' CPU time per connection ` +
      `(no filtering's / weir's, same runs, as under "On CPU time" below), else undecided.`,
    '',
    '| figure | median of pairs | 95% interval, rounds resampled (decides) | 95% interval, pairs resampled |',
    '|---|---:|---|---|',
    `| wall time: weir conn/s / none | ${f4(d.wall.estimate)} | [${f4(d.wall.lo)}, ${f4(d.wall.hi)}] | [${f4(d.wallByPair.lo)}, ${f4(d.wallByPair.hi)}] |`,
    `| CPU time (tasks): none per connection / weir | ${f4(d.tasks.estimate)} | [${f4(d.tasks.lo)}, ${f4(d.tasks.hi)}] | [${f4(d.tasksByPair.lo)}, ${f4(d.tasksByPair.hi)}] |`,
    '',
    `Outcome for ${goal} ≥ ${target}: **${d.decidedOn.replaceAll('**', '')}** (wall ${ci(d.wall)}, CPU time of the tasks ${ci(d.tasks)}). Median ratio of the pairs with no filtering first ` +
      `${fmt(d.noneFirst)}, with weir first ${fmt(d.weirFirst)}; each round's median pair ratio: ${d.roundMedians.map((x) => fmt(x)).join(', ')}.` +
      (disagree(d, target)
        ? ` The tasks' CPU time of the same pairs says otherwise (${ci(d.tasks)}): it also counts the bench process reading ` +
          `weir's flow events (the agent's work; "bench CPU" under "Per connection"), which runs on either CPU and so adds to the ` +
          `wall time of the traffic's CPU only when it runs there; a node whose CPUs were all busy would see weir nearer that figure.`
        : ''),
  ];
}
