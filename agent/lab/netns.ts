/**
 * The plumbing of one lab pod: a network namespace, a veth whose host side carries the
 * datapath, addresses from the pod range, and routes (a host route per pod, a default route in
 * the pod through the node, and a blackhole for the whole range so no lab packet leaves the node).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { IFNAME_MAX, LAB_GATEWAY4, LAB_GATEWAY6, type LabConfig } from './config.js';
import { ipBatch, run } from './exec.js';

/** Longest network-namespace name the lab makes; longer ones end in a hash. */
const NETNS_NAME_MAX = 64;
const HASH_MIN = 6;

export interface PodNet {
  netns: string;
  hostVeth: string;
  ifindex: number;
  ip4: string;
  ip6: string;
}

function hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** `<prefix><namespace>-<pod>`, shortened with a hash when it would be too long. */
export function netnsName(prefix: string, namespace: string, pod: string): string {
  const full = `${prefix}${namespace}-${pod}`;
  if (full.length <= NETNS_NAME_MAX) return full;
  const h = hex(`${namespace}/${pod}`).slice(0, 8);
  return `${full.slice(0, NETNS_NAME_MAX - 9)}-${h}`;
}

/** Host-side veth: the prefix and a hash of the pod's key, within the 15-character limit. */
export function hostVethName(prefix: string, namespace: string, pod: string): string {
  const room = IFNAME_MAX - prefix.length;
  if (room < HASH_MIN) throw new Error(`lab prefix ${prefix} is too long for interface names`);
  return `${prefix}${hex(`${namespace}/${pod}`).slice(0, room)}`;
}

const FORWARDING_SWITCHES = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];

/**
 * Forwarding must be on for pods to reach each other through the node. The switches this call
 * turned on are listed in `marker` so that `restoreForwarding` turns them off again on `lab down`.
 */
export function enableForwarding(marker: string): void {
  const changed = FORWARDING_SWITCHES.filter((path) => readFileSync(path, 'utf8').trim() !== '1');
  for (const path of changed) writeFileSync(path, '1');
  if (changed.length > 0) writeFileSync(marker, `${changed.join('\n')}\n`);
}

/** Turns off the forwarding switches a lab turned on (listed in `marker`), and forgets them. */
export function restoreForwarding(marker: string): void {
  if (!existsSync(marker)) return;
  const paths = readFileSync(marker, 'utf8')
    .split('\n')
    .filter((p) => FORWARDING_SWITCHES.includes(p));
  for (const path of paths) writeFileSync(path, '0');
  rmSync(marker, { force: true });
}

/** Blackhole routes for the pod ranges: a lab packet for an unknown pod address dies on the node. */
export async function addRangeBlackholes(c: LabConfig): Promise<void> {
  await ipBatch([`route replace blackhole ${c.cidr4}`, `route replace blackhole ${c.cidr6}`]);
}

export async function removeRangeBlackholes(c: LabConfig): Promise<void> {
  await ipBatch([`route del blackhole ${c.cidr4}`, `route del blackhole ${c.cidr6}`], { force: true });
}

export async function createPodNet(
  c: LabConfig,
  namespace: string,
  pod: string,
  ip4: string,
  ip6: string,
): Promise<PodNet> {
  const netns = netnsName(c.prefix, namespace, pod);
  const hostVeth = hostVethName(c.prefix, namespace, pod);
  await ipBatch([
    `netns add ${netns}`,
    `link add ${hostVeth} type veth peer name eth0 netns ${netns}`,
    `link set ${hostVeth} addrgenmode none`,
    `link set ${hostVeth} up`,
    `addr add ${LAB_GATEWAY4}/32 dev ${hostVeth} scope link`,
    `addr add ${LAB_GATEWAY6}/64 dev ${hostVeth} nodad`,
    `route replace ${ip4}/32 dev ${hostVeth}`,
    `route replace ${ip6}/128 dev ${hostVeth}`,
  ]);
  await ipBatch(
    [
      'link set lo up',
      'link set eth0 addrgenmode none',
      `addr add ${ip4}/32 dev eth0`,
      `addr add ${ip6}/128 dev eth0 nodad`,
      'link set eth0 up',
      `route add ${LAB_GATEWAY4}/32 dev eth0 scope link`,
      `route add default via ${LAB_GATEWAY4} dev eth0`,
      `route add default via ${LAB_GATEWAY6} dev eth0`,
    ],
    { netns },
  );
  const ifindex = Number(readFileSync(`/sys/class/net/${hostVeth}/ifindex`, 'utf8').trim());
  return { netns, hostVeth, ifindex, ip4, ip6 };
}

/** Removes a pod's namespace and veth (its routes go with the veth). Missing pieces are fine. */
export async function destroyPodNet(p: Pick<PodNet, 'netns' | 'hostVeth'>): Promise<void> {
  await ipBatch([`link del ${p.hostVeth}`, `netns del ${p.netns}`], { force: true });
}

/** Every network namespace and link whose name starts with the prefix: what a crashed lab left. */
export async function findLeftovers(prefix: string): Promise<{ netns: string[]; links: string[] }> {
  let netns: string[] = [];
  try {
    netns = readdirSync('/var/run/netns').filter((n) => n.startsWith(prefix));
  } catch {
    netns = [];
  }
  const links = readdirSync('/sys/class/net').filter((n) => n.startsWith(prefix));
  return { netns, links };
}

export async function removeLeftovers(prefix: string): Promise<number> {
  const { netns, links } = await findLeftovers(prefix);
  await ipBatch([...links.map((l) => `link del ${l}`), ...netns.map((n) => `netns del ${n}`)], { force: true });
  return netns.length + links.length;
}

/** Is the interface still there? */
export async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}
