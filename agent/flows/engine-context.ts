/**
 * FlowContext over the policy engine: pods by IP from the engine's pods, identity labels
 * from its identities. Call `changed()` after the engine applied changes; lookups rebuild
 * the IP index lazily, at most once per change batch.
 */
import type { Identity } from '../identity/allocator.js';
import type { Pod } from '../store/types.js';
import type { FlowContext, PodInfo } from './enrich.js';

/** What the flows need from the engine (PolicyEngine has it). */
export interface EngineView {
  listPods(): Pod[];
  identity(id: number): Identity | undefined;
}

export class EngineFlowContext implements FlowContext {
  private gen = 0;
  private indexGen = -1;
  private byIp = new Map<string, PodInfo>();

  constructor(
    private readonly engine: EngineView,
    private readonly interfaces?: (ifindex: number) => string | undefined,
  ) {}

  /** The engine's pods or identities changed. */
  changed(): void {
    this.gen++;
  }

  generation(): number {
    return this.gen;
  }

  podByIp(ip: string): PodInfo | undefined {
    if (this.indexGen !== this.gen) {
      this.byIp = new Map();
      for (const p of this.engine.listPods()) {
        if (p.hostNetwork) continue;
        for (const a of p.ips) this.byIp.set(a, { namespace: p.namespace, name: p.name, labels: p.labels });
      }
      this.indexGen = this.gen;
    }
    return this.byIp.get(ip);
  }

  identityLabels(identity: number): readonly string[] | undefined {
    const id = this.engine.identity(identity);
    return id ? id.labels.map((l) => `k8s:${l}`) : undefined;
  }

  interfaceName(ifindex: number): string | undefined {
    return this.interfaces?.(ifindex);
  }
}
