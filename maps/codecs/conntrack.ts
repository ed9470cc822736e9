/**
 * conntrack: LRU HASH weir_ct_key -> weir_ct_value for IPv6 and weir_ct4_key -> weir_ct_value for
 * IPv4 (a compact key, cheaper to hash per packet). Read by the agent for inspection and cleanup.
 */
import { layout } from './layout.js';
import { familyOf, readAddr, writeAddr } from './addr.js';

export const ctKeyLayout = layout('weir_ct_key', [
  { name: 'src_addr', type: { bytes: 16 } },
  { name: 'dst_addr', type: { bytes: 16 } },
  { name: 'src_port', type: 'u16' },
  { name: 'dst_port', type: 'u16' },
  { name: 'protocol', type: 'u8' },
  { name: 'family', type: 'u8' },
  { name: 'direction', type: 'u8' },
  { name: '_pad', type: 'u8' },
  { name: 'ifindex', type: 'u32' },
] as const);
export const ct4KeyLayout = layout('weir_ct4_key', [
  { name: 'src_addr', type: { bytes: 4 } },
  { name: 'dst_addr', type: { bytes: 4 } },
  { name: 'src_port', type: 'u16' },
  { name: 'dst_port', type: 'u16' },
  { name: 'protocol', type: 'u8' },
  { name: 'direction', type: 'u8' },
  { name: '_pad', type: 'u16' },
  { name: 'ifindex', type: 'u32' },
] as const);
export const ctValueLayout = layout('weir_ct_value', [
  { name: 'expires_ns', type: 'u64' },
  { name: 'packets', type: 'u64' },
  { name: 'policy_rev', type: 'u32' },
  { name: 'remote_identity', type: 'u32' },
  { name: 'endpoint_id', type: 'u32' },
  { name: 'flags', type: 'u8' },
  { name: 'match', type: 'u8' },
  { name: 'tcp_flags', type: 'u8' },
  { name: '_pad', type: 'u8' },
] as const);

export interface CtKey {
  srcAddr: string;
  dstAddr: string;
  srcPort: number;
  dstPort: number;
  protocol: number;
  family: 4 | 6;
  direction: number;
  ifindex: number;
}
export interface CtValue {
  expiresNs: bigint;
  packets: bigint;
  policyRev: number;
  remoteIdentity: number;
  endpointId: number;
  flags: number;
  match: number;
  tcpFlags: number;
}

export function encodeCtKey(k: CtKey): Buffer {
  const o = ctKeyLayout.offsets;
  const b = Buffer.alloc(ctKeyLayout.size);
  writeAddr(b, o.src_addr, k.srcAddr);
  writeAddr(b, o.dst_addr, k.dstAddr);
  b.writeUInt16LE(k.srcPort, o.src_port);
  b.writeUInt16LE(k.dstPort, o.dst_port);
  b.writeUInt8(k.protocol, o.protocol);
  b.writeUInt8(k.family, o.family);
  b.writeUInt8(k.direction, o.direction);
  b.writeUInt32LE(k.ifindex, o.ifindex);
  return b;
}

export function decodeCtKey(b: Buffer): CtKey {
  const o = ctKeyLayout.offsets;
  const family = b.readUInt8(o.family) === 6 ? 6 : 4;
  return {
    srcAddr: readAddr(b, o.src_addr, family),
    dstAddr: readAddr(b, o.dst_addr, family),
    srcPort: b.readUInt16LE(o.src_port),
    dstPort: b.readUInt16LE(o.dst_port),
    protocol: b.readUInt8(o.protocol),
    family,
    direction: b.readUInt8(o.direction),
    ifindex: b.readUInt32LE(o.ifindex),
  };
}

/** Key of an IPv4 connection (map weir_ct4), decoded into the same shape as an IPv6 one. */
export function decodeCt4Key(b: Buffer): CtKey {
  const o = ct4KeyLayout.offsets;
  return {
    srcAddr: readAddr(b, o.src_addr, 4),
    dstAddr: readAddr(b, o.dst_addr, 4),
    srcPort: b.readUInt16LE(o.src_port),
    dstPort: b.readUInt16LE(o.dst_port),
    protocol: b.readUInt8(o.protocol),
    family: 4,
    direction: b.readUInt8(o.direction),
    ifindex: b.readUInt32LE(o.ifindex),
  };
}

/** Key of an IPv4 connection for map weir_ct4 (used to move entries there from weir_ct). */
export function encodeCt4Key(k: CtKey): Buffer {
  const o = ct4KeyLayout.offsets;
  const b = Buffer.alloc(ct4KeyLayout.size);
  for (const [off, ip] of [
    [o.src_addr, k.srcAddr],
    [o.dst_addr, k.dstAddr],
  ] as const) {
    if (familyOf(ip) !== 4) throw new Error(`weir_ct4 holds IPv4 connections only; ${ip} belongs in weir_ct`);
    ip.split('.').forEach((part, i) => b.writeUInt8(Number(part), off + i));
  }
  b.writeUInt16LE(k.srcPort, o.src_port);
  b.writeUInt16LE(k.dstPort, o.dst_port);
  b.writeUInt8(k.protocol, o.protocol);
  b.writeUInt8(k.direction, o.direction);
  b.writeUInt32LE(k.ifindex, o.ifindex);
  return b;
}

export function decodeCtValue(b: Buffer): CtValue {
  const o = ctValueLayout.offsets;
  return {
    expiresNs: b.readBigUInt64LE(o.expires_ns),
    packets: b.readBigUInt64LE(o.packets),
    policyRev: b.readUInt32LE(o.policy_rev),
    remoteIdentity: b.readUInt32LE(o.remote_identity),
    endpointId: b.readUInt32LE(o.endpoint_id),
    flags: b.readUInt8(o.flags),
    match: b.readUInt8(o.match),
    tcpFlags: b.readUInt8(o.tcp_flags),
  };
}
