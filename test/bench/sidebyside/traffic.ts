/**
 * The three kinds of traffic the bench sends from the client pod to the target pod:
 * request/response latency (TCP ping-pong), one-stream TCP throughput (iperf3) and sequential new
 * connections per second; ping-pong and connections by connrate, built from connrate.c by the bench.
 * The ping-pong measures what sockperf's TCP ping-pong does, without the two seconds sockperf
 * sleeps before every run (hard-coded), which were most of the side-by-side suites' time.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, runIn, startServer, type Server } from './exec.js';
import type { Pod } from './topology.js';

/**
 * The CPU every traffic tool (client and server) is pinned to, or undefined for none. One CPU
 * for both ends keeps wakeups off the cross-CPU path, whose cost depends on where the scheduler
 * happens to place the two processes (a 7 vs 20 µs bimodal p50 on a busy machine), and makes
 * a dataplane's per-packet work show directly in the figures.
 */
let pinnedCpu: number | undefined;

export function pinTrafficTo(cpu: number | undefined): void {
  pinnedCpu = cpu;
}

function pinned(cmd: string, args: string[]): [string, string[]] {
  return pinnedCpu === undefined ? [cmd, args] : ['taskset', ['-c', String(pinnedCpu), cmd, ...args]];
}

/** Idle and total time of one CPU so far (/proc/stat, clock ticks): how busy the pinned CPU was between two reads. */
export function cpuTimes(cpu: number): { idle: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  const xs = (line ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  return { idle: (xs[3] ?? 0) + (xs[4] ?? 0), total: xs.reduce((a, b) => a + b, 0) };
}

export interface Ports {
  latency: number;
  throughput: number;
  connections: number;
}

export interface LatencyResult {
  /** One-way latency (half the round trip), microseconds. */
  p50: number;
  p99: number;
  samples: number;
}

export interface ThroughputResult {
  gbps: number;
}

export interface ConnectionsResult {
  perSecond: number;
  failures: number;
  /** Connections completed in the run. */
  connections: number;
  /** CPU time the client used in its loop (getrusage), seconds. */
  cpuSeconds: number;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The connection-rate tool: compiled on first use, and again when its source is newer. */
export async function connrateBinary(buildDir: string): Promise<string> {
  // dist/test/bench/sidebyside -> the source sits in test/bench/sidebyside.
  const candidates = [
    join(here, 'connrate.c'),
    join(here, '..', '..', '..', '..', 'test', 'bench', 'sidebyside', 'connrate.c'),
  ];
  const src = candidates.find((p) => existsSync(p));
  if (!src) throw new Error(`connrate.c not found next to ${here}: run the bench from the repository (make bench)`);
  const bin = join(buildDir, 'connrate');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(buildDir, { recursive: true });
    await run('cc', ['-O2', '-Wall', '-Werror', '-o', bin, src], { timeoutMs: 60_000 }).catch((err: unknown) => {
      throw new Error(`could not build the connection-rate tool (install gcc: make deps): ${String(err)}`);
    });
  }
  return bin;
}

/** The servers of the three kinds of traffic in one pod. */
export interface Servers {
  all: Server[];
  /** The connection-rate server (its CPU time is read per measurement). */
  connections: Server;
}

/** Servers for all three kinds of traffic in the target pod. */
export async function startServers(target: Pod, ports: Ports, connrate: string): Promise<Servers> {
  const servers: Server[] = [];
  try {
    servers.push(
      await startServer(target.netns, ...pinned(connrate, ['echo', target.ip, String(ports.latency)]), {
        pattern: /listening/,
      }),
    );
    servers.push(
      await startServer(target.netns, ...pinned('iperf3', ['-s', '-B', target.ip, '-p', String(ports.throughput)]), {
        settleMs: 300,
      }),
    );
    servers.push(
      await startServer(target.netns, ...pinned(connrate, ['server', target.ip, String(ports.connections)]), {
        pattern: /listening/,
      }),
    );
  } catch (err) {
    for (const s of servers) await s.stop();
    throw err;
  }
  return { all: servers, connections: servers[2]! };
}

/** TCP ping-pong for `seconds` (connrate pingpong; the first 0.4 s are not counted). */
export async function measureLatency(
  client: Pod,
  target: Pod,
  port: number,
  seconds: number,
  connrate: string,
): Promise<LatencyResult> {
  const { stdout } = await runIn(
    client.netns,
    ...pinned(connrate, ['pingpong', target.ip, String(port), String(seconds)]),
    { timeoutMs: (seconds + 20) * 1000 },
  );
  return JSON.parse(stdout) as LatencyResult;
}

interface Iperf3Json {
  end?: { sum_received?: { bits_per_second?: number } };
  error?: string;
}

/** One TCP stream for `seconds` (whole seconds: iperf3 treats 0 as "forever"). */
export async function measureThroughput(
  client: Pod,
  target: Pod,
  port: number,
  seconds: number,
): Promise<ThroughputResult> {
  const t = Math.max(1, Math.round(seconds));
  const { stdout } = await runIn(
    client.netns,
    ...pinned('iperf3', ['-c', target.ip, '-p', String(port), '-t', String(t), '-J']),
    {
      timeoutMs: (t + 20) * 1000,
    },
  );
  const r = JSON.parse(stdout) as Iperf3Json;
  const bps = r.end?.sum_received?.bits_per_second;
  if (r.error || bps === undefined) throw new Error(`iperf3 failed: ${r.error ?? 'no receiver summary'}`);
  return { gbps: bps / 1e9 };
}

/** Sequential connect/close from client to target for `seconds`. */
export async function measureConnections(
  client: Pod,
  target: Pod,
  port: number,
  seconds: number,
  connrate: string,
): Promise<ConnectionsResult> {
  const { stdout } = await runIn(
    client.netns,
    ...pinned(connrate, ['client', target.ip, String(port), String(seconds)]),
    {
      timeoutMs: (seconds + 20) * 1000,
    },
  );
  const r = JSON.parse(stdout) as ConnectionsResult;
  return { perSecond: r.perSecond, failures: r.failures, connections: r.connections, cpuSeconds: r.cpuSeconds };
}

/**
 * True when a TCP connection from `client` to `target:port` completes within `seconds` of trying
 * (connrate's client for that long; a SYN the dataplane drops times its attempt out after a second,
 * so none completes).
 */
export async function canConnect(
  client: Pod,
  target: Pod,
  port: number,
  connrate: string,
  seconds = 0.2,
): Promise<boolean> {
  const r = await measureConnections(client, target, port, seconds, connrate);
  return r.perSecond > 0;
}
