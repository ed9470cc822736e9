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
}

export interface EventTypeFilter {
  type: number;
  match_sub_type?: boolean;
  sub_type?: number;
}

export interface FlowFilter {
  uuid?: string[];
  source_ip?: string[];
  source_pod?: string[];
  source_label?: string[];
  destination_ip?: string[];
  destination_pod?: string[];
  destination_label?: string[];
  traffic_direction?: number[];
  verdict?: number[];
  event_type?: EventTypeFilter[];
  protocol?: string[];
  source_port?: string[];
  destination_port?: string[];
  reply?: boolean[];
  source_identity?: number[];
  destination_identity?: number[];
  ip_version?: number[];
  drop_reason_desc?: number[];
}

export interface GetFlowsRequest {
  number?: number;
  first?: boolean;
  follow?: boolean;
  whitelist?: FlowFilter[];
  blacklist?: FlowFilter[];
  since?: Timestamp | null;
  until?: Timestamp | null;
}

export interface LostEvent {
  source: number;
  num_events_lost: number;
}

export interface GetFlowsResponse {
  flow?: Flow;
  lost_events?: LostEvent;
  node_name: string;
  time: Timestamp;
}

export interface ServerStatusResponse {
  num_flows: number;
  max_flows: number;
  seen_flows: number;
  uptime_ns: number;
  version: string;
  lost_events: number;
  client_dropped_flows: number;
  connected_clients: number;
  node_name: string;
}
