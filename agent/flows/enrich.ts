/**
 * Enrichment: who is behind an address. The flow pipeline asks a FlowContext (backed
 * by the agent's store, identities and ipcache) and caches the answers until the
 * context says they may have changed.
 */
import type { Endpoint } from './types.js';

export interface PodInfo {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
}

export interface FlowContext {
  /** The pod that owns this IP, on any node, if known. */
  podByIp(ip: string): PodInfo | undefined;
  /**
   * An identity's labels as the flow shows them ("k8s:app=web", "reserved:world",
   * "cidr:10.0.0.0/8"), if known.
   */
  identityLabels(identity: number): readonly string[] | undefined;
  /** Name of the host-side interface with this ifindex, if known. */
  interfaceName?(ifindex: number): string | undefined;
  /** The local pod whose host-side interface has this ifindex, if known. */
  podOnInterface?(ifindex: number): PodInfo | undefined;
  /** The Service ("namespace", "name") of a frontend address, port and IP protocol number, if known. */
  serviceByFrontend?(address: string, port: number, protocol: number): { namespace: string; name: string } | undefined;
  /** Changes whenever any answer above may have changed. */
  generation(): number;
}

/** A context that knows nothing: flows carry addresses and identities only. */
export const emptyFlowContext: FlowContext = {
  podByIp: () => undefined,
  identityLabels: () => undefined,
  generation: () => 0,
};

const RESERVED_LABELS: Readonly<Record<number, string | readonly string[]>> = {
  1: 'reserved:host',
  2: 'reserved:world',
  3: 'reserved:unmanaged',
  4: 'reserved:health',
  5: 'reserved:init',
  6: 'reserved:remote-node',
  7: 'reserved:kube-apiserver',
  // The family's world first (shown as "(world-ipv4)"), then world, so reserved:world filters still match.
  9: ['reserved:world-ipv4', 'reserved:world'],
  10: ['reserved:world-ipv6', 'reserved:world'],
};

const LOCAL_SCOPE_BIT = 1 << 24;

/** Labels for an identity nobody described: the reserved ones by number, else nothing. */
export function fallbackLabels(identity: number): string[] {
  const r = RESERVED_LABELS[identity];
  if (r) return typeof r === 'string' ? [r] : [...r];
  if ((identity & LOCAL_SCOPE_BIT) !== 0) return ['reserved:world'];
  return [];
}

export function podLabels(pod: PodInfo): string[] {
  return Object.keys(pod.labels)
    .sort()
    .map((k) => `k8s:${k}=${pod.labels[k]}`);
}

const CACHE_LIMIT = 65536;

export class Enricher {
  /** ip -> (identity x 4096 + endpoint id) -> Endpoint: no key string per lookup. */
  private cache = new Map<string, Map<number, Endpoint>>();
  private cached = 0;
  private readonly ifaces = new Map<number, { index: number; name: string }>();
  private gen: number;

  constructor(private readonly ctx: FlowContext) {
    this.gen = ctx.generation();
  }

  /** The Service of a translated flow's frontend, if the context knows it. */
  service(address: string, port: number, protocol: number): { namespace: string; name: string } | undefined {
    return this.ctx.serviceByFrontend?.(address, port, protocol);
  }

  /** The Endpoint for one side of a flow. The result is shared: never mutate it. */
  endpoint(ip: string, identity: number, endpointId: number): Endpoint {
    this.checkGeneration();
    let byIp = this.cache.get(ip);
    if (byIp === undefined) {
      byIp = new Map();
      this.cache.set(ip, byIp);
    }
    const key = identity * 4096 + (endpointId & 0xfff);
    let ep = byIp.get(key);
    if (ep === undefined || ep.ID !== endpointId) {
      ep = this.build(ip, identity, endpointId);
      byIp.set(key, ep);
      this.cached++;
    }
    return ep;
  }

  /**
   * The sender of a packet whose source address is not its own (INVALID_SOURCE): the pod on the
   * sending interface, never the pod whose address was forged.
   */
  sender(ifindex: number, identity: number, endpointId: number): Endpoint {
    this.checkGeneration();
    const key = `if:${ifindex}`;
    let byIf = this.cache.get(key);
    if (byIf === undefined) {
      byIf = new Map();
      this.cache.set(key, byIf);
    }
    const k = identity * 4096 + (endpointId & 0xfff);
    let ep = byIf.get(k);
    if (ep === undefined || ep.ID !== endpointId) {
      ep = this.describe(this.ctx.podOnInterface?.(ifindex), identity, endpointId);
      byIf.set(k, ep);
      this.cached++;
    }
    return ep;
  }

  /** The flow's `interface` field; shared per ifindex until the context changes. */
  iface(ifindex: number): { index: number; name: string } {
    this.checkGeneration();
    let i = this.ifaces.get(ifindex);
    if (i === undefined) {
      i = Object.freeze({ index: ifindex, name: this.ctx.interfaceName?.(ifindex) ?? '' });
      this.ifaces.set(ifindex, i);
    }
    return i;
  }

  private checkGeneration(): void {
    const g = this.ctx.generation();
    if (g !== this.gen || this.cached >= CACHE_LIMIT) {
      this.cache.clear();
      this.ifaces.clear();
      this.cached = 0;
      this.gen = g;
    }
  }

  private build(ip: string, identity: number, endpointId: number): Endpoint {
    return this.describe(this.ctx.podByIp(ip), identity, endpointId);
  }

  private describe(pod: PodInfo | undefined, identity: number, endpointId: number): Endpoint {
    const labels = this.ctx.identityLabels(identity);
    // frozen: shared by every flow of this address, and encoded once for all of them (flow-wire.ts)
    return Object.freeze({
      ID: endpointId,
      identity,
      namespace: pod?.namespace ?? '',
      pod_name: pod?.name ?? '',
      labels: Object.freeze(labels ? [...labels] : pod ? podLabels(pod) : fallbackLabels(identity)) as string[],
    });
  }
}
