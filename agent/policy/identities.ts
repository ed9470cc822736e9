/**
 * Identities and ipcache claims, one job of the policy compiler: pod label sets and policy
 * prefixes get their numbers here, and every address the node knows (pod IPs, node addresses,
 * the cluster's pod CIDRs, policy prefixes) is claimed in the ipcache here. Identities that come
 * into use or go out of use are told to the selector cache, so selectors follow them.
 *
 * It keeps what it claimed (per node, its address prefixes), never the objects themselves: the
 * Store holds those.
 */
import { ReservedIdentity } from '../desired.js';
import { CidrIdentityAllocator, IdentityAllocator } from '../identity/allocator.js';
import type { Clock, Identity } from '../identity/allocator.js';
import { canonicalPrefix, formatPrefix, hostCIDR } from '../ipcache/cidr.js';
import type { Prefix } from '../ipcache/cidr.js';
import { Ipcache } from '../ipcache/ipcache.js';
import type { IpcacheEntry } from '../desired.js';
import type { Labels, Node } from '../store/types.js';
import type { SelectorCache } from './selector-cache.js';

export interface IdentityIndexOptions {
  /** The node whose addresses resolve to the host identity (others are remote nodes). */
  nodeName?: string;
  /** Pod network prefixes in addition to the nodes' spec.podCIDRs. */
  clusterPodCIDRs?: string[];
  clock?: Clock;
  /** How long a released identity keeps its number. */
  identityGraceMs?: number;
}

export class IdentityIndex {
  private readonly identities: IdentityAllocator;
  private readonly cidrIdentities: CidrIdentityAllocator;
  private readonly ipcache = new Ipcache();
  private readonly extraPodCIDRs: string[];
  /** Node name -> the host prefixes of its addresses, as claimed. */
  private readonly nodeClaims = new Map<string, string[]>();
  /** Node name -> its canonical pod CIDRs. */
  private readonly nodePodCIDRs = new Map<string, string[]>();

  constructor(
    private readonly selectors: SelectorCache,
    private readonly opts: IdentityIndexOptions = {},
  ) {
    const idOpts = {
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.identityGraceMs !== undefined ? { graceMs: opts.identityGraceMs } : {}),
    };
    this.identities = new IdentityAllocator(idOpts);
    this.cidrIdentities = new CidrIdentityAllocator(idOpts);
    this.extraPodCIDRs = (opts.clusterPodCIDRs ?? []).map((c) => {
      const p = canonicalPrefix(c);
      if (!p) throw new Error(`clusterPodCIDRs: "${c}" is not a valid CIDR (expected e.g. 10.244.0.0/16)`);
      return p;
    });
    this.refreshPodCIDRs();
  }

  // ------------------------------------------------------------------ pods

  /** Takes a reference on a pod's identity; selectors learn of it when it comes into use. */
  acquirePod(namespace: string, podLabels: Labels, nsLabels: Labels): Identity {
    const r = this.identities.acquire(namespace, podLabels, nsLabels);
    if (r.live) this.selectors.identityLive(r.identity);
    return r.identity;
  }

  releasePod(identity: Identity): void {
    if (this.identities.release(identity.id)) this.selectors.identityDead(identity);
  }

  claimPod(key: string, cidrs: readonly string[], identity: number): void {
    for (const c of cidrs) this.ipcache.claim(c, 'pod', key, identity);
  }

  unclaimPod(key: string, cidrs: readonly string[]): void {
    for (const c of cidrs) this.ipcache.unclaim(c, 'pod', key);
  }

  // --------------------------------------------------------------- policies

  /** Takes a reference on the CIDR identity of a policy prefix (not /0: those are world). */
  acquireCidr(p: Prefix): number {
    const cidr = formatPrefix(p);
    const r = this.cidrIdentities.acquire(cidr);
    if (r.live) {
      this.ipcache.claim(cidr, 'cidr', 'policy', r.id);
      this.selectors.cidrLive(r.id, p);
    }
    return r.id;
  }

  releaseCidr(id: number): void {
    if (!this.cidrIdentities.release(id)) return;
    this.ipcache.unclaim(this.cidrIdentities.cidrOf(id)!, 'cidr', 'policy');
    this.selectors.cidrDead(id);
  }

  // ------------------------------------------------------------------ nodes

  /** A node's addresses resolve to host (this node) or remote-node; its pod CIDRs join the pod network. */
  setNode(name: string, node: Node | undefined): void {
    for (const c of this.nodeClaims.get(name) ?? []) this.ipcache.unclaim(c, 'node', name);
    this.nodeClaims.delete(name);
    this.nodePodCIDRs.delete(name);
    if (node) {
      const id =
        this.opts.nodeName !== undefined && name === this.opts.nodeName
          ? ReservedIdentity.host
          : ReservedIdentity.remoteNode;
      const claims: string[] = [];
      for (const a of node.addresses) {
        const c = hostCIDR(a.address);
        if (!c) continue;
        this.ipcache.claim(c, 'node', name, id);
        claims.push(c);
      }
      this.nodeClaims.set(name, claims);
      const podCIDRs = node.podCIDRs.map((c) => canonicalPrefix(c)).filter((p): p is string => p !== undefined);
      if (podCIDRs.length > 0) this.nodePodCIDRs.set(name, podCIDRs);
    }
    // Once per flush, not per node: a list of 1,000 nodes would otherwise rebuild it 1,000 times.
    this.podCIDRsDirty = true;
  }

  /** A node changed: the cluster's pod CIDRs are rebuilt before the ipcache is next read. */
  private podCIDRsDirty = false;

  private podCIDRsUpToDate(): void {
    if (!this.podCIDRsDirty) return;
    this.podCIDRsDirty = false;
    this.refreshPodCIDRs();
  }

  private refreshPodCIDRs(): void {
    const set = new Set(this.extraPodCIDRs);
    for (const list of this.nodePodCIDRs.values()) for (const p of list) set.add(p);
    this.ipcache.setPodCIDRs([...set].sort());
  }

  // ---------------------------------------------------------------- outputs

  /** Frees the numbers of identities released longer than the grace period ago. */
  gc(): void {
    this.identities.gc();
    this.cidrIdentities.gc();
  }

  /** The ipcache entries that changed since the last call. */
  flushIpcache(): { upserted: IpcacheEntry[]; removed: string[] } {
    this.podCIDRsUpToDate();
    return this.ipcache.flush();
  }

  ipcacheEntries(): Map<string, IpcacheEntry> {
    return this.ipcache.entries();
  }

  podCIDRs(): Prefix[] {
    this.podCIDRsUpToDate();
    return this.ipcache.getPodCIDRs();
  }

  identity(id: number): Identity | undefined {
    return this.identities.get(id);
  }

  /** Longest-prefix lookup in the published ipcache. */
  resolveIP(ip: string): number | undefined {
    return this.ipcache.lookup(ip);
  }

  get allocated(): number {
    return this.identities.allocated;
  }
}
