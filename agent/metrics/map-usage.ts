/**
 * Map fill for the map-pressure metrics: entry counts read from the kernel maps at scrape
 * time (not from the agent's books, so entries written by anyone count), capacities from the
 * maps themselves.
 */
import type { Datapath } from '../datapath/datapath.js';
import { MapName } from '../../maps/abi.js';
import type { KernelMap } from '../../maps/kernel-map.js';
import type { MapUsage } from './sources.js';

/** Maps whose fill is reported. */
const USAGE_MAPS = ['endpoints', 'policy', 'policyRange', 'ipcache', 'ipcacheLpm'] as const;

/** Entries a map holds now (one walk in batches: the ipcache of a 100,000-pod cluster is read every refresh). */
export function countEntries(map: KernelMap): number {
  if (map.count) return map.count();
  let n = 0;
  for (const _ of map.entries()) n++;
  return n;
}

export function datapathMapUsage(datapath: Datapath): MapUsage[] {
  return USAGE_MAPS.map((key) => {
    const m = datapath.map(key);
    return { map: MapName[key], entries: countEntries(m), capacity: m.maxEntries };
  });
}
