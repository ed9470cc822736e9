/** What `weir lab get` shows: pods, policies, identities and services, as JSON rows and as tables. */
import type { Agent } from '../daemon.js';
import type { LabPod } from './runtime.js';
import { podKey } from './runtime.js';
import { selectorMatches, selectorText } from '../policy/selector.js';
import type { PolicyEngine } from '../policy/engine.js';

export interface PodView {
  namespace: string;
  name: string;
  /** IPv4 address. */
  ip: string;
  ips: string[];
  labels: Record<string, string>;
  identity?: number;
  interface: string;
  ifindex: number;
  netns: string;
  ports: string[];
}

export interface PolicyView {
  namespace: string;
  name: string;
  podSelector: string;
  policyTypes: string[];
  ingressRules: number;
  egressRules: number;
  /** Pods of the lab this policy selects. */
  selects: string[];
}

export interface IdentityView {
  identity: number;
  labels: string[];
  pods: string[];
}

export interface ServicePortView {
  name: string;
  protocol: string;
  port: number;
  targetPort: number | string;
  /** 0 when the Service has none. */
  nodePort: number;
}

export interface ServiceEndpointView {
  /** "namespace/name" of the pod behind the endpoint ("" when the slice names none). */
  pod: string;
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export interface ServiceView {
  namespace: string;
  name: string;
  type: string;
  /** "None" for a headless Service, "" for ExternalName. */
  clusterIP: string;
  clusterIPs: string[];
  ports: ServicePortView[];
  selector: Record<string, string>;
  /** From the Service's EndpointSlices: one row per endpoint address and port. */
  endpoints: ServiceEndpointView[];
}

export function serviceViews(agent: Agent): ServiceView[] {
  const slices = agent.store.list('EndpointSlice');
  return agent.store
    .list('Service')
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((s) => {
      const endpoints: ServiceEndpointView[] = [];
      for (const sl of slices) {
        if (sl.namespace !== s.namespace || sl.serviceName !== s.name) continue;
        for (const ep of sl.endpoints)
          for (const p of sl.ports) {
            if (p.port === undefined || ep.addresses[0] === undefined) continue;
            endpoints.push({
              pod: ep.targetRef ? `${ep.targetRef.namespace}/${ep.targetRef.name}` : '',
              ip: ep.addresses[0],
              port: p.port,
              ...ep.conditions,
            });
          }
      }
      endpoints.sort((a, b) => a.pod.localeCompare(b.pod) || a.ip.localeCompare(b.ip) || a.port - b.port);
      return {
        namespace: s.namespace,
        name: s.name,
        type: s.type,
        clusterIP: s.type === 'ExternalName' ? '' : s.clusterIP,
        clusterIPs: s.clusterIPs,
        ports: s.ports.map((p) => ({
          name: p.name,
          protocol: p.protocol,
          port: p.port,
          targetPort: p.targetPort,
          nodePort: p.nodePort,
        })),
        selector: { ...(s.selector ?? {}) },
        endpoints,
      };
    });
}

export function podViews(agent: Agent, pods: LabPod[]): PodView[] {
  const endpoints = agent.compiler.snapshot().endpoints;
  return pods.map((p) => {
    const ep = endpoints.get(podKey(p));
    return {
      namespace: p.namespace,
      name: p.name,
      ip: p.ip4,
      ips: [p.ip4, p.ip6],
      labels: p.labels,
      ...(ep ? { identity: ep.identity } : {}),
      interface: p.hostVeth,
      ifindex: p.ifindex,
      netns: p.netns,
      ports: p.ports.map((x) => `${x.name ? `${x.name}:` : ''}${x.port}/${x.protocol}`),
    };
  });
}

export function policyViews(agent: Agent): PolicyView[] {
  const pods = agent.store.list('Pod');
  return agent.store
    .list('NetworkPolicy')
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((p) => ({
      namespace: p.namespace,
      name: p.name,
      podSelector: selectorText(p.podSelector),
      policyTypes: p.policyTypes,
      ingressRules: p.ingress.length,
      egressRules: p.egress.length,
      selects: pods
        .filter((x) => x.namespace === p.namespace && selectorMatches(p.podSelector, x.labels))
        .map((x) => `${x.namespace}/${x.name}`),
    }));
}

/** Identities of the lab's endpoints, with the labels they stand for. */
export function identityViews(agent: Agent, engine: PolicyEngine): IdentityView[] {
  const byId = new Map<number, IdentityView>();
  for (const ep of agent.compiler.snapshot().endpoints.values()) {
    let v = byId.get(ep.identity);
    if (!v) {
      v = { identity: ep.identity, labels: [...(engine.identity(ep.identity)?.labels ?? [])], pods: [] };
      byId.set(ep.identity, v);
    }
    v.pods.push(ep.key);
  }
  return [...byId.values()].sort((a, b) => a.identity - b.identity);
}

/** Plain aligned columns, like kubectl's. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('   ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
