/**
 * The flow event record as the datapath's codec decodes it (struct weir_flow_event,
 * maps/codecs/flow-event.ts), and the ABI constants the flow pipeline reads.
 */
import { Direction, FlowFlag, Protocol, Verdict } from '../../maps/abi.js';

export type { FlowEvent } from '../../maps/codecs/flow-event.js';

export const ABI = {
  dirIngress: Direction.INGRESS,
  dirEgress: Direction.EGRESS,
  verdictForwarded: Verdict.FORWARDED,
  verdictDropped: Verdict.DROPPED,
  flagReply: FlowFlag.REPLY,
  flagNew: FlowFlag.NEW,
  flagFragment: FlowFlag.FRAGMENT,
} as const;

export const IPPROTO = Protocol;
