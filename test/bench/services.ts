/**
 * `make bench` suite "services": new TCP connections/s and request/response latency from a client
 * pod to a server pod through a ClusterIP, at 10, 1,000 and 10,000 Services, translated four ways —
 * no translation (the client connects to the pod's own address: the baseline), weir's datapath,
 * weir's datapath with the client connecting to the pod's own address (what weir costs without
 * translating), kube-proxy's iptables chains and kube-proxy's nftables verdict maps — rounds
 * alternating between the modes in a rotated order. Ratios against the baseline and against each
 * other, with bootstrap intervals over the paired rounds, plots, the run time of weir's programs per
 * connection (bpf_stats, in a pass of its own) and what the baseline bounds the ratios to.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { BenchSection } from './run.js';
import { buildCatalog, type Catalog } from './services/catalog.js';
import * as kp from './services/kube-proxy.js';
import { weirServicePlanes } from './services/weir.js';
import { perUnit, type ProgramTime } from './bpf-stats.js';
import { checkTools } from './sidebyside/calico-iptables.js';
import { CpuMeter, cpuGoalLines, type CpuGoal } from './cpu-time.js';
import { PhaseClock } from './phases.js';
import { bootstrap, decide, fmt, median, ratio, spread, type Interval } from './sidebyside/stats.js';
import { renderChart, type Series } from './sidebyside/svg.js';
import { createTopology, type Pod, type Topology } from './sidebyside/topology.js';
import * as traffic from './sidebyside/traffic.js';
import type { Server } from './sidebyside/exec.js';

const PREFIX = 'wbs';
const OCTET = 248;
const VIP_OCTET = 96;
const DEAD_OCTET = 247;
/**
 * The server pod's ports, one set per mode: a server keeps TIME_WAIT for every connection it
 * closed, and a client port reused for a translated connection carries TCP timestamps derived
 * from the VIP, not the pod, so the server would refuse it as old if the modes shared a port.
 */
function podPorts(mode: ServiceMode): traffic.Ports {
  const base = 12100 + 10 * MODES.indexOf(mode);
  return { latency: base + 1, throughput: base + 2, connections: base + 3 };
}
/** Service ports of the measured Service -> the server pod's ports. */
const SERVICE_PORTS = { latency: 80, connections: 81 };
const PLOT_DIR = 'docs/bench';

export type ServiceMode = 'direct' | 'weir' | 'weir-pod' | 'iptables' | 'nftables';
const MODES: ServiceMode[] = ['direct', 'weir', 'weir-pod', 'iptables', 'nftables'];
const COLORS: Record<ServiceMode, string> = {
  direct: '#555555',
  weir: '#1f77b4',
  'weir-pod': '#9ecae1',
  iptables: '#d62728',
  nftables: '#2ca02c',
};

/** One way of reaching the server: programs the Services, then answers where the client connects. */
export interface ServicePlane {
  mode: ServiceMode;
  /** Programs every Service of the catalog; resolves to the programming time, ms. */
  enable(c: Catalog): Promise<number>;
  disable(): Promise<void>;
  close(): Promise<void>;
  /** BPF dataplanes: their programs' cumulative run time (needs bpf_stats on). */
  programTime?(): Promise<ProgramTime>;
}

interface Config {
  counts: number[];
  rounds: number;
  seconds: number;
  cpu: number | undefined;
  quick: boolean;
  modes: ServiceMode[];
  /** A pass with bpf_stats on after each measurement of a BPF dataplane. */
  bpfStats: boolean;
}

function intList(v: string | undefined): number[] | undefined {
  if (!v?.trim()) return undefined;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 1))
    throw new Error(`WEIR_BENCH_SERVICES must be a comma-separated list of positive integers (got "${v}")`);
  return xs;
}

/**
 * WEIR_BENCH_QUICK=1: one round at 10 and 1,000 Services. Otherwise 4 rounds at 10, 1,000 and
 * 10,000. WEIR_BENCH_SERVICES, WEIR_BENCH_ROUNDS and WEIR_BENCH_SECONDS override; WEIR_BENCH_CPU as
 * in the side-by-side (default the last CPU, "none" to not pin); WEIR_BENCH_SERVICE_MODES (e.g.
 * "direct,weir") runs only those modes; WEIR_BENCH_BPF_STATS=0 skips the bpf_stats passes.
 */
function configFromEnv(env = process.env): Config {
  const quick = env.WEIR_BENCH_QUICK === '1';
  const cpuEnv = env.WEIR_BENCH_CPU;
  const cpu = cpuEnv === 'none' ? undefined : cpuEnv?.trim() ? Number(cpuEnv) : cpus().length - 1;
  return {
    quick,
    counts: intList(env.WEIR_BENCH_SERVICES) ?? (quick ? [10, 1000] : [10, 1000, 10000]),
    rounds: Number(env.WEIR_BENCH_ROUNDS ?? '') || (quick ? 1 : 4),
    seconds: Number(env.WEIR_BENCH_SECONDS ?? '') || 1,
    cpu,
    modes: modesFromEnv(env.WEIR_BENCH_SERVICE_MODES),
    bpfStats: env.WEIR_BENCH_BPF_STATS !== '0',
  };
}

function modesFromEnv(v: string | undefined): ServiceMode[] {
  if (!v?.trim()) return MODES;
  const xs = v.split(',').map((s) => s.trim());
  const bad = xs.filter((x) => !(MODES as string[]).includes(x));
  if (bad.length > 0 || !xs.includes('direct'))
    throw new Error(`WEIR_BENCH_SERVICE_MODES must list modes of ${MODES.join(', ')}, direct included (got "${v}")`);
  return xs as ServiceMode[];
}

function directPlane(): ServicePlane {
  return {
    mode: 'direct',
    enable: () => Promise.resolve(0),
    disable: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

function iptablesPlane(topo: Topology): ServicePlane {
  return {
    mode: 'iptables',
    async enable(c) {
      await kp.clearIptables(topo.node);
      return kp.loadIptables(topo.node, c);
    },
    disable: () => kp.clearIptables(topo.node),
    close: () => kp.clearIptables(topo.node),
  };
}

function nftablesPlane(topo: Topology): ServicePlane {
  return {
    mode: 'nftables',
    async enable(c) {
      await kp.clearNftables(topo.node);
      return kp.loadNftables(topo.node, c);
    },
    disable: () => kp.clearNftables(topo.node),
    close: () => kp.clearNftables(topo.node),
  };
}

interface Sample {
  services: number;
  round: number;
  mode: ServiceMode;
  programMs: number;
  p50: number;
  p99: number;
  connPerSec: number;
  /** ns of BPF program run time per connection, and runs per connection (bpf_stats pass). */
  bpfNsPerConn?: number;
  bpfRunsPerConn?: number;
  /** CPU time of the whole machine per connection (/proc/stat, all CPUs, all but idle), µs. */
  machineCpuUsPerConn: number;
  /** CPU time of the connections' tasks per connection (client, server, ksoftirqd, bench process), µs. */
  tasksCpuUsPerConn: number;
  /** Share of the connection measurement the traffic tools' CPU was idle (/proc/stat), when pinned. */
  cpuIdle?: number;
}

/** Idle and total jiffies of one CPU (/proc/stat: user nice system idle iowait irq softirq steal ...). */
type Log = (msg: string) => void;

function rotate<T>(xs: T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

/** Where the client connects: the pod itself without translation, else the measured Service's VIP. */
function destination(mode: ServiceMode, server: Pod, c: Catalog): { pod: Pod; latency: number; connections: number } {
  if (mode === 'direct' || mode === 'weir-pod') return { pod: server, ...podPorts(mode) };
  return { pod: { ...server, ip: c.vip }, latency: SERVICE_PORTS.latency, connections: SERVICE_PORTS.connections };
}

function catalogOf(n: number, server: Pod, mode: ServiceMode): Catalog {
  const ports = podPorts(mode);
  return buildCatalog({
    services: n,
    backendIp: server.ip,
    measuredPorts: [
      { port: SERVICE_PORTS.latency, targetPort: ports.latency },
      { port: SERVICE_PORTS.connections, targetPort: ports.connections },
    ],
    vipOctet: VIP_OCTET,
    deadOctet: DEAD_OCTET,
  });
}

async function measure(
  cfg: Config,
  topo: Topology,
  planes: ServicePlane[],
  connrate: string,
  meters: Map<ServiceMode, CpuMeter>,
  clock: PhaseClock,
  log: Log,
) {
  const [client, server] = [topo.pod('a'), topo.pod('b')];
  const samples: Sample[] = [];
  for (const [ni, n] of cfg.counts.entries()) {
    for (let round = 0; round < cfg.rounds; round++) {
      for (const plane of rotate(planes, round + ni)) {
        const c = catalogOf(n, server, plane.mode);
        const programMs = await clock.time('programming', () => plane.enable(c));
        try {
          const to = destination(plane.mode, server, c);
          // every round, before measuring (nothing to wait for: the kernel does no work left over once
          // nft -f or iptables-restore returned, even after loading or deleting 10,000 Services)
          if (!(await clock.time('checks', () => traffic.canConnect(client, to.pod, to.connections, connrate))))
            throw new Error(
              `${plane.mode}: the client could not connect to ${to.pod.ip}:${to.connections} with ${n} Services programmed`,
            );
          const lat = await clock.time('latency', () =>
            traffic.measureLatency(client, to.pod, to.latency, cfg.seconds, connrate),
          );
          const c0 = cfg.cpu === undefined ? undefined : traffic.cpuTimes(cfg.cpu);
          const meter = meters.get(plane.mode)!;
          const m0 = meter.snapshot();
          const con = await clock.time('connections', () =>
            traffic.measureConnections(client, to.pod, to.connections, cfg.seconds, connrate),
          );
          const m1 = meter.since(m0);
          const c1 = cfg.cpu === undefined ? undefined : traffic.cpuTimes(cfg.cpu);
          const prog = plane.programTime?.bind(plane);
          const bpf =
            prog && cfg.bpfStats
              ? await clock.time('bpf_stats pass', () =>
                  perUnit(
                    prog,
                    async () =>
                      (await traffic.measureConnections(client, to.pod, to.connections, cfg.seconds, connrate))
                        .connections,
                  ),
                )
              : undefined;
          const conns = Math.max(1, con.connections);
          const s: Sample = {
            services: n,
            round,
            mode: plane.mode,
            programMs,
            p50: lat.p50,
            p99: lat.p99,
            connPerSec: con.perSecond,
            bpfNsPerConn: bpf?.ns,
            bpfRunsPerConn: bpf?.runs,
            machineCpuUsPerConn: m1.machineNs / 1000 / conns,
            tasksCpuUsPerConn: (m1.tasksNs / 1000 + con.cpuSeconds * 1e6) / conns,
            cpuIdle: c0 && c1 ? (c1.idle - c0.idle) / Math.max(1, c1.total - c0.total) : undefined,
          };
          samples.push(s);
          log(
            `  ${String(n).padStart(6)} Services  round ${round + 1}  ${plane.mode.padEnd(8)} p50 ${fmt(s.p50)} us  p99 ${fmt(s.p99)} us  ` +
              `${fmt(s.connPerSec)} conn/s  program ${fmt(programMs)} ms` +
              (bpf ? `  bpf ${fmt(bpf.ns)} ns/conn in ${fmt(bpf.runs)} runs` : '') +
              `  cpu machine ${fmt(s.machineCpuUsPerConn)} tasks ${fmt(s.tasksCpuUsPerConn)} us/conn`,
          );
        } finally {
          await clock.time('tear-down', () => plane.disable());
        }
      }
    }
  }
  return samples;
}

function paired(samples: Sample[], n: number, a: ServiceMode, b: ServiceMode, pick: (x: Sample) => number): Interval {
  const per: number[] = [];
  for (const x of samples.filter((s) => s.services === n && s.mode === a)) {
    const y = samples.find((s) => s.services === n && s.mode === b && s.round === x.round);
    if (y) per.push(ratio(pick(x), pick(y)));
  }
  return bootstrap(per, median);
}

/** weir at n Services / weir at the fewest, paired by round. */
function selfRatio(samples: Sample[], lo: number, hi: number, pick: (x: Sample) => number): Interval {
  const per: number[] = [];
  for (const x of samples.filter((s) => s.services === hi && s.mode === 'weir')) {
    const y = samples.find((s) => s.services === lo && s.mode === 'weir' && s.round === x.round);
    if (y) per.push(ratio(pick(x), pick(y)));
  }
  return bootstrap(per, median);
}

function within(x: Interval, lo: number, hi: number): string {
  if (!Number.isFinite(x.lo)) return 'undecided: one round gives no interval';
  if (x.lo >= lo && x.hi <= hi) return 'met';
  if (x.hi < lo || x.lo > hi) return '**missed**';
  return `undecided: the interval is not inside [${lo}, ${hi}]`;
}

function med(samples: Sample[], n: number, m: ServiceMode, pick: (x: Sample) => number): number {
  return median(samples.filter((s) => s.services === n && s.mode === m).map(pick));
}

function plots(cfg: Config, samples: Sample[], modes: ServiceMode[]): string[] {
  mkdirSync(PLOT_DIR, { recursive: true });
  const categories = cfg.counts.map((n) => n.toLocaleString('en-US'));
  const series = (pick: (x: Sample) => number): Series[] =>
    modes.map((m) => ({ name: m, color: COLORS[m], values: cfg.counts.map((n) => med(samples, n, m, pick)) }));
  const charts = [
    {
      file: 'services-connections.svg',
      alt: 'New connections per second through a ClusterIP against the number of Services',
      title: 'New TCP connections per second through a ClusterIP (sequential)',
      yLabel: 'connections/s',
      pick: (x: Sample) => x.connPerSec,
    },
    {
      file: 'services-latency-p50.svg',
      alt: 'Median request/response latency through a ClusterIP against the number of Services',
      title: 'TCP request/response latency p50 through a ClusterIP (one way)',
      yLabel: 'microseconds',
      pick: (x: Sample) => x.p50,
    },
  ];
  for (const ch of charts)
    writeFileSync(
      join(PLOT_DIR, ch.file),
      renderChart({
        title: ch.title,
        xLabel: 'ClusterIP Services on the node',
        yLabel: ch.yLabel,
        categories,
        series: series(ch.pick),
      }),
    );
  return charts.map((ch) => `![${ch.alt}](bench/${ch.file})`);
}

/**
 * The rates as time per connection (1 / rate), what each mode adds to the baseline, the run time of
 * weir's programs per connection (bpf_stats pass), and the bound the baseline puts on the ratio goal.
 */
function perConnection(samples: Sample[], modes: ServiceMode[], counts: number[], hi: number): string[] {
  const L: string[] = [];
  const us = (n: number, m: ServiceMode): number => 1e6 / med(samples, n, m, (x) => x.connPerSec);
  const idle = samples.map((s) => s.cpuIdle).filter((x): x is number => x !== undefined);
  const bpfModes = modes.filter((m) => samples.some((s) => s.mode === m && s.bpfNsPerConn !== undefined));
  L.push(
    '',
    '### Per connection',
    '',
    'Time per connection = 1 / (new connections/s), medians over rounds. The sequential client and the server share one ' +
      `CPU${idle.length > 0 ? `, idle for at most ${fmt(Math.max(...idle) * 100, 2)}% of any connection measurement (/proc/stat)` : ''}: ` +
      "the rate is the CPU time of one connection (both sockets, ~6 packets through two veths and the node's " +
      'forwarding, plus what the dataplane adds; other work on the machine takes its share of that CPU too, alike for ' +
      'every mode since the modes alternate). "In weir\'s programs" is the run ' +
      'time the kernel counts for `from_pod` and `to_pod` (`kernel.bpf_stats_enabled`, on only for a separate pass ' +
      'right after each measurement, since the counting itself costs every run two clock reads), per connection. ' +
      '"CPU: tasks" and "CPU: machine" are the CPU time per connection of the tasks that carry the traffic and of the whole ' +
      'machine (see "On CPU time" under Goals).',
    '',
    "| Services | mode | µs per connection | over direct (µs) | in weir's programs (µs) | program runs per connection | CPU: tasks (µs per connection) | CPU: machine (µs per connection) |",
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const n of counts)
    for (const m of modes) {
      if (!samples.some((s) => s.services === n && s.mode === m)) continue;
      const bpf = bpfModes.includes(m);
      L.push(
        `| ${n.toLocaleString('en-US')} | ${m} | ${fmt(us(n, m))} | ${m === 'direct' ? '' : fmt(us(n, m) - us(n, 'direct'))} | ` +
          `${bpf ? fmt(med(samples, n, m, (x) => (x.bpfNsPerConn ?? Number.NaN) / 1000)) : ''} | ` +
          `${bpf ? fmt(med(samples, n, m, (x) => x.bpfRunsPerConn ?? Number.NaN)) : ''} | ` +
          `${fmt(med(samples, n, m, (x) => x.tasksCpuUsPerConn))} | ${fmt(med(samples, n, m, (x) => x.machineCpuUsPerConn))} |`,
      );
    }
  if (modes.includes('iptables') && modes.includes('weir')) {
    const d = us(hi, 'direct');
    const ipt = us(hi, 'iptables');
    const w = us(hi, 'weir');
    const hiS = hi.toLocaleString('en-US');
    L.push(
      '',
      `**What the baseline allows.** At ${hiS} Services a connection takes ${fmt(d)} µs direct, ${fmt(ipt)} µs through ` +
        `iptables (+${fmt(ipt - d)} µs of rule walking) and ${fmt(w)} µs through weir (+${fmt(w - d)} µs). A dataplane ` +
        `that added nothing at all would reach ${fmt(ipt / d)} times iptables' rate in this measurement; 3 times needs a ` +
        `connection to take at most ${fmt(ipt / 3)} µs, ${ipt / 3 < d ? `less than the ${fmt(d)} µs of the baseline itself: no dataplane can meet the goal on this machine with this client, whatever it costs` : `so weir may add at most ${fmt(ipt / 3 - d)} µs`}.` +
        (w > d
          ? ` Measured against what each dataplane adds to the baseline instead, iptables adds ${fmt((ipt - d) / (w - d))} times what weir adds.`
          : ''),
    );
  }
  return L;
}

function report(cfg: Config, samples: Sample[], modes: ServiceMode[], weirNote: string, phases: string): string {
  const L: string[] = [];
  const counts = cfg.counts;
  const lo = Math.min(...counts);
  const hi = Math.max(...counts);
  L.push(
    `A client pod and a server pod in network namespaces, routed by a "node" namespace. N ClusterIP Services, each with two ` +
      `endpoints (addresses no packet reaches), plus the measured Service (in the middle of kube-proxy's list, its average place) ` +
      `whose only endpoint is the server pod. direct: the client connects to the pod's own address, nothing translates (the ` +
      `baseline). weir: the datapath's Services maps written by the Syncer; translation on the client's veth before policy (no ` +
      `policy isolates either pod). weir-pod: the same datapath and Services, the client connecting to the pod's own address ` +
      `(weir's cost without translation). iptables: kube-proxy's nat chains (KUBE-SERVICES -> KUBE-SVC-* with the statistic module -> ` +
      `KUBE-SEP-* DNAT, iptables-nft). nftables: kube-proxy's nftables mode (a service-ips verdict map, numgen per Service, ` +
      `endpoint chains). ${cfg.rounds} round(s) per Service count, modes in rotated order, ${cfg.seconds} s per measurement` +
      `${cfg.cpu === undefined ? '' : `, the traffic tools pinned to CPU ${cfg.cpu}`}${cfg.quick ? ', quick mode' : ''}; figures are medians over rounds. IPv4, TCP.`,
  );
  if (weirNote) L.push('', weirNote);
  L.push('', `Where the suite's wall time went, by phase: ${phases}.`);
  L.push(
    '',
    '| Services | mode | new conn/s | latency p50 (µs) | p99 (µs) | conn/s / direct | p50 / direct | programming (ms) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const n of counts)
    for (const m of modes) {
      const ss = samples.filter((s) => s.services === n && s.mode === m);
      if (ss.length === 0) continue;
      const conn = med(samples, n, m, (x) => x.connPerSec);
      const p50 = med(samples, n, m, (x) => x.p50);
      L.push(
        `| ${n.toLocaleString('en-US')} | ${m} | ${fmt(conn)} | ${fmt(p50)} | ${fmt(med(samples, n, m, (x) => x.p99))} | ` +
          `${fmt(
            ratio(
              conn,
              med(samples, n, 'direct', (x) => x.connPerSec),
            ),
          )} | ${fmt(
            ratio(
              p50,
              med(samples, n, 'direct', (x) => x.p50),
            ),
          )} | ` +
          `${fmt(med(samples, n, m, (x) => x.programMs))} |`,
      );
    }
  const direct = samples.filter((s) => s.mode === 'direct');
  if (cfg.rounds > 1) {
    const noise = (pick: (x: Sample) => number): number =>
      median(counts.map((n) => spread(direct.filter((s) => s.services === n).map(pick))));
    L.push(
      '',
      `Noise of this machine, from the direct runs alone ((max − min) / median between rounds): connections/s ` +
        `${fmt(noise((x) => x.connPerSec) * 100, 2)}%, p50 ${fmt(noise((x) => x.p50) * 100, 2)}%; load average at the end ` +
        `${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs.`,
    );
  }
  if (modes.includes('weir')) {
    const rows: string[] = [];
    const hiS = hi.toLocaleString('en-US');
    const conn = (x: Sample): number => x.connPerSec;
    const p50 = (x: Sample): number => x.p50;
    const row = (goal: string, target: string, x: Interval, verdict: string): void => {
      rows.push(`| ${goal} | ${target} | ${fmt(x.estimate)} | [${fmt(x.lo)}, ${fmt(x.hi)}] | ${verdict} |`);
    };
    const x1 = paired(samples, hi, 'weir', 'iptables', conn);
    row(`weir new connections/s at ${hiS} Services / iptables`, '≥ 3', x1, decide(x1, 3, true));
    const x2 = selfRatio(samples, lo, hi, conn);
    row(`weir new connections/s at ${hiS} / at ${lo} Services`, 'within [0.95, 1.05]', x2, within(x2, 0.95, 1.05));
    const x3 = selfRatio(samples, lo, hi, p50);
    row(`weir latency p50 at ${hiS} / at ${lo} Services`, 'within [0.95, 1.05]', x3, within(x3, 0.95, 1.05));
    const x4 = paired(samples, hi, 'weir', 'nftables', conn);
    row(`weir new connections/s at ${hiS} Services / nftables`, '≥ 1', x4, decide(x4, 1, true));
    L.push(
      '',
      '### Goals',
      '',
      `Each ratio is taken per round (both figures from the same round), its median over the rounds, and a 95% bootstrap ` +
        `interval. A goal is met or missed only when the whole interval is on one side; "does not move" is read as ` +
        `within ±5%, the machine's usual noise.`,
      '',
      '| goal | target | median ratio | 95% interval | |',
      '|---|---|---:|---|---|',
      ...rows,
    );
    const onCpu = (peer: ServiceMode, target: number): CpuGoal => ({
      goal: `weir new connections/s at ${hiS} Services / ${peer}`,
      target,
      wall: paired(samples, hi, 'weir', peer, conn),
      tasks: paired(samples, hi, peer, 'weir', (x) => x.tasksCpuUsPerConn),
      machine: paired(samples, hi, peer, 'weir', (x) => x.machineCpuUsPerConn),
    });
    const peers = (['iptables', 'nftables'] as const).filter((m) => modes.includes(m));
    const noise = (pick: (x: Sample) => number): number =>
      median(counts.map((n) => spread(direct.filter((s) => s.services === n).map(pick))));
    if (peers.length > 0)
      L.push(
        ...cpuGoalLines(
          peers.map((m) => onCpu(m, m === 'iptables' ? 3 : 1)),
          cfg.rounds > 1
            ? {
                wall: noise((x) => x.connPerSec),
                tasks: noise((x) => x.tasksCpuUsPerConn),
                machine: noise((x) => x.machineCpuUsPerConn),
              }
            : undefined,
        ),
      );
  }
  L.push(...perConnection(samples, modes, counts, hi));
  L.push(
    '',
    '### Reading these figures',
    '',
    "- kube-proxy's iptables mode walks KUBE-SERVICES rule by rule for every new connection: its connections/s fall with the number of Services. Established packets are translated by conntrack and never see the chains, so its latency barely moves.",
    "- kube-proxy's nftables mode looks a new connection up in one verdict map, whatever the number of Services; it pays netfilter conntrack and NAT for every packet.",
    "- weir looks the frontend up in a hash map on the client's veth, picks a backend once per connection and remembers it (a client port used again overwrites its entries in place); replies whose conntrack entry marks a translated connection are translated back from one per-connection entry. Its cost does not depend on how many Services exist.",
    "- weir-pod is weir's datapath on both veths without translation (parsing, conntrack, the first packet's verdict and flow event, on ~6 packets each through two programs): weir − weir-pod is what translation adds, weir-pod − direct what the rest of weir adds.",
    '',
    ...plots(cfg, samples, modes).flatMap((l) => [l, '']),
  );
  return L.join('\n');
}

export async function run(log: Log = (m) => process.stdout.write(`${m}\n`)): Promise<BenchSection> {
  const cfg = configFromEnv();
  const clock = new PhaseClock();
  await checkTools('nft');
  traffic.pinTrafficTo(cfg.cpu);
  const topo = await clock.time('set-up', () => createTopology({ prefix: PREFIX, octet: OCTET, pods: ['a', 'b'] }));
  const planes: ServicePlane[] = [];
  const servers: Server[] = [];
  try {
    const connrate = await traffic.connrateBinary(join('build', 'bench'));
    const meters = new Map<ServiceMode, CpuMeter>();
    for (const m of cfg.modes) {
      const s = await clock.time('set-up', () => traffic.startServers(topo.pod('b'), podPorts(m), connrate));
      servers.push(...s.all);
      meters.set(m, new CpuMeter([s.connections.pid]));
    }
    planes.push(directPlane(), iptablesPlane(topo), nftablesPlane(topo));
    const weir =
      cfg.modes.includes('weir') || cfg.modes.includes('weir-pod')
        ? await clock.time('set-up', () => weirServicePlanes({ topo, pinRoot: `/sys/fs/bpf/${PREFIX}-bench` }))
        : { planes: [], note: '' };
    planes.splice(1, 0, ...weir.planes);
    planes.splice(0, planes.length, ...planes.filter((p) => cfg.modes.includes(p.mode)));
    const samples = await measure(cfg, topo, planes, connrate, meters, clock, log);
    const phases = clock.summary();
    log(`  time by phase: ${phases}`);
    mkdirSync(join('build', 'bench'), { recursive: true });
    writeFileSync(
      join('build', 'bench', 'services.json'),
      JSON.stringify({ cfg, samples, phases: clock.seconds() }, null, 1),
    );
    const modes = MODES.filter((m) => planes.some((p) => p.mode === m));
    return {
      title: 'Services: weir against kube-proxy (iptables, nftables)',
      markdown: report(cfg, samples, modes, weir.note, phases),
    };
  } finally {
    for (const s of servers) await s.stop();
    for (const p of planes) await p.close().catch(() => undefined);
    await topo.destroy();
  }
}
