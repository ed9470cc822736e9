/**
 * The weir agent at cluster scale, as its own process (so its RSS is the agent's): the real
 * Agent pipeline (Store -> PolicyEngine -> DatapathEnforcement -> Syncer -> kernel maps,
 * programs attached to one veth per local pod) fed the control-plane bench's cluster
 * (10,000 pods, 500 namespaces, 2,000 policies, 100 nodes; this agent is node-0), then pod label
 * changes arriving open-loop at fixed rates. A change's latency runs from its scheduled arrival
 * to the moment Agent.update() resolves, i.e. its entries are in the maps; queueing counts.
 *
 * Run inside the bench's own network namespace (nsenter keeps bpffs visible):
 *   node agent-scale.js '{"pinRoot": "...", "rates": [100, 1000], "seconds": 5, ...}' (ScaleOptions)
 * Prints one JSON line (ScaleResult).
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { TurnBatcher } from '../../../agent/batcher.js';
import { Agent } from '../../../agent/daemon.js';
import { DatapathEnforcement } from '../../../agent/enforcement.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import type { Pod } from '../../../agent/store/types.js';
import { clusterObjects } from '../controlplane.js';
import { percentile } from './stats.js';

export interface ScaleOptions {
  pinRoot: string;
  rates: number[];
  seconds: number;
  /** Interface name prefix for the pod interfaces (<= 10 characters). */
  ifPrefix: string;
  /** A change that waited longer than this means the rate is not sustained: stop issuing. */
  saturatedAfterMs: number;
}

export interface RateResult {
  rate: number;
  delivery: Delivery;
  /** Mean number of changes per Agent.update(). */
  meanBatch: number;
  issued: number;
  completed: number;
  /** True when the agent fell behind and issuing stopped early. */
  saturated: boolean;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Changes realized per second over the whole run, backlog included. */
  achievedPerSec: number;
  /** Median compiler time of the update a change went in with (ms). */
  compileP50Ms: number;
}

export interface ScaleResult {
  pods: number;
  namespaces: number;
  policies: number;
  localEndpoints: number;
  policyEntries: number;
  ipcacheEntries: number;
  /** Compile + map programming + attach of the whole cluster, one Agent.update(). */
  startupMs: number;
  startupCompileMs: number;
  rssAfterStartupMiB: number;
  rssAfterChangesMiB: number;
  rates: RateResult[];
  /** A full resync after the changes: map writes it had to make (0 = increments were exact). */
  resyncWrites: number;
  peakRssMiB: number;
  heapUsedMiB: number;
}

const NODE = 'node-0';
const NODE_ADDRESS = '192.168.0.1';

function rss(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/**
 * One host-side interface per local pod, in this process's network namespace: a veth pair
 * per pod (this kernel has no dummy driver), the agent enforcing on the "h" end.
 */
function makeInterfaces(prefix: string, count: number): number[] {
  const batch = Array.from(
    { length: count },
    (_, i) => `link add ${prefix}${i}h type veth peer name ${prefix}${i}p\nlink set ${prefix}${i}h up`,
  ).join('\n');
  execFileSync('ip', ['-batch', '-'], { input: `${batch}\n` });
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as {
    ifname: string;
    ifindex: number;
  }[];
  const byName = new Map(links.map((l) => [l.ifname, l.ifindex]));
  return Array.from({ length: count }, (_, i) => {
    const ifindex = byName.get(`${prefix}${i}h`);
    if (ifindex === undefined) throw new Error(`interface ${prefix}${i}h was not created`);
    return ifindex;
  });
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** How changes reach Agent.update(). */
export type Delivery = 'per-change' | 'per-turn';

/**
 * Hands changes to the agent. "per-change": one Agent.update() per change, in order (the lab's
 * source). "per-turn": the Kubernetes DaemonSet's NodeAgent batching (the same TurnBatcher), without an
 * API server: changes that arrive in one turn of the event loop, or while the previous batch is
 * being applied, go in as one update, the last change of each object winning.
 */
class Deliverer {
  readonly batchSizes: number[] = [];
  /** The node agent's delivery: one update per turn of the event loop, the last state of each pod. */
  private readonly turns = new TurnBatcher<{ pod: Pod; done: (compileMs: number) => void }>(
    async (batch) => {
      const last = new Map(batch.map((b) => [`${b.pod.namespace}/${b.pod.name}`, b.pod]));
      this.batchSizes.push(batch.length);
      const r = await this.agent.update([...last.values()]);
      for (const b of batch) b.done(r.compileMs);
    },
    (err) => process.stderr.write(`update failed: ${err instanceof Error ? err.message : String(err)}\n`),
  );

  constructor(
    private readonly agent: Agent,
    private readonly delivery: Delivery,
  ) {}

  deliver(pod: Pod): Promise<number> {
    if (this.delivery === 'per-change') {
      this.batchSizes.push(1);
      return this.agent.update([pod]).then((r) => r.compileMs);
    }
    return new Promise((done) => this.turns.push({ pod, done }));
  }
}

/**
 * Issues label changes at `rate` for `seconds`, open-loop. When the agent falls so far behind
 * that a change has waited longer than `saturatedAfterMs`, issuing stops (the rate is not
 * sustained) and the changes already issued drain. The agent's work runs as one chain of
 * microtasks, so the issuing loop only gets the event loop back between bursts: arrivals are
 * therefore stamped with their scheduled time, never with the time they were issued.
 */
async function runRate(
  agent: Agent,
  pods: Pod[],
  latest: Map<string, Pod>,
  delivery: Delivery,
  rate: number,
  seconds: number,
  saturatedAfterMs: number,
  seq: { n: number },
): Promise<RateResult> {
  const r = rng(rate);
  const deliverer = new Deliverer(agent, delivery);
  const latencies: number[] = [];
  const compiles: number[] = [];
  const total = Math.max(1, Math.round(rate * seconds));
  const start = performance.now();
  const pending: Promise<void>[] = [];
  let issued = 0;
  let saturated = false;
  const arrivalOf = (i: number): number => start + (i * 1000) / rate;
  // Changes complete in order, so the oldest one still waiting is number latencies.length.
  const oldestWaitingMs = (): number =>
    latencies.length < issued ? performance.now() - arrivalOf(latencies.length) : 0;
  while (issued < total && !saturated) {
    const now = performance.now();
    // Issue every change whose arrival time has come (the agent's work may have held the loop).
    while (issued < total && !saturated && arrivalOf(issued) <= now) {
      const arrival = arrivalOf(issued);
      const pod = pods[Math.floor(r() * pods.length)]!;
      const key = `${pod.namespace}/${pod.name}`;
      const cur = latest.get(key) ?? pod;
      const next: Pod = {
        ...cur,
        labels: { ...cur.labels, app: `app-${Math.floor(r() * 5)}`, version: `v${seq.n++}` },
      };
      latest.set(key, next);
      pending.push(
        deliverer.deliver(next).then((compileMs) => {
          const ms = performance.now() - arrival;
          latencies.push(ms);
          compiles.push(compileMs);
          if (ms > saturatedAfterMs) saturated = true;
        }),
      );
      issued++;
    }
    if (oldestWaitingMs() > saturatedAfterMs) saturated = true;
    const wait = arrivalOf(issued) - performance.now();
    await new Promise((res) => setTimeout(res, Math.max(0, Math.min(wait, 20))));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const sizes = deliverer.batchSizes;
  return {
    rate,
    delivery,
    issued,
    completed: latencies.length,
    saturated,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    achievedPerSec: latencies.length / elapsed,
    compileP50Ms: percentile(compiles, 50),
    meanBatch: sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length),
  };
}

export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  const { objects, pods } = clusterObjects();
  const local = pods.filter((p) => p.nodeName === NODE && p.ips.length > 0);
  const ifindexes = makeInterfaces(opts.ifPrefix, local.length);
  const ifindexOf = new Map(local.map((p, i) => [`${p.namespace}/${p.name}`, ifindexes[i]!]));
  rmSync(opts.pinRoot, { recursive: true, force: true });
  const enforcement = new DatapathEnforcement({
    pinRoot: opts.pinRoot,
    ifindexOf: (k) => ifindexOf.get(k),
    nodeAddresses: [NODE_ADDRESS],
  });
  const compiler = new PolicyEngine({ nodeName: NODE, clusterPodCIDRs: ['10.128.0.0/9'] });
  const agent = new Agent({ nodeName: NODE, compiler, enforcement });
  try {
    await agent.start();
    const t0 = performance.now();
    const boot = await agent.update(objects);
    const startupMs = performance.now() - t0;
    const rssAfterStartupMiB = rss();
    const snap = compiler.snapshot();
    const seq = { n: 0 };
    const rates: RateResult[] = [];
    const latest = new Map<string, Pod>();
    for (const delivery of ['per-turn', 'per-change'] as const) {
      for (const rate of opts.rates)
        rates.push(await runRate(agent, pods, latest, delivery, rate, opts.seconds, opts.saturatedAfterMs, seq));
    }
    enforcement.syncer.setDesired(compiler.snapshot());
    const resync = enforcement.syncer.resync();
    return {
      pods: pods.length,
      namespaces: objects.filter((o) => o.kind === 'Namespace').length,
      policies: objects.filter((o) => o.kind === 'NetworkPolicy').length,
      localEndpoints: snap.endpoints.size,
      policyEntries: [...snap.endpoints.values()].reduce((n, e) => n + e.entries.length, 0),
      ipcacheEntries: snap.ipcache.size,
      startupMs,
      startupCompileMs: boot.compileMs,
      rssAfterStartupMiB,
      rssAfterChangesMiB: rss(),
      rates,
      resyncWrites: resync.writes,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      heapUsedMiB: process.memoryUsage().heapUsed / 2 ** 20,
    };
  } finally {
    await agent.close();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as ScaleOptions;
  runScale(opts).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`agent-scale failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
