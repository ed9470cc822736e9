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

export type KubeObject = Namespace | Pod | NetworkPolicy | Node;
export type KubeKind = KubeObject['kind'];

/** "namespace/name" for namespaced objects, "name" otherwise. */
export function objectKey(o: KubeObject): string {
  return o.kind === 'Namespace' || o.kind === 'Node' ? o.name : `${o.namespace}/${o.name}`;
}
