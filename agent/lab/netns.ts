/**
 * The plumbing of one lab pod: a network namespace, a veth whose host side carries the
 * datapath, addresses from the pod range, and routes (a host route per pod, a default route in
 * the pod through the node, and a blackhole for the whole range so no lab packet leaves the node).
 * Nothing here searches by name: the runtime records what it makes and removes only that.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
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

/** The lab's ranges that get a blackhole route: pods and Services. */
export function labRanges(c: LabConfig): string[] {
  return [c.cidr4, c.cidr6, c.svcCidr4, c.svcCidr6];
}

/**
 * Blackhole routes for the pod and Service ranges: a lab packet for an unknown pod address, or for
 * a ClusterIP the datapath did not translate, dies on the node.
 */
export async function addRangeBlackholes(c: LabConfig): Promise<void> {
  await ipBatch(labRanges(c).map((r) => `route replace blackhole ${r}`));
}

/** Removes the blackhole routes of these prefixes (those the lab recorded); missing ones are fine. */
export async function removeBlackholes(prefixes: string[]): Promise<void> {
  await ipBatch(
    prefixes.map((p) => `route del blackhole ${p}`),
    { force: true },
  );
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

/** True when a network namespace or link of this name exists (made by anyone). */
export function netnsExists(name: string): boolean {
  return existsSync(`/var/run/netns/${name}`);
}

export function linkNameTaken(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
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
