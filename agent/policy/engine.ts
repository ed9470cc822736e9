/**
 * The policy compiler: Namespaces, Pods, Nodes and NetworkPolicies in, desired datapath
 * state out (identities, ipcache, per-endpoint isolation and allow entries), kept up to
 * date incrementally. Pure: no I/O, the clock is injected.
 *
 * This file routes each store change to the parts that hold one job each, and publishes their
 * result as one DesiredDiff:
 * - identities.ts: identities and ipcache claims;
 * - selector-cache.ts: every peer with the live identities it matches, and their deltas;
 * - policies.ts: policies compiled once, their CIDR budget and references;
 * - endpoints.ts: per local endpoint, isolation and allow entries, recomputed or patched;
 * - warnings.ts and reader.ts: problems and the read API (explain, matrix, flows, status).
 * The Store is the one copy of the objects: the parts keep keys, identities and memberships
 * (a pod record refers to the Store's Pod it was built from), and read objects from the Store.
 */
import type { DesiredDiff, DesiredState, EndpointState } from '../desired.js';
import type { Clock } from '../identity/allocator.js';
import { hostCIDR } from '../ipcache/cidr.js';
import type { CidrBudgetOptions } from '../ipcache/budget.js';
import { Store, type StoreChange } from '../store/store.js';
import type { KubeObject, Labels, NetworkPolicy, Node, Pod } from '../store/types.js';
import { EndpointCompiler, type PodRecord } from './endpoints.js';
import { IdentityIndex } from './identities.js';
import { PolicyTable } from './policies.js';
import { PolicyReader } from './reader.js';
import { SelectorCache } from './selector-cache.js';

export interface PolicyEngineOptions {
  /**
   * The node whose pods are local endpoints (pods with IPs scheduled there). Leave unset
   * to treat every pod as a local endpoint, IPs or not: offline explain and one-machine labs.
   */
  nodeName?: string;
  /** Pod network prefixes in addition to the nodes' spec.podCIDRs. */
  clusterPodCIDRs?: string[];
  clock?: Clock;
  /** How long a released identity keeps its number (default 30 s). */
  identityGraceMs?: number;
  /** Budget of policy CIDR prefixes per namespace and in all (agent/ipcache/budget.ts). */
  cidrBudget?: CidrBudgetOptions;
  /** The store whose changes this engine is given (default: one of its own, filled by upsertAll). */
  store?: Store;
}

const DEFAULT_NS_LABEL = 'kubernetes.io/metadata.name';

/** The host prefixes of a pod's IPs (what it claims in the ipcache). */
function hostCIDRs(pod: Pod): string[] {
  const out: string[] = [];
  for (const ip of pod.ips) {
    const c = hostCIDR(ip);
    if (c) out.push(c);
  }
  return out;
}

export class PolicyEngine extends PolicyReader {
  readonly nodeName: string | undefined;
  private readonly defaultNsLabels = new Map<string, Labels>();

  constructor(opts: PolicyEngineOptions = {}) {
    const store = opts.store ?? new Store();
    const selectors = new SelectorCache();
    const ids = new IdentityIndex(selectors, opts);
    const policies = new PolicyTable(ids, selectors, opts.cidrBudget);
    super(store, ids, selectors, policies, new EndpointCompiler(store, policies, selectors));
    this.nodeName = opts.nodeName;
  }

  // ---------------------------------------------------------------- inputs

  /**
   * Applies one store change and returns what must change in the datapath. Changes of the
   * engine's store are given in the store's order; a change from elsewhere is recorded in it.
   */
  apply(change: StoreChange): DesiredDiff {
    this.ingest(change);
    return this.flush();
  }

  /** Applies many changes, recomputing each affected endpoint once (start-up, resync). */
  applyAll(changes: Iterable<StoreChange>): DesiredDiff {
    for (const c of changes) this.ingest(c);
    return this.flush();
  }

  /**
   * Takes changes in without publishing (the agent's changes before its first sync): identities,
   * claims, selectors and policies follow at once, while the endpoints' entries, the ipcache's
   * changes and released numbers wait for the next `apply`/`applyAll`, which publishes them
   * together. Its snapshot is then the one `applyAll` of each batch would have left.
   */
  ingestAll(changes: Iterable<StoreChange>): void {
    for (const c of changes) this.ingest(c);
    this.endpoints.forgetDeltasIfUnpublished();
  }

  /** Adds or replaces objects through the engine's store (offline explain, tests). */
  upsertAll(objects: Iterable<KubeObject>): DesiredDiff {
    for (const o of objects) {
      const c = this.store.upsert(o);
      if (c) this.ingest(c);
    }
    return this.flush();
  }

  private ingest(c: StoreChange): void {
    this.store.record(c);
    switch (c.kind) {
      case 'Namespace':
        this.setNamespace(c.key);
        break;
      case 'Pod':
        this.setPod(c.key, c.new);
        break;
      case 'NetworkPolicy':
        this.setPolicy(c.key, c.new);
        break;
      case 'Node':
        this.ids.setNode(c.key, c.new as Node | undefined);
        break;
    }
  }

  /** A namespace's labels; one not (yet) seen has only its name label, as the API server sets. */
  private nsLabels(ns: string): Labels {
    const known = this.store.get('Namespace', ns)?.labels;
    if (known) return known;
    let d = this.defaultNsLabels.get(ns);
    if (!d) this.defaultNsLabels.set(ns, (d = { [DEFAULT_NS_LABEL]: ns }));
    return d;
  }

  /** Its labels changed (or it came or went): its pods' identities follow. */
  private setNamespace(name: string): void {
    for (const key of [...(this.endpoints.podsByNamespace.get(name) ?? [])])
      this.setPod(key, this.store.get('Pod', key));
  }

  private isLocal(pod: Pod): boolean {
    if (pod.hostNetwork || pod.phase === 'Succeeded' || pod.phase === 'Failed') return false;
    if (this.nodeName === undefined) return true;
    return pod.nodeName === this.nodeName && pod.ips.length > 0;
  }

  private setPod(key: string, pod: Pod | undefined): void {
    const old = this.endpoints.pods.get(key);
    if (!pod && !old) return; // deleting what was never seen
    const managed = pod !== undefined && !pod.hostNetwork && pod.phase !== 'Succeeded' && pod.phase !== 'Failed';
    const identity = managed ? this.ids.acquirePod(pod.namespace, pod.labels, this.nsLabels(pod.namespace)) : undefined;
    // two literals, not a spread: V8 gives an object built by spreading a fresh object its own
    // hidden class (about 160 bytes more per pod, measured at 100,000 pods)
    const local = pod ? this.isLocal(pod) : false;
    const rec: PodRecord | undefined = !pod ? undefined : identity ? { identity, local, pod } : { local, pod };
    this.endpoints.setPod(key, rec);
    if (old?.identity) {
      this.ids.releasePod(old.identity);
      this.ids.unclaimPod(key, hostCIDRs(old.pod));
    }
    if (rec?.identity) this.ids.claimPod(key, hostCIDRs(pod!), rec.identity.id);
  }

  private setPolicy(key: string, np: NetworkPolicy | undefined): void {
    const { old, rec } = this.policies.set(key, np);
    this.endpoints.policyChanged(old, rec);
  }

  // ----------------------------------------------------------- compiling

  private flush(): DesiredDiff {
    for (const k of this.policies.takeRetries()) this.setPolicy(k, this.store.get('NetworkPolicy', k));
    this.ids.gc();
    const diff = this.endpoints.publish();
    const ip = this.ids.flushIpcache();
    diff.ipcacheUpserted = ip.upserted;
    diff.ipcacheRemoved = ip.removed;
    return diff;
  }

  // ------------------------------------------------------------- outputs

  /** The whole desired state as it stands. */
  snapshot(): DesiredState {
    const endpoints = new Map<string, EndpointState>();
    for (const k of this.endpoints.keys()) endpoints.set(k, this.endpoints.state(k)!);
    return { endpoints, ipcache: this.ids.ipcacheEntries() };
  }
}
