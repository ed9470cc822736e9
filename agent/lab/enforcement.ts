/**
 * How the lab agent enforces: the eBPF datapath on every pod's host-side veth, or nothing
 * (`--no-enforce`, to try the lab's pods and probes alone).
 */
import { NoEnforcement, type Enforcement } from '../daemon.js';
import { DatapathEnforcement } from '../enforcement.js';
import type { LabConfig } from './config.js';

export interface EnforcementContext {
  config: LabConfig;
  /** Host-side ifindex of a pod ("namespace/name"), known once the lab made its veth. */
  ifindexOf: (podKey: string) => number | undefined;
  log: (line: string) => void;
  /** Map sizes at load (`weir lab up --map-max weir_policy=64`). */
  mapMax?: Record<string, number>;
  /** Periodic resync, ms (default 5 minutes). */
  resyncIntervalMs?: number;
}

export async function createLabEnforcement(ctx: EnforcementContext, enforce: boolean): Promise<Enforcement> {
  if (!enforce) return new NoEnforcement();
  try {
    return new DatapathEnforcement({
      pinRoot: ctx.config.pinRoot,
      ifindexOf: ctx.ifindexOf,
      log: ctx.log,
      ...(ctx.mapMax ? { mapMax: ctx.mapMax } : {}),
      ...(ctx.resyncIntervalMs !== undefined ? { resyncIntervalMs: ctx.resyncIntervalMs } : {}),
    });
  } catch (err) {
    throw new Error(
      `cannot load the eBPF datapath: ${err instanceof Error ? err.message : String(err)}\nbuild it with \`make build\`, or run \`weir lab up --no-enforce\` to use the lab without enforcement`,
    );
  }
}
