/**
 * API discovery for the test API server, as kubectl asks for it: aggregated discovery
 * (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList on `/api` and `/apis`) when the Accept header asks
 * for it, and the classic documents otherwise (`/api` APIVersions, `/apis` APIGroupList,
 * `/api/v1` and `/apis/<group>/<version>` APIResourceList).
 */
import type { ResourceKind } from './resources.js';

export const AGGREGATED_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const SHORT_NAMES: Record<string, string[]> = {
  namespaces: ['ns'],
  nodes: ['no'],
  pods: ['po'],
  events: ['ev'],
  services: ['svc'],
  networkpolicies: ['netpol'],
  daemonsets: ['ds'],
};

function split(apiVersion: string): { group: string; version: string } {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return { group: group!, version: version! };
}

/** Does this Accept header ask for aggregated discovery (v2)? */
export function wantsAggregated(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((t) => /g=apidiscovery\.k8s\.io/.test(t) && /v=v2(;|$)/.test(t));
}

/** `/api` (core = true) or `/apis` as an APIGroupDiscoveryList. */
export function aggregated(resources: readonly ResourceKind[], core: boolean): unknown {
  const groups = new Map<string, Map<string, ResourceKind[]>>();
  for (const r of resources) {
    const { group, version } = split(r.apiVersion);
    if ((group === '') !== core) continue;
    const versions = groups.get(group) ?? new Map<string, ResourceKind[]>();
    versions.set(version, [...(versions.get(version) ?? []), r]);
    groups.set(group, versions);
  }
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: [...groups].map(([group, versions]) => ({
      metadata: { name: group },
      versions: [...versions].map(([version, rs]) => ({
        version,
        freshness: 'Current',
        resources: rs.map((r) => ({
          resource: r.plural,
          responseKind: { group, version, kind: r.kind },
          scope: r.namespaced ? 'Namespaced' : 'Cluster',
          singularResource: r.kind.toLowerCase(),
          verbs: VERBS,
          ...(SHORT_NAMES[r.plural] ? { shortNames: SHORT_NAMES[r.plural] } : {}),
        })),
      })),
    })),
  };
}

/** `/api`: the core versions. */
export function apiVersions(): unknown {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
}

/** `/apis`: the named groups. */
export function apiGroupList(resources: readonly ResourceKind[]): unknown {
  const groups = new Map<string, Set<string>>();
  for (const r of resources) {
    const { group, version } = split(r.apiVersion);
    if (group) groups.set(group, (groups.get(group) ?? new Set()).add(version));
  }
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups].map(([name, versions]) => {
      const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
      return { name, versions: vs, preferredVersion: vs[0] };
    }),
  };
}

/** `/api/v1` or `/apis/<group>/<version>`; undefined if no resource has that group-version. */
export function apiResourceList(resources: readonly ResourceKind[], groupVersion: string): unknown {
  const rs = resources.filter((r) => r.apiVersion === groupVersion);
  if (rs.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: rs.map((r) => ({
      name: r.plural,
      singularName: r.kind.toLowerCase(),
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: VERBS,
      ...(SHORT_NAMES[r.plural] ? { shortNames: SHORT_NAMES[r.plural] } : {}),
    })),
  };
}
