/**
 * The bench's little cluster: a "node" network namespace that routes between pod namespaces,
 * each pod joined to it by a veth whose node-side end is where a dataplane enforces (weir's tc
 * programs, or Calico-style iptables chains in the node namespace's FORWARD path). Nothing is
 * added to the host's own namespace.
 */
import { run } from './exec.js';

export interface Pod {
  /** Short name: a, b, c. */
  name: string;
  netns: string;
  /** The veth end in the node namespace (where enforcement happens). */
  hostIf: string;
  /** The pod's address. */
  ip: string;
  /** The node-side address the pod routes through. */
  gateway: string;
  /** Interface index of hostIf inside the node namespace. */
  hostIfindex: number;
}

export interface Topology {
  prefix: string;
  /** The node's network namespace. */
  node: string;
  pods: Pod[];
  pod(name: string): Pod;
  destroy(): Promise<void>;
}

export interface TopologyOptions {
  /** Prefix of every namespace and interface; the bench's is "wbn". */
  prefix: string;
  /** Second octet of 10.X.0.0/16, the only IPv4 range used. */
  octet: number;
  pods: string[];
}

async function ip(args: string[]): Promise<string> {
  return (await run('ip', args, { timeoutMs: 10_000 })).stdout;
}

async function existingNetns(): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Removes every namespace this prefix owns (left over by an interrupted run). Veths go with them. */
export async function removeNamespaces(prefix: string): Promise<void> {
  for (const ns of await existingNetns()) {
    if (ns === `${prefix}-node` || ns.startsWith(`${prefix}-pod-`)) await ip(['netns', 'del', ns]);
  }
}

export async function createTopology(opts: TopologyOptions): Promise<Topology> {
  const { prefix, octet } = opts;
  const node = `${prefix}-node`;
  await removeNamespaces(prefix);
  const pods: Pod[] = [];
  const topo: Topology = {
    prefix,
    node,
    pods,
    pod(name) {
      const p = pods.find((x) => x.name === name);
      if (!p) throw new Error(`no pod ${name} in the bench topology (have ${pods.map((x) => x.name).join(', ')})`);
      return p;
    },
    destroy: () => removeNamespaces(prefix),
  };
  try {
    await ip(['netns', 'add', node]);
    await ip(['-n', node, 'link', 'set', 'lo', 'up']);
    await run('ip', ['netns', 'exec', node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'], { timeoutMs: 10_000 });
    for (const [i, name] of opts.pods.entries()) {
      const netns = `${prefix}-pod-${name}`;
      const hostIf = `${prefix}-${name}-h`;
      if (hostIf.length > 15)
        throw new Error(`interface name ${hostIf} is longer than 15 characters: use a shorter prefix or pod name`);
      const subnet = `10.${octet}.${i + 1}`;
      const pod: Pod = { name, netns, hostIf, ip: `${subnet}.2`, gateway: `${subnet}.1`, hostIfindex: 0 };
      await ip(['netns', 'add', netns]);
      await ip(['link', 'add', hostIf, 'netns', node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await ip(['-n', node, 'addr', 'add', `${pod.gateway}/24`, 'dev', hostIf]);
      await ip(['-n', node, 'link', 'set', hostIf, 'up']);
      await ip(['-n', netns, 'addr', 'add', `${pod.ip}/24`, 'dev', 'eth0']);
      await ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', netns, 'route', 'add', 'default', 'via', pod.gateway]);
      const links = JSON.parse(await ip(['-n', node, '-j', 'link', 'show', 'dev', hostIf])) as { ifindex: number }[];
      pod.hostIfindex = links[0]?.ifindex ?? 0;
      pods.push(pod);
    }
  } catch (err) {
    await topo.destroy();
    throw err;
  }
  return topo;
}
