/**
 * NodePort on the node's external interfaces: which interfaces serve NodePorts, and keeping weir's
 * `from_node` / `to_node` attached to exactly those. Chosen by name (`--nodeport-interfaces`), else
 * every interface that holds one of the node's InternalIP / ExternalIP addresses (its Node object)
 * — loopback never (no packet from outside the node arrives there). Interfaces that appear later,
 * or are created again with a new ifindex, are picked up by the next `refresh` (the agent calls it
 * when its Node changes and on a timer); an interface no longer chosen is detached, also when an
 * earlier agent attached it (found by the program's name on its tc ingress).
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import type { Node } from '../store/index.js';

const run = promisify(execFile);

/** One interface with its addresses, as `ip -j addr show` prints it. */
export interface LinkAddresses {
  ifindex: number;
  ifname: string;
  flags?: string[];
  addr_info?: Array<{ local?: string }>;
}

export interface NodePortInterface {
  name: string;
  ifindex: number;
  /** The node addresses it holds (empty when chosen by name). */
  addresses: string[];
}

export interface NodePortChoice {
  /** 'flag': the names configured; 'node': the interfaces holding the Node's addresses. */
  by: 'flag' | 'node';
  interfaces: NodePortInterface[];
  /** Configured names with no such interface, or Node addresses no interface holds. */
  missing: string[];
}

/** The addresses of a Node that clients reach it on (InternalIP and ExternalIP), canonical. */
export function nodeAddresses(node: Node | undefined): string[] {
  return (node?.addresses ?? [])
    .filter((a) => (a.type === 'InternalIP' || a.type === 'ExternalIP') && isIP(a.address) !== 0)
    .map((a) => canonical(a.address));
}

function canonical(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip;
}

/** Pure: the interfaces that serve NodePorts, given this namespace's links. */
export function chooseNodePortInterfaces(links: LinkAddresses[], names: string[], addresses: string[]): NodePortChoice {
  if (names.length > 0) {
    const byName = new Map(links.map((l) => [l.ifname, l]));
    return {
      by: 'flag',
      interfaces: names.flatMap((n) => {
        const l = byName.get(n);
        return l ? [{ name: n, ifindex: l.ifindex, addresses: [] }] : [];
      }),
      missing: names.filter((n) => !byName.has(n)),
    };
  }
  const wanted = new Set(addresses.map(canonical));
  const found = new Set<string>();
  const interfaces: NodePortInterface[] = [];
  for (const l of links) {
    if ((l.flags ?? []).includes('LOOPBACK')) continue;
    const held = (l.addr_info ?? []).map((a) => (a.local ? canonical(a.local) : '')).filter((a) => wanted.has(a));
    if (held.length === 0) continue;
    for (const a of held) found.add(a);
    interfaces.push({ name: l.ifname, ifindex: l.ifindex, addresses: held });
  }
  return { by: 'node', interfaces, missing: [...wanted].filter((a) => !found.has(a)) };
}

/** Every interface of the agent's network namespace with its addresses (netlink, through iproute2). */
export async function listLinkAddresses(): Promise<LinkAddresses[]> {
  const { stdout } = await run('ip', ['-j', 'addr', 'show'], { timeout: 5000, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as LinkAddresses[];
}

/** What attaches: the datapath's NodePort programs (agent/datapath/datapath.ts). */
export interface NodePortAttach {
  attach(ifindex: number): void;
  detach(ifindex: number): void;
  /** The name of weir's program on this interface's tc ingress (this agent's or an earlier one's). */
  programOn(ifindex: number): string | undefined;
}

const FROM_NODE = 'from_node';
const FROM_POD = 'from_pod';

export interface NodePortStatus {
  by: 'flag' | 'node';
  interfaces: NodePortInterface[];
  missing: string[];
  /** Attachments that failed at the last refresh, with the error; retried at the next. */
  failed: Array<{ name: string; error: string }>;
}

/** Keeps from_node / to_node on exactly the chosen interfaces. */
export class NodePortInterfaces {
  /** ifindex -> interface, attached by this agent. */
  private readonly attached = new Map<number, NodePortInterface>();
  private choice: NodePortChoice = { by: 'node', interfaces: [], missing: [] };
  private failed: Array<{ name: string; error: string }> = [];
  /** The first refresh looks at every interface for an earlier agent's attachments. */
  private scanned = false;

  constructor(
    private readonly names: string[],
    private readonly dp: NodePortAttach,
    private readonly log: { info(l: string): void; warn(l: string): void },
    private readonly links: () => Promise<LinkAddresses[]> = listLinkAddresses,
  ) {}

  /** Chooses again from the interfaces as they are now and the Node's addresses; attaches and detaches. */
  async refresh(addresses: string[]): Promise<void> {
    const links = await this.links();
    const choice = chooseNodePortInterfaces(links, this.names, addresses);
    const wanted = new Map(choice.interfaces.map((i) => [i.ifindex, i]));
    const failed: Array<{ name: string; error: string }> = [];
    for (const i of choice.interfaces) {
      if (this.attached.has(i.ifindex)) {
        this.attached.set(i.ifindex, i);
        continue;
      }
      try {
        // A pod's interface keeps the pod's programs: NodePort there would leave the pod unpoliced.
        if (this.dp.programOn(i.ifindex) === FROM_POD)
          throw new Error("it carries a pod's programs (from_pod): a pod's interface never serves NodePorts");
        this.dp.attach(i.ifindex);
        this.attached.set(i.ifindex, i);
        this.log.info(
          `NodePorts served on ${i.name} (ifindex ${i.ifindex}${i.addresses.length ? `, node address ${i.addresses.join(', ')}` : ', named by --nodeport-interfaces'})`,
        );
      } catch (err) {
        failed.push({ name: i.name, error: err instanceof Error ? err.message : String(err) });
      }
    }
    // Detached: what this agent attached and no longer wants; on the first refresh also what an
    // earlier agent left on interfaces not chosen now.
    const stale = new Set([...this.attached.keys()].filter((k) => !wanted.has(k)));
    if (!this.scanned) {
      for (const l of links)
        if (!wanted.has(l.ifindex) && this.dp.programOn(l.ifindex) === FROM_NODE) stale.add(l.ifindex);
      this.scanned = true;
    }
    for (const ifindex of stale) {
      const name = this.attached.get(ifindex)?.name ?? links.find((l) => l.ifindex === ifindex)?.ifname;
      try {
        this.dp.detach(ifindex);
        this.log.info(`NodePorts no longer served on ${name ?? `ifindex ${ifindex}`}`);
      } catch {
        /* the interface is gone, and its filters with it */
      }
      this.attached.delete(ifindex);
    }
    const missingNow = choice.missing.filter((m) => !this.choice.missing.includes(m));
    if (missingNow.length > 0)
      this.log.warn(
        choice.by === 'flag'
          ? `--nodeport-interfaces names ${missingNow.join(', ')}, which this node does not have (yet): NodePorts are not served there`
          : `node address ${missingNow.join(', ')} is on no interface of this node: NodePorts to it are not served`,
      );
    for (const f of failed)
      if (!this.failed.some((p) => p.name === f.name))
        this.log.warn(`cannot serve NodePorts on ${f.name}: ${f.error}; retried every refresh`);
    this.choice = choice;
    this.failed = failed;
  }

  status(): NodePortStatus {
    return {
      by: this.choice.by,
      interfaces: [...this.attached.values()].sort((a, b) => a.name.localeCompare(b.name)),
      missing: this.choice.missing,
      failed: this.failed,
    };
  }
}
