/**
 * FlowContext over the policy engine: pods by IP from the engine's pods, identity labels
 * from its identities. The IP index is rebuilt lazily, at most once per change of
 * `generation` (the agent's realized revision, or `changed()` calls).
 */
import type { Identity } from '../identity/allocator.js';
import type { Pod } from '../store/types.js';
import type { FlowContext, PodInfo } from './enrich.js';

/** What the flows need from the engine (PolicyEngine has it). */
export interface EngineView {
  listPods(): Pod[];
  identity(id: number): Identity | undefined;
}

export interface EngineFlowContextOptions {
  /** Changes whenever the engine's pods or identities may have changed (e.g. the agent's revision). */
  generation?: () => number;
  /** Host-side interface name by ifindex. */
  interfaceName?: (ifindex: number) => string | undefined;
  /** The key (namespace/name) of the local pod on the host-side interface with this ifindex. */
  podKeyOnInterface?: (ifindex: number) => string | undefined;
  /** "namespace/name" of the Service of a frontend (address, port, IP protocol number). */
  serviceKeyOfFrontend?: (address: string, port: number, protocol: number) => string | undefined;
}

export class EngineFlowContext implements FlowContext {
  private bumps = 0;
  private indexGen = -1;
  private byIp = new Map<string, PodInfo>();
  private byKey = new Map<string, PodInfo>();

  constructor(
    private readonly engine: EngineView,
    private readonly o: EngineFlowContextOptions = {},
  ) {}

  /** The engine's pods or identities changed (when no generation function was given). */
  changed(): void {
    this.bumps++;
  }

  generation(): number {
    return (this.o.generation?.() ?? 0) * 2 ** 20 + this.bumps;
  }

  podByIp(ip: string): PodInfo | undefined {
    this.index();
    return this.byIp.get(ip);
  }

  podOnInterface(ifindex: number): PodInfo | undefined {
    const key = this.o.podKeyOnInterface?.(ifindex);
    if (key === undefined) return undefined;
    this.index();
    return this.byKey.get(key);
  }

  /** Rebuilds the pod indexes at most once per generation. */
  private index(): void {
    const gen = this.generation();
    if (this.indexGen === gen) return;
    this.byIp = new Map();
    this.byKey = new Map();
    for (const p of this.engine.listPods()) {
      if (p.hostNetwork) continue;
      const info = { namespace: p.namespace, name: p.name, labels: p.labels };
      this.byKey.set(`${p.namespace}/${p.name}`, info);
      for (const a of p.ips) this.byIp.set(a, info);
    }
    this.indexGen = gen;
  }

  identityLabels(identity: number): readonly string[] | undefined {
    const id = this.engine.identity(identity);
    return id ? id.labels.map((l) => `k8s:${l}`) : undefined;
  }

  serviceByFrontend(address: string, port: number, protocol: number): { namespace: string; name: string } | undefined {
    const key = this.o.serviceKeyOfFrontend?.(address, port, protocol);
    if (key === undefined) return undefined;
    const slash = key.indexOf('/');
    return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
  }

  interfaceName(ifindex: number): string | undefined {
    return this.o.interfaceName?.(ifindex);
  }
}
