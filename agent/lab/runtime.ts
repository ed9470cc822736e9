/**
 * The lab's pods as real network namespaces: create, relabel, remove, tear everything down.
 * Its state lives in `<runDir>/state.json`: every namespace, veth, route and pin root is recorded
 * there before it is made, so that `weir lab down` and the next `up` remove exactly what this lab
 * made (a crashed run included) and nothing else, whatever its name.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  renameSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCidr, podAddress, type LabConfig } from './config.js';
import {
  addRangeBlackholes,
  labRanges,
  createPodNet,
  destroyPodNet,
  hostVethName,
  linkNameTaken,
  netnsExists,
  netnsName,
  removeBlackholes,
  type PodNet,
} from './netns.js';
import { acquireSysctls, releaseSysctls } from './sysctl.js';
import type { KubeObject } from '../store/index.js';
import { spawnInNetns } from './exec.js';
import { waitForPodAgent } from './pod-client.js';
import { formatPorts } from './pod-agent.js';
import type { ServedPort } from './probe-protocol.js';

const POD_AGENT = fileURLToPath(new URL('./pod-agent.js', import.meta.url));
const POD_AGENT_START_MS = 20_000;

export interface LabPodSpec {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ports: ServedPort[];
}

export interface LabPod extends LabPodSpec, PodNet {
  /** Position in the pod range, reused after the pod is gone. */
  index: number;
  pid: number;
  socket: string;
}

/** How the lab agent was started, so that `weir lab restart-agent` starts the next one alike. */
export interface LabDaemonOptions {
  enforce: boolean;
  /** Asked for with --metrics-port (or WEIR_LAB_METRICS_PORT); absent: 9962, or a free port. */
  metricsPort?: number;
  podMetrics?: boolean;
  podMetricsMaxPods?: number;
  /** Map sizes at load (`--map-max weir_policy=64`), so a full map is cheap to reach in a test. */
  mapMax?: Record<string, number>;
  /** Periodic resync of the maps, ms (`--resync-interval`). */
  resyncIntervalMs?: number;
}

export interface LabState {
  config: LabConfig;
  /** Each pod's namespace and veth are recorded here before they are made. */
  pods: LabPod[];
  /** The agent daemon serving this lab, when running. */
  daemon?: { pid: number; socket: string; options?: LabDaemonOptions };
  /** Blackhole routes (the pod ranges), recorded before they are added. */
  routes?: string[];
  /** The pin root, recorded before anything is pinned there. */
  pins?: string;
  /** This lab holds the node's forwarding switches (agent/lab/sysctl.ts). */
  sysctls?: boolean;
  /**
   * The cluster objects the agent is to enforce, written before each change reaches the
   * datapath: a restarted agent adopts the pins with these, never with less than was asked.
   */
  objects?: KubeObject[];
}

export function statePath(c: LabConfig): string {
  return join(c.runDir, 'state.json');
}

export function readState(c: LabConfig): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(c), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when the process still runs and its command line names `marker` (guards against pid reuse). */
function ours(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

/**
 * Ends a process the lab started (by its pid), waiting briefly for it to go. With `marker`,
 * only a process whose command line holds it is signalled, so a recycled pid is left alone.
 */
export async function stopProcess(pid: number, marker?: string, graceMs = 2000): Promise<boolean> {
  if (!alive(pid) || (marker !== undefined && !ours(pid, marker))) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  const end = Date.now() + graceMs;
  while (Date.now() < end && alive(pid)) await new Promise((r) => setTimeout(r, 25));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return true;
}

export const podKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;

export class LabRuntime {
  private readonly pods = new Map<string, LabPod>();
  private readonly range4;
  private readonly range6;
  daemon?: LabState['daemon'];
  private routes: string[] = [];
  private pins?: string;
  private sysctls = false;
  objects: KubeObject[] = [];

  constructor(readonly config: LabConfig) {
    this.range4 = parseCidr(config.cidr4, 4);
    this.range6 = parseCidr(config.cidr6, 6);
  }

  get podDir(): string {
    return join(this.config.runDir, 'pods');
  }

  /** Cleans what an earlier run left, then prepares the node (forwarding, blackhole routes). */
  async prepare(): Promise<void> {
    await teardownLab(this.config, { keepRunDir: true });
    if (existsSync(this.config.pinRoot))
      throw new Error(
        `pin root ${this.config.pinRoot} exists and was not made by this lab (another lab or a weir agent may use it): choose another --pin-root, or remove it if nothing uses it`,
      );
    mkdirSync(this.podDir, { recursive: true });
    // Recorded first: a crash after any of the steps below leaves a state that undoes it.
    this.routes = labRanges(this.config);
    this.pins = this.config.pinRoot;
    this.sysctls = true;
    this.save();
    acquireSysctls(this.config.runDir);
    await addRangeBlackholes(this.config);
  }

  /**
   * Takes over a running lab from its state (a new agent after `restart-agent` or a crash):
   * pods whose namespace and veth are still there are kept, their pod agents started again if
   * they died; pods whose plumbing is gone are forgotten.
   */
  async adopt(state: LabState, log: (line: string) => void = () => undefined): Promise<void> {
    mkdirSync(this.podDir, { recursive: true });
    this.routes = state.routes ?? [];
    if (state.pins !== undefined) this.pins = state.pins;
    this.sysctls = state.sysctls ?? false;
    this.objects = state.objects ?? [];
    const gone = new Set<string>();
    for (const p of state.pods) {
      if (!netnsExists(p.netns) || !linkNameTaken(p.hostVeth)) {
        // Half made (the previous agent died while creating it) or half removed: finish removing it.
        gone.add(podKey(p));
        if (p.pid) await stopProcess(p.pid, this.config.runDir);
        await destroyPodNet(p);
        log(`pod ${podKey(p)}: its network namespace or veth was gone; removed the rest`);
        continue;
      }
      const ifindex = Number(readFileSync(`/sys/class/net/${p.hostVeth}/ifindex`, 'utf8').trim());
      const pod: LabPod = { ...p, ifindex };
      this.pods.set(podKey(p), pod);
      if (!pod.pid || !ours(pod.pid, this.config.runDir)) {
        log(`pod ${podKey(p)}: its pod agent is not running; starting it again`);
        await this.startAgent(pod);
      }
    }
    this.objects = this.objects.filter((o) => o.kind !== 'Pod' || !gone.has(podKey(o)));
    this.save();
  }

  list(): LabPod[] {
    return [...this.pods.values()].sort((a, b) => a.index - b.index);
  }

  get(key: string): LabPod | undefined {
    return this.pods.get(key);
  }

  private freeIndex(): number {
    const used = new Set([...this.pods.values()].map((p) => p.index));
    let i = 0;
    while (used.has(i)) i++;
    return i;
  }

  /** Creates the pod's namespace, veth, addresses and routes, and starts its agent. */
  async addPod(spec: LabPodSpec): Promise<LabPod> {
    const key = podKey(spec);
    if (this.pods.has(key)) throw new Error(`pod ${key} already exists in the lab`);
    const netns = netnsName(this.config.prefix, spec.namespace, spec.name);
    const hostVeth = hostVethName(this.config.prefix, spec.namespace, spec.name);
    if (netnsExists(netns) || linkNameTaken(hostVeth))
      throw new Error(
        `pod ${key}: network namespace ${netns} or interface ${hostVeth} already exists and was not made by this lab; remove it or choose another --prefix`,
      );
    const index = this.freeIndex();
    const ip4 = podAddress(this.range4, index);
    const ip6 = podAddress(this.range6, index);
    // Reserve the index before the awaits so concurrent adds do not collide.
    const placeholder = {
      ...spec,
      index,
      pid: 0,
      socket: '',
      netns,
      hostVeth,
      ifindex: 0,
      ip4,
      ip6,
    };
    this.pods.set(key, placeholder);
    try {
      // Recorded before it is made, so that `down` removes it even if this process dies now.
      this.save();
      const net = await createPodNet(this.config, spec.namespace, spec.name, ip4, ip6);
      const pod: LabPod = { ...placeholder, ...net };
      this.pods.set(key, pod);
      this.save();
      await this.startAgent(pod);
      this.save();
      return pod;
    } catch (err) {
      const p = this.pods.get(key);
      this.pods.delete(key);
      if (p) {
        if (p.pid) await stopProcess(p.pid, this.config.runDir);
        await destroyPodNet(p);
      }
      this.save();
      throw err;
    }
  }

  private async startAgent(pod: LabPod): Promise<void> {
    pod.socket = join(this.podDir, `${pod.hostVeth}.sock`);
    const log = openSync(join(this.podDir, `${pod.hostVeth}.log`), 'a');
    try {
      pod.pid = spawnInNetns(
        pod.netns,
        [process.execPath, POD_AGENT, '--pod', podKey(pod), '--socket', pod.socket, '--ports', formatPorts(pod.ports)],
        log,
      );
    } finally {
      closeSync(log);
    }
    await waitForPodAgent(pod.socket, POD_AGENT_START_MS);
  }

  /** Labels change in place; a change of ports restarts the pod's agent. */
  async updatePod(spec: LabPodSpec): Promise<LabPod> {
    const pod = this.pods.get(podKey(spec));
    if (!pod) return this.addPod(spec);
    pod.labels = { ...spec.labels };
    if (formatPorts(pod.ports) !== formatPorts(spec.ports)) {
      pod.ports = spec.ports;
      await stopProcess(pod.pid, this.config.runDir);
      await this.startAgent(pod);
    }
    this.save();
    return pod;
  }

  async removePod(key: string): Promise<boolean> {
    const pod = this.pods.get(key);
    if (!pod) return false;
    this.pods.delete(key);
    await stopProcess(pod.pid, this.config.runDir);
    await destroyPodNet(pod);
    rmSync(pod.socket, { force: true });
    this.save();
    return true;
  }

  save(): void {
    mkdirSync(this.config.runDir, { recursive: true });
    const state: LabState = {
      config: this.config,
      pods: this.list(),
      ...(this.daemon ? { daemon: this.daemon } : {}),
      routes: this.routes,
      ...(this.pins !== undefined ? { pins: this.pins } : {}),
      sysctls: this.sysctls,
      objects: this.objects,
    };
    const tmp = `${statePath(this.config)}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
    renameSync(tmp, statePath(this.config));
  }

  async shutdown(): Promise<void> {
    await Promise.all(this.list().map((p) => stopProcess(p.pid, this.config.runDir)));
    await Promise.all(this.list().map((p) => destroyPodNet(p)));
    this.pods.clear();
    this.save();
  }
}

/** Pids of processes whose command line holds `marker`. */
function processesMentioning(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

export interface TeardownReport {
  processes: number;
  /** Network namespaces and links removed. */
  interfaces: number;
  pins: boolean;
  /** Node switches put back as they were (only by the last lab down). */
  sysctlsRestored: string[];
}

/**
 * Removes what the lab with this config recorded in its state: its daemon and pod processes (by
 * the pids it recorded, or any naming its run dir), each pod's namespace and veth, its blackhole
 * routes, its pin root and its run directory; and hands back the node's forwarding switches (the
 * last lab puts back their old values). Nothing is found by name: a namespace or link that only
 * shares the prefix is left alone. Idempotent: safe to run when nothing is left.
 */
export async function teardownLab(c: LabConfig, opts: { keepRunDir?: boolean } = {}): Promise<TeardownReport> {
  const state = readState(c);
  const recorded = [
    ...(state?.daemon ? [state.daemon.pid] : []),
    ...(state?.pods ?? []).map((p) => p.pid).filter((p) => p > 0),
  ];
  // Pod agents a crashed run started before it could record them carry the run dir in argv.
  const pids = [...new Set([...recorded, ...processesMentioning(join(c.runDir, 'pods'))])].filter(
    (p) => p !== process.pid,
  );
  const stopped = (await Promise.all(pids.map((pid) => stopProcess(pid, c.runDir)))).filter(Boolean).length;
  const pods = state?.pods ?? [];
  const interfaces =
    pods.filter((p) => netnsExists(p.netns)).length + pods.filter((p) => linkNameTaken(p.hostVeth)).length;
  await Promise.all(pods.map((p) => destroyPodNet(p)));
  let pins = false;
  if (state) {
    const routes = state.routes ?? [state.config.cidr4, state.config.cidr6];
    await removeBlackholes(routes);
    // A state written before pins were recorded names its pin root in its config.
    const pinRoot = state.pins ?? state.config.pinRoot;
    pins = existsSync(pinRoot);
    rmSync(pinRoot, { recursive: true, force: true });
  }
  const sysctlsRestored = releaseSysctls(c.runDir);
  if (opts.keepRunDir) {
    rmSync(statePath(c), { force: true });
    rmSync(join(c.runDir, 'pods'), { recursive: true, force: true });
  } else {
    rmSync(c.runDir, { recursive: true, force: true });
  }
  return { processes: stopped, interfaces, pins, sysctlsRestored };
}
