/**
 * Drives the Syncer the way the agent's enforcement does, for kernel tests: a whole desired
 * state (then a resync that reads the maps), or one increment (then a sync). Retries are run by
 * the test, not by a timer.
 */
import { Syncer, type IfindexOf, type SyncerMaps, type SyncStats } from '../../agent/datapath/syncer.js';
import type { DesiredDiff, DesiredState } from '../../agent/desired.js';

export interface DriverStats {
  writes: number;
  pending: string[];
  /** "endpoint ns/name: error" per key that failed (requeued). */
  errors: string[];
  repaired: number;
}

const view = (s: SyncStats): DriverStats => ({
  writes: s.writes,
  pending: s.pending,
  errors: s.failures.map((f) => `${f.key}: ${f.error}`),
  repaired: s.repaired,
});

export class SyncDriver {
  readonly syncer: Syncer;

  constructor(maps: SyncerMaps, ifindexOf: IfindexOf) {
    this.syncer = new Syncer(maps, { ifindexOf, timers: false });
  }

  setNodeAddresses(ips: string[]): void {
    this.syncer.setNodeAddresses(ips);
  }

  /** The whole desired state, then a resync (dump, repair, sync every key). */
  resyncTo(state: DesiredState): DriverStats {
    this.syncer.setDesired(state);
    return view(this.syncer.resync());
  }

  /** One increment, then a sync of what it made dirty (and of anything requeued). */
  syncDiff(diff: DesiredDiff): DriverStats {
    this.syncer.update(diff);
    return view(this.syncer.sync({ force: true }));
  }

  endpointId(key: string): number | undefined {
    return this.syncer.endpointId(key);
  }
}
