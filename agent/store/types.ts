/**
 * Typed Kubernetes objects as the control plane sees them: only the fields that matter
 * for identities, the ipcache and NetworkPolicy, normalised (defaults filled in).
 */
import type { L4Protocol } from '../desired.js';

export type Labels = Readonly<Record<string, string>>;

export interface Namespace {
  kind: 'Namespace';
  /** metadata.resourceVersion as the API server sent it (lab objects have none). */
  resourceVersion?: string;
  name: string;
  /** Includes `kubernetes.io/metadata.name`, as the API server sets it. */
  labels: Labels;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: L4Protocol;
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface Pod {
  kind: 'Pod';
  /** metadata.resourceVersion as the API server sent it (lab objects have none). */
  resourceVersion?: string;
  namespace: string;
  name: string;
  labels: Labels;
  /** status.podIPs (falling back to status.podIP), canonical text. */
  ips: string[];
  nodeName?: string;
  hostNetwork: boolean;
  phase: PodPhase;
  /** Ports of every container (init containers excluded), in declaration order. */
  ports: ContainerPort[];
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  /** One of SelectorOperator when valid; kept as written so validation can name a bad one. */
  operator: string;
  values: string[];
}

/** metav1.LabelSelector. An empty selector (no labels, no expressions) selects everything. */
export interface LabelSelector {
  matchLabels: Labels;
  matchExpressions: LabelSelectorRequirement[];
}

export interface IPBlock {
  cidr: string;
  except: string[];
}

/** networking.k8s.io/v1 NetworkPolicyPeer: exactly one of the shapes below is valid. */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyPort {
  /** Defaults to TCP. Kept as written when unknown, so validation can name it. */
  protocol: string;
  /** A number, a named port, or absent (every port of the protocol). */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  /** Empty = from everywhere. */
  from: NetworkPolicyPeer[];
  /** Empty = every port and protocol. */
  ports: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to: NetworkPolicyPeer[];
  ports: NetworkPolicyPort[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicy {
  kind: 'NetworkPolicy';
  /** metadata.resourceVersion as the API server sent it (lab objects have none). */
  resourceVersion?: string;
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  /** Effective policyTypes after Kubernetes defaulting. */
  policyTypes: PolicyType[];
  /** True when spec.policyTypes was written (not defaulted). */
  policyTypesExplicit: boolean;
  ingress: NetworkPolicyIngressRule[];
  egress: NetworkPolicyEgressRule[];
}

export interface NodeAddress {
  type: string;
  address: string;
}

export interface Node {
  kind: 'Node';
  /** metadata.resourceVersion as the API server sent it (lab objects have none). */
  resourceVersion?: string;
  name: string;
  addresses: NodeAddress[];
  /** spec.podCIDRs (falling back to spec.podCIDR). */
  podCIDRs: string[];
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServicePort {
  /** "" when unnamed (a single-port Service may leave it out). */
  name: string;
  protocol: L4Protocol;
  port: number;
  /** A number, or a container port name resolved per endpoint (EndpointSlice port names). Defaults to `port`. */
  targetPort: number | string;
  /** NodePort and LoadBalancer Services: the port on every node (0 when not set). */
  nodePort: number;
}

/** core/v1 Service: the fields that load balancing reads, defaulted as the API server does. */
export interface Service {
  kind: 'Service';
  namespace: string;
  name: string;
  /** metadata.resourceVersion as the API server sent it (lab objects have none). */
  resourceVersion?: string;
  labels: Labels;
  type: ServiceType;
  /** spec.selector; undefined when the Service has none (its EndpointSlices are managed by someone else). */
  selector?: Labels;
  /** spec.clusterIP: "" when not allocated yet, "None" for a headless Service, else canonical text. */
  clusterIP: string;
  /** spec.clusterIPs (falling back to clusterIP), canonical; empty for headless and ExternalName. */
  clusterIPs: string[];
  ports: ServicePort[];
  sessionAffinity: 'None' | 'ClientIP';
  /** sessionAffinityConfig.clientIP.timeoutSeconds (defaulted to 10800 with ClientIP), 0 without affinity. */
  affinityTimeoutSeconds: number;
  internalTrafficPolicy: 'Cluster' | 'Local';
  externalTrafficPolicy: 'Cluster' | 'Local';
  /** spec.externalName of an ExternalName Service. */
  externalName?: string;
}

export interface EndpointConditions {
  /** Unset means ready (the API's nil). */
  ready: boolean;
  /** Unset means true (as kube-proxy reads it). */
  serving: boolean;
  /** Unset means false. */
  terminating: boolean;
}

export interface Endpoint {
  /** Canonical addresses (one for IPv4/IPv6 slices). */
  addresses: string[];
  conditions: EndpointConditions;
  nodeName?: string;
  /** "namespace/name" of the object behind the endpoint (a Pod), when targetRef names one. */
  targetRef?: { kind: string; namespace: string; name: string };
}

export interface EndpointPort {
  /** "" when unnamed. */
  name: string;
  protocol: L4Protocol;
  /** Undefined: every port (the API allows a nil port). */
  port?: number;
}

/** discovery.k8s.io/v1 EndpointSlice. */
export interface EndpointSlice {
  kind: 'EndpointSlice';
  namespace: string;
  name: string;
  /** metadata.resourceVersion as the API server sent it (lab objects have none). */
  resourceVersion?: string;
  labels: Labels;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  /** The `kubernetes.io/service-name` label: the Service this slice belongs to ("" when none). */
  serviceName: string;
  endpoints: Endpoint[];
  ports: EndpointPort[];
}

/** The label an EndpointSlice names its Service with. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** kube-proxy's and the API server's default sessionAffinity ClientIP timeout. */
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;

export type KubeObject = Namespace | Pod | NetworkPolicy | Node | Service | EndpointSlice;
export type KubeKind = KubeObject['kind'];

/** "namespace/name" for namespaced objects, "name" otherwise. */
export function objectKey(o: KubeObject): string {
  return o.kind === 'Namespace' || o.kind === 'Node' ? o.name : `${o.namespace}/${o.name}`;
}
