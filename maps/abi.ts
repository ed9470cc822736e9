/**
 * Named constants of bpf/weir_abi.h for TypeScript. test/unit/abi.test.ts checks
 * every value here against the header as the C compiler sees it.
 */

export const Identity = {
  ANY: 0,
  HOST: 1,
  WORLD: 2,
  UNMANAGED: 3,
  HEALTH: 4,
  INIT: 5,
  REMOTE_NODE: 6,
  KUBE_APISERVER: 7,
  WORLD_IPV4: 9,
  WORLD_IPV6: 10,
  CLUSTER_MIN: 256,
  LOCAL_SCOPE: 1 << 24,
} as const;

export const Direction = { INGRESS: 0, EGRESS: 1 } as const;
export const DIRECTION_NAMES = ['INGRESS', 'EGRESS'] as const;
export type DirectionName = (typeof DIRECTION_NAMES)[number];

export const Verdict = { FORWARDED: 0, DROPPED: 1 } as const;
export const VERDICT_NAMES = ['FORWARDED', 'DROPPED'] as const;
export type VerdictName = (typeof VERDICT_NAMES)[number];

export const Match = {
  NONE: 0,
  L3_L4: 1,
  L3_ONLY: 2,
  L4_ONLY: 3,
  ALL: 4,
  NOT_ISOLATED: 5,
  HOST: 6,
  ESTABLISHED: 7,
  RELATED: 8,
  ALWAYS: 9,
} as const;
export const MATCH_MAX = 16;
export type MatchName = keyof typeof Match;

export const DropReason = {
  NONE: 0,
  POLICY_DENIED: 1,
  POLICY_REVOKED: 2,
  TRUNCATED: 3,
  MALFORMED: 4,
  FRAG_UNKNOWN: 5,
  UNSUPPORTED_L3: 6,
  CT_FULL: 7,
  NO_ENDPOINT: 8,
  INVALID_SOURCE: 9,
  CT_BUDGET: 10,
  NO_SERVICE_BACKEND: 11,
  SERVICE_UNSUPPORTED: 12,
  NAT_NO_PORT: 13,
} as const;
export const DROP_MAX = 32;
export type DropReasonName = keyof typeof DropReason;

/** Reverse tables: number -> name ("UNKNOWN_<n>" for numbers this build does not know). */
function reverse<T extends Record<string, number>>(t: T): (n: number) => keyof T | `UNKNOWN_${number}` {
  const m = new Map<number, keyof T>(Object.entries(t).map(([k, v]) => [v, k as keyof T]));
  return (n: number) => m.get(n) ?? (`UNKNOWN_${n}` as const);
}
export const matchName = reverse(Match);
export const dropReasonName = reverse(DropReason);
export const directionName = (n: number): DirectionName | `UNKNOWN_${number}` => DIRECTION_NAMES[n] ?? `UNKNOWN_${n}`;
export const verdictName = (n: number): VerdictName | `UNKNOWN_${number}` => VERDICT_NAMES[n] ?? `UNKNOWN_${n}`;

export const FlowFlag = { REPLY: 1 << 0, NEW: 1 << 1, FRAGMENT: 1 << 2, SERVICE: 1 << 3 } as const;
export const Family = { IPV4: 4, IPV6: 6 } as const;

export const EndpointFlag = { INGRESS_ISOLATED: 1 << 0, EGRESS_ISOLATED: 1 << 1 } as const;
export const Kind = {
  ID_PORT: 1 << 0,
  ID_PROTO: 1 << 1,
  ID_ALL: 1 << 2,
  ID_RANGE: 1 << 3,
  ANY_PORT: 1 << 4,
  ANY_PROTO: 1 << 5,
  ANY_ALL: 1 << 6,
  ANY_RANGE: 1 << 7,
} as const;
export const epKindsShift = (dir: number): number => 8 + 8 * dir;

export const PolicyFlag = { ALLOW: 1 << 0 } as const;
export const CtFlag = {
  SEEN_REPLY: 1 << 0,
  CLOSING: 1 << 1,
  REVOKED: 1 << 2,
  SERVICE: 1 << 3,
  NOT_LOCAL: 1 << 4,
} as const;
export const ConfigFlag = {
  HOST_ALLOW: 1 << 0,
  NO_ALLOWED_FLOWS: 1 << 1,
  NO_LOCAL_DELIVERY: 1 << 2,
  SET: 2 ** 31,
} as const;

export const IPCACHE_LPM_PREFIX_BASE = 32;
export const POLICY_RANGE_PREFIX_BASE = 80;

export const Limits = {
  ENDPOINTS_MAX: 4096,
  ENDPOINT_IDS: 4096 * 4,
  IPCACHE_MAX: 1 << 20,
  IPCACHE_LPM_MAX: 1 << 16,
  POLICY_MAX: 1 << 18,
  POLICY_RANGE_MAX: 1 << 16,
  CT_MAX: 1 << 18,
  FRAG_MAX: 8192,
  EVENTS_RING_BYTES: 1 << 22,
  SVC_MAX: 1 << 16,
  SVC_BE_MAX: 1 << 18,
  LB_CT_MAX: 1 << 18,
  LB_AFF_MAX: 1 << 16,
  SVC_BACKENDS_MAX: 0xffff,
  NAT_MAX: 1 << 19,
} as const;

/** Services (bpf/lib/lb.h). */
export const SvcScope = { CLUSTER_IP: 0, NODE_PORT: 1 } as const;
export const SvcFlag = { AFFINITY: 1 << 0, EXTERNAL_LOCAL: 1 << 1 } as const;
export const SvcBackendFlag = { REMOTE: 1 << 0 } as const;
export const LbFlag = { HAIRPIN: 1 << 0, SNAT: 1 << 1 } as const;
/** weir_lb_counters indexes. */
export const LbCounter = {
  NEW: 0,
  FORWARD: 1,
  REVERSE: 2,
  HAIRPIN: 3,
  NO_BACKEND: 4,
  SNAT_NEW: 5,
  SNAT_FULL: 6,
} as const;
/** NodePort masquerade (weir_nat): its halves, and the source ports it allocates. */
export const NatFlag = { FORWARD: 1 << 0, REVERSE: 1 << 1 } as const;
export const NatPort = { MIN: 61000, MAX: 65535, TRIES: 8 } as const;
export const LB_COUNTER_MAX = 8;
/** The reserved source a pod sees its own hairpin connections come from (WEIR_HAIRPIN_IPV4/_IPV6). */
export const HAIRPIN_ADDRESS = { 4: '169.254.42.1', 6: 'fd00:a9fe::2a01' } as const;

export const counterIndex = (dir: number, verdict: number, reason: number): number =>
  (dir * 2 + verdict) * DROP_MAX + reason;
export const COUNTER_ENTRIES = 2 * 2 * DROP_MAX;

/** IP protocol numbers the datapath knows by name. */
export const Protocol = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const;
export const protocolName = (n: number): string =>
  (({ 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' }) as Record<number, string>)[n] ?? `proto-${n}`;

/** Map names as they appear in the object and under the pin root. */
export const MapName = {
  endpoints: 'weir_endpoints',
  endpointRev: 'weir_ep_rev',
  ctBudget: 'weir_ct_budget',
  ipcache: 'weir_ipcache',
  ipcacheLpm: 'weir_ipc_lpm',
  policy: 'weir_policy',
  policyRange: 'weir_policy_rng',
  conntrack: 'weir_ct',
  conntrack4: 'weir_ct4',
  frag: 'weir_frag',
  config: 'weir_config',
  events: 'weir_events',
  lostEvents: 'weir_ev_lost',
  ctMiss: 'weir_ct_miss',
  counters: 'weir_counters',
  services: 'weir_svc',
  backends: 'weir_svc_be',
  lbForward: 'weir_lb_fwd',
  lbReverse: 'weir_lb_rev',
  lbAffinity: 'weir_lb_aff',
  nat: 'weir_nat',
  lbCounters: 'weir_lb_counters',
  lbScratch: 'weir_lb_scratch',
} as const;
export type MapKey = keyof typeof MapName;

export const ProgramName = {
  fromPod: 'from_pod',
  toPod: 'to_pod',
  /** NodePort: tc ingress and egress of the node's external interfaces. */
  fromNode: 'from_node',
  toNode: 'to_node',
  /** Never attached: run by the agent to learn the offset of flow events' clock (maps/clock.ts). */
  clockSample: 'clock_sample',
} as const;
