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
 * IPv4 addresses as strings, kept by their 32-bit value: a node's flows name the same few
 * thousand addresses over and over, and a kept string is neither formatted nor hashed again
 * (the enricher looks each one up). Bounded: emptied when it reaches its limit.
 */
const v4Strings = new Map<number, string>();
const V4_STRINGS_MAX = 65536;

function readFlowAddr(buf: Buffer, off: number, family: 4 | 6): string {
  if (family === 6) return readAddr(buf, off, 6);
  const key = buf.readUInt32BE(off);
  let s = v4Strings.get(key);
  if (s === undefined) {
    if (v4Strings.size >= V4_STRINGS_MAX) v4Strings.clear();
    s = readAddr(buf, off, 4);
    v4Strings.set(key, s);
  }
  return s;
}

/**
 * The record at `off` in `buf` (default: the whole buffer is the record). `toMonoNs` turns the
 * record's tick count (ts_jiffies) into CLOCK_MONOTONIC ns (maps/clock.ts); without it tsNs
 * holds the tick count itself.
 */
export function decodeFlowEvent(buf: Buffer, toMonoNs?: (jiffies: bigint) => bigint, off = 0): FlowEvent {
  checkSize(buf.length - off);
  const jiffies = buf.readBigUInt64LE(off + flowEventLayout.offsets.ts_jiffies);
  return decodeAt(buf, off, toMonoNs ? toMonoNs(jiffies) : jiffies);
}

function checkSize(len: number): void {
  if (len < FLOW_EVENT_SIZE) {
    throw new Error(
      `flow event record is ${len} bytes, expected ${FLOW_EVENT_SIZE}: agent and datapath builds differ, rebuild both`,
    );
  }
}

/** The record at `off`, stamped `tsNs`. */
function decodeAt(buf: Buffer, off: number, tsNs: bigint): FlowEvent {
  const o = flowEventLayout.offsets;
  const family = buf[off + o.family] === 6 ? 6 : 4;
  const flags = buf[off + o.flags]!;
  const ev: FlowEvent = {
    tsNs,
    ifindex: buf.readUInt32LE(off + o.ifindex),
    endpointId: buf.readUInt32LE(off + o.endpoint_id),
    srcIdentity: buf.readUInt32LE(off + o.src_identity),
    dstIdentity: buf.readUInt32LE(off + o.dst_identity),
    srcAddr: readFlowAddr(buf, off + o.src_addr, family),
    dstAddr: readFlowAddr(buf, off + o.dst_addr, family),
    srcPort: buf.readUInt16LE(off + o.src_port),
    dstPort: buf.readUInt16LE(off + o.dst_port),
    family,
    protocol: buf[off + o.protocol]!,
    direction: buf[off + o.direction]!,
    verdict: buf[off + o.verdict]!,
    match: buf[off + o.match]!,
    dropReason: buf[off + o.drop_reason]!,
    tcpFlags: buf[off + o.tcp_flags]!,
    flags,
    len: buf.readUInt32LE(off + o.len),
  };
  if (flags & SERVICE_FLAG)
    ev.service = { addr: readFlowAddr(buf, off + o.orig_addr, family), port: buf.readUInt16LE(off + o.orig_port) };
  return ev;
}

/**
 * The records of one ring-buffer batch (maps/ringbuf.ts: back to back in `data`, each one's end
 * in `ends`, little-endian u32), decoded in place: no view per record. `toMonoNs` must not change
 * within the call (the reader refreshes its clock between batches).
 */
export function decodeFlowEvents(
  data: Buffer,
  ends: Buffer,
  count: number,
  toMonoNs?: (jiffies: bigint) => bigint,
): FlowEvent[] {
  const out = new Array<FlowEvent>(count);
  const at = flowEventLayout.offsets.ts_jiffies;
  // events of one tick share a tick count: its time is converted once, with no BigInt per event
  let lo = -1;
  let hi = -1;
  let tsNs = 0n;
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = ends.readUInt32LE(i * 4);
    checkSize(end - start);
    const l = data.readUInt32LE(start + at);
    const h = data.readUInt32LE(start + at + 4);
    if (l !== lo || h !== hi) {
      lo = l;
      hi = h;
      const jiffies = data.readBigUInt64LE(start + at);
      tsNs = toMonoNs ? toMonoNs(jiffies) : jiffies;
    }
    out[i] = decodeAt(data, start, tsNs);
    start = end;
  }
  return out;
}
