/**
 * Enforcement by the eBPF datapath: the Syncer writes the maps, and the programs are attached
 * to an endpoint's host-side veth only after its record is written (an interface weir is
 * attached to without a record drops every packet) and detached when it goes. Interface
 * discovery is the source's job: the lab knows each pod's veth; in a cluster it comes from the
 * route to the pod's IP.
 */
import { mkdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { Datapath } from './datapath/datapath.js';
import { canonical, Syncer, type IfindexOf, type SyncStats } from './datapath/syncer.js';
import type { DesiredDiff, DesiredState } from './desired.js';
import type { Enforcement } from './daemon.js';
import { datapathMapUsage } from './metrics/map-usage.js';

export interface DatapathEnforcementOptions {
  pinRoot: string;
  /** Compiled object (default build/bpf/weir.o). */
  objectPath?: string;
  ifindexOf: IfindexOf;
  /** Addresses that count as this node (identity host); default: every local address. */
  nodeAddresses?: string[];
  /** Let the node reach its pods whatever the policies say (default true, as kubelet probes need). */
  hostAllow?: boolean;
  /** Allowed new connections emit flow events (default true; off: only drops do, counters count all). */
  allowedFlows?: boolean;
  /** Packets between pods of the node skip the node's stack and netfilter (default true). */
  localDelivery?: boolean;
  /** Periodic resync (dump the maps, repair drift); default 5 minutes, 0 = never. */
  resyncIntervalMs?: number;
  /** Map sizes at load (map name -> max entries), for tests that fill a map cheaply. */
  mapMax?: Record<string, number>;
  /** Fill ratio from which a map is reported as under pressure (default 0.9). */
  pressureThreshold?: number;
  /** How often map fill is checked (default 10 s); `onPressure` hears maps crossing the threshold. */
  pressureCheckMs?: number;
  onPressure?: (maps: MapPressure[]) => void;
  log?: (line: string) => void;
}

export const DEFAULT_RESYNC_INTERVAL_MS = 5 * 60_000;
export const DEFAULT_PRESSURE_THRESHOLD = 0.9;

/** A map at or above the pressure threshold: the next changes may not fit. */
export interface MapPressure {
  map: string;
  entries: number;
  capacity: number;
  /** entries / capacity */
  fill: number;
}

/** Every address of this host's interfaces, IPv4 and IPv6. */
export function localAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) out.add(a.address.split('%')[0] as string);
  return [...out];
}

/** Thrown when some of a change could not be written; the maps keep the previous, narrower state and the syncer retries. */
export class SyncError extends Error {
  constructor(readonly stats: SyncStats) {
    super(
      `the datapath kept its previous state for some endpoints (retried with backoff): ${stats.failures
        .map((f) => `${f.key}: ${f.error}`)
        .join('; ')}`,
    );
    this.name = 'SyncError';
  }
}

export class DatapathEnforcement implements Enforcement {
  readonly kind = 'ebpf';
  readonly datapath: Datapath;
  readonly syncer: Syncer;
  private readonly log: (line: string) => void;
  private resyncTimer: NodeJS.Timeout | undefined;
  private pressureTimer: NodeJS.Timeout | undefined;
  private pressed = new Set<string>();
  /** The last periodic resync's result. */
  lastResync: SyncStats | undefined;

  constructor(private readonly opts: DatapathEnforcementOptions) {
    mkdirSync(opts.pinRoot, { recursive: true });
    this.datapath = Datapath.open({
      pinRoot: opts.pinRoot,
      ...(opts.objectPath ? { objectPath: opts.objectPath } : {}),
      ...(opts.mapMax ? { mapMax: opts.mapMax } : {}),
    });
    this.datapath.configure({
      hostAllow: opts.hostAllow ?? true,
      allowedFlows: opts.allowedFlows ?? true,
      localDelivery: opts.localDelivery ?? true,
    });
    this.log = opts.log ?? (() => undefined);
    for (const r of this.datapath.replacedMaps)
      this.log(
        `pinned map ${r.name} had another layout (key ${r.was.keySize} / value ${r.was.valueSize} bytes, flags 0x${r.was.flags.toString(16)}, now ${r.now.keySize} / ${r.now.valueSize}, 0x${r.now.flags.toString(16)}): ` +
          `replaced, ${r.carried} entries carried over; each interface keeps its old program until its record is written again`,
      );
    this.syncer = new Syncer(this.datapath.syncerMaps(), {
      ifindexOf: opts.ifindexOf,
      attach: (key, ifindex) => {
        this.datapath.attach({ ifindex });
        this.log(`enforcing ${key} on ifindex ${ifindex}`);
      },
      detach: (_key, ifindex) => {
        try {
          this.datapath.detach({ ifindex });
        } catch {
          /* the interface went with its pod */
        }
      },
      log: this.log,
    });
    this.syncer.setNodeAddresses(opts.nodeAddresses ?? localAddresses());
  }

  /** Maps filled to the pressure threshold or beyond (entries counted in the kernel maps). */
  pressure(): MapPressure[] {
    const threshold = this.opts.pressureThreshold ?? DEFAULT_PRESSURE_THRESHOLD;
    return datapathMapUsage(this.datapath)
      .map((u) => ({ ...u, fill: u.capacity > 0 ? u.entries / u.capacity : 0 }))
      .filter((u) => u.fill >= threshold);
  }

  /** Reports maps that newly crossed the threshold (log and `onPressure`). */
  checkPressure(): MapPressure[] {
    const now = this.pressure();
    const fresh = now.filter((p) => !this.pressed.has(p.map));
    this.pressed = new Set(now.map((p) => p.map));
    for (const p of fresh)
      this.log(
        `BPF map ${p.map} is ${Math.round(p.fill * 100)}% full (${p.entries} of ${p.capacity}): changes that need more room will be refused, the previous state kept`,
      );
    if (fresh.length > 0) this.opts.onPressure?.(fresh);
    return now;
  }

  /** Makes the maps hold exactly `state` (start-up: adopts what is pinned), then resyncs periodically. */
  async resync(state: DesiredState): Promise<void> {
    this.syncer.setDesired(state);
    const stats = this.syncer.resync();
    this.startResyncTimer();
    this.startPressureTimer();
    this.check(stats);
  }

  /** Throws `SyncError` when a key this diff names could not be written (other keys' retries do not fail it). */
  async apply(diff: DesiredDiff): Promise<void> {
    this.syncer.update(diff);
    const stats = this.syncer.sync();
    if (stats.failures.length === 0) return;
    const named = new Set<string>();
    for (const ep of diff.endpointsChanged) named.add(`endpoint ${ep.key}`);
    for (const k of [...diff.endpointsRemoved, ...diff.entriesAdded.keys(), ...diff.entriesRemoved.keys()])
      named.add(`endpoint ${k}`);
    for (const e of diff.ipcacheUpserted) named.add(`ipcache ${canonical(e.cidr)}`);
    for (const c of diff.ipcacheRemoved) named.add(`ipcache ${canonical(c)}`);
    const mine = stats.failures.filter((f) => named.has(f.key));
    if (mine.length > 0) throw new SyncError({ ...stats, failures: mine });
  }

  /** Endpoints whose interface appeared after their state was computed. */
  async retryPending(keys: string[] = []): Promise<void> {
    for (const k of keys) this.syncer.touch(k);
    this.check(this.syncer.sync({ force: true }));
  }

  async close(): Promise<void> {
    // Programs and pins stay: enforcement continues and the next agent adopts them.
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.pressureTimer) clearInterval(this.pressureTimer);
    this.syncer.close();
    this.datapath.close();
  }

  private startResyncTimer(): void {
    const every = this.opts.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
    if (this.resyncTimer || every <= 0) return;
    this.resyncTimer = setInterval(() => {
      try {
        this.lastResync = this.syncer.resync();
      } catch (err) {
        this.log(`resync: ${err instanceof Error ? err.message : String(err)}`);
      }
    }, every);
    this.resyncTimer.unref();
  }

  private startPressureTimer(): void {
    if (this.pressureTimer) return;
    this.pressureTimer = setInterval(() => {
      try {
        this.checkPressure();
      } catch (err) {
        this.log(`map pressure: ${err instanceof Error ? err.message : String(err)}`);
      }
    }, this.opts.pressureCheckMs ?? 10_000);
    this.pressureTimer.unref();
  }

  private check(stats: SyncStats): void {
    if (stats.failures.some((f) => /is full/.test(f.error))) this.checkPressure();
    if (stats.failures.length > 0) throw new SyncError(stats);
  }
}
