/**
 * A small "cluster" on one machine for the Kubernetes end-to-end tests (needs root):
 * - a bridge in the host namespace (10.240.100.1/24) where the test API server listens;
 * - each node is a network namespace attached to that bridge (10.240.100.1N), forwarding on,
 *   with routes to the other nodes' pod CIDRs (10.240.N.0/24) through their bridge address;
 * - each pod is a network namespace behind a routed veth in its node's namespace (ptp style:
 *   pod address /32, host route per pod, default route to a link-local gateway on the node side).
 * - a client (`addClient`) is a network namespace on the bridge itself, outside every node.
 * Every name starts with the prefix (`wk8` unless given) and every address lies in 10.<net>.0.0/16
 * and fd00:<net>::/32 (net 240 unless given), so test files with their own prefix and net never
 * collide; everything is removed by `destroy()`, also after a crash of an earlier run (`create()`
 * cleans first).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const TOOLS = join(dirname(fileURLToPath(import.meta.url)), 'tools');
export const API_HOST = '10.240.100.1';
/** The pods' gateway: the same link-local address on every host-side veth (as the ptp CNI does). */
const GATEWAY = '169.254.1.1';
const GATEWAY6 = 'fe80::1';

export function sh(cmd: string): string {
  return execFileSync('sh', ['-c', cmd], { stdio: 'pipe' }).toString();
}
function quiet(cmd: string): void {
  try {
    sh(cmd);
  } catch {
    /* not there */
  }
}

export interface TestNode {
  name: string;
  index: number;
  netns: string;
  address: string;
  address6: string;
  podCIDR: string;
  podCIDR6: string;
}

/** A host outside every node, on the nodes' network (the bridge). */
export interface TestClient {
  name: string;
  netns: string;
  address: string;
  address6: string;
}

export interface TestPod {
  namespace: string;
  name: string;
  node: TestNode;
  netns: string;
  ip: string;
  /** Routed pods are dual-stack; bridged ones IPv4 only. */
  ip6?: string;
  hostVeth: string;
}

/** A pod's prober process: one TCP connection attempt per request line. */
class Prober {
  private seq = 0;
  private readonly waiting = new Map<string, (ok: boolean) => void>();

  private constructor(private readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const [id, verdict] = buf.slice(0, i).split(' ');
        buf = buf.slice(i + 1);
        this.waiting.get(id!)?.(verdict === 'ok');
        this.waiting.delete(id!);
      }
    });
  }

  static async start(child: ChildProcess): Promise<Prober> {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`prober exited with ${code}`)));
    });
    return new Prober(child);
  }

  ask(target: string, timeoutMs: number): Promise<boolean> {
    const id = String(++this.seq);
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(`${id} ${target} ${timeoutMs}\n`);
    });
  }
}

export class Topology {
  readonly nodes: TestNode[] = [];
  readonly pods: TestPod[] = [];
  readonly clients: TestClient[] = [];
  private readonly procs: ChildProcess[] = [];
  /** Prefix of every name (at most 4 characters: interface names have 15). */
  readonly prefix: string;
  /** Second octet of every IPv4 address (10.<net>...), and the IPv6 addresses' fd00:<net>:... */
  readonly net: number;
  /** Where the test API server listens: the bridge's address in the host namespace. */
  readonly apiHost: string;
  private readonly bridge: string;

  constructor(opts: { prefix?: string; net?: number } = {}) {
    this.prefix = opts.prefix ?? 'wk8';
    this.net = opts.net ?? 240;
    if (this.prefix.length > 4) throw new Error('the topology prefix has at most 4 characters');
    this.apiHost = `10.${this.net}.100.1`;
    this.bridge = `${this.prefix}api`;
  }

  /** Removes whatever an earlier run of this prefix left behind. */
  cleanStale(): void {
    const p = this.prefix;
    const netns = existsSync('/var/run/netns') ? readdirSync('/var/run/netns') : [];
    for (const n of netns.filter((x) => x.startsWith(`${p}-n`) || x.startsWith(`${p}-c`))) quiet(`ip netns del ${n}`);
    for (const l of sh('ip -o link show').split('\n')) {
      const m = /^\d+: ([a-z0-9]+)[@:]/.exec(l);
      const name = m?.[1];
      if (name && (name.startsWith(`${p}h`) || name.startsWith(`${p}c`) || name === this.bridge))
        quiet(`ip link del ${name}`);
    }
  }

  create(): void {
    this.cleanStale();
    // No multicast snooping: the node-to-node "network" floods IPv6 neighbour solicitations as a
    // switch without MLD state would, instead of dropping them until each node's MLD report is seen.
    sh(
      `ip link add ${this.bridge} type bridge mcast_snooping 0 && ip addr add ${this.apiHost}/24 dev ${this.bridge} && ip link set ${this.bridge} up`,
    );
  }

  /**
   * A host on the nodes' network outside every node (a client of NodePorts): a namespace whose veth
   * is a port of the bridge, with 10.<net>.100.<index>/24 and fd00:<net>:100::<index>/64.
   */
  addClient(name: string, index: number): TestClient {
    if (index < 20 || index > 250) throw new Error('clients use host numbers 20-250 (nodes use 11-19)');
    const client: TestClient = {
      name,
      netns: `${this.prefix}-c${index}`,
      address: `10.${this.net}.100.${index}`,
      address6: `fd00:${this.net}:100::${index}`,
    };
    const hv = `${this.prefix}c${index}`;
    this.clients.push(client);
    sh(`ip netns add ${client.netns}`);
    sh(`ip link add ${hv} type veth peer name eth0 netns ${client.netns}`);
    sh(`ip link set ${hv} master ${this.bridge} && ip link set ${hv} up`);
    const c = `ip -n ${client.netns}`;
    sh(`${c} link set lo up && ${c} addr add ${client.address}/24 dev eth0 && ${c} link set eth0 up`);
    sh(`${c} addr add ${client.address6}/64 dev eth0 nodad`);
    return client;
  }

  addNode(index: number): TestNode {
    const net = this.net;
    const node: TestNode = {
      name: `node-${index}`,
      index,
      netns: `${this.prefix}-n${index}`,
      address: `10.${net}.100.${10 + index}`,
      address6: `fd00:${net}:100::${10 + index}`,
      podCIDR: `10.${net}.${index}.0/24`,
      podCIDR6: `fd00:${net}:${index}::/64`,
    };
    const hv = `${this.prefix}h${index}`;
    this.nodes.push(node); // destroy() removes it even if the set-up below fails half-way
    sh(`ip netns add ${node.netns}`);
    sh(`ip link add ${hv} type veth peer name eth0 netns ${node.netns}`);
    sh(`ip link set ${hv} master ${this.bridge} && ip link set ${hv} up`);
    const n = `ip -n ${node.netns}`;
    sh(`${n} link set lo up && ${n} addr add ${node.address}/24 dev eth0 && ${n} link set eth0 up`);
    sh(`${n} addr add ${node.address6}/64 dev eth0 nodad`);
    sh(`ip netns exec ${node.netns} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1`);
    for (const other of this.nodes) {
      if (other === node) continue;
      sh(`${n} route add ${other.podCIDR} via ${other.address}`);
      sh(`ip -n ${other.netns} route add ${node.podCIDR} via ${node.address}`);
      sh(`${n} -6 route add ${other.podCIDR6} via ${other.address6}`);
      sh(`ip -n ${other.netns} -6 route add ${node.podCIDR6} via ${node.address6}`);
    }
    return node;
  }

  /**
   * A pod whose veth is a port of a bridge in the node's namespace (bridge CNI style): the bridge
   * `<prefix>br<node>` holds 10.<net>.<node>.129/25, the pod gets an address of that /25 and a default route
   * to the bridge address. Runs a TCP server on `ports`.
   */
  addBridgedPod(node: TestNode, namespace: string, name: string, hostIndex: number, ports: number[] = [80]): TestPod {
    if (hostIndex <= 129 || hostIndex > 254) throw new Error('bridged pods use host numbers 130-254');
    const br = `${this.prefix}br${node.index}`;
    const n = `ip -n ${node.netns}`;
    if (!sh(`${n} -o link show`).includes(`${br}:`)) {
      sh(
        `${n} link add ${br} type bridge && ${n} addr add 10.${this.net}.${node.index}.129/25 dev ${br} && ${n} link set ${br} up`,
      );
    }
    const pod: TestPod = {
      namespace,
      name,
      node,
      netns: `${this.prefix}-n${node.index}-${name}`.slice(0, 30),
      ip: `10.${this.net}.${node.index}.${hostIndex}`,
      hostVeth: `${this.prefix}n${node.index}${name}`.slice(0, 15),
    };
    this.pods.push(pod);
    sh(`ip netns add ${pod.netns}`);
    sh(`${n} link add ${pod.hostVeth} type veth peer name eth0 netns ${pod.netns}`);
    sh(`${n} link set ${pod.hostVeth} master ${br} && ${n} link set ${pod.hostVeth} up`);
    const p = `ip -n ${pod.netns}`;
    sh(`${p} link set lo up && ${p} addr add ${pod.ip}/25 dev eth0 && ${p} link set eth0 up`);
    sh(`${p} route add default via 10.${this.net}.${node.index}.129 dev eth0`);
    if (ports.length)
      this.spawnIn(pod.netns, [process.execPath, join(TOOLS, 'pod-server.mjs'), name, ...ports.map(String)]);
    return pod;
  }

  /** A dual-stack pod behind a routed veth on `node`, running a TCP server on `ports`. */
  addPod(node: TestNode, namespace: string, name: string, hostIndex: number, ports: number[] = [80]): TestPod {
    const pod: TestPod = {
      namespace,
      name,
      node,
      netns: `${this.prefix}-n${node.index}-${name}`.slice(0, 30),
      ip: `10.${this.net}.${node.index}.${hostIndex}`,
      ip6: `fd00:${this.net}:${node.index}::${hostIndex}`,
      hostVeth: `${this.prefix}n${node.index}${name}`.slice(0, 15),
    };
    const n = `ip -n ${node.netns}`;
    this.pods.push(pod);
    sh(`ip netns add ${pod.netns}`);
    sh(`${n} link add ${pod.hostVeth} type veth peer name eth0 netns ${pod.netns}`);
    sh(`${n} link set ${pod.hostVeth} up`);
    sh(`${n} addr add ${GATEWAY}/32 dev ${pod.hostVeth}`);
    sh(`${n} route add ${pod.ip}/32 dev ${pod.hostVeth} scope link`);
    const p = `ip -n ${pod.netns}`;
    sh(`${p} link set lo up && ${p} addr add ${pod.ip}/32 dev eth0 && ${p} link set eth0 up`);
    sh(`${p} route add ${GATEWAY} dev eth0 scope link && ${p} route add default via ${GATEWAY} dev eth0`);
    // IPv6: the host side answers the link-local gateway, the node routes the pod's /128 to the veth.
    sh(
      `${n} addr add ${GATEWAY6}/64 dev ${pod.hostVeth} nodad && ${n} -6 route add ${pod.ip6}/128 dev ${pod.hostVeth}`,
    );
    sh(`${p} addr add ${pod.ip6}/128 dev eth0 nodad && ${p} -6 route add default via ${GATEWAY6} dev eth0`);
    if (ports.length)
      this.spawnIn(pod.netns, [process.execPath, join(TOOLS, 'pod-server.mjs'), name, ...ports.map(String)]);
    return pod;
  }

  /** Starts a process in a network namespace (nsenter keeps bpffs visible, unlike `ip netns exec`). */
  spawnIn(netns: string, argv: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    const child = spawn('nsenter', [`--net=/var/run/netns/${netns}`, ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env,
    });
    this.procs.push(child);
    return child;
  }

  /**
   * TCP probes from `from` to each target, concurrently: true = connected and greeted.
   * Each pod has one long-lived prober process (started on first use), so a probe costs a
   * connection attempt, not a process start.
   */
  async probe(
    from: TestPod,
    targets: Array<{ pod: TestPod; port: number; family?: 4 | 6 }>,
    timeoutMs = 250,
  ): Promise<boolean[]> {
    const prober = await this.prober(from);
    return Promise.all(
      targets.map((t) => {
        const ip = t.family === 6 ? t.pod.ip6 : t.pod.ip;
        if (!ip) throw new Error(`pod ${t.pod.name} has no IPv${t.family} address`);
        return prober.ask(`${ip}:${t.port}`, timeoutMs);
      }),
    );
  }

  private readonly probers = new Map<string, Promise<Prober>>();

  private prober(pod: TestPod): Promise<Prober> {
    let p = this.probers.get(pod.netns);
    if (!p) {
      p = Prober.start(this.spawnIn(pod.netns, [process.execPath, join(TOOLS, 'pod-prober.mjs')]));
      this.probers.set(pod.netns, p);
    }
    return p;
  }

  /** A long-lived connection from `from` to `to`:`port` echoing a line every `intervalMs`. */
  stream(from: TestPod, to: TestPod, port: number, intervalMs: number): ChildProcess {
    return this.spawnIn(from.netns, [
      process.execPath,
      join(TOOLS, 'pod-stream.mjs'),
      to.ip,
      String(port),
      String(intervalMs),
    ]);
  }

  /** Where a node's agent pins its maps and programs (its --pin-root). */
  pinRoot(node: TestNode): string {
    return `/sys/fs/bpf/${this.prefix}-${node.name}`;
  }

  /**
   * The end of a test file: each process's output when WEIR_E2E_LOGS is set, the processes killed,
   * `stop` (the API server, clients), the topology removed, then the agents' pins (their programs
   * went with the namespaces; pins stay unless removed).
   */
  async tearDown(procs: Map<string, LoggedProcess>, stop: () => Promise<void>): Promise<void> {
    if (process.env.WEIR_E2E_LOGS)
      for (const [n, p] of procs) process.stderr.write(`--- ${n}\n${p.lines.join('\n')}\n`);
    for (const p of procs.values()) p.kill9();
    await stop();
    await this.destroy();
    for (const n of this.nodes) rmSync(this.pinRoot(n), { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    for (const p of this.procs) {
      if (p.exitCode === null && p.signalCode === null && p.pid !== undefined) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await new Promise((r) => setTimeout(r, 50));
    for (const pod of this.pods) quiet(`ip netns del ${pod.netns}`);
    for (const c of this.clients) quiet(`ip netns del ${c.netns}`);
    for (const node of this.nodes) {
      quiet(`ip netns del ${node.netns}`);
      quiet(`ip link del ${this.prefix}h${node.index}`);
    }
    quiet(`ip link del ${this.bridge}`);
  }
}

/** The lines a process (an agent, a relay) wrote, and a way to wait for one. */
export class LoggedProcess {
  lines: string[] = [];
  constructor(readonly child: ChildProcess) {
    let buf = '';
    const take = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
  }

  async waitFor(re: RegExp, ms = 30_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const l = this.lines.find((x) => re.test(x));
      if (l) return l;
      if (this.child.exitCode !== null)
        throw new Error(`process exited (${this.child.exitCode}):\n${this.lines.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no line matching ${re} within ${ms} ms:\n${this.lines.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  kill9(): void {
    if (this.child.pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(this.child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
