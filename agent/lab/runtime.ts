/**
 * The lab's pods as real network namespaces: create, relabel, remove, tear everything down.
 * Its state lives in `<runDir>/state.json` so that `weir lab down` and the next `up` can clean
 * what a crashed run left.
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
  createPodNet,
  destroyPodNet,
  enableForwarding,
  restoreForwarding,
  hostVethName,
  netnsName,
  removeLeftovers,
  removeRangeBlackholes,
  type PodNet,
} from './netns.js';
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

export interface LabState {
  config: LabConfig;
  pods: LabPod[];
  /** The agent daemon serving this lab, when running. */
  daemon?: { pid: number; socket: string };
}

/** Lists the forwarding switches the lab turned on, to turn them off again on `down`. */
function forwardingMarker(c: LabConfig): string {
  return join(c.runDir, 'forwarding');
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
  daemon?: { pid: number; socket: string };

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
    mkdirSync(this.podDir, { recursive: true });
    enableForwarding(forwardingMarker(this.config));
    await addRangeBlackholes(this.config);
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
    const index = this.freeIndex();
    const ip4 = podAddress(this.range4, index);
    const ip6 = podAddress(this.range6, index);
    // Reserve the index before the awaits so concurrent adds do not collide.
    const placeholder = {
      ...spec,
      index,
      pid: 0,
      socket: '',
      netns: netnsName(this.config.prefix, spec.namespace, spec.name),
      hostVeth: hostVethName(this.config.prefix, spec.namespace, spec.name),
      ifindex: 0,
      ip4,
      ip6,
    };
    this.pods.set(key, placeholder);
    try {
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
    const state: LabState = { config: this.config, pods: this.list(), ...(this.daemon ? { daemon: this.daemon } : {}) };
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
  interfaces: number;
  pins: boolean;
}

/**
 * Removes everything a lab with this config made: its daemon and pod processes (by the pids it
 * recorded), every namespace and veth with its prefix, its blackhole routes, its pins and its run
 * directory. Idempotent: safe to run when nothing is left.
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
  const interfaces = await removeLeftovers(c.prefix);
  await removeRangeBlackholes(c);
  restoreForwarding(forwardingMarker(c));
  const pins = existsSync(c.pinRoot);
  rmSync(c.pinRoot, { recursive: true, force: true });
  if (opts.keepRunDir) {
    rmSync(statePath(c), { force: true });
    rmSync(join(c.runDir, 'pods'), { recursive: true, force: true });
  } else {
    rmSync(c.runDir, { recursive: true, force: true });
  }
  return { processes: stopped, interfaces, pins };
}
