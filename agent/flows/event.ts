/**
 * The flow event record as decoded from the datapath's ring buffer
 * (struct weir_flow_event in bpf/weir_abi.h).
 *
 * The decoder lives with the other map codecs in maps/; this is the shape the flow
 * pipeline consumes, so the pipeline can be fed and tested without a kernel.
 */
export interface FlowEvent {
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC nanoseconds. */
  tsNs: bigint;
  ifindex: number;
  endpointId: number;
  srcIdentity: number;
  dstIdentity: number;
  srcAddr: string;
  dstAddr: string;
  /** For ICMP and ICMPv6: the type. */
  srcPort: number;
  /** For ICMP and ICMPv6: the code. */
  dstPort: number;
  family: 4 | 6;
  protocol: number;
  /** WEIR_DIR_* */
  direction: number;
  /** WEIR_VERDICT_* */
  verdict: number;
  /** WEIR_MATCH_* */
  match: number;
  /** WEIR_DROP_* */
  dropReason: number;
  tcpFlags: number;
  /** WEIR_FLOW_F_* */
  flags: number;
  len: number;
}

/** Constants of bpf/weir_abi.h the flow pipeline reads. */
export const ABI = {
  dirIngress: 0,
  dirEgress: 1,
  verdictForwarded: 0,
  verdictDropped: 1,
  flagReply: 1 << 0,
  flagNew: 1 << 1,
  flagFragment: 1 << 2,
} as const;

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const;
