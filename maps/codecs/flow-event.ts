/** struct weir_flow_event: one record per new connection or dropped packet, read from the ring buffer. */
import { layout } from './layout.js';
import { readAddr } from './addr.js';

export const flowEventLayout = layout('weir_flow_event', [
  { name: 'ts_jiffies', type: 'u64' },
  { name: 'ifindex', type: 'u32' },
  { name: 'endpoint_id', type: 'u32' },
  { name: 'src_identity', type: 'u32' },
  { name: 'dst_identity', type: 'u32' },
  { name: 'src_addr', type: { bytes: 16 } },
  { name: 'dst_addr', type: { bytes: 16 } },
  { name: 'src_port', type: 'u16' },
  { name: 'dst_port', type: 'u16' },
  { name: 'family', type: 'u8' },
  { name: 'protocol', type: 'u8' },
  { name: 'direction', type: 'u8' },
  { name: 'verdict', type: 'u8' },
  { name: 'match', type: 'u8' },
  { name: 'drop_reason', type: 'u8' },
  { name: 'tcp_flags', type: 'u8' },
  { name: 'flags', type: 'u8' },
  { name: 'len', type: 'u32' },
  { name: '_pad', type: 'u32' },
  { name: 'orig_addr', type: { bytes: 16 } },
  { name: 'orig_port', type: 'u16' },
  { name: '_pad2', type: 'u16' },
  { name: '_pad3', type: 'u32' },
] as const);

export interface FlowEvent {
  /** CLOCK_MONOTONIC nanoseconds, at the kernel's tick resolution (the record's tick count, converted). */
  tsNs: bigint;
  /** Host-side veth ifindex. */
  ifindex: number;
  endpointId: number;
  srcIdentity: number;
  dstIdentity: number;
  srcAddr: string;
  dstAddr: string;
  /** For ICMP/ICMPv6: the type. */
  srcPort: number;
  /** For ICMP/ICMPv6: the code. */
  dstPort: number;
  family: 4 | 6;
  protocol: number;
  /** Direction (maps/abi.ts Direction): 0 ingress, 1 egress. */
  direction: number;
  /** Verdict (maps/abi.ts Verdict). */
  verdict: number;
  /** Match kind (maps/abi.ts Match). */
  match: number;
  /** Drop reason (maps/abi.ts DropReason), 0 when forwarded. */
  dropReason: number;
  tcpFlags: number;
  /** maps/abi.ts FlowFlag bits. */
  flags: number;
  len: number;
  /**
   * FlowFlag.SERVICE: the Service frontend (VIP and port) the pod addressed; dstAddr/dstPort are
   * then the backend it was translated to, or the frontend again when none was chosen.
   */
  service?: { addr: string; port: number };
}

/** WEIR_FLOW_F_SERVICE (maps/abi.ts FlowFlag.SERVICE). */
const SERVICE_FLAG = 1 << 3;

export const FLOW_EVENT_SIZE = flowEventLayout.size;

/**
 * `toMonoNs` turns the record's tick count (ts_jiffies) into CLOCK_MONOTONIC ns (maps/clock.ts);
 * without it tsNs holds the tick count itself.
 */
export function decodeFlowEvent(buf: Buffer, toMonoNs?: (jiffies: bigint) => bigint): FlowEvent {
  if (buf.length < FLOW_EVENT_SIZE) {
    throw new Error(
      `flow event record is ${buf.length} bytes, expected ${FLOW_EVENT_SIZE}: agent and datapath builds differ, rebuild both`,
    );
  }
  const o = flowEventLayout.offsets;
  const family = buf.readUInt8(o.family) === 6 ? 6 : 4;
  const flags = buf.readUInt8(o.flags);
  const ev: FlowEvent = {
    tsNs: toMonoNs ? toMonoNs(buf.readBigUInt64LE(o.ts_jiffies)) : buf.readBigUInt64LE(o.ts_jiffies),
    ifindex: buf.readUInt32LE(o.ifindex),
    endpointId: buf.readUInt32LE(o.endpoint_id),
    srcIdentity: buf.readUInt32LE(o.src_identity),
    dstIdentity: buf.readUInt32LE(o.dst_identity),
    srcAddr: readAddr(buf, o.src_addr, family),
    dstAddr: readAddr(buf, o.dst_addr, family),
    srcPort: buf.readUInt16LE(o.src_port),
    dstPort: buf.readUInt16LE(o.dst_port),
    family,
    protocol: buf.readUInt8(o.protocol),
    direction: buf.readUInt8(o.direction),
    verdict: buf.readUInt8(o.verdict),
    match: buf.readUInt8(o.match),
    dropReason: buf.readUInt8(o.drop_reason),
    tcpFlags: buf.readUInt8(o.tcp_flags),
    flags,
    len: buf.readUInt32LE(o.len),
  };
  if (flags & SERVICE_FLAG)
    ev.service = { addr: readAddr(buf, o.orig_addr, family), port: buf.readUInt16LE(o.orig_port) };
  return ev;
}
