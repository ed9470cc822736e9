/**
 * `make bench` suite "sidebyside": the same traffic between two pods, forwarded four ways —
 * no filtering, weir's tc programs with its maps, Calico-style iptables chains with ipsets, and
 * nftables with one verdict map — at each rule count, rounds alternating between the modes
 * (rotated order) so that drift hits all alike. Reports medians over rounds, ratios against no
 * filtering with bootstrap confidence intervals over the paired rounds, programming times, and
 * SVG plots.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { BenchSection } from './run.js';
import { configFromEnv, type SideBySideConfig } from './sidebyside/config.js';
import { countRules, renderRuleset, checkTools } from './sidebyside/calico-iptables.js';
import { iptablesDataplane, noneDataplane, type Dataplane, type Mode } from './sidebyside/dataplane.js';
import { buildRuleSet, type RuleSet } from './sidebyside/rules.js';
import { bootstrap, decide, fmt, median, ratio, spread, type Interval } from './sidebyside/stats.js';
import { nftablesDataplane } from './sidebyside/nftables.js';
import { renderChart, type Series } from './sidebyside/svg.js';
import { createTopology, type Topology } from './sidebyside/topology.js';
import * as traffic from './sidebyside/traffic.js';
import { weirDataplane } from './sidebyside/weir.js';
import { runAgentAtScale } from './sidebyside/scale.js';
import type { ScaleResult } from './sidebyside/agent-scale.js';
import { perUnit } from './bpf-stats.js';
import { CpuMeter, cpuGoalLines, type CpuGoal, type CpuNoise } from './cpu-time.js';
import { PhaseClock } from './phases.js';
import { decidePairs, measurePairs, pairsReport, type ConnPair } from './sidebyside/conn-pairs.js';

const PREFIX = 'wbn';
const OCTET = 250;
const PORTS: traffic.Ports = { latency: 11111, throughput: 11112, connections: 11113 };
const CLIENT_IDENTITY = 256;
const PLOT_DIR = 'docs/bench';
const COLORS: Record<Mode, string> = {
  none: '#555555',
  empty: '#aaaaaa',
  weir: '#1f77b4',
  'weir-noflows': '#9ecae1',
  iptables: '#d62728',
  nftables: '#2ca02c',
};

interface Sample {
  rules: number;
  round: number;
  mode: Mode;
  programMs: number;
  changeMs: number;
  p50: number;
  p99: number;
  gbps: number;
  connPerSec: number;
  /** Run time of the mode's BPF programs per connection, ns, and their runs (bpf_stats pass). */
  bpfNsPerConn?: number;
  bpfRunsPerConn?: number;
  /** CPU time of the bench process (which reads weir's flow events) per connection, µs. */
  benchCpuUsPerConn: number;
  /** Flow events the bench process read per connection (weir). */
  eventsPerConn?: number;
  /** CPU time of the whole machine per connection (/proc/stat, all CPUs, all but idle), µs. */
  machineCpuUsPerConn: number;
  /** CPU time of the connections' tasks per connection (client, server, ksoftirqd, bench process), µs. */
  tasksCpuUsPerConn: number;
  /** Share of the connection measurement the measured CPU was idle (/proc/stat). */
  cpuIdle?: number;
}

interface Cell {
  p50: number;
  p99: number;
  gbps: number;
  connPerSec: number;
  programMs: number;
  changeMs: number;
  /** Fastest round: the run least disturbed by the machine's other work. */
  programBestMs: number;
  changeBestMs: number;
  samples: Sample[];
}

type Log = (msg: string) => void;

/** What the figures are made of; true of every run, whatever its numbers. */
const READING = [
  "- weir's established path never consults policy, so its latency does not move with the rule count. What it adds to no filtering is the two programs a one-way trip crosses (`from_pod` on the client's veth, `to_pod` on the target's), each with a conntrack lookup, and the clsact hooks they run from (the empty mode measures the hooks alone). What it takes away: `from_pod` hands a packet it passed to a pod of the node straight to that pod's veth (local delivery, a FIB lookup and `bpf_redirect`), so weir's packets skip the node's IP forward path that no filtering, the empty program and both netfilter peers take.",
  '- Per connection, a new connection costs weir two verdicts with a conntrack insert each (`from_pod` of the client, `to_pod` of the target) and two flow events; the other packets of the handshake and teardown take the established path. The flow events cost the process that reads them (the agent; here the bench process, on either CPU) more than the programs that emit them: the weir-noflows row shows weir without them.',
  "- iptables' latency does not move with the rule count either: Calico's chains accept established traffic by conntrack first. Its cost is in new connections, which walk the target's policy chains rule by rule (the client's rule is last), hence its connections/s against the rule count. ipsets do not shorten that walk here: each rule names its own peer, so each set holds one address and each rule is still one match.",
  "- nftables with a verdict map does for a new connection what weir does: one lookup keyed by (peer, protocol, port), whatever the number of rules, after conntrack accepted the established traffic. It runs in netfilter's forward hook, weir in tc; both keep their state in the kernel's conntrack (nftables) or their own (weir).",
  '- p99 latency and throughput depend on what else the machine runs; the noise line above says by how much the no-filtering figures alone moved between rounds.',
  "- weir's programming time is mostly the Syncer's JavaScript (encoding keys, canonical CIDRs) rather than the kernel's batch writes; on a loaded machine it swings more than iptables-restore's. Changing one rule re-derives the keys of the whole endpoint, so it grows with the endpoint's entries.",
  "- A label change that gives a pod a new identity rewrites that pod's ipcache entry; the Syncer then bumps the policy revision of the local endpoints whose rules name the old or the new identity (no other verdict can change), in two batched map writes, so that their established connections are judged again on their next packet. Entry diffs write only the entries that came or went (keys are reference counted), so the work per change is the compiler's increment and a few map writes, about a millisecond, whatever the number of entries; what p99 remains is pauses of the agent's one thread: the garbage collector, and a busy machine descheduling it (the noise line gives the load average). Identities a change leaves behind keep their number for the allocator's 30 s grace period, so RSS after the change runs grows with the number of changes made within 30 s.",
];

/** The enforcement check: the client pod gets through, the third pod does not (unless nothing filters). */
async function checkEnforcement(topo: Topology, mode: Mode, connrate: string): Promise<void> {
  const [client, target, other] = [topo.pod('a'), topo.pod('b'), topo.pod('c')];
  const allowed = await traffic.canConnect(client, target, PORTS.connections, connrate);
  const otherGetsIn = await traffic.canConnect(other, target, PORTS.connections, connrate);
  if (!allowed)
    throw new Error(
      `${mode}: the allowed client pod could not connect to the target: the rule set does not match the traffic`,
    );
  const filters = mode !== 'none' && mode !== 'empty';
  if (filters && otherGetsIn)
    throw new Error(`${mode}: a pod no rule allows reached the target: the dataplane is not enforcing`);
  if (!filters && !otherGetsIn)
    throw new Error(`${mode}: the third pod could not connect without any filtering: the topology is broken`);
}

function rotate<T>(xs: T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function measureDataplanes(
  cfg: SideBySideConfig,
  topo: Topology,
  planes: Dataplane[],
  connrate: string,
  cpu: CpuMeter,
  clock: PhaseClock,
  log: Log,
): Promise<{ samples: Sample[]; pairs: ConnPair[] }> {
  const [client, target] = [topo.pod('a'), topo.pod('b')];
  const samples: Sample[] = [];
  const pairs: ConnPair[] = [];
  const nonePlane = planes.find((p) => p.mode === 'none');
  const weirPlane = planes.find((p) => p.mode === 'weir');
  for (const [ni, n] of cfg.ruleCounts.entries()) {
    const set = ruleSet(cfg, topo, n);
    for (let round = 0; round < cfg.rounds; round++) {
      for (const plane of rotate(planes, round + ni)) {
        const programMs = await clock.time('programming', () => plane.enable(set));
        try {
          if (round === 0) await clock.time('checks', () => checkEnforcement(topo, plane.mode, connrate));
          const lat = await clock.time('latency', () =>
            traffic.measureLatency(client, target, PORTS.latency, cfg.seconds, connrate),
          );
          const thr = await clock.time('throughput', () =>
            traffic.measureThroughput(client, target, PORTS.throughput, cfg.seconds),
          );
          const c0 = cfg.cpu === undefined ? undefined : traffic.cpuTimes(cfg.cpu);
          const u0 = process.cpuUsage();
          const m0 = cpu.snapshot();
          const e0 = plane.eventsRead?.();
          const con = await clock.time('connections', () =>
            traffic.measureConnections(client, target, PORTS.connections, cfg.seconds, connrate),
          );
          const e1 = plane.eventsRead?.();
          const m1 = cpu.since(m0);
          const u1 = process.cpuUsage(u0);
          const c1 = cfg.cpu === undefined ? undefined : traffic.cpuTimes(cfg.cpu);
          const prog = plane.programTime?.bind(plane);
          const bpf =
            prog && cfg.bpfStats && n === Math.max(...cfg.ruleCounts)
              ? await clock.time('bpf_stats pass', () =>
                  perUnit(
                    prog,
                    async () =>
                      (await traffic.measureConnections(client, target, PORTS.connections, cfg.seconds, connrate))
                        .connections,
                  ),
                )
              : undefined;
          const changeMs = await clock.time('programming', () => plane.changeOne());
          const conns = Math.max(1, con.connections);
          const s: Sample = {
            rules: n,
            round,
            mode: plane.mode,
            programMs,
            changeMs,
            p50: lat.p50,
            p99: lat.p99,
            gbps: thr.gbps,
            connPerSec: con.perSecond,
            bpfNsPerConn: bpf?.ns,
            bpfRunsPerConn: bpf?.runs,
            benchCpuUsPerConn: (u1.user + u1.system) / conns,
            machineCpuUsPerConn: m1.machineNs / 1000 / conns,
            tasksCpuUsPerConn: (m1.tasksNs / 1000 + con.cpuSeconds * 1e6) / conns,
            eventsPerConn: e0 === undefined || e1 === undefined ? undefined : (e1 - e0) / conns,
            cpuIdle: c0 && c1 ? (c1.idle - c0.idle) / Math.max(1, c1.total - c0.total) : undefined,
          };
          samples.push(s);
          log(
            `  ${String(n).padStart(6)} rules  round ${round + 1}  ${plane.mode.padEnd(8)} p50 ${fmt(s.p50)} us  p99 ${fmt(s.p99)} us  ` +
              `${fmt(s.gbps)} Gbit/s  ${fmt(s.connPerSec)} conn/s  program ${fmt(programMs)} ms  change ${fmt(changeMs)} ms` +
              (bpf ? `  bpf ${fmt(bpf.ns)} ns/conn in ${fmt(bpf.runs)} runs` : '') +
              `  bench cpu ${fmt(s.benchCpuUsPerConn)} us/conn  cpu machine ${fmt(s.machineCpuUsPerConn)} tasks ${fmt(s.tasksCpuUsPerConn)} us/conn`,
          );
        } finally {
          await clock.time('tear-down', () => plane.disable());
        }
      }
      if (nonePlane && weirPlane && cfg.connPairs > 0 && n === Math.max(...cfg.ruleCounts)) {
        const run = { client, target, port: PORTS.connections, connrate, seconds: cfg.pairSeconds, cpu, clock };
        const got = await measurePairs(run, { none: nonePlane, weir: weirPlane }, set, round, cfg.connPairs);
        pairs.push(...got);
        log(
          `  ${String(n).padStart(6)} rules  round ${round + 1}  pairs weir/none ` +
            got
              .map((p) => `${p.first === 'none' ? 'NW' : 'WN'} ${fmt(p.weirConnPerSec / p.noneConnPerSec)}`)
              .join('  '),
        );
      }
    }
  }
  return { samples, pairs };
}

function ruleSet(cfg: SideBySideConfig, topo: Topology, n: number): RuleSet {
  return buildRuleSet({
    rules: n,
    rulesPerPolicy: cfg.rulesPerPolicy,
    octet: OCTET,
    client: { ip: topo.pod('a').ip, identity: CLIENT_IDENTITY },
    benchPorts: [PORTS.latency, PORTS.throughput, PORTS.connections],
  });
}

function cells(samples: Sample[]): Map<string, Cell> {
  const out = new Map<string, Cell>();
  const keys = new Set(samples.map((s) => `${s.rules}|${s.mode}`));
  for (const k of keys) {
    const ss = samples.filter((s) => `${s.rules}|${s.mode}` === k);
    out.set(k, {
      p50: median(ss.map((s) => s.p50)),
      p99: median(ss.map((s) => s.p99)),
      gbps: median(ss.map((s) => s.gbps)),
      connPerSec: median(ss.map((s) => s.connPerSec)),
      programMs: median(ss.map((s) => s.programMs)),
      changeMs: median(ss.map((s) => s.changeMs)),
      programBestMs: Math.min(...ss.map((s) => s.programMs)),
      changeBestMs: Math.min(...ss.map((s) => s.changeMs)),
      samples: ss,
    });
  }
  return out;
}

function cellOf(c: Map<string, Cell>, rules: number, mode: Mode): Cell | undefined {
  return c.get(`${rules}|${mode}`);
}

function writePlots(cfg: SideBySideConfig, c: Map<string, Cell>, modes: Mode[]): string[] {
  mkdirSync(PLOT_DIR, { recursive: true });
  const categories = cfg.ruleCounts.map((n) => n.toLocaleString('en-US'));
  const series = (pick: (cell: Cell) => number): Series[] =>
    modes.map((m) => ({
      name: m,
      color: COLORS[m],
      values: cfg.ruleCounts.map((n) => {
        const cell = cellOf(c, n, m);
        return cell ? pick(cell) : Number.NaN;
      }),
    }));
  const charts = [
    {
      file: 'sidebyside-latency-p50.svg',
      alt: 'Median request/response latency against the number of rules',
      chart: {
        title: 'TCP request/response latency p50 (one way)',
        xLabel: 'policy rules on the target pod',
        yLabel: 'microseconds',
        categories,
        series: series((x) => x.p50),
      },
    },
    {
      file: 'sidebyside-latency-p99.svg',
      alt: '99th percentile request/response latency against the number of rules',
      chart: {
        title: 'TCP request/response latency p99 (one way)',
        xLabel: 'policy rules on the target pod',
        yLabel: 'microseconds',
        categories,
        series: series((x) => x.p99),
      },
    },
    {
      file: 'sidebyside-throughput.svg',
      alt: 'One-stream TCP throughput against the number of rules',
      chart: {
        title: 'One TCP stream throughput',
        xLabel: 'policy rules on the target pod',
        yLabel: 'Gbit/s',
        categories,
        series: series((x) => x.gbps),
      },
    },
    {
      file: 'sidebyside-connections.svg',
      alt: 'New connections per second against the number of rules',
      chart: {
        title: 'New TCP connections per second (sequential)',
        xLabel: 'policy rules on the target pod',
        yLabel: 'connections/s',
        categories,
        series: series((x) => x.connPerSec),
      },
    },
  ];
  for (const ch of charts) writeFileSync(join(PLOT_DIR, ch.file), renderChart(ch.chart));
  return charts.map((ch) => `![${ch.alt}](bench/${ch.file})`);
}

/** Per-round ratio a/b of one figure (both modes measured in the same round), with its bootstrap interval. */
function pairedRatio(samples: Sample[], rules: number, a: Mode, b: Mode, pick: (x: Sample) => number): Interval {
  const per: number[] = [];
  for (const x of samples.filter((s) => s.rules === rules && s.mode === a)) {
    const y = samples.find((s) => s.rules === rules && s.mode === b && s.round === x.round);
    if (y) per.push(ratio(pick(x), pick(y)));
  }
  return bootstrap(per, median);
}

const has = (samples: Sample[], rules: number, m: Mode): boolean =>
  samples.some((s) => s.rules === rules && s.mode === m);

function medOf(samples: Sample[], rules: number, m: Mode, pick: (x: Sample) => number | undefined): number {
  return median(
    samples
      .filter((s) => s.rules === rules && s.mode === m)
      .map(pick)
      .filter((x): x is number => x !== undefined),
  );
}

/**
 * Where a connection's time goes: 1 / rate per mode, what each adds to no filtering, the run time
 * of the BPF programs (bpf_stats pass), the bench process's CPU (it reads weir's flow events), and
 * the bound the empty tc program puts on any dataplane on these hooks.
 */
function perConnection(cfg: SideBySideConfig, samples: Sample[], modes: Mode[]): string[] {
  const L: string[] = [];
  const us = (n: number, m: Mode): number => 1e6 / medOf(samples, n, m, (x) => x.connPerSec);
  const idle = samples.map((s) => s.cpuIdle).filter((x): x is number => x !== undefined);
  L.push(
    '',
    '### Per connection',
    '',
    'Time per connection = 1 / (new connections/s), medians over rounds. The sequential client and the server share one CPU' +
      (idle.length > 0
        ? `, idle for a median ${fmt(median(idle) * 100, 2)}% of the connection measurements (/proc/stat)`
        : '') +
      ': the rate is the CPU time of one connection (both sockets, the packets of the handshake and teardown through two veths ' +
      "and the node's forwarding, plus what the dataplane adds). empty: the empty tc program of weir's object (returns TC_ACT_OK) " +
      "attached on the same clsact hooks as weir's programs, the floor of any tc dataplane. weir-noflows: weir with allowed flows " +
      'off (no event for an allowed new connection). "In BPF programs" is the run time the kernel counts for the programs on the ' +
      'hooks (`kernel.bpf_stats_enabled`, on only for a pass of its own right after each measurement at the highest rule count, since the counting costs ' +
      'every run two clock reads), per connection. "Bench CPU" is the CPU time of the bench process per connection during the ' +
      "measurement (it reads and decodes weir's flow events as the agent does, on either CPU), and the events it read per connection. " +
      '"CPU: tasks" and "CPU: machine" are the CPU time per connection of the tasks that carry the traffic and of the whole machine ' +
      '(see "On CPU time" under Goals).',
    '',
    '| rules | mode | µs per connection | over none (µs) | in BPF programs (µs) | program runs per connection | bench CPU (µs per connection) | flow events per connection | CPU: tasks (µs per connection) | CPU: machine (µs per connection) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const n of cfg.ruleCounts)
    for (const m of modes) {
      if (!has(samples, n, m)) continue;
      const bpf = medOf(samples, n, m, (x) => x.bpfNsPerConn);
      const runs = medOf(samples, n, m, (x) => x.bpfRunsPerConn);
      const ev = medOf(samples, n, m, (x) => x.eventsPerConn);
      L.push(
        `| ${n.toLocaleString('en-US')} | ${m} | ${fmt(us(n, m))} | ${m === 'none' ? '' : fmt(us(n, m) - us(n, 'none'))} | ` +
          `${Number.isFinite(bpf) ? fmt(bpf / 1000) : ''} | ${Number.isFinite(runs) ? fmt(runs) : ''} | ` +
          `${fmt(medOf(samples, n, m, (x) => x.benchCpuUsPerConn))} | ${Number.isFinite(ev) ? fmt(ev) : ''} | ` +
          `${fmt(medOf(samples, n, m, (x) => x.tasksCpuUsPerConn))} | ${fmt(medOf(samples, n, m, (x) => x.machineCpuUsPerConn))} |`,
      );
    }
  const hi = Math.max(...cfg.ruleCounts);
  if (has(samples, hi, 'empty') && has(samples, hi, 'weir')) {
    const hiS = hi.toLocaleString('en-US');
    const conn = (x: Sample): number => x.connPerSec;
    const d = us(hi, 'none');
    const e = us(hi, 'empty');
    const w = us(hi, 'weir');
    const floor = pairedRatio(samples, hi, 'empty', 'none', conn);
    const net = pairedRatio(samples, hi, 'weir', 'empty', conn);
    const budget = d / 0.95 - d;
    const bpfW = medOf(samples, hi, 'weir', (x) => x.bpfNsPerConn) / 1000;
    const bpfE = medOf(samples, hi, 'empty', (x) => x.bpfNsPerConn) / 1000;
    const bpfNet = bpfW - bpfE;
    const cpuW =
      medOf(samples, hi, 'weir', (x) => x.benchCpuUsPerConn) - medOf(samples, hi, 'none', (x) => x.benchCpuUsPerConn);
    L.push(
      '',
      `**What the floor allows.** At ${hiS} rules a connection takes ${fmt(d)} µs with no filtering and ${fmt(e)} µs with the ` +
        `empty program on weir's hooks (${e >= d ? '+' : ''}${fmt(e - d)} µs: the floor of any dataplane on these hooks; bpf_stats counts its ` +
        `runs at ${fmt(bpfE)} µs per connection, mostly the counting's own clock reads, since the program does nothing). ` +
        `weir takes ${fmt(w)} µs (${w >= d ? '+' : ''}${fmt(w - d)} µs): bpf_stats counts its programs at ${fmt(bpfW)} µs per connection, ` +
        `${fmt(bpfNet)} µs more than the empty program's, and reading its flow events took the bench process ${fmt(cpuW)} µs ` +
        `of CPU per connection more than no filtering; against that, its local delivery skips the node's forward path for every ` +
        `packet from_pod passes. A tc dataplane that did nothing at all reaches ${fmt(floor.estimate)} [${fmt(floor.lo)}, ${fmt(floor.hi)}] ` +
        `of no filtering's connections/s here; weir reaches ${fmt(net.estimate)} [${fmt(net.lo)}, ${fmt(net.hi)}] of that empty program's. ` +
        `The goal of 0.95 of no filtering allows any dataplane +${fmt(budget)} µs per connection; the empty hooks take ` +
        `${fmt(Math.max(0, e - d))} µs of it${e - d >= budget ? ', all of it: no dataplane on these hooks can meet the goal on this machine unless it takes work off the node, as local delivery does' : `, leaving ${fmt(budget - Math.max(0, e - d))} µs for a dataplane's own work`}.` +
        ` One-way latency p50 / no filtering, same rounds: the empty program ${fmt(pairedRatio(samples, hi, 'empty', 'none', (x) => x.p50).estimate)}, ` +
        `weir ${fmt(pairedRatio(samples, hi, 'weir', 'none', (x) => x.p50).estimate)} (goal ≤ 1.05).`,
    );
  }
  return L;
}

function decidedGoals(cfg: SideBySideConfig, samples: Sample[], pairs: ConnPair[]): string[] {
  const hi = Math.max(...cfg.ruleCounts);
  const hiS = hi.toLocaleString('en-US');
  const conn = (x: Sample): number => x.connPerSec;
  /** goal, target, ratio, outcome, digits (4 where a bound near the target must not round onto it). */
  const rows: Array<[string, string, Interval, string, number?]> = [];
  const add = (goal: string, target: number, atLeast: boolean, x: Interval): void => {
    rows.push([goal, `${atLeast ? '≥' : '≤'} ${target}`, x, decide(x, target, atLeast)]);
  };
  const connGoal = `weir new connections/s at ${hiS} rules / no filtering`;
  const byPairs = pairs.length > 0 ? decidePairs(pairs, 0.95) : undefined;
  if (byPairs)
    rows.push([
      `${connGoal} (connection pairs, below)`,
      '≥ 0.95',
      byPairs.wall,
      byPairs.decidedOn.startsWith('wall time: ') ? byPairs.decidedOn.slice('wall time: '.length) : byPairs.decidedOn,
      4,
    ]);
  add(
    byPairs ? `${connGoal} (per round; decided on the pairs)` : connGoal,
    0.95,
    true,
    pairedRatio(samples, hi, 'weir', 'none', conn),
  );
  add(
    `weir new connections/s at ${hiS} rules / iptables (ipsets)`,
    1,
    true,
    pairedRatio(samples, hi, 'weir', 'iptables', conn),
  );
  add(
    `weir new connections/s at ${hiS} rules / nftables (verdict map)`,
    1,
    true,
    pairedRatio(samples, hi, 'weir', 'nftables', conn),
  );
  add(
    `weir latency p50 at ${hiS} rules / no filtering`,
    1.05,
    false,
    pairedRatio(samples, hi, 'weir', 'none', (x) => x.p50),
  );
  add(
    `weir latency p99 at ${hiS} rules / no filtering`,
    1.05,
    false,
    pairedRatio(samples, hi, 'weir', 'none', (x) => x.p99),
  );
  const L = [
    '',
    `Goals decided on intervals: each ratio is taken per round (both modes measured in the same round, so drift between rounds cancels), ` +
      `its median over the ${cfg.rounds} rounds, and a 95% bootstrap interval (2,000 resamples of the rounds). A goal is met or missed only when the whole interval ` +
      `lies on one side of its target; otherwise it is undecided on this machine with this many rounds (WEIR_BENCH_ROUNDS raises them).`,
    '',
    '| goal | target | median ratio | 95% interval | |',
    '|---|---|---:|---|---|',
    ...rows.map(
      ([g, t, x, d, n = 3]) => `| ${g} | ${t} | ${fmt(x.estimate, n)} | [${fmt(x.lo, n)}, ${fmt(x.hi, n)}] | ${d} |`,
    ),
  ];
  const others = (['iptables', 'nftables'] as const).map((m) => {
    const x = pairedRatio(samples, hi, m, 'none', conn);
    return `${m} ${fmt(x.estimate)} [${fmt(x.lo)}, ${fmt(x.hi)}]`;
  });
  L.push('', `The peers' new connections/s at ${hiS} rules / no filtering, same method: ${others.join('; ')}.`);
  if (byPairs) L.push(...pairsReport(byPairs, connGoal, 0.95, cfg.connPairs, cfg.pairSeconds));
  const onCpu = (peer: Mode, goal: string, target: number): CpuGoal => ({
    goal,
    target,
    wall: pairedRatio(samples, hi, 'weir', peer, conn),
    tasks: pairedRatio(samples, hi, peer, 'weir', (x) => x.tasksCpuUsPerConn),
    machine: pairedRatio(samples, hi, peer, 'weir', (x) => x.machineCpuUsPerConn),
    decidedElsewhere: peer === 'none' && byPairs ? `connection pairs (above): ${byPairs.decidedOn}` : undefined,
  });
  const peers = (['none', 'iptables', 'nftables'] as const).filter((m) => has(samples, hi, m));
  if (has(samples, hi, 'weir') && peers.length > 1)
    L.push(
      ...cpuGoalLines(
        peers.map((m) =>
          onCpu(
            m,
            `weir new connections/s at ${hiS} rules / ${m === 'none' ? 'no filtering' : m}`,
            m === 'none' ? 0.95 : 1,
          ),
        ),
        cfg.rounds > 1 ? baselineNoise(cfg, samples) : undefined,
      ),
    );
  return L;
}

/** How much the no-filtering runs moved between rounds: connections/s and both CPU figures (median over rule counts). */
function baselineNoise(cfg: SideBySideConfig, samples: Sample[]): CpuNoise {
  const of = (pick: (x: Sample) => number): number =>
    median(cfg.ruleCounts.map((n) => spread(samples.filter((s) => s.rules === n && s.mode === 'none').map(pick))));
  return {
    wall: of((x) => x.connPerSec),
    tasks: of((x) => x.tasksCpuUsPerConn),
    machine: of((x) => x.machineCpuUsPerConn),
  };
}

function goalRow(goal: string, target: string, value: number, ok: boolean, digits = 3): string {
  return `| ${goal} | ${target} | ${fmt(value, digits)} | ${Number.isFinite(value) ? (ok ? 'met' : '**missed**') : 'not measured'} |`;
}

function report(
  cfg: SideBySideConfig,
  topo: Topology,
  samples: Sample[],
  modes: Mode[],
  weirNote: string,
  phases: string,
  pairs: ConnPair[],
  scale?: ScaleResult,
): string {
  const c = cells(samples);
  const L: string[] = [];
  L.push(
    `Two pods in network namespaces joined by veths to a "node" namespace that routes between them; ` +
      `enforcement on the node-side veths. Modes per round in rotated order (${cfg.rounds} round(s), ` +
      `${cfg.seconds} s per measurement${cfg.quick ? ', quick mode' : ''}); figures are medians over rounds. ` +
      `${cfg.cpu === undefined ? 'Traffic tools not pinned. ' : `Client and server of every tool pinned to CPU ${cfg.cpu} (one CPU carries both ends and the forwarding). `}` +
      `The target pod is isolated for ingress by N rules (${cfg.rulesPerPolicy} per NetworkPolicy), each allowing one peer pod on a port; ` +
      `the rule that admits the client is the last one. iptables: Calico-style chains (iptables-nft) with an ipset per peer selector, ` +
      `conntrack accepting established traffic first, as Calico writes them. nftables: conntrack first, then one verdict-map lookup ` +
      `keyed by (source address, protocol, port) per new connection. IPv4, TCP. weir: allowed flows on (the default), ` +
      `its flow events read from the ring and decoded by the bench process as the agent does.`,
  );
  if (weirNote) L.push('', weirNote);
  L.push('', `Where the suite's wall time went, by phase: ${phases}.`);
  L.push('', '### Datapath', '');
  L.push(
    '| rules | mode | latency p50 (µs) | p99 (µs) | throughput (Gbit/s) | new conn/s | p50 / none | p99 / none | throughput / none | conn/s / none |',
  );
  L.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of cfg.ruleCounts) {
    const base = cellOf(c, n, 'none');
    for (const m of modes) {
      const x = cellOf(c, n, m);
      if (!x || !base) continue;
      L.push(
        `| ${n.toLocaleString('en-US')} | ${m} | ${fmt(x.p50)} | ${fmt(x.p99)} | ${fmt(x.gbps)} | ${fmt(x.connPerSec)} | ` +
          `${fmt(ratio(x.p50, base.p50))} | ${fmt(ratio(x.p99, base.p99))} | ${fmt(ratio(x.gbps, base.gbps))} | ${fmt(ratio(x.connPerSec, base.connPerSec))} |`,
      );
    }
  }
  const noise = samples.filter((s) => s.mode === 'none');
  const noiseOf = (pick: (x: Sample) => number): number =>
    median(cfg.ruleCounts.map((n) => spread(noise.filter((s) => s.rules === n).map(pick))));
  if (cfg.rounds > 1) {
    L.push(
      '',
      `Noise of this machine, from the no-filtering runs alone (median over rule counts of (max − min) / median between rounds): ` +
        `p50 ${fmt(noiseOf((x) => x.p50) * 100, 2)}%, p99 ${fmt(noiseOf((x) => x.p99) * 100, 2)}%, ` +
        `throughput ${fmt(noiseOf((x) => x.gbps) * 100, 2)}%, connections/s ${fmt(noiseOf((x) => x.connPerSec) * 100, 2)}%. ` +
        `A ratio closer to 1 than that cannot be told apart from noise; load average at the end: ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs.`,
    );
  }
  L.push(...perConnection(cfg, samples, modes));
  L.push('', '### Programming the rules', '');
  L.push(
    `Each round programs the whole set from empty (weir: the Syncer's full apply into maps; iptables: one ipset restore of the selectors' sets and one iptables-nft-restore of the filter table; nftables: one nft -f of the table), ` +
      `then changes one rule (weir: one DesiredDiff; iptables: iptables-restore --noflush rewriting that policy's chain, as Calico does; nftables: one nft -f transaction deleting and adding the changed policy's map elements). Median of rounds, and the fastest round.`,
    '',
  );
  L.push(
    '| rules | iptables rules written | ipset + iptables-restore (ms) | nft -f (ms) | weir map writes (ms) | iptables / weir | fastest: iptables / weir (ms) | change one rule: iptables (ms) | nftables (ms) | weir (ms) | iptables / weir |',
  );
  L.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const nan = Number.NaN;
  for (const n of cfg.ruleCounts) {
    const ipt = cellOf(c, n, 'iptables');
    const nf = cellOf(c, n, 'nftables');
    const w = cellOf(c, n, 'weir');
    const rules = countRules(
      renderRuleset(ruleSet(cfg, topo, n), { pods: topo.pods, target: topo.pod('b'), ifaceWildcard: `${PREFIX}-+` }),
    );
    L.push(
      `| ${n.toLocaleString('en-US')} | ${rules.toLocaleString('en-US')} | ${fmt(ipt?.programMs ?? nan)} | ${fmt(nf?.programMs ?? nan)} | ${fmt(w?.programMs ?? nan)} | ${fmt(ratio(ipt?.programMs ?? nan, w?.programMs ?? nan))} | ` +
        `${fmt(ipt?.programBestMs ?? nan)} / ${fmt(w?.programBestMs ?? nan)} | ` +
        `${fmt(ipt?.changeMs ?? nan)} | ${fmt(nf?.changeMs ?? nan)} | ${fmt(w?.changeMs ?? nan)} | ${fmt(ratio(ipt?.changeMs ?? nan, w?.changeMs ?? nan))} |`,
    );
  }
  const lo = Math.min(...cfg.ruleCounts);
  const hi = Math.max(...cfg.ruleCounts);
  const wHi = cellOf(c, hi, 'weir');
  const wLo = cellOf(c, lo, 'weir');
  const nHi = cellOf(c, hi, 'none');
  const iHi = cellOf(c, hi, 'iptables');
  const r = (a: number | undefined, b: number | undefined): number => ratio(a ?? nan, b ?? nan);
  const hiS = hi.toLocaleString('en-US');
  const rows: Array<[string, string, number, boolean]> = [];
  for (const [q, pick] of [
    ['p50', (x: Cell) => x.p50],
    ['p99', (x: Cell) => x.p99],
  ] as const) {
    const vsNone = r(wHi && pick(wHi), nHi && pick(nHi));
    const vsSelf = r(wHi && pick(wHi), wLo && pick(wLo));
    rows.push([`weir latency ${q} at ${hiS} rules / no filtering`, '≤ 1.05', vsNone, vsNone <= 1.05]);
    rows.push([`weir latency ${q} at ${hiS} rules / weir at ${lo} rules`, '≤ 1.05', vsSelf, vsSelf <= 1.05]);
  }
  const thr = r(wHi?.gbps, nHi?.gbps);
  rows.push([`weir throughput at ${hiS} rules / no filtering`, '≥ 0.95', thr, thr >= 0.95]);
  const prog = r(iHi?.programMs, wHi?.programMs);
  const progBest = r(iHi?.programBestMs, wHi?.programBestMs);
  rows.push([`iptables-restore / weir map writes, ${hiS} rules (median of rounds)`, '≥ 4', prog, prog >= 4]);
  rows.push([`the same, fastest round of each`, '≥ 4', progBest, progBest >= 4]);
  if (scale) L.push('', scaleReport(scale));
  L.push('', '### Reading these figures', '', ...READING);
  L.push('', '### Goals', '');
  L.push(...decidedGoals(cfg, samples, pairs), '');
  L.push('Other goals, on medians of rounds:', '');
  L.push('| goal | target | measured | |', '|---|---|---:|---|');
  for (const [goal, target, v, ok] of rows) L.push(goalRow(goal, target, v, ok));
  if (scale) L.push(...scaleGoals(scale));
  L.push('', ...writePlots(cfg, c, modes).flatMap((l) => [l, '']));
  return L.join('\n');
}

function scaleReport(x: ScaleResult): string {
  const L: string[] = [];
  L.push('### Control plane at scale', '');
  L.push(
    `The agent as its own process (Store -> PolicyEngine -> DatapathEnforcement -> Syncer -> maps, programs attached to one veth per local pod), ` +
      `fed the control-plane bench's cluster: ${x.pods.toLocaleString('en-US')} pods in ${x.namespaces} namespaces, ${x.policies.toLocaleString('en-US')} NetworkPolicies, 100 nodes; ` +
      `this agent is one node: ${x.localEndpoints} local endpoints, ${x.policyEntries.toLocaleString('en-US')} policy entries, ${x.ipcacheEntries.toLocaleString('en-US')} ipcache entries. ` +
      `A label change moves a random pod to another app (a new identity); changes arrive open-loop at a fixed rate and a change's latency runs from its scheduled arrival until Agent.update() resolves (its entries are in the maps).`,
  );
  L.push('', '| what | measured |', '|---|---:|');
  L.push(
    `| startup: full compile + map programming + attach, one update of every object | ${fmt(x.startupMs)} ms (compile ${fmt(x.startupCompileMs)} ms) |`,
  );
  L.push(
    `| RSS after startup / after the change runs / peak | ${fmt(x.rssAfterStartupMiB)} / ${fmt(x.rssAfterChangesMiB)} / ${fmt(x.peakRssMiB)} MiB |`,
  );
  L.push(
    `| full resync after the changes: map writes needed | ${x.resyncWrites} (0 = the increments left the maps exact) |`,
  );
  L.push(
    '',
    'Delivery "per-turn" is the Kubernetes DaemonSet\'s (NodeAgent: the changes of one event-loop turn, or that arrive while the previous batch is applied, go in as one update); ' +
      '"per-change" is one Agent.update() per change, in order (the lab\'s source).',
    '',
    '| delivery | offered changes/s | issued | realized changes/s | changes per update | p50 (ms) | p99 (ms) | max (ms) | compile p50 (ms) | sustained |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const r of x.rates) {
    L.push(
      `| ${r.delivery} | ${r.rate} | ${r.issued} | ${fmt(r.achievedPerSec)} | ${fmt(r.meanBatch)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ${fmt(r.compileP50Ms)} | ${r.saturated ? '**no**: the agent fell behind, issuing stopped' : 'yes'} |`,
    );
  }
  return L.join('\n');
}

function scaleGoals(x: ScaleResult): string[] {
  const at = (rate: number) => x.rates.find((r) => r.rate === rate && r.delivery === 'per-turn');
  const rows: string[] = [];
  for (const [rate, goal] of [
    [100, 10],
    [1000, 50],
  ] as const) {
    const r = at(rate);
    const v = r ? r.p99Ms : Number.NaN;
    rows.push(
      goalRow(
        `label change -> entries in the maps, p99 at ${rate} changes/s, DaemonSet delivery (ms)`,
        `≤ ${goal}`,
        v,
        !!r && !r.saturated && v <= goal,
      ),
    );
  }
  const MB_PER_MIB = 1.048576;
  const changes = x.rates.reduce((n, r) => n + r.completed, 0).toLocaleString('en-US');
  rows.push(
    goalRow(
      `agent RSS at ${x.pods.toLocaleString('en-US')} pods, after startup (MB)`,
      '≤ 150 MB',
      x.rssAfterStartupMiB * MB_PER_MIB,
      x.rssAfterStartupMiB * MB_PER_MIB <= 150,
    ),
  );
  rows.push(
    goalRow(
      `the same after ${changes} label changes, each a new identity (MB)`,
      '≤ 150 MB',
      x.rssAfterChangesMiB * MB_PER_MIB,
      x.rssAfterChangesMiB * MB_PER_MIB <= 150,
    ),
  );
  return rows;
}

export async function run(log: Log = (m) => process.stdout.write(`${m}\n`)): Promise<BenchSection> {
  const cfg = configFromEnv();
  const clock = new PhaseClock();
  await checkTools('nft');
  traffic.pinTrafficTo(cfg.cpu);
  const topo = await clock.time('set-up', () =>
    createTopology({ prefix: PREFIX, octet: OCTET, pods: ['a', 'b', 'c'] }),
  );
  const planes: Dataplane[] = [];
  let servers: traffic.Servers | undefined;
  try {
    const connrate = await traffic.connrateBinary(join('build', 'bench'));
    servers = await clock.time('set-up', () => traffic.startServers(topo.pod('b'), PORTS, connrate));
    planes.push(
      noneDataplane(),
      iptablesDataplane({ topo, targetPod: 'b', backend: 'nft' }),
      nftablesDataplane({ topo, targetPod: 'b' }),
    );
    const weir = await clock.time('set-up', () =>
      weirDataplane({ topo, targetPod: 'b', pinRoot: `/sys/fs/bpf/${PREFIX}-bench` }),
    );
    planes.push(...weir.planes);
    const chosen = planes.filter((p) => cfg.modes.includes(p.mode));
    const cpu = new CpuMeter([servers.connections.pid]);
    const { samples, pairs } = await measureDataplanes(cfg, topo, chosen, connrate, cpu, clock, log);
    let scale: ScaleResult | undefined;
    if (weir.planes.length > 0 && cfg.scale) {
      log(`  control plane at scale: ${cfg.scaleRates.join(' and ')} label changes/s, ${cfg.scaleSeconds} s each ...`);
      scale = await clock.time('control plane at scale', () =>
        runAgentAtScale({
          netns: `${PREFIX}-cp`,
          pinRoot: `/sys/fs/bpf/${PREFIX}-cp`,
          rates: cfg.scaleRates,
          seconds: cfg.scaleSeconds,
        }),
      );
      log(
        `  startup ${fmt(scale.startupMs)} ms, RSS ${fmt(scale.rssAfterStartupMiB)} MiB, ` +
          scale.rates.map((r) => `${r.delivery} ${r.rate}/s: p99 ${fmt(r.p99Ms)} ms`).join(', '),
      );
    }
    const phases = clock.summary();
    log(`  time by phase: ${phases}`);
    writeFileSync(
      join('build', 'bench', 'sidebyside.json'),
      JSON.stringify({ cfg, samples, pairs, scale, phases: clock.seconds() }, null, 1),
    );
    const modes = cfg.modes.filter((m) => chosen.some((p) => p.mode === m));
    return {
      title: 'Side by side: weir, nftables, iptables, no filtering',
      markdown: report(cfg, topo, samples, modes, weir.note, phases, pairs, scale),
    };
  } finally {
    for (const s of servers?.all ?? []) await s.stop();
    for (const p of planes) await p.close().catch(() => undefined);
    await topo.destroy();
  }
}
