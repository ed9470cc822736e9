/**
 * Desired datapath state: what the compiler produces and the syncer makes real.
 *
 * This is the contract between the pure control plane (agent/policy, agent/ipcache,
 * agent/identity) and the kernel side (agent/datapath + maps/). It holds no kernel
 * details (no map keys, no ifindexes): the syncer translates.
 */

export type Direction = 'ingress' | 'egress';
export type L4Protocol = 'TCP' | 'UDP' | 'SCTP';

/** Identity numbers shared with bpf/weir_abi.h. */
export const ReservedIdentity = {
  any: 0,
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  remoteNode: 6,
  kubeApiserver: 7,
  worldIPv4: 9,
  worldIPv6: 10,
} as const;
/** The world identity of one address family: what 0.0.0.0/0 or ::/0 resolves to outside every named prefix. */
export function worldIdentity(family: 4 | 6): number {
  return family === 4 ? ReservedIdentity.worldIPv4 : ReservedIdentity.worldIPv6;
}
/** world (an address the ipcache does not know), world-ipv4 or world-ipv6. */
export function isWorldIdentity(id: number): boolean {
  return id === ReservedIdentity.world || id === ReservedIdentity.worldIPv4 || id === ReservedIdentity.worldIPv6;
}
export const CLUSTER_IDENTITY_MIN = 256;
export const LOCAL_SCOPE_IDENTITY_BIT = 1 << 24;

/** Where an entry came from, for `weir policy explain` and flow enrichment. */
export interface RuleRef {
  /** "namespace/name" of the NetworkPolicy. */
  policy: string;
  direction: Direction;
  /** Index of the rule in spec.ingress or spec.egress. */
  rule: number;
}

/**
 * One allow entry of one endpoint. Wildcards: remoteIdentity 0 = any identity;
 * protocol 'ANY' = every protocol (ports are then 0); port 0 = every port of the protocol.
 * A single port has endPort === port; a range has endPort > port.
 */
export interface PolicyEntry {
  direction: Direction;
  remoteIdentity: number;
  protocol: L4Protocol | 'ANY';
  port: number;
  endPort: number;
  derivedFrom: RuleRef[];
}

/** A pod on this node whose traffic the datapath enforces. */
export interface EndpointState {
  /** "namespace/name" */
  key: string;
  namespace: string;
  name: string;
  ips: string[];
  identity: number;
  ingressIsolated: boolean;
  egressIsolated: boolean;
  /** Deduplicated allow entries (same key = same entry, derivedFrom merged). */
  entries: PolicyEntry[];
}

/** One ipcache entry: an address or prefix and the identity it resolves to. */
export interface IpcacheEntry {
  /** Canonical CIDR, "10.0.0.5/32", "fd00::/64". */
  cidr: string;
  identity: number;
}

/**
 * One backend of a service frontend: a pod address and the port it listens on
 * (the Service's targetPort, resolved by name through the EndpointSlice's port names).
 */
export interface ServiceBackend {
  /** Canonical address of the backend pod (same family as the frontend). */
  ip: string;
  port: number;
  /** "namespace/name" of the backend pod when the EndpointSlice names it (targetRef). */
  pod?: string;
  /** EndpointSlice endpoint's nodeName. */
  nodeName?: string;
  /**
   * NodePort frontends only: the backend runs on another node (both node names known and
   * different), so a connection given to it under externalTrafficPolicy Cluster is masqueraded.
   */
  remote?: boolean;
  /** EndpointSlice conditions. */
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

/**
 * One load-balanced frontend: a Service's (address, port, protocol). A ClusterIP Service
 * with two clusterIPs and two ports has four frontends; a NodePort Service also has one
 * per (family, nodePort) with `scope: 'nodePort'` and the unspecified address
 * ("0.0.0.0" or "::"), meaning every address of this node.
 */
export interface ServiceFrontend {
  /** "namespace/name" of the Service. */
  service: string;
  scope: 'clusterIP' | 'nodePort';
  /** Canonical address: the ClusterIP, or "0.0.0.0" / "::" for a NodePort frontend. */
  address: string;
  port: number;
  protocol: L4Protocol;
  /** The Service port's name ("" when unnamed). */
  portName: string;
  /** sessionAffinity ClientIP timeout in seconds; 0 = no affinity. */
  affinityTimeoutSeconds: number;
  /**
   * Backends the datapath may choose from, already selected as kube-proxy does: the ready
   * ones, else the serving-and-terminating ones; for internalTrafficPolicy Local (clusterIP
   * scope) or externalTrafficPolicy Local (nodePort scope) only those on this node. Empty =
   * the frontend exists but has no backend (the datapath drops with NO_SERVICE_BACKEND).
   */
  backends: ServiceBackend[];
  /** nodePort scope with externalTrafficPolicy Local: keep the client's source address. */
  externalLocal: boolean;
}

/** Canonical key of a frontend: "address|port|protocol" (address in canonical text). */
export function frontendKey(f: Pick<ServiceFrontend, 'address' | 'port' | 'protocol'>): string {
  return `${f.address}|${f.port}|${f.protocol}`;
}

export interface DesiredState {
  /** Local endpoints by "namespace/name". */
  endpoints: Map<string, EndpointState>;
  /** By canonical CIDR. */
  ipcache: Map<string, IpcacheEntry>;
  /** Service frontends by frontendKey(); absent or empty when services are off. */
  services?: Map<string, ServiceFrontend>;
}

/** Canonical key of a policy entry, used to dedupe and diff. */
export function entryKey(
  e: Pick<PolicyEntry, 'direction' | 'remoteIdentity' | 'protocol' | 'port' | 'endPort'>,
): string {
  return `${e.direction}|${e.remoteIdentity}|${e.protocol}|${e.port}|${e.endPort}`;
}

/**
 * The difference between two desired states, as the syncer applies it.
 * Endpoint-level fields (identity, isolation, ips) come whole in `endpointsChanged`;
 * entries come as per-endpoint additions and removals so a label change touches only
 * the entries that depend on it.
 */
export interface DesiredDiff {
  /** New endpoints, or endpoints whose ips, identity or isolation changed (full new state). */
  endpointsChanged: EndpointState[];
  /** Keys ("namespace/name") of endpoints that are gone. */
  endpointsRemoved: string[];
  /** Per endpoint key: entries to add. */
  entriesAdded: Map<string, PolicyEntry[]>;
  /** Per endpoint key: entries to remove. */
  entriesRemoved: Map<string, PolicyEntry[]>;
  ipcacheUpserted: IpcacheEntry[];
  /** CIDRs removed. */
  ipcacheRemoved: string[];
  /** Frontends that are new or changed (full new state, backends included). */
  servicesUpserted?: ServiceFrontend[];
  /** frontendKey() of frontends that are gone. */
  servicesRemoved?: string[];
}

/** True when applying the diff would change nothing. */
export function isEmptyDiff(d: DesiredDiff): boolean {
  return (
    d.endpointsChanged.length === 0 &&
    d.endpointsRemoved.length === 0 &&
    [...d.entriesAdded.values()].every((l) => l.length === 0) &&
    [...d.entriesRemoved.values()].every((l) => l.length === 0) &&
    d.ipcacheUpserted.length === 0 &&
    d.ipcacheRemoved.length === 0 &&
    (d.servicesUpserted?.length ?? 0) === 0 &&
    (d.servicesRemoved?.length ?? 0) === 0
  );
}
