/**
 * The ipcache: address or prefix -> identity, resolved by longest prefix in the datapath.
 * Several sources may claim the same prefix; the strongest layer wins:
 *   pod IP  >  node address  >  cluster pod CIDR  >  policy prefix (CIDR identity)  >  world
 * Policy prefixes inside a cluster pod CIDR get no entry at all, so an IP of the pod
 * network resolves to a pod identity or to POD_CIDR_IDENTITY, never to a CIDR identity:
 * ipBlock never matches pod traffic.
 */
import { ReservedIdentity, worldIdentity } from '../desired.js';
import type { IpcacheEntry } from '../desired.js';
import { formatPrefix, parsePrefix, prefixContains, worldPrefix } from './cidr.js';
import type { Prefix } from './cidr.js';

/** What the pod network resolves to when the pod behind an address is not (yet) known. */
export const POD_CIDR_IDENTITY = ReservedIdentity.unmanaged;

/** A canonical host prefix: an IPv4 address with /32, or an IPv6 one (hex and colons) with /128. */
const HOST_PREFIX = /^(?:\d{1,3}(?:\.\d{1,3}){3}\/32|[0-9a-f:]*:[0-9a-f:.]*\/128)$/;

export type IpcacheLayer = 'world' | 'cidr' | 'podCIDR' | 'node' | 'pod';
const RANK: Record<IpcacheLayer, number> = { world: 0, cidr: 1, podCIDR: 2, node: 3, pod: 4 };

interface Claim {
  layer: IpcacheLayer;
  owner: string;
  identity: number;
}

export class Ipcache {
  /** cidr -> claims, strongest first after resolve. */
  private readonly claims = new Map<string, Claim[]>();
  /**
   * Parsed prefixes of the cidrs claimed by any layer but 'pod' (world, policy prefixes, pod
   * CIDRs, node addresses): those containment is asked of. A pod's cidr is a host prefix, which
   * only an exact lookup finds, so 100,000 pods keep no parsed prefix (about 10 MiB).
   */
  private readonly prefixes = new Map<string, Prefix>();
  /** What was last handed out by flush(). */
  private readonly published = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private podCIDRs: Prefix[] = [];
  /** Prefixes claimed by the cluster's pod CIDRs and by policies: what setPodCIDRs revisits (not every pod's address). */
  private readonly claimedAs = { podCIDR: new Set<string>(), cidr: new Set<string>() };

  constructor() {
    for (const f of [4, 6] as const) this.claim(formatPrefix(worldPrefix(f)), 'world', 'world', worldIdentity(f));
  }

  /** Adds or updates a claim of `owner` on a canonical cidr. */
  claim(cidr: string, layer: IpcacheLayer, owner: string, identity: number): void {
    const list = this.claims.get(cidr);
    if (!list) {
      if (layer === 'pod') {
        // a pod's cidr is only looked up exactly: it is not parsed (a host prefix as hostCIDR
        // writes it, checked by its length; 100,000 parses at a large cluster's first sync)
        if (!HOST_PREFIX.test(cidr)) throw new Error(`ipcache: a pod claims host prefixes only, not ${cidr}`);
      } else {
        const p = parsePrefix(cidr);
        if (typeof p === 'string') throw new Error(`ipcache: ${p}`);
        this.prefixes.set(cidr, p);
      }
      // a literal of one: an array grown by push from empty keeps room for 17 (about 130 bytes
      // more per address, and most addresses only ever have one claim)
      this.claims.set(cidr, [{ layer, owner, identity }]);
    } else {
      // a host prefix only pods claimed so far, now claimed by another layer too
      if (layer !== 'pod' && !this.prefixes.has(cidr)) this.prefixes.set(cidr, parsePrefix(cidr) as Prefix);
      const i = list.findIndex((c) => c.layer === layer && c.owner === owner);
      if (i >= 0) list[i] = { layer, owner, identity };
      else list.push({ layer, owner, identity });
    }
    if (layer === 'podCIDR' || layer === 'cidr') this.claimedAs[layer].add(cidr);
    this.dirty.add(cidr);
  }

  unclaim(cidr: string, layer: IpcacheLayer, owner: string): void {
    const list = this.claims.get(cidr);
    if (!list) return;
    const i = list.findIndex((c) => c.layer === layer && c.owner === owner);
    if (i < 0) return;
    list.splice(i, 1);
    if ((layer === 'podCIDR' || layer === 'cidr') && !list.some((c) => c.layer === layer))
      this.claimedAs[layer].delete(cidr);
    if (list.length === 0) {
      this.claims.delete(cidr);
      this.prefixes.delete(cidr);
    }
    this.dirty.add(cidr);
  }

  /** Sets the cluster's pod CIDRs (claimed as 'podCIDR' by owner "cluster"). */
  setPodCIDRs(cidrs: string[]): void {
    const next = new Set(cidrs);
    for (const cidr of [...this.claimedAs.podCIDR]) if (!next.has(cidr)) this.unclaim(cidr, 'podCIDR', 'cluster');
    for (const c of next) this.claim(c, 'podCIDR', 'cluster', POD_CIDR_IDENTITY);
    this.podCIDRs = [...next].map((c) => this.prefixes.get(c)!);
    // Policy prefixes may have moved in or out of the pod network.
    for (const cidr of this.claimedAs.cidr) this.dirty.add(cidr);
  }

  getPodCIDRs(): Prefix[] {
    return this.podCIDRs;
  }

  /** True when the prefix lies inside the pod network (policy prefixes there get no entry). */
  insidePodNetwork(p: Prefix): boolean {
    return this.podCIDRs.some((pc) => prefixContains(pc, p));
  }

  private resolve(cidr: string): number | undefined {
    const list = this.claims.get(cidr);
    if (!list || list.length === 0) return undefined;
    let best: Claim | undefined;
    for (const c of list) {
      if (c.layer === 'cidr' && this.insidePodNetwork(this.prefixes.get(cidr)!)) continue;
      if (!best || RANK[c.layer] > RANK[best.layer] || (RANK[c.layer] === RANK[best.layer] && c.owner < best.owner))
        best = c;
    }
    return best?.identity;
  }

  /** The entries that changed since the last flush. */
  flush(): { upserted: IpcacheEntry[]; removed: string[] } {
    const upserted: IpcacheEntry[] = [];
    const removed: string[] = [];
    for (const cidr of this.dirty) {
      const now = this.resolve(cidr);
      const before = this.published.get(cidr);
      if (now === before) continue;
      if (now === undefined) {
        this.published.delete(cidr);
        removed.push(cidr);
      } else {
        this.published.set(cidr, now);
        upserted.push({ cidr, identity: now });
      }
    }
    this.dirty.clear();
    return { upserted, removed };
  }

  /** Every published entry (call flush first). */
  entries(): Map<string, IpcacheEntry> {
    const out = new Map<string, IpcacheEntry>();
    for (const [cidr, identity] of this.published) out.set(cidr, { cidr, identity });
    return out;
  }

  /** Longest-prefix lookup over published entries, as the datapath does it. */
  lookup(ip: string): number | undefined {
    const host = parsePrefix(ip);
    if (typeof host === 'string') return undefined;
    // a pod's entry is a host prefix: only an exact match finds it, and no prefix is longer
    const exact = this.published.get(formatPrefix(host));
    if (exact !== undefined && host.bits === (host.family === 4 ? 32 : 128)) return exact;
    let best: { bits: number; id: number } | undefined;
    for (const [cidr, p] of this.prefixes) {
      const id = this.published.get(cidr);
      if (id !== undefined && prefixContains(p, host) && (!best || p.bits > best.bits)) best = { bits: p.bits, id };
    }
    return best?.id;
  }
}
