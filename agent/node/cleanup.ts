/**
 * Removes weir from a node (after `helm uninstall`, whose agents leave programs attached and maps
 * pinned on purpose so that restarts never stop enforcement): detaches weir's tc filters from every
 * interface of this network namespace and removes the pin root.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { tcDetach, tcQuery, type TcPoint } from '../../maps/tc.js';

export interface CleanupResult {
  /** Interfaces weir's programs were detached from. */
  detached: string[];
  /** The pin root existed and was removed. */
  removedPins: boolean;
}

export function cleanupNode(pinRoot: string): CleanupResult {
  const detached: string[] = [];
  // Netlink, not /sys/class/net: sysfs shows the namespace it was mounted in, which need not be ours.
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{
    ifindex: number;
    ifname: string;
  }>;
  for (const { ifindex, ifname: name } of links) {
    let any = false;
    for (const point of ['ingress', 'egress'] as TcPoint[]) {
      if (tcQuery({ ifindex }, point) !== undefined && tcDetach({ ifindex }, point)) any = true;
    }
    if (any) detached.push(name);
  }
  const removedPins = existsSync(pinRoot);
  rmSync(pinRoot, { recursive: true, force: true });
  return { detached: detached.sort(), removedPins };
}
