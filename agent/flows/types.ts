/**
 * The flow API's messages as plain objects, shaped exactly like agent/flows/observer.proto
 * (proto field names, numeric enums) so protobufjs encodes them without copying.
 */

export const Verdict = { VERDICT_UNKNOWN: 0, FORWARDED: 1, DROPPED: 2 } as const;
export const TrafficDirection = { TRAFFIC_DIRECTION_UNKNOWN: 0, INGRESS: 1, EGRESS: 2 } as const;
export const IPVersion = { IP_NOT_USED: 0, IPv4: 1, IPv6: 2 } as const;
export const FlowType = { UNKNOWN_TYPE: 0, L3_L4: 1 } as const;
export const LostEventSource = {
  UNKNOWN_LOST_EVENT_SOURCE: 0,
  PERF_EVENT_RING_BUFFER: 1,
  OBSERVER_EVENTS_QUEUE: 2,
} as const;

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface Endpoint {
  ID: number;
  identity: number;
  namespace: string;
  labels: string[];
  pod_name: string;
}

export interface TCPFlags {
  FIN?: boolean;
  SYN?: boolean;
  RST?: boolean;
  PSH?: boolean;
  ACK?: boolean;
  URG?: boolean;
  ECE?: boolean;
  CWR?: boolean;
}

export interface Ports {
  source_port: number;
  destination_port: number;
}

export interface Layer4 {
  TCP?: Ports & { flags?: TCPFlags };
  UDP?: Ports;
  SCTP?: Ports;
  ICMPv4?: { type: number; code: number };
  ICMPv6?: { type: number; code: number };
}

export interface Flow {
  time: Timestamp;
  uuid: string;
  verdict: number;
  drop_reason: number;
  IP: { source: string; destination: string; ipVersion: number };
  l4: Layer4;
  source: Endpoint;
  destination: Endpoint;
  Type: number;
  node_name: string;
  reply: boolean;
  event_type: { type: number; sub_type: number };
  traffic_direction: number;
  policy_match_type: number;
  drop_reason_desc: number;
  is_reply: { value: boolean };
  interface: { index: number; name: string };
  Summary: string;
  policy_match: number;
  length: number;
  /** The Service the pod addressed, when the datapath translated a Service address (weir knows its name). */
  destination_service?: { name: string; namespace: string };
  /** The Service address and port the pod addressed; IP.destination and the L4 port are the backend's. */
  destination_service_ip?: string;
  destination_service_port?: number;
}

export interface EventTypeFilter {
  type: number;
  match_sub_type?: boolean;
  sub_type?: number;
}

export interface NetworkInterfaceFilter {
  index?: number;
  name?: string;
}

/** Hubble's FlowFilter, every field (observer.proto); filter.ts says which weir evaluates. */
export interface FlowFilter {
  uuid?: string[];
  source_ip?: string[];
  source_ip_xlated?: string[];
  source_pod?: string[];
  source_fqdn?: string[];
  source_label?: string[];
  source_service?: string[];
  source_workload?: Array<{ name?: string; kind?: string }>;
  source_cluster_name?: string[];
  destination_ip?: string[];
  destination_pod?: string[];
  destination_fqdn?: string[];
  destination_label?: string[];
  destination_service?: string[];
  destination_workload?: Array<{ name?: string; kind?: string }>;
  destination_cluster_name?: string[];
  traffic_direction?: number[];
  verdict?: number[];
  drop_reason_desc?: number[];
  interface?: NetworkInterfaceFilter[];
  event_type?: EventTypeFilter[];
  http_status_code?: string[];
  protocol?: string[];
  source_port?: string[];
  destination_port?: string[];
  reply?: boolean[];
  dns_query?: string[];
  source_identity?: number[];
  destination_identity?: number[];
  http_method?: string[];
  http_path?: string[];
  http_url?: string[];
  http_header?: Array<{ key?: string; value?: string }>;
  tcp_flags?: TCPFlags[];
  node_name?: string[];
  node_labels?: string[];
  ip_version?: number[];
  trace_id?: string[];
  ip_trace_id?: number[];
  encrypted?: boolean[];
  experimental?: { cel_expression?: string[] } | null;
}

export interface GetFlowsRequest {
  number?: number;
  first?: boolean;
  follow?: boolean;
  whitelist?: FlowFilter[];
  blacklist?: FlowFilter[];
  since?: Timestamp | null;
  until?: Timestamp | null;
  /** Declared for Hubble clients; weir refuses a request that sets them. */
  field_mask?: { paths?: string[] } | null;
  experimental?: { field_mask?: { paths?: string[] } | null } | null;
  extensions?: unknown[];
}

export interface LostEvent {
  source: number;
  num_events_lost: number;
}

export const NodeState = {
  UNKNOWN_NODE_STATE: 0,
  NODE_CONNECTED: 1,
  NODE_UNAVAILABLE: 2,
  NODE_GONE: 3,
  NODE_ERROR: 4,
} as const;

export interface NodeStatusEvent {
  state_change: number;
  node_names: string[];
  message: string;
}

export interface GetFlowsResponse {
  flow?: Flow;
  node_status?: NodeStatusEvent;
  lost_events?: LostEvent;
  node_name: string;
  time: Timestamp;
}

export interface ServerStatusResponse {
  num_flows: number;
  max_flows: number;
  seen_flows: number;
  uptime_ns: number;
  num_connected_nodes?: { value: number } | null;
  num_unavailable_nodes?: { value: number } | null;
  unavailable_nodes?: string[];
  version: string;
  lost_events: number;
  client_dropped_flows: number;
  connected_clients: number;
  node_name: string;
}

export interface Node {
  name: string;
  version: string;
  address: string;
  state: number;
  tls?: { enabled: boolean; server_name: string } | null;
  uptime_ns: number;
  num_flows: number;
  max_flows: number;
  seen_flows: number;
}

export interface GetNodesResponse {
  nodes: Node[];
}
