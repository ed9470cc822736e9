/**
 * Enforcement by the eBPF datapath: the Reconciler writes the maps, and the programs are
 * attached to every endpoint's host-side veth once its entries are in place (so a pod is never
 * enforced with half its rules) and detached when it goes. Interface discovery is the source's
 * job: the lab knows each pod's veth; in a cluster it comes from the route to the pod's IP.
 */
import { mkdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { Datapath } from './datapath/datapath.js';
import { Reconciler, type IfindexOf, type ReconcileStats } from './datapath/reconciler.js';
import type { DesiredDiff, DesiredState, EndpointState } from './desired.js';
import type { Enforcement } from './daemon.js';

export interface DatapathEnforcementOptions {
  pinRoot: string;
  /** Compiled object (default build/bpf/weir.o). */
  objectPath?: string;
  ifindexOf: IfindexOf;
  /** Addresses that count as this node (identity host); default: every local address. */
  nodeAddresses?: string[];
  /** Let the node reach its pods whatever the policies say (default true, as kubelet probes need). */
  hostAllow?: boolean;
  log?: (line: string) => void;
}

/** Every address of this host's interfaces, IPv4 and IPv6. */
export function localAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) out.add(a.address.split('%')[0] as string);
  return [...out];
}

export class DatapathEnforcement implements Enforcement {
  readonly kind = 'ebpf';
  readonly datapath: Datapath;
  readonly reconciler: Reconciler;
  /** ifindex by endpoint key, for the endpoints whose programs are attached. */
  private readonly attached = new Map<string, number>();
  private readonly log: (line: string) => void;

  constructor(private readonly opts: DatapathEnforcementOptions) {
    mkdirSync(opts.pinRoot, { recursive: true });
    this.datapath = Datapath.open({
      pinRoot: opts.pinRoot,
      ...(opts.objectPath ? { objectPath: opts.objectPath } : {}),
    });
    this.datapath.configure({ hostAllow: opts.hostAllow ?? true });
    this.reconciler = new Reconciler(this.datapath.reconcilerMaps(), opts.ifindexOf);
    this.reconciler.setNodeAddresses(opts.nodeAddresses ?? localAddresses());
    this.log = opts.log ?? (() => undefined);
  }

  async resync(state: DesiredState): Promise<void> {
    this.check(this.reconciler.applyFull(state));
    for (const ep of state.endpoints.values()) this.attach(ep);
    for (const key of [...this.attached.keys()]) if (!state.endpoints.has(key)) this.detach(key);
  }

  async apply(diff: DesiredDiff): Promise<void> {
    const stats = this.reconciler.applyDiff(diff);
    for (const ep of diff.endpointsChanged) this.attach(ep);
    for (const key of diff.endpointsRemoved) this.detach(key);
    this.check(stats);
  }

  /** Endpoints whose interface appeared after their state was computed. */
  async retryPending(): Promise<void> {
    this.check(this.reconciler.retryPending());
  }

  async close(): Promise<void> {
    // Programs and pins stay: enforcement continues and the next agent adopts them.
    this.datapath.close();
  }

  private attach(ep: EndpointState): void {
    const ifindex = this.opts.ifindexOf(ep.key);
    if (ifindex === undefined || this.reconciler.endpointId(ep.key) === undefined) return;
    if (this.attached.get(ep.key) === ifindex) return;
    this.datapath.attach({ ifindex });
    this.attached.set(ep.key, ifindex);
    this.log(`enforcing ${ep.key} on ifindex ${ifindex}`);
  }

  private detach(key: string): void {
    const ifindex = this.attached.get(key);
    if (ifindex === undefined) return;
    this.attached.delete(key);
    try {
      this.datapath.detach({ ifindex });
    } catch {
      /* the interface went with its pod */
    }
  }

  private check(stats: ReconcileStats): void {
    if (stats.errors.length > 0) {
      throw new Error(`the datapath kept its previous state for some endpoints: ${stats.errors.join('; ')}`);
    }
  }
}
