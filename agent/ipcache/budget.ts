/**
 * Admission of policy CIDR prefixes against the node's ipcache capacity. Every prefix an ipBlock
 * names (cidr and except, /0 aside) takes one ipcache entry on every node, and the LPM map
 * `weir_ipc_lpm` is one map shared by all namespaces (single addresses go to the larger hash map,
 * but are counted here too: the budget errs on the side of refusing). So before a policy's
 * prefixes reach the ipcache:
 *   - the distinct prefixes of one namespace's policies may not exceed a per-namespace budget
 *     (default 20,480: three namespaces at their budget still fit the map), so no namespace can take the whole map from the others;
 *   - the distinct prefixes of all policies may not exceed the map's capacity minus a reserve
 *     for the cluster's pod CIDRs (65,536 - 512).
 * A policy over either limit is refused as a whole: it keeps none of its prefixes (nothing of it
 * is half-written), and the caller turns it into a policy that isolates and allows nothing.
 * Prefixes shared by several policies count once per namespace and once in the total.
 */
import { Limits, MapName } from '../../maps/abi.js';

/** LPM entries kept for pod CIDRs (one per node, plus the clusterPodCIDRs) and the two world /0s. */
export const LPM_RESERVE = 512;
export const DEFAULT_PREFIXES_PER_NAMESPACE = 20_480;

export interface CidrBudgetOptions {
  /** Distinct prefixes the policies of one namespace may name (default 20,480: three namespaces at their budget still fit the map). */
  perNamespace?: number;
  /** Distinct prefixes all policies together may name (default the LPM map's size minus LPM_RESERVE). */
  total?: number;
}

export type Admission = { ok: true } | { ok: false; message: string };

function count(map: Map<string, number>, key: string, delta: number): boolean {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
  return (delta > 0 && n === 1) || (delta < 0 && n <= 0);
}

export class CidrBudget {
  readonly perNamespace: number;
  readonly total: number;
  /** prefix -> number of admitted policies naming it. */
  private readonly all = new Map<string, number>();
  /** namespace -> prefix -> number of its admitted policies naming it. */
  private readonly byNamespace = new Map<string, Map<string, number>>();
  /** policy key -> what it was admitted with. */
  private readonly held = new Map<string, { namespace: string; prefixes: string[] }>();
  private freed = false;

  constructor(opts: CidrBudgetOptions = {}) {
    this.perNamespace = opts.perNamespace ?? DEFAULT_PREFIXES_PER_NAMESPACE;
    this.total = opts.total ?? Limits.IPCACHE_LPM_MAX - LPM_RESERVE;
  }

  /** Distinct prefixes admitted, in all and in one namespace. */
  used(namespace?: string): number {
    return namespace === undefined ? this.all.size : (this.byNamespace.get(namespace)?.size ?? 0);
  }

  /**
   * Admits the (canonical) prefixes of a policy, replacing what it held before; a refused
   * policy holds nothing afterwards.
   */
  admit(policy: string, namespace: string, prefixes: Iterable<string>): Admission {
    const before = this.all.size;
    const nsBefore = this.used(namespace);
    const r = this.admitFresh(policy, namespace, prefixes);
    // Room given back (the policy shrank, or was refused): refused policies may fit now.
    if (this.all.size < before || this.used(namespace) < nsBefore) this.freed = true;
    return r;
  }

  /** True once after room was given back since the last call. */
  takeFreed(): boolean {
    const f = this.freed;
    this.freed = false;
    return f;
  }

  private admitFresh(policy: string, namespace: string, prefixes: Iterable<string>): Admission {
    this.drop(policy);
    const mine = [...new Set(prefixes)];
    if (mine.length === 0) return { ok: true };
    const ns = this.byNamespace.get(namespace);
    const nsAfter = (ns?.size ?? 0) + mine.filter((p) => !ns?.has(p)).length;
    const allAfter = this.all.size + mine.filter((p) => !this.all.has(p)).length;
    const fmt = (n: number): string => n.toLocaleString('en-US');
    if (nsAfter > this.perNamespace)
      return {
        ok: false,
        message: `names ${fmt(mine.length)} CIDR prefixes; with the other policies of namespace ${namespace} that makes ${fmt(nsAfter)}, over the per-namespace budget of ${fmt(this.perNamespace)} entries of the node's ipcache map ${MapName.ipcacheLpm} (${fmt(Limits.IPCACHE_LPM_MAX)} entries shared by every namespace). The policy is refused as a whole: it isolates the pods it selects and allows nothing until it names fewer prefixes (merge adjacent ones into shorter prefixes) or the budget is raised (cidrPrefixesPerNamespace)`,
      };
    if (allAfter > this.total)
      return {
        ok: false,
        message: `names ${fmt(mine.length)} CIDR prefixes; with every other policy that makes ${fmt(allAfter)}, more than the node's ipcache map ${MapName.ipcacheLpm} holds for policies (${fmt(this.total)} of its ${fmt(Limits.IPCACHE_LPM_MAX)} entries; the rest is kept for pod CIDRs). The policy is refused as a whole: it isolates the pods it selects and allows nothing until it names fewer prefixes (merge adjacent ones into shorter prefixes)`,
      };
    let nsMap = ns;
    if (!nsMap) this.byNamespace.set(namespace, (nsMap = new Map()));
    for (const p of mine) {
      count(this.all, p, +1);
      count(nsMap, p, +1);
    }
    this.held.set(policy, { namespace, prefixes: mine });
    return { ok: true };
  }

  /** Gives back what a deleted policy holds. */
  release(policy: string): void {
    const before = this.all.size;
    const nsBefore = this.held.has(policy) ? this.used(this.held.get(policy)!.namespace) : 0;
    const ns = this.held.get(policy)?.namespace;
    this.drop(policy);
    if (ns !== undefined && (this.all.size < before || this.used(ns) < nsBefore)) this.freed = true;
  }

  private drop(policy: string): void {
    const h = this.held.get(policy);
    if (!h) return;
    this.held.delete(policy);
    const nsMap = this.byNamespace.get(h.namespace)!;
    for (const p of h.prefixes) {
      count(this.all, p, -1);
      count(nsMap, p, -1);
    }
    if (nsMap.size === 0) this.byNamespace.delete(h.namespace);
  }
}
