/**
 * The compiler's read API, one job of the policy compiler: what `weir policy explain`, the
 * connectivity matrix, flow enrichment and status read — pods with their identities, compiled
 * policies, published endpoints, identities, the ipcache, problems and counts. PolicyEngine
 * (engine.ts) is a PolicyReader that also takes changes; explain and the others read through
 * this class only.
 */
import type { EndpointState } from '../desired.js';
import type { Identity } from '../identity/allocator.js';
import type { Store } from '../store/store.js';
import type { Pod } from '../store/types.js';
import type { CompiledPolicy, PolicyProblem } from './compiled.js';
import type { EndpointCompiler } from './endpoints.js';
import type { IdentityIndex } from './identities.js';
import type { PolicyTable } from './policies.js';
import type { SelectorCache } from './selector-cache.js';
import { policyWarnings } from './warnings.js';

export interface CompilerStats {
  pods: number;
  endpoints: number;
  policies: number;
  identities: number;
  selectors: number;
  entries: number;
  ipcache: number;
}

export class PolicyReader {
  constructor(
    /** The one copy of the cluster's objects. */
    readonly store: Store,
    protected readonly ids: IdentityIndex,
    protected readonly selectors: SelectorCache,
    protected readonly policies: PolicyTable,
    protected readonly endpoints: EndpointCompiler,
  ) {}

  getPod(key: string): { pod: Pod; identity?: Identity } | undefined {
    const pod = this.store.get('Pod', key);
    const r = this.endpoints.pods.get(key);
    if (!pod || !r) return undefined;
    return { pod, ...(r.identity ? { identity: r.identity } : {}) };
  }

  listPods(): Pod[] {
    const out: Pod[] = [];
    for (const k of this.endpoints.pods.keys()) {
      const p = this.store.get('Pod', k);
      if (p) out.push(p);
    }
    return out;
  }

  policiesInNamespace(ns: string): CompiledPolicy[] {
    return [...this.policies.inNamespace(ns)].sort().map((k) => this.policies.get(k)!.compiled);
  }

  listPolicies(): CompiledPolicy[] {
    return [...this.policies.values()].map((p) => p.compiled);
  }

  getEndpoint(key: string): EndpointState | undefined {
    return this.endpoints.state(key);
  }

  identity(id: number): Identity | undefined {
    return this.ids.identity(id);
  }

  /** Longest-prefix lookup in the published ipcache. */
  resolveIP(ip: string): number | undefined {
    return this.ids.resolveIP(ip);
  }

  /** Errors of every policy, each naming the policy and the field. */
  errors(): PolicyProblem[] {
    return [...this.policies.values()].flatMap((p) => p.compiled.errors);
  }

  /** Warnings: rules ignored by policyTypes, ipBlocks that cover the pod network. */
  warnings(): PolicyProblem[] {
    return policyWarnings({ policies: this.listPolicies(), podCIDRs: this.ids.podCIDRs(), pods: this.managedPods() });
  }

  /** Pods with an identity (not hostNetwork, not finished), by key. */
  private *managedPods(): IterableIterator<[string, Pod]> {
    for (const [k, r] of this.endpoints.pods) {
      const pod = r.identity ? this.store.get('Pod', k) : undefined;
      if (pod) yield [k, pod];
    }
  }

  get stats(): CompilerStats {
    return {
      pods: this.endpoints.pods.size,
      endpoints: this.endpoints.size,
      policies: this.policies.size,
      identities: this.ids.allocated,
      selectors: this.selectors.size,
      entries: this.endpoints.entryCount(),
      ipcache: this.ids.ipcacheEntries().size,
    };
  }
}
