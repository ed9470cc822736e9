/**
 * The resources the test API server serves, and how their URLs look.
 * What weir watches, events (which the agent may create), DaemonSets (which a stopping agent
 * reads to tell an uninstall from a restart; pods carry their ownerReferences as given), and
 * Services and EndpointSlices (stored and served, for `kubectl apply`; nothing in weir reads them yet).
 */

export interface ResourceKind {
  /** Plural as it appears in URLs: "pods". */
  plural: string;
  kind: string;
  listKind: string;
  /** "v1" or "networking.k8s.io/v1". */
  apiVersion: string;
  namespaced: boolean;
}

export const RESOURCES: readonly ResourceKind[] = [
  { plural: 'namespaces', kind: 'Namespace', listKind: 'NamespaceList', apiVersion: 'v1', namespaced: false },
  { plural: 'nodes', kind: 'Node', listKind: 'NodeList', apiVersion: 'v1', namespaced: false },
  { plural: 'pods', kind: 'Pod', listKind: 'PodList', apiVersion: 'v1', namespaced: true },
  { plural: 'events', kind: 'Event', listKind: 'EventList', apiVersion: 'v1', namespaced: true },
  { plural: 'services', kind: 'Service', listKind: 'ServiceList', apiVersion: 'v1', namespaced: true },
  {
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    listKind: 'EndpointSliceList',
    apiVersion: 'discovery.k8s.io/v1',
    namespaced: true,
  },
  {
    plural: 'networkpolicies',
    kind: 'NetworkPolicy',
    listKind: 'NetworkPolicyList',
    apiVersion: 'networking.k8s.io/v1',
    namespaced: true,
  },
  { plural: 'daemonsets', kind: 'DaemonSet', listKind: 'DaemonSetList', apiVersion: 'apps/v1', namespaced: true },
];

export type ResourceName =
  'namespaces' | 'nodes' | 'pods' | 'events' | 'services' | 'endpointslices' | 'networkpolicies' | 'daemonsets';

export function resourceByPlural(plural: string): ResourceKind | undefined {
  return RESOURCES.find((r) => r.plural === plural);
}

export function resourceByKind(kind: string): ResourceKind | undefined {
  return RESOURCES.find((r) => r.kind === kind);
}

/** A parsed request path: which resource, optionally which namespace and which object. */
export interface ParsedPath {
  resource: ResourceKind;
  namespace?: string;
  name?: string;
}

/**
 * Parses `/api/v1/[namespaces/NS/]PLURAL[/NAME]` and
 * `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL[/NAME]` (networkpolicies, daemonsets).
 * `/api/v1/namespaces[/NAME]` is the Namespace resource itself.
 */
export function parsePath(pathname: string): ParsedPath | undefined {
  const parts = pathname.split('/').filter((p) => p.length > 0);
  let apiVersion: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] === 'v1') {
    apiVersion = 'v1';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiVersion = `${parts[1]}/${parts[2]}`;
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const resource = resourceByPlural(rest[0] ?? '');
  if (!resource || resource.apiVersion !== apiVersion || rest.length > 2) return undefined;
  if (namespace !== undefined && !resource.namespaced) return undefined;
  return { resource, namespace, name: rest[1] };
}
