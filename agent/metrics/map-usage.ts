/**
 * Map fill for the map-pressure metrics: entry counts from what the reconciler holds
 * (no map walk at scrape time), capacities from the maps themselves.
 */
import type { Datapath } from '../datapath/datapath.js';
import type { Reconciler } from '../datapath/reconciler.js';
import { MapName } from '../../maps/abi.js';
import type { MapUsage } from './sources.js';

export function reconcilerMapUsage(datapath: Datapath, reconciler: Reconciler): MapUsage[] {
  const counts = reconciler.entryCounts();
  return (Object.keys(counts) as Array<keyof typeof counts>).map((key) => ({
    map: MapName[key],
    entries: counts[key],
    capacity: datapath.map(key).info.maxEntries,
  }));
}
