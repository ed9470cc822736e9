/**
 * EndpointSlices of a Service derived from its selector and the pods, as Kubernetes's
 * EndpointSlice controller writes them (for the lab, which has no controller manager):
 *
 * - Only a Service with a non-empty selector gets slices; pods of its namespace whose labels
 *   match, that have an address and have not ended (Succeeded/Failed), are its endpoints.
 * - One slice per address family of the Service (its clusterIPs' families; both for a headless
 *   Service) and per distinct set of resolved ports: a Service port's targetPort by number is
 *   that number, by name the pod's container port of that name and protocol; a pod that has no
 *   such named port is left out of that port (the controller's FindPort), so pods that resolve
 *   differently land in different slices.
 * - Endpoints carry the pod's node, a Pod targetRef and conditions: a running pod is ready and
 *   serving, not terminating. Slices are labelled `kubernetes.io/service-name`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { SERVICE_NAME_LABEL, type EndpointPort, type EndpointSlice, type Pod, type Service } from '../store/types.js';

/** The controller name in `endpointslice.kubernetes.io/managed-by`. */
export const LAB_SLICE_MANAGER = 'weir-lab';

/** Whether the Service's selector picks this pod: its namespace, non-empty selector, not ended. */
export function selectsPod(svc: Service, p: Pod): boolean {
  const selector = svc.selector;
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return (
    p.namespace === svc.namespace &&
    p.phase !== 'Succeeded' &&
    p.phase !== 'Failed' &&
    Object.entries(selector).every(([k, v]) => p.labels[k] === v)
  );
}

/** The pod's ports for the Service's ports (targetPort resolved), in Service port order. */
export function resolvedPorts(svc: Service, pod: Pod): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const sp of svc.ports) {
    let port: number | undefined;
    if (typeof sp.targetPort === 'number') port = sp.targetPort;
    else port = pod.ports.find((c) => c.name === sp.targetPort && c.protocol === sp.protocol)?.containerPort;
    if (port !== undefined) out.push({ name: sp.name, protocol: sp.protocol, port });
  }
  return out;
}

function familiesOf(svc: Service): Array<4 | 6> {
  const fams = new Set<4 | 6>(svc.clusterIPs.map((ip) => (isIPv4(ip) ? 4 : 6)));
  return fams.size > 0 ? [...fams].sort() : [4, 6];
}

export function deriveEndpointSlices(svc: Service, pods: Iterable<Pod>): EndpointSlice[] {
  if (svc.type === 'ExternalName' || svc.selector === undefined || Object.keys(svc.selector).length === 0) return [];
  const members = [...pods]
    .filter((p) => p.ips.length > 0 && selectsPod(svc, p))
    .sort((a, b) => a.name.localeCompare(b.name));
  const out: EndpointSlice[] = [];
  for (const family of familiesOf(svc)) {
    const groups = new Map<string, { ports: EndpointPort[]; pods: Array<{ pod: Pod; ip: string }> }>();
    for (const pod of members) {
      const ip = pod.ips.find((a) => (family === 4 ? isIPv4(a) : isIPv6(a)));
      if (ip === undefined) continue;
      const ports = resolvedPorts(svc, pod);
      const key = JSON.stringify(ports);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { ports, pods: [] }));
      g.pods.push({ pod, ip });
    }
    const suffix = family === 4 ? 'ipv4' : 'ipv6';
    const sorted = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, g]) => g);
    // The controller keeps a slice with no endpoints for a Service that selects no pod.
    if (sorted.length === 0) sorted.push({ ports: [], pods: [] });
    sorted.forEach((g, i) => {
      out.push({
        kind: 'EndpointSlice',
        namespace: svc.namespace,
        name: `${svc.name}-${suffix}${i === 0 ? '' : `-${i + 1}`}`,
        labels: { [SERVICE_NAME_LABEL]: svc.name, 'endpointslice.kubernetes.io/managed-by': LAB_SLICE_MANAGER },
        addressType: family === 4 ? 'IPv4' : 'IPv6',
        serviceName: svc.name,
        endpoints: g.pods.map(({ pod, ip }) => {
          const ready = pod.phase === 'Running';
          return {
            addresses: [ip],
            conditions: { ready, serving: ready, terminating: false },
            ...(pod.nodeName !== undefined ? { nodeName: pod.nodeName } : {}),
            targetRef: { kind: 'Pod', namespace: pod.namespace, name: pod.name },
          };
        }),
        ports: g.ports,
      });
    });
  }
  return out;
}
