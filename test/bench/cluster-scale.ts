/**
 * `cluster100k` bench suite: the real node agent process (`weir agent`, as the DaemonSet runs it)
 * against the test API server holding a 100,000-pod cluster shaped as the kubelet and the
 * controllers write it (test/bench/kube-objects.ts): 2,000 namespaces, 1,000 nodes, 10,000
 * NetworkPolicies, 10,000 Services with their EndpointSlices.
 *
 * - First full sync: from spawning the agent until it is ready (every kind listed in pages,
 *   stored, compiled, synced to the maps, its local pods' interfaces attached), and the agent's
 *   own figure; the agent's CPU time from /proc/PID/stat, its RSS from /proc/PID/status.
 * - Label changes at 1,000/s, open loop, through the API server: each gives a remote pod a label
 *   set never seen before (a new identity). The latency of one change runs from its scheduled
 *   time to the moment the pinned `weir_ipcache` map holds the pod's address with its new
 *   identity (neither the old one nor the transit identity `init`), read by polling the map
 *   from this process: API server -> watch -> store -> compiler -> syncer -> kernel.
 *
 * Needs root (the agent loads its programs). Pins go under a pin root of its own; veths, routes,
 * pins and the run dir are removed afterwards. `WEIR_BENCH_PROFILE_DIR=DIR` writes the agent's
 * CPU profiles there (first sync, label changes, the rest; test/bench/cpu-profile.ts);
 * `WEIR_BENCH_HEAP_DIR=DIR` a heap snapshot of the agent once its first sync is enforced.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BenchSection } from './run.js';
import type { ClusterShape } from './kube-objects.js';
import { changedPod, epochMs, NODE, type ReadyMessage, type ServerCommand } from './cluster-apiserver.js';
import { readAgentStatus } from '../../agent/node/status.js';
import { openPinnedMap, type BpfMap } from '../../maps/bpf-map.js';
import { decodeIpcacheValue, encodeIpcacheKey } from '../../maps/codecs/ipcache.js';
import { Identity } from '../../maps/abi.js';
import { bootstrap } from './sidebyside/stats.js';
import { agentCommand, AS_DEPLOYED, cpuSeconds, procMem } from './agent-memory.js';

const QUICK = process.env.WEIR_BENCH_QUICK === '1';
const HEALTH_PORT = 39871;
const METRICS_PORT = 39972;

export const SHAPE: ClusterShape = QUICK
  ? { namespaces: 200, podsPerNs: 50, nodes: 100, policiesPerNs: 5, servicesPerNs: 5, localPods: 100, appsPerNs: 5 }
  : { namespaces: 2000, podsPerNs: 50, nodes: 1000, policiesPerNs: 5, servicesPerNs: 5, localPods: 100, appsPerNs: 5 };
const CHANGES = QUICK ? 2000 : 10_000;
const RATE = 1000;

/**
 * The host-side veths of the agent's local pods, as a CNI leaves them: one veth pair per pod
 * (its peer beside it: no traffic flows) and a /32 route to the pod's IP through it. Returns
 * the removal.
 */
function podVeths(ips: string[]): () => void {
  const names = ips.map((_, i) => `wcs${process.pid % 1000}x${i}`);
  const batch = (lines: string[]): void => {
    const r = spawnSync('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
    if (r.status !== 0 && lines[0]?.startsWith('link add')) throw new Error(`ip -batch: ${r.stderr}`);
  };
  const remove = (): void => batch(names.map((n) => `link del ${n}`));
  try {
    batch(names.map((n) => `link add ${n} type veth peer name ${n}p`));
    batch(names.flatMap((n, i) => [`link set ${n} up`, `link set ${n}p up`, `route replace ${ips[i]}/32 dev ${n}`]));
  } catch (err) {
    remove();
    throw err;
  }
  return remove;
}

/** The agent's own V8 heap figures (prom-client's default metrics), in MiB. */
async function heapOf(): Promise<{ used: number; total: number; external: number }> {
  const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
  const v = (name: string): number => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  return {
    used: v('nodejs_heap_size_used_bytes'),
    total: v('nodejs_heap_size_total_bytes'),
    external: v('nodejs_external_memory_bytes'),
  };
}

interface Status {
  ready: boolean;
  sync: { dirty: number; pending: string[]; failing: Array<{ key: string; error: string }>; writeFailures: number };
  invalidObjects: number;
  rejectedObjects: number;
  endpoints: { enforced: number };
  firstSyncMs?: number;
  revision: number;
  memorySettles?: { count: number; lastPauseMs: number; maxPauseMs: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`cluster100k: timed out waiting for ${what}`);
    await sleep(50);
  }
}

export interface ScaleResult {
  objects: Record<string, number>;
  listBytes: number;
  readyMs: number;
  firstSyncMs: number;
  syncCpuS: number;
  /** V8 heap in use and committed, and external memory (MiB), at ready and after the changes. */
  heapReady: { used: number; total: number; external: number };
  heapAfter: { used: number; total: number; external: number };
  rssReady: number;
  hwmReady: number;
  latenciesMs: number[];
  /** The same from the moment the API server wrote the change to the agent's watch. */
  fromIssueMs: number[];
  changesCpuS: number;
  /** The agent's syncer after the changes: keys failing (with their errors), write failures. */
  syncAfter: Status['sync'];
  /** Load average (1 min) before and after the changes. */
  changesLoad: [number, number];
  rssAfter: number;
  hwm: number;
  /** The agent's memory settles: the pause at the first sync, and after the changes once quiet. */
  settleReadyMs?: number;
  settleAfterMs?: number;
  /** RSS and V8's heap once the agent went quiet after the changes (and settled its memory). */
  rssQuiet: number;
  heapQuiet: { used: number; total: number; external: number };
}

/** The cluster's API server process (cluster-apiserver.ts) and what it reports. */
class ServerProcess {
  private readonly handlers = new Set<(m: { type: string; [k: string]: unknown }) => void>();
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: { type: string }) => {
      for (const h of this.handlers) h(m);
    });
    this.exited = new Promise((r) => child.on('exit', (c) => r(c)));
  }

  send(c: ServerCommand): void {
    this.child.send(c);
  }

  on(h: (m: { type: string; [k: string]: unknown }) => void): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  next<T>(type: string, ms: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cluster100k: the API server process sent no ${type}`)), ms);
      const off = this.on((m) => {
        if (m.type !== type) return;
        clearTimeout(timer);
        off();
        resolve(m as T);
      });
      void this.exited.then((c) => reject(new Error(`cluster100k: the API server process exited (${c})`)));
    });
  }
}

/**
 * Label changes at `rate`/s, open loop, issued by the API server process, each to a different
 * remote pod. Every change is timed from its scheduled moment (and from the moment the server
 * wrote it to the watch streams) until the ipcache map holds the pod's new identity.
 */
async function labelChanges(
  server: ServerProcess,
  ipcache: BpfMap,
  remoteIps: string[],
  count: number,
  rate: number,
): Promise<{ latencies: number[]; fromIssue: number[] }> {
  const identityOf = (key: Buffer): number | undefined => {
    const v = ipcache.lookup(key);
    return v ? decodeIpcacheValue(v) : undefined;
  };
  // What each address resolves to before its change, read before the first change is issued.
  const changes = Array.from({ length: count }, (_, i) => {
    const ip = remoteIps[changedPod(i, remoteIps.length)]!;
    const key = encodeIpcacheKey(ip);
    const old = identityOf(key);
    if (old === undefined) throw new Error(`cluster100k: ${ip} is not in the ipcache`);
    return { key, old, seenAt: 0, issuedAt: 0 };
  });
  const off = server.on((m) => {
    if (m.type === 'issued') for (const [i, at] of m.at as Array<[number, number]>) changes[i]!.issuedAt = at;
  });
  const done = server.next('done', (count / rate) * 1000 + 120_000);
  const t0 = epochMs() + 200;
  server.send({ cmd: 'changes', count, rate, t0 });
  let first = 0;
  const pending = new Set<number>();
  let due = 0;
  try {
    while (first < count) {
      const now = epochMs();
      for (; due < count && t0 + (due / rate) * 1000 <= now; due++) pending.add(due);
      for (const i of pending) {
        const c = changes[i]!;
        const id = identityOf(c.key);
        if (id !== undefined && id !== c.old && id !== Identity.INIT) {
          c.seenAt = now;
          pending.delete(i);
        }
      }
      while (first < count && changes[first]!.seenAt > 0) first++;
      if (now - t0 > (count / rate) * 1000 + 60_000)
        throw new Error(`cluster100k: ${pending.size} label changes not in the ipcache after 60 s`);
      await sleep(1);
    }
    await done;
  } finally {
    off();
  }
  return {
    latencies: changes.map((c, i) => c.seenAt - (t0 + (i / rate) * 1000)),
    fromIssue: changes.map((c) => c.seenAt - c.issuedAt),
  };
}

export async function runScale(shape: ClusterShape, changes: number): Promise<ScaleResult> {
  const server = new ServerProcess(
    fork(join(import.meta.dirname, 'cluster-apiserver.js'), [JSON.stringify(shape)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: ['--max-old-space-size=8192'],
    }),
  );
  try {
    return await withServer(server, await server.next<ReadyMessage>('ready', 300_000), changes);
  } finally {
    if (server.child.connected) server.send({ cmd: 'stop' });
    await Promise.race([server.exited, sleep(10_000)]);
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }
}

async function withServer(server: ServerProcess, ready: ReadyMessage, changes: number): Promise<ScaleResult> {
  const removeVeths = podVeths(ready.localIps);
  const dir = mkdtempSync(join(tmpdir(), 'weir-cluster100k-'));
  const runDir = join(dir, 'run');
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, ready.kubeconfig);
  const pinRoot = `/sys/fs/bpf/weir-cluster100k-${process.pid}`;
  const log = openSync(join(dir, 'agent.log'), 'a');
  // A CPU profile per phase (first sync, label changes): test/bench/cpu-profile.ts.
  const profileDir = process.env.WEIR_BENCH_PROFILE_DIR;
  const extra = profileDir ? ['--import', pathToFileURL(join(import.meta.dirname, 'cpu-profile.js')).href] : [];
  // A heap snapshot once the first sync is enforced (written into this directory).
  const heapDir = process.env.WEIR_BENCH_HEAP_DIR;
  if (heapDir && !profileDir) extra.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`);
  const started = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...extra,
      ...agentCommand({
        kubeconfig,
        node: NODE,
        pinRoot,
        runDir: runDir,
        healthPort: HEALTH_PORT,
        metricsPort: METRICS_PORT,
      }),
    ],
    {
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        ...AS_DEPLOYED.env,
        ...(profileDir ? { WEIR_BENCH_PROFILE_AFTER: join(pinRoot, 'prog_to_pod') } : {}),
      },
    },
  );
  closeSync(log);
  const pid = child.pid!;
  let exited: number | null | undefined;
  child.on('exit', (c) => (exited = c));
  let ipcache: BpfMap | undefined;
  try {
    // Readiness from /readyz, which a worker thread answers (as the kubelet probes it): polling
    // the status page instead would add its cost to the very sync being measured.
    await until('the first sync', 300_000, async () => {
      if (exited !== undefined)
        throw new Error(`the agent exited (${exited}): ${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-3000)}`);
      const r = await fetch(`http://127.0.0.1:${HEALTH_PORT}/readyz`).catch(() => undefined);
      return r?.ok ? true : undefined;
    });
    const readyMs = performance.now() - started;
    const syncCpuS = cpuSeconds(pid);
    // The status page may answer from the last copy the agent handed over: wait for the ready one.
    const st = await until('the ready status', 60_000, async () => {
      const x = await readAgentStatus<Status>(runDir, 30_000).catch(() => undefined);
      return x?.ready && x.firstSyncMs !== undefined ? x : undefined;
    });
    if (profileDir) child.kill('SIGUSR2');
    if (st.invalidObjects !== 0 || st.rejectedObjects !== 0)
      throw new Error(
        `cluster100k: the agent found ${st.invalidObjects} invalid and rejected ${st.rejectedObjects} of the objects the API server sent`,
      );
    if (st.endpoints.enforced !== ready.localIps.length)
      throw new Error(
        `cluster100k: the agent enforces ${st.endpoints.enforced} of its ${ready.localIps.length} pods' interfaces`,
      );
    // The API server process drops its list encodings (less for its collector to trace while
    // the changes are timed).
    server.send({ cmd: 'forget' });
    server.send({ cmd: 'listBytes' });
    const listBytes = (await server.next<{ bytes: number }>('listBytes', 60_000)).bytes;
    await sleep(2000);
    const mem = procMem(pid);
    const heapReady = await heapOf();
    if (heapDir && !profileDir) {
      // written on the agent's main loop: complete once its status answers again
      child.kill('SIGUSR2');
      await sleep(500);
      await readAgentStatus<Status>(runDir, 300_000);
    }
    ipcache = openPinnedMap(join(pinRoot, 'weir_ipcache'));
    const cpu0 = cpuSeconds(pid);
    const load0 = loadavg()[0]!;
    const { latencies, fromIssue } = await labelChanges(server, ipcache, ready.remoteIps, changes, RATE);
    const changesCpuS = cpuSeconds(pid) - cpu0;
    const changesLoad = [load0, loadavg()[0]!] as [number, number];
    if (profileDir) child.kill('SIGUSR2');
    const after = procMem(pid);
    const heapAfter = await heapOf();
    const syncAfter = (await readAgentStatus<Status>(runDir, 30_000)).sync;
    // the agent settles its memory 1.5 s after the last change (agent/node/memory.ts)
    await sleep(3000);
    const rssQuiet = procMem(pid).rss;
    const heapQuiet = await heapOf();
    const settled = (await readAgentStatus<Status>(runDir, 30_000)).memorySettles;
    return {
      objects: ready.counts,
      listBytes,
      readyMs,
      firstSyncMs: st.firstSyncMs ?? NaN,
      syncCpuS,
      heapReady,
      heapAfter,
      rssReady: mem.rss,
      hwmReady: mem.hwm,
      latenciesMs: latencies,
      fromIssueMs: fromIssue,
      changesCpuS,
      changesLoad,
      syncAfter,
      rssAfter: after.rss,
      hwm: after.hwm,
      ...(st.memorySettles ? { settleReadyMs: st.memorySettles.lastPauseMs } : {}),
      ...(settled && settled.count > (st.memorySettles?.count ?? 0) ? { settleAfterMs: settled.lastPauseMs } : {}),
      rssQuiet,
      heapQuiet,
    };
  } finally {
    ipcache?.close();
    if (exited === undefined) {
      child.kill('SIGTERM');
      const end = Date.now() + 10_000;
      while (exited === undefined && Date.now() < end) await sleep(50);
      if (exited === undefined) child.kill('SIGKILL');
    }
    removeVeths();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const MB = (mib: number): number => (mib * 2 ** 20) / 1e6;
const n = (x: number): string => x.toLocaleString('en-US');

export async function run(): Promise<BenchSection> {
  const load0 = loadavg()[0]!;
  process.stdout.write(`  cluster100k: ${n(SHAPE.namespaces * SHAPE.podsPerNs)} pods\n`);
  const r = await runScale(SHAPE, CHANGES);
  const sorted = [...r.latenciesMs].sort((a, b) => a - b);
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  const issued = [...r.fromIssueMs].sort((a, b) => a - b);
  const p99ci = bootstrap(
    r.latenciesMs,
    (xs) =>
      percentile(
        [...xs].sort((a, b) => a - b),
        0.99,
      ),
    {
      iterations: 500,
    },
  );
  const goal = (what: string, target: string, measured: string, ok: boolean): string =>
    `| ${what} | ${target} | ${measured} | ${ok ? 'met' : '**missed**'} |`;
  const o = r.objects;
  const markdown = `
The node agent as the DaemonSet runs it (\`weir agent --kubeconfig …\`, its own process, metrics and flow API on) against the test API server on loopback (a process of its own, which serves each object's JSON encoded once, as the API server's watch cache does, and issues the label changes). The cluster: ${n(o.Pod ?? 0)} Pods in ${n(o.Namespace ?? 0)} namespaces on ${n(o.Node ?? 0)} Nodes, ${n(o.NetworkPolicy ?? 0)} NetworkPolicies, ${n(o.Service ?? 0)} Services and ${n(o.EndpointSlice ?? 0)} EndpointSlices, shaped as the kubelet and the controllers write them (\`test/bench/kube-objects.ts\`: managedFields, owner references, conditions, container statuses, probes, volumes; Nodes with images and node info); ${SHAPE.localPods} pods on the agent's node, each with a host-side veth and a route, which the agent finds and attaches. The agent lists Namespaces, Nodes, Pods and NetworkPolicies in pages of 500: ${(r.listBytes / 1e6).toFixed(0)} MB of JSON. Load average at the start: ${load0.toFixed(1)} on 2 CPUs.

Label changes: ${n(r.latenciesMs.length)} at ${n(RATE)}/s, open loop, each giving a remote pod a label set never seen before (a new identity), written by the API server process; a change's latency runs from its scheduled moment until the pinned \`weir_ipcache\` map holds the pod's address with its new identity (polled every millisecond from the bench process).

| first sync enforced (agent's own, ms) | ready after spawn (ms) | agent CPU to ready (s) | RSS ready (MiB) | peak RSS at ready (MiB) | label change p50 (ms) | p99 (ms) [95% interval] | max (ms) | agent CPU for the changes (s) | RSS after (MiB) | peak RSS (MiB) |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| ${Math.round(r.firstSyncMs)} | ${Math.round(r.readyMs)} | ${r.syncCpuS.toFixed(2)} | ${r.rssReady.toFixed(1)} | ${r.hwmReady.toFixed(1)} | ${p50.toFixed(1)} | ${p99.toFixed(1)} [${p99ci.lo.toFixed(1)}, ${p99ci.hi.toFixed(1)}] | ${sorted[sorted.length - 1]!.toFixed(1)} | ${r.changesCpuS.toFixed(2)} | ${r.rssAfter.toFixed(1)} | ${r.hwm.toFixed(1)} |

Where the RSS goes (the agent's V8 heap from its own /metrics): at ready ${r.heapReady.used.toFixed(0)} MiB of heap in use (live objects and garbage not yet collected) of ${r.heapReady.total.toFixed(0)} MiB committed, ${r.heapReady.external.toFixed(0)} MiB external, the rest of the ${r.rssReady.toFixed(0)} MiB RSS is Node itself, code, worker threads' isolates and the libraries; after the changes ${r.heapAfter.used.toFixed(0)} of ${r.heapAfter.total.toFixed(0)} MiB; 3 s later, the agent quiet, ${r.heapQuiet.used.toFixed(0)} of ${r.heapQuiet.total.toFixed(0)} MiB, RSS ${r.rssQuiet.toFixed(1)} MiB.

The agent's memory settles (agent/node/memory.ts: V8's critical memory pressure, one full collection that compacts and shrinks its generations, then \`malloc_trim\`), each a pause of its main loop: ${r.settleReadyMs !== undefined ? `${r.settleReadyMs.toFixed(0)} ms once the first sync was enforced (before readiness)` : 'none at the first sync'}, ${r.settleAfterMs !== undefined ? `${r.settleAfterMs.toFixed(0)} ms once quiet after the changes` : 'none after the changes'}; none during the changes (a settle waits for 1.5 s without a change).

The agent's CPU time per change (user + system, so the map writes in the kernel count): ${((r.changesCpuS / r.latenciesMs.length) * 1000).toFixed(2)} ms, i.e. ${((r.changesCpuS / r.latenciesMs.length) * RATE * 100).toFixed(0)}% of one CPU at ${n(RATE)} changes/s; load average ${r.changesLoad[0].toFixed(1)} before the changes and ${r.changesLoad[1].toFixed(1)} after, on 2 CPUs shared with other work, so the wall-clock latencies include waiting for a CPU.

The agent's syncer after the changes: ${r.syncAfter.failing.length} key(s) failing${r.syncAfter.failing.length ? ` (e.g. ${r.syncAfter.failing[0]!.key}: ${r.syncAfter.failing[0]!.error})` : ''}, ${r.syncAfter.pending.length} waiting for an interface, ${r.syncAfter.writeFailures} map write failure(s) since start.

Counted from the moment the API server had written a change to the agent's watch stream instead of its scheduled moment (so without the API server process's own lag): p50 ${percentile(issued, 0.5).toFixed(1)} ms, p99 ${percentile(issued, 0.99).toFixed(1)} ms.

| goal (issue 15) | target | measured | |
|---|---|---:|---|
${goal('first full sync enforced', '< 5 s', `${(r.firstSyncMs / 1000).toFixed(2)} s (CPU ${r.syncCpuS.toFixed(2)} s)`, r.firstSyncMs < 5000)}
${goal('RSS (peak, whole run)', '< 300 MB', `${MB(r.hwm).toFixed(0)} MB`, MB(r.hwm) < 300)}
${goal('label change p99 at 1,000/s', '< 20 ms', `${p99.toFixed(1)} ms`, p99ci.hi < 20)}
`;
  return { title: `The ${n(o.Pod ?? 0)}-pod cluster: first sync, RSS and label changes of the real agent`, markdown };
}
