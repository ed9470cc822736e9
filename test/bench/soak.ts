/**
 * `make soak` (bench suite "soak", not part of `make test` nor of the default `make bench`):
 * the real node agent process (`weir agent`, as the DaemonSet runs it) against the test API
 * server on loopback, for WEIR_SOAK_SECONDS (default 600), under at once
 * - 100,000 flow events/s offered: a generator process runs the agent's own pinned `to_pod`
 *   program (BPF_PROG_TEST_RUN) on TCP SYNs the policy denies, toward a local pod's interface;
 *   each run puts one drop record into the agent's pinned ring buffer;
 * - a stalled client: a real `weir observe --follow` on the agent's flow socket whose stdout
 *   nobody reads, so it stops reading flows and the agent must bound its queue;
 * - 100 pod label changes/s written to the test API server (the agent watches them), cycling
 *   through a bounded set of label values, so that a growing RSS would be a leak, not new state.
 * The agent's RSS (VmRSS of /proc/PID/status) is sampled every second and plotted; the kernel
 * ring's lost-record count and the agent's drops for the slow client come from its /metrics.
 * Needs root; pins under a pin root of its own, veths and routes removed afterwards.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchSection } from './run.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { agentCommand, cpuSeconds, podVeths, procMem } from './agent-memory.js';
import { synFrame } from './flows.js';
import { renderChart } from './sidebyside/svg.js';

const SECONDS = Number(process.env.WEIR_SOAK_SECONDS ?? 600);
const RATE = 100_000;
const CHANGES_PER_SECOND = 100;
/** The goal: RSS at the end within +10% of RSS at this point. */
const BASE_S = 60;
const MAIN = 'dist/agent/cli/main.js';
const HEALTH_PORT = 39880;
const METRICS_PORT = 39963;
const NODE = 'node-0';
const NS = 'soak';
const LOCAL_CHURN = 20;
const REMOTE_CHURN = 80;
/** Label values a churned pod cycles through: a bounded set of identities. */
const VERSIONS = 50;
const PLOT_DIR = 'docs/bench';
const PLOT = 'soak-rss.svg';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pod(name: string, node: string, ip: string, labels: Record<string, string>): KubeObject {
  return {
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    spec: { nodeName: node, containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: node === NODE ? '172.16.0.1' : '172.16.0.2' },
  };
}

/** The cluster: two nodes, a sink pod on the agent's node, a source pod elsewhere, pods to churn. */
function populate(api: TestApiServer): { sinkIp: string; sourceIp: string; local: string[]; churn: KubeObject[] } {
  for (const [n, cidr, ip] of [
    [0, '10.64.0.0/24', '172.16.0.1'],
    [1, '10.64.1.0/24', '172.16.0.2'],
  ] as const)
    api.create({
      kind: 'Node',
      metadata: { name: `node-${n}`, labels: { 'kubernetes.io/hostname': `node-${n}` } },
      spec: { podCIDR: cidr, podCIDRs: [cidr] },
      status: { addresses: [{ type: 'InternalIP', address: ip }] },
    });
  api.create({ kind: 'Namespace', metadata: { name: NS, labels: { 'kubernetes.io/metadata.name': NS } } });
  const sinkIp = '10.64.0.2';
  const sourceIp = '10.64.1.2';
  api.create(pod('sink', NODE, sinkIp, { app: 'sink' }));
  api.create(pod('source', 'node-1', sourceIp, { app: 'source' }));
  const local = [sinkIp];
  const churn: KubeObject[] = [];
  for (let i = 0; i < LOCAL_CHURN + REMOTE_CHURN; i++) {
    const isLocal = i < LOCAL_CHURN;
    const ip = isLocal ? `10.64.0.${10 + i}` : `10.64.1.${10 + i}`;
    if (isLocal) local.push(ip);
    churn.push(api.create(pod(`churn-${i}`, isLocal ? NODE : 'node-1', ip, { app: 'churn', version: 'v0' })));
  }
  // The sink admits the source on 8080 only: the generator's SYNs to 9000 are denied.
  api.create({
    kind: 'NetworkPolicy',
    metadata: { name: 'sink', namespace: NS },
    spec: {
      podSelector: { matchLabels: { app: 'sink' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'source' } } }], ports: [{ port: 8080 }] }],
    },
  });
  // The churned pods admit some versions of each other: a label change moves a pod in or out.
  api.create({
    kind: 'NetworkPolicy',
    metadata: { name: 'churn', namespace: NS },
    spec: {
      podSelector: { matchLabels: { app: 'churn' } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { podSelector: { matchExpressions: [{ key: 'version', operator: 'In', values: ['v1', 'v2', 'v3'] }] } },
          ],
          ports: [{ port: 8080 }],
        },
      ],
    },
  });
  return { sinkIp, sourceIp, local, churn };
}

interface Metrics {
  processed: number;
  lostRing: number;
  clientDropped: number;
  podUpdates: number;
}

/** The agent's own counters, from its /metrics. */
async function metrics(): Promise<Metrics> {
  const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
  const sum = (re: RegExp): number => {
    let s = 0;
    for (const m of text.matchAll(re)) s += Number(m[1]);
    return s;
  };
  return {
    processed: sum(/^weir_flows_processed_total\{[^}]*\} (\S+)$/gm),
    lostRing: sum(/^weir_lost_events_total\{source="datapath_ring_buffer"\} (\S+)$/gm),
    clientDropped: sum(/^weir_lost_events_total\{source="flow_client_queue"\} (\S+)$/gm),
    podUpdates: sum(/^weir_kubernetes_events_total\{[^}]*resource="pods"[^}]*action="update"[^}]*\} (\S+)$/gm),
  };
}

async function statusReady(): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${HEALTH_PORT}/readyz`)).ok;
  } catch {
    return false;
  }
}

interface Sample extends Metrics {
  t: number;
  rss: number;
  generated: number;
  changes: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
};

export async function run(): Promise<BenchSection> {
  if (process.getuid?.() !== 0) throw new Error('the soak runs the agent, which loads BPF programs: run it as root');
  const api = new TestApiServer({ bookmarkIntervalMs: 60_000 });
  await api.start();
  const cluster = populate(api);
  const removeVeths = podVeths(cluster.local);
  const dir = mkdtempSync(join(tmpdir(), 'weir-soak-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfig());
  const pinRoot = `/sys/fs/bpf/weir-soak-${process.pid}`;
  const runDir = join(dir, 'run');
  const logPath = join(dir, 'agent.log');
  const log = openSync(logPath, 'a');
  const agent: ChildProcess = spawn(
    process.execPath,
    [
      ...agentCommand({
        kubeconfig,
        node: NODE,
        pinRoot,
        runDir: runDir,
        healthPort: HEALTH_PORT,
        metricsPort: METRICS_PORT,
      }),
    ],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  let exited: number | null | undefined;
  agent.on('exit', (c) => (exited = c));
  const children: ChildProcess[] = [];
  let churnTimer: NodeJS.Timeout | undefined;
  try {
    const readyBy = Date.now() + (Number(process.env.WEIR_SOAK_READY_S) || 120) * 1000;
    while (!(await statusReady())) {
      if (exited !== undefined)
        throw new Error(`the agent exited (${exited}): ${readFileSync(logPath, 'utf8').slice(-2000)}`);
      if (Date.now() > readyBy) {
        const st = await fetch(`http://127.0.0.1:${HEALTH_PORT}/readyz`).then((r) => r.text(), String);
        throw new Error(
          `soak: the agent is not ready after 120 s: ${st.slice(0, 1500)}\n${readFileSync(logPath, 'utf8').slice(-1500)}`,
        );
      }
      await sleep(100);
    }
    const pid = agent.pid!;
    const sinkDev = /dev (\S+)/.exec(
      execFileSync('ip', ['-o', 'route', 'show', `${cluster.sinkIp}/32`], { encoding: 'utf8' }),
    )![1]!;
    const ifindex = Number(readFileSync(`/sys/class/net/${sinkDev}/ifindex`, 'utf8'));

    // The stalled client: a real `weir observe --follow` whose output nobody reads.
    const socket = join(runDir, 'observer.sock');
    const stalled = spawn(process.execPath, [MAIN, 'observe', '--server', socket, '--follow', '--color', 'never'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(stalled);
    stalled.stdout!.pause();

    // The flow events: the agent's own pinned to_pod program on denied SYNs toward the sink.
    const frame = synFrame(cluster.sourceIp, cluster.sinkIp, 40000, 9000).toString('hex');
    const gen = spawn(
      process.execPath,
      ['dist/test/bench/flows-generator.js', pinRoot, String(ifindex), String(RATE), `${frame}:1`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.push(gen);
    let generated = 0;
    let genBuf = '';
    gen.stdout!.on('data', (d: Buffer) => {
      genBuf += d.toString();
      const lines = genBuf.split('\n');
      genBuf = lines.pop()!;
      for (const l of lines) if (l.trim()) generated += (JSON.parse(l) as { packets: number }).packets;
    });

    // 100 label changes/s, open loop: every 10 ms the share due, each pod in turn to its next version.
    const churn = cluster.churn;
    let changes = 0;
    const c0 = performance.now();
    churnTimer = setInterval(() => {
      const due = Math.floor(((performance.now() - c0) / 1000) * CHANGES_PER_SECOND);
      for (; changes < due; changes++) {
        const i = changes % churn.length;
        const p = churn[i]!;
        const version = `v${(Math.floor(changes / churn.length) + 1) % VERSIONS}`;
        churn[i] = api.update({ ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, version } } });
      }
    }, 10);

    const samples: Sample[] = [];
    const cpu0 = cpuSeconds(pid);
    const load0 = loadavg()[0]!;
    const t0 = performance.now();
    for (let s = 1; s <= SECONDS; s++) {
      await sleep(Math.max(0, t0 + s * 1000 - performance.now()));
      if (exited !== undefined)
        throw new Error(`the agent exited (${exited}): ${readFileSync(logPath, 'utf8').slice(-2000)}`);
      const m = await metrics();
      samples.push({ t: s, rss: procMem(pid).rss, generated, changes, ...m });
      if (s % 30 === 0) {
        const w = samples[samples.length - 31] ?? samples[0]!;
        const x = samples[samples.length - 1]!;
        const dt = x.t - w.t || 1;
        process.stdout.write(
          `  soak ${s}/${SECONDS} s: RSS ${x.rss.toFixed(1)} MiB, offered ${((x.generated - w.generated) / dt / 1000).toFixed(1)}k/s, ` +
            `processed ${((x.processed - w.processed) / dt / 1000).toFixed(1)}k/s, label changes ${((x.changes - w.changes) / dt).toFixed(0)}/s, ` +
            `lost in ring ${x.lostRing}, dropped for the slow client ${x.clientDropped}\n`,
        );
      }
    }
    clearInterval(churnTimer);
    churnTimer = undefined;
    const cpu = cpuSeconds(pid) - cpu0;
    const load1 = loadavg()[0]!;
    const slowAlive = stalled.exitCode === null && stalled.signalCode === null;
    return {
      title:
        'Soak: the real agent process for 10 minutes under 100k flow events/s, a stalled client and 100 label changes/s',
      markdown: report(samples, { cpu, load0, load1, slowAlive, hwm: procMem(pid).hwm }),
    };
  } finally {
    if (churnTimer) clearInterval(churnTimer);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (exited === undefined) {
      agent.kill('SIGTERM');
      const end = Date.now() + 5000;
      while (exited === undefined && Date.now() < end) await sleep(50);
      if (exited === undefined) agent.kill('SIGKILL');
    }
    await api.stop();
    removeVeths();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

interface RunInfo {
  cpu: number;
  load0: number;
  load1: number;
  slowAlive: boolean;
  hwm: number;
}

function report(samples: Sample[], info: RunInfo): string {
  const last = samples[samples.length - 1]!;
  const first = samples[0]!;
  const at = (t: number): Sample => samples[Math.min(samples.length, t) - 1]!;
  // RSS moves with each GC: compare the medians of the 10 s ending at 60 s and ending at the end.
  const window = (end: number): number => median(samples.filter((s) => s.t > end - 10 && s.t <= end).map((s) => s.rss));
  const base = window(Math.min(BASE_S, last.t));
  const end = window(last.t);
  const growth = (100 * (end - base)) / base;
  const maxAfter = Math.max(...samples.filter((s) => s.t >= Math.min(BASE_S, last.t)).map((s) => s.rss));
  const secs = last.t;
  const span = secs - first.t || 1;
  const offered = (last.generated - first.generated) / span;
  const processed = (last.processed - first.processed) / span;
  const changeRate = last.changes / secs;
  const lost = last.lostRing;

  mkdirSync(PLOT_DIR, { recursive: true });
  const step = 10;
  const points = samples.filter((s) => s.t % step === 0);
  writeFileSync(
    join(PLOT_DIR, PLOT),
    renderChart({
      title: `Agent RSS over a ${Math.round(secs / 60)}-minute soak (sampled every ${step} s)`,
      xLabel: 'seconds',
      yLabel: 'MiB',
      categories: points.map((s) => (s.t % 60 === 0 ? String(s.t) : '')),
      series: [
        { name: 'agent VmRSS', color: '#1f77b4', values: points.map((s) => s.rss) },
        {
          name: `+10% of RSS at ${BASE_S} s`,
          color: '#d62728',
          dashed: true,
          values: points.map(() => base * 1.1),
        },
      ],
    }),
  );
  const goal = (what: string, target: string, measured: string, ok: boolean | undefined): string =>
    `| ${what} | ${target} | ${measured} | ${ok === undefined ? 'not judged: the run is too short' : ok ? 'met' : '**missed**'} |`;
  const row = (t: number): string => {
    const s = at(t);
    const p = samples[Math.max(0, samples.indexOf(s) - 30)]!;
    const dt = s.t - p.t || 1;
    return `| ${s.t} | ${s.rss.toFixed(1)} | ${((s.generated - p.generated) / dt / 1000).toFixed(1)}k | ${((s.processed - p.processed) / dt / 1000).toFixed(1)}k | ${((s.changes - p.changes) / dt).toFixed(0)} | ${s.lostRing} | ${s.clientDropped.toLocaleString('en-US')} |`;
  };
  const marks = [30, 60, ...Array.from({ length: Math.floor(secs / 120) }, (_, i) => (i + 1) * 120)].filter(
    (t, i, a) => t <= secs && a.indexOf(t) === i,
  );
  if (!marks.includes(secs)) marks.push(secs);
  return `
The node agent as the DaemonSet runs it (\`weir agent --kubeconfig …\`, Node defaults, its own process, flow API and metrics on), against the test API server on loopback (in the bench process), for ${secs} s with, all at once:
- flow events: a generator process runs the agent's own pinned \`to_pod\` program (BPF_PROG_TEST_RUN, paced at ${(RATE / 1000).toFixed(0)}k/s) on TCP SYNs its policy denies toward a local pod's interface; each run puts one drop record into the agent's ring buffer;
- a stalled client: a real \`weir observe --follow\` on the agent's flow socket whose stdout nobody reads (${info.slowAlive ? 'still connected at the end' : '**it exited before the end**'});
- ${CHANGES_PER_SECOND} pod label changes/s written to the test API server (the agent watches them): ${LOCAL_CHURN + REMOTE_CHURN} pods (${LOCAL_CHURN} on the agent's node, each with a host-side veth) take turns, each moving to its next \`version\` label of ${VERSIONS}, which a policy selects on — the label sets are bounded, so growth would be a leak rather than new state.

RSS = VmRSS of \`/proc/PID/status\` of the agent, sampled every second. "Lost in the ring buffer" = the agent's \`weir_lost_events_total{source="datapath_ring_buffer"}\` on /metrics, which reads the kernel's per-CPU lost-record counter (\`weir_ev_lost\`, pinned) that the datapath increments when a record does not fit the ring. "Dropped for the slow client" = \`weir_lost_events_total{source="flow_client_queue"}\`: flows the stalled client's bounded queue could not take (expected to grow). Processed = \`weir_flows_processed_total\`. Load average ${info.load0.toFixed(1)} at the start, ${info.load1.toFixed(1)} at the end, on 2 CPUs shared with other work; the agent used ${info.cpu.toFixed(0)} CPU-seconds (${((100 * info.cpu) / secs).toFixed(0)}% of one core).

![${PLOT.replace('.svg', '')}: agent RSS over the soak](bench/${PLOT})

| at s | RSS (MiB) | offered /s (last 30 s) | processed /s (last 30 s) | label changes /s | lost in the ring buffer (total) | dropped for the slow client (total) |
|---:|---:|---:|---:|---:|---:|---:|
${marks.map(row).join('\n')}

From 1 s to the end: offered ${(offered / 1000).toFixed(1)}k events/s (${last.generated.toLocaleString('en-US')} records in all), the agent processed ${(processed / 1000).toFixed(1)}k/s, ${changeRate.toFixed(1)} label changes/s (${last.changes.toLocaleString('en-US')}; the agent saw ${last.podUpdates.toLocaleString('en-US')} pod updates); peak RSS (VmHWM) ${info.hwm.toFixed(1)} MiB.

| goal | target | measured | |
|---|---|---:|---|
${goal(`RSS at the end vs at ${BASE_S} s (medians of the 10 s ending there)`, '≤ +10%', `${base.toFixed(1)} → ${end.toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)}%; highest sample after ${BASE_S} s ${maxAfter.toFixed(1)} MiB)`, secs > BASE_S ? growth <= 10 : undefined)}
${goal('records lost in the kernel ring buffer', '0', String(lost), lost === 0)}
${goal('flow events offered', '100k/s', `${(offered / 1000).toFixed(1)}k/s`, offered >= 0.95 * RATE)}
${goal('label changes', `${CHANGES_PER_SECOND}/s`, `${changeRate.toFixed(1)}/s`, changeRate >= 0.95 * CHANGES_PER_SECOND)}
`;
}
