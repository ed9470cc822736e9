/**
 * `agentmem` bench suite: the real node agent process (`weir agent`, as the DaemonSet runs it)
 * against the test API server on loopback, its RSS read from /proc/PID/status — not the RSS of a
 * bench process that also ran other suites.
 *
 * Clusters are shaped as the kubelet and the controllers write them (ReplicaSet owner
 * references, managedFields, status with conditions and container statuses, a projected
 * service-account volume), so the agent's lists parse what a real API server sends:
 * - 10,000 pods in 500 namespaces on 100 nodes, 2,000 policies; the agent's node runs 110 pods;
 *   then 11,000 label changes at 1,000/s, each giving a pod a label set never seen (a new identity).
 * - 100,000 pods in 2,000 namespaces on 1,000 nodes, 10,000 policies; 100 local pods.
 * Each run is repeated with the small-cluster options of agent/node/memory.ts (NODE_OPTIONS for the
 * young generation; at 10,000 pods also WEIR_AGENT_V8_FLAGS=--optimize-for-size), so their effect
 * on RSS and CPU is measured, not guessed. Needs root (the agent loads its programs); pins go under
 * a pin root of its own, removed afterwards.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchSection } from './run.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { readAgentStatus } from '../../agent/node/status.js';
import { summarizeHeapSnapshot, type HeapSummary } from './heap-snapshot.js';
import { SMALL_CLUSTER_NODE_OPTIONS, V8_FLAGS_ENV } from '../../agent/node/memory.js';

const QUICK = process.env.WEIR_BENCH_QUICK === '1';
/** The `weir` command as the image's entrypoint runs it (the agent loads dist/ from there, not the bundle). */
const WEIR = 'bin/weir';
const HEALTH_PORT = 39879;
const METRICS_PORT = 39962;
const NODE = 'node-0';

interface Scale {
  name: string;
  namespaces: number;
  podsPerNs: number;
  nodes: number;
  policiesPerNs: number;
  localPods: number;
  changes: number;
  changesPerSecond: number;
}

export const SCALES: Scale[] = [
  {
    name: '10,000 pods',
    namespaces: 500,
    podsPerNs: 20,
    nodes: 100,
    policiesPerNs: 4,
    localPods: 110,
    changes: QUICK ? 2000 : 11_000,
    changesPerSecond: 1000,
  },
  {
    name: '100,000 pods',
    namespaces: 2000,
    podsPerNs: 50,
    nodes: 1000,
    policiesPerNs: 5,
    localPods: 100,
    changes: QUICK ? 1000 : 5000,
    changesPerSecond: 1000,
  },
];

/** How the agent process is started: as the chart runs it, or with options of agent/node/memory.ts. */
interface Variant {
  label: string;
  /** Node's own command-line flags. */
  args: string[];
  env?: Record<string, string>;
}

export const AS_DEPLOYED: Variant = { label: 'as the chart runs it', args: [], env: {} };
const FLAGS: Variant[] = [
  AS_DEPLOYED,
  {
    label: `NODE_OPTIONS=${SMALL_CLUSTER_NODE_OPTIONS}`,
    args: [],
    env: { NODE_OPTIONS: SMALL_CLUSTER_NODE_OPTIONS },
  },
  {
    label: `NODE_OPTIONS=${SMALL_CLUSTER_NODE_OPTIONS}, ${V8_FLAGS_ENV}=--optimize-for-size`,
    args: [],
    env: { NODE_OPTIONS: SMALL_CLUSTER_NODE_OPTIONS, [V8_FLAGS_ENV]: '--optimize-for-size' },
  },
];

function hash(n: number): string {
  return ((Math.imul(n + 1, 2654435761) >>> 0).toString(16) + (Math.imul(n + 7, 40503) >>> 0).toString(16))
    .padStart(10, '0')
    .slice(-10);
}

/** A Pod as the API server holds it after the ReplicaSet controller, scheduler and kubelet wrote it. */
function kubeletPod(ns: string, i: number, node: string, nodeIp: string, ip: string, app: string): KubeObject {
  const rs = `${app}-${hash(i % 7)}`;
  const name = `${rs}-${hash(i).slice(0, 5)}`;
  const t = '2026-11-01T10:00:00Z';
  return {
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      generateName: `${rs}-`,
      labels: { app, 'pod-template-hash': hash(i % 7) },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: rs,
          uid: `rs-${hash(i % 7)}`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: t,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} } },
            'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:image': {}, 'f:ports': {} } } },
          },
        },
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: t,
          fieldsType: 'FieldsV1',
          subresource: 'status',
          fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:podIP': {}, 'f:podIPs': {} } },
        },
      ],
    },
    spec: {
      nodeName: node,
      serviceAccountName: 'default',
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      terminationGracePeriodSeconds: 30,
      enableServiceLinks: true,
      priority: 0,
      preemptionPolicy: 'PreemptLowerPriority',
      containers: [
        {
          name: 'app',
          image: `registry.example/${app}:1.2.3`,
          imagePullPolicy: 'IfNotPresent',
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          env: [{ name: 'LOG_LEVEL', value: 'info' }],
          resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
          volumeMounts: [
            {
              name: `kube-api-access-${hash(i).slice(0, 5)}`,
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
              readOnly: true,
            },
          ],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
        },
      ],
      volumes: [
        {
          name: `kube-api-access-${hash(i).slice(0, 5)}`,
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            ],
          },
        },
      ],
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
    },
    status: {
      phase: 'Running',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(
        (type) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: t }),
      ),
      hostIP: nodeIp,
      hostIPs: [{ ip: nodeIp }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: t,
      qosClass: 'Burstable',
      containerStatuses: [
        {
          name: 'app',
          state: { running: { startedAt: t } },
          lastState: {},
          ready: true,
          restartCount: 0,
          image: `registry.example/${app}:1.2.3`,
          imageID: `registry.example/${app}@sha256:${hash(i % 7)
            .repeat(6)
            .slice(0, 64)}`,
          containerID: `containerd://${hash(i).repeat(7).slice(0, 64)}`,
          started: true,
        },
      ],
    },
  };
}

function policy(ns: string, k: number): KubeObject {
  return {
    kind: 'NetworkPolicy',
    metadata: { name: `np-${k}`, namespace: ns },
    spec: {
      podSelector: { matchLabels: { app: `app-${k}` } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { team: 't1' } }, podSelector: { matchLabels: { app: 'app-0' } } },
          ],
          ports: [{ port: 'http', protocol: 'TCP' }],
        },
      ],
    },
  };
}

/**
 * The host-side veths of the agent's local pods, as a CNI leaves them: one veth pair per pod
 * (`wam<N>`, its peer beside it: no traffic flows) and a /32 route to the pod's IP through it,
 * so the agent finds and attaches each pod's interface as on a real node. Removed afterwards.
 */
export function podVeths(ips: string[]): () => void {
  const names = ips.map((_, i) => `wam${process.pid % 1000}x${i}`);
  const batch = (lines: string[]): void => {
    const r = spawnSync('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
    if (r.status !== 0 && lines[0]?.startsWith('link add')) throw new Error(`ip -batch: ${r.stderr}`);
  };
  const remove = (): void => batch(names.map((n) => `link del ${n}`));
  try {
    batch(names.flatMap((n) => [`link add ${n} type veth peer name ${n}p`]));
    batch(names.flatMap((n, i) => [`link set ${n} up`, `link set ${n}p up`, `route replace ${ips[i]}/32 dev ${n}`]));
  } catch (err) {
    remove();
    throw err;
  }
  return remove;
}

/** Fills the server; returns the pods (for label changes) and the object count. */
export function populate(api: TestApiServer, s: Scale): { pods: KubeObject[]; objects: number } {
  let objects = 0;
  const nodeIp = (n: number): string => `172.16.${n >> 8}.${(n & 255) + 1}`;
  const nodeCidr = (n: number): string => `10.${64 + (n >> 8)}.${n & 255}.0/24`;
  for (let n = 0; n < s.nodes; n++, objects++) {
    api.create({
      kind: 'Node',
      metadata: { name: `node-${n}`, labels: { 'kubernetes.io/hostname': `node-${n}` } },
      spec: { podCIDR: nodeCidr(n), podCIDRs: [nodeCidr(n)] },
      status: {
        addresses: [
          { type: 'InternalIP', address: nodeIp(n) },
          { type: 'Hostname', address: `node-${n}` },
        ],
      },
    });
  }
  const onNode = new Array<number>(s.nodes).fill(0);
  const pods: KubeObject[] = [];
  let g = 0;
  for (let a = 0; a < s.namespaces; a++) {
    const ns = `ns-${a}`;
    api.create({
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns, team: `t${a % 10}` } },
    });
    objects++;
    for (let p = 0; p < s.podsPerNs; p++, g++, objects++) {
      const n = g < s.localPods ? 0 : 1 + (g % (s.nodes - 1));
      const slot = onNode[n]!++;
      const ip = `10.${64 + (n >> 8)}.${n & 255}.${slot + 2}`;
      pods.push(api.create(kubeletPod(ns, g, `node-${n}`, nodeIp(n), ip, `app-${p % 5}`)));
    }
    for (let k = 0; k < s.policiesPerNs; k++, objects++) api.create(policy(ns, k));
  }
  return { pods, objects };
}

interface ProcMem {
  rss: number;
  hwm: number;
}

export function procMem(pid: number): ProcMem {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** User + system CPU seconds of a process. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

interface Status {
  ready: boolean;
  endpoints: { enforced: number; waitingForInterface: string[] };
  firstSyncMs?: number;
  revision: number;
  kubernetesEvents: Array<{ resource: string; action: string; count: number }>;
  memorySettles?: { count: number; lastPauseMs: number; maxPauseMs: number };
}

/** The agent's status from its control socket (`weir agent status`), undefined until it answers. */
async function statusz(runDir: string): Promise<Status | undefined> {
  try {
    return await readAgentStatus<Status>(runDir);
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`agentmem: timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface RunResult {
  scale: string;
  flags: string;
  readyMs: number;
  firstSyncMs: number;
  syncCpuS: number;
  rssReady: number;
  rssAfter: number;
  hwm: number;
  changes: number;
  changesCpuS: number;
  /** The agent's memory settles (first sync and after bursts): how many, the longest pause. */
  settles?: { count: number; maxPauseMs: number };
  /** The retained heap after the changes (from a heap snapshot), when asked for. */
  heap?: HeapSummary;
}

/**
 * One agent process through start-up and the label changes. With `heap`, a heap snapshot is
 * taken at the end (after the RSS figures were read, so they do not include its cost).
 */
/**
 * The node agent's command line as the DaemonSet gives it (kubeconfig, node name, pin root, run
 * directory, health and metrics ports, errors only in the log), for the benches that run the real
 * agent process (agentmem, cluster100k, soak), each with its own ports and pin root.
 */
export function agentCommand(o: {
  kubeconfig: string;
  node: string;
  pinRoot: string;
  runDir: string;
  healthPort: number;
  metricsPort: number;
}): string[] {
  return [
    WEIR,
    'agent',
    '--kubeconfig',
    o.kubeconfig,
    '--node-name',
    o.node,
    '--pin-root',
    o.pinRoot,
    '--run-dir',
    o.runDir,
    '--health-host',
    '127.0.0.1',
    '--health-port',
    String(o.healthPort),
    '--metrics-port',
    String(o.metricsPort),
    '--log-level',
    'error',
  ];
}

export async function runAgent(s: Scale, flags: Variant, heap = false): Promise<RunResult> {
  const api = new TestApiServer({ bookmarkIntervalMs: 60_000 });
  await api.start();
  const { pods } = populate(api, s);
  const local = pods.filter((p) => (p.spec as { nodeName?: string }).nodeName === NODE);
  const removeVeths = podVeths(local.map((p) => (p.status as { podIP: string }).podIP));
  const dir = mkdtempSync(join(tmpdir(), 'weir-agentmem-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfig());
  const pinRoot = `/sys/fs/bpf/weir-agentmem-${process.pid}`;
  const log = openSync(join(dir, 'agent.log'), 'a');
  const started = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...flags.args,
      ...(heap ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] : []),
      ...agentCommand({
        kubeconfig,
        node: NODE,
        pinRoot,
        runDir: join(dir, 'run'),
        healthPort: HEALTH_PORT,
        metricsPort: METRICS_PORT,
      }),
    ],
    { stdio: ['ignore', log, log], env: { ...process.env, ...flags.env } },
  );
  closeSync(log);
  const pid = child.pid!;
  let exited: number | null | undefined;
  child.on('exit', (c) => (exited = c));
  try {
    const st = await until('the first sync', 120_000, async () => {
      if (exited !== undefined)
        throw new Error(`the agent exited (${exited}): ${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-2000)}`);
      const x = await statusz(join(dir, 'run'));
      return x?.ready ? x : undefined;
    });
    const readyMs = performance.now() - started;
    if (st.endpoints.enforced !== local.length)
      throw new Error(`agentmem: the agent enforces ${st.endpoints.enforced} of its ${local.length} pods' interfaces`);
    const syncCpuS = cpuSeconds(pid);
    await sleep(2000);
    const rssReady = procMem(pid).rss;
    // Label changes, open loop: every 10 ms a tick's share, each a label set never seen before.
    const perTick = s.changesPerSecond / 100;
    let issued = 0;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    while (issued < s.changes) {
      const due = Math.min(s.changes, Math.floor(((performance.now() - t0) / 1000) * s.changesPerSecond) + perTick);
      for (; issued < due; issued++) {
        const i = (issued * 7919) % pods.length;
        const p = pods[i]!;
        const labels = { ...(p.metadata.labels ?? {}), app: `app-${issued % 5}`, version: `v${issued}` };
        pods[i] = api.update({ ...p, metadata: { ...p.metadata, labels } });
      }
      await sleep(10);
    }
    const seen = (x: Status): number =>
      x.kubernetesEvents.find((e) => e.resource === 'pods' && e.action === 'update')?.count ?? 0;
    await until('every change delivered', 120_000, async () => {
      const x = await statusz(join(dir, 'run'));
      return x && seen(x) >= s.changes ? x : undefined;
    });
    let rev = -1;
    await until('the agent to settle', 60_000, async () => {
      const x = await statusz(join(dir, 'run'));
      if (x && x.revision === rev) return x;
      rev = x?.revision ?? -1;
      await sleep(500);
      return undefined;
    });
    // as at readiness, 2 s more: the agent settles its memory once quiet after a burst (1.5 s)
    await sleep(2000);
    const changesCpuS = cpuSeconds(pid) - cpu0;
    const after = procMem(pid);
    const settles = (await statusz(join(dir, 'run')))?.memorySettles;
    let heapSummary: HeapSummary | undefined;
    if (heap) {
      // The snapshot is whole once the file ends its JSON and stops growing.
      child.kill('SIGUSR2');
      let size = -1;
      const file = await until('the heap snapshot', 120_000, async () => {
        await sleep(500);
        const f = readdirSync(dir).find((n) => n.endsWith('.heapsnapshot'));
        if (!f) return undefined;
        const now = statSync(join(dir, f)).size;
        const whole = now === size && readFileSync(join(dir, f), 'utf8').trimEnd().endsWith('}');
        size = now;
        return whole ? f : undefined;
      });
      heapSummary = summarizeHeapSnapshot(join(dir, file));
    }
    return {
      scale: s.name,
      flags: flags.label,
      readyMs,
      firstSyncMs: st.firstSyncMs ?? NaN,
      syncCpuS,
      rssReady,
      rssAfter: after.rss,
      hwm: after.hwm,
      changes: s.changes,
      changesCpuS,
      ...(settles ? { settles: { count: settles.count, maxPauseMs: settles.maxPauseMs } } : {}),
      ...(heapSummary ? { heap: heapSummary } : {}),
    };
  } finally {
    if (exited === undefined) {
      child.kill('SIGTERM');
      const end = Date.now() + 5000;
      while (exited === undefined && Date.now() < end) await sleep(50);
      if (exited === undefined) child.kill('SIGKILL');
    }
    await api.stop();
    removeVeths();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

const f1 = (x: number): string => x.toFixed(1);
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** The retained heap of a run and its largest parts. */
function heapLine(r: RunResult): string {
  if (!r.heap) return '';
  const parts = r.heap.top
    .slice(0, 8)
    .map((t) => `${t.what.replace(/[|`]/g, ' ')} ${mib(t.bytes)} MiB (${t.count.toLocaleString('en-US')})`)
    .join('; ');
  const holders = r.heap.holders
    .slice(0, 8)
    .map((t) => `${t.what.replace(/[|`]/g, ' ')} ${mib(t.bytes)} MiB`)
    .join('; ');
  return `Retained heap of the agent at ${r.scale} after the label changes (${r.flags}; from a heap snapshot, taken after the RSS figures above): ${mib(r.heap.retained)} MiB. Largest parts by kind (bytes of the objects themselves, count): ${parts}. By holder (the first object up the retainer chain that is not a container, and its field): ${holders}.`;
}

export async function run(): Promise<BenchSection> {
  const results: RunResult[] = [];
  const load0 = loadavg()[0]!;
  for (const s of SCALES) {
    // at 100,000 pods (minutes a run) as deployed and with the young generation's option
    for (const flags of s === SCALES[0] ? FLAGS : FLAGS.slice(0, QUICK ? 1 : 2)) {
      process.stdout.write(`  agentmem: ${s.name}, ${flags.label}\n`);
      results.push(await runAgent(s, flags, s === SCALES[0] && flags === FLAGS[0]));
    }
  }
  const rows = results.map(
    (r) =>
      `| ${r.scale} | ${r.flags} | ${Math.round(r.readyMs)} | ${Math.round(r.firstSyncMs)} | ${r.syncCpuS.toFixed(2)} | ${f1(r.rssReady)} | ${r.changes.toLocaleString('en-US')} | ${r.changesCpuS.toFixed(2)} | ${f1(r.rssAfter)} | ${f1(r.hwm)} | ${r.settles ? `${r.settles.count} (${Math.round(r.settles.maxPauseMs)})` : ''} |`,
  );
  const def = (scale: string): RunResult => results.find((r) => r.scale === scale && r.flags === FLAGS[0]!.label)!;
  const best = (scale: string): RunResult =>
    results.filter((r) => r.scale === scale).reduce((a, b) => (b.rssAfter < a.rssAfter ? b : a));
  const small = def(SCALES[0]!.name);
  const big = def(SCALES[1]!.name);
  const goal = (what: string, target: string, measured: string, ok: boolean): string =>
    `| ${what} | ${target} | ${measured} | ${ok ? 'met' : '**missed**'} |`;
  const MB = (mib: number): number => (mib * 2 ** 20) / 1e6;
  const markdown = `
The node agent as the DaemonSet runs it (\`weir agent --kubeconfig …\`, its own process, metrics and flow API on), against the test API server on loopback (in the bench process). RSS from \`/proc/PID/status\` of the agent: after the first full sync is enforced (readiness) plus 2 s, and after the label changes once the agent's revision stopped moving plus 2 s (the agent settles its memory 1.5 s after the last change); peak = VmHWM. Settles: how many times the agent settled its memory (once the first sync was enforced, once quiet after the changes) and the longest of those pauses of its main loop in ms. CPU = the agent's user + system time from \`/proc/PID/stat\`. ${SCALES.map((s) => `${s.name}: ${s.namespaces.toLocaleString('en-US')} namespaces, ${(s.namespaces * s.policiesPerNs).toLocaleString('en-US')} NetworkPolicies, ${s.nodes.toLocaleString('en-US')} nodes, ${s.localPods} pods on the agent's node (each with a host-side veth and a route, which the agent finds and attaches)`).join('; ')}. Pods carry what the kubelet and controllers write (owner references, managedFields, conditions, container statuses, volumes). A label change gives a pod a label set never seen before (a new identity), ${SCALES[0]!.changesPerSecond.toLocaleString('en-US')} changes/s. Load average at the start: ${load0.toFixed(1)} on 2 CPUs.

| cluster | V8 flags | ready after (ms, from spawn) | first sync enforced (ms, agent's own) | CPU to ready (s) | RSS ready (MiB) | label changes | CPU for the changes (s) | RSS after (MiB) | peak RSS (MiB) | settles (longest, ms) |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

| goal | target | measured (the agent's own settings) | |
|---|---|---:|---|
${goal(`node agent, ${SCALES[0]!.name}, ${SCALES[0]!.localPods} local pods: RSS after start-up`, '< 120 MB', `${MB(small.rssReady).toFixed(0)} MB`, MB(small.rssReady) < 120)}
${goal(`the same after ${small.changes.toLocaleString('en-US')} label changes`, '< 150 MB', `${MB(small.rssAfter).toFixed(0)} MB`, MB(small.rssAfter) < 150)}
${goal(`${SCALES[1]!.name}: first full sync enforced`, '< 5 s', `${(big.firstSyncMs / 1000).toFixed(2)} s`, big.firstSyncMs < 5000)}
${goal(`${SCALES[1]!.name}: RSS (peak)`, '< 300 MB', `${MB(big.hwm).toFixed(0)} MB`, MB(big.hwm) < 300)}

${heapLine(small)}

Smallest RSS after the changes: ${SCALES.map((s) => `${s.name} with ${best(s.name).flags} (${f1(best(s.name).rssAfter)} MiB)`).join('; ')}. How the agent's memory is set (agent/node/memory.ts): it fixes malloc's mmap threshold at start (large freed blocks go back to the kernel); once the first sync is enforced, and whenever it goes quiet (1.5 s without a change) after a burst of changes, it gives V8 the critical memory-pressure notification (one full collection that compacts the old generation and shrinks the young one back to its smallest) and trims malloc. Options for a small cluster, not the default: \`NODE_OPTIONS=${SMALL_CLUSTER_NODE_OPTIONS}\` (the young generation stays at 2 x 1 MiB instead of growing to 2 x 16 MiB during bursts) and \`${V8_FLAGS_ENV}=--optimize-for-size\` (the old generation grows by small steps); with the settles they change the peak, not the RSS once settled, and the CPU columns say what they cost.
The label-change p99 at 1,000 changes/s for the 100,000-pod cluster is not measured here (the side-by-side's control-plane table measures it for 10,000 pods in the agent's own process).
`;
  return { title: 'Node agent memory: the real agent process at 10,000 and 100,000 pods', markdown };
}
