/** policy: exact HASH (weir_policy_key) and port ranges as LPM prefix blocks (weir_policy_range_key). */
import { layout } from './layout.js';
import { POLICY_RANGE_PREFIX_BASE, PolicyFlag } from '../abi.js';

export const policyKeyLayout = layout('weir_policy_key', [
  { name: 'endpoint_id', type: 'u32' },
  { name: 'identity', type: 'u32' },
  { name: 'direction', type: 'u8' },
  { name: 'protocol', type: 'u8' },
  { name: 'port', type: 'u16' },
] as const);
export const policyValueLayout = layout('weir_policy_value', [
  { name: 'flags', type: 'u32' },
  { name: '_pad', type: 'u32' },
] as const);
export const policyRangeKeyLayout = layout('weir_policy_range_key', [
  { name: 'prefixlen', type: 'u32' },
  { name: 'endpoint_id', type: 'u32' },
  { name: 'identity', type: 'u32' },
  { name: 'direction', type: 'u8' },
  { name: 'protocol', type: 'u8' },
  { name: 'port', type: 'u16' },
] as const);

export interface PolicyKey {
  endpointId: number;
  identity: number;
  direction: number;
  /** IP protocol number, 0 = any. */
  protocol: number;
  /** 0 = every port. */
  port: number;
}

export function encodePolicyKey(k: PolicyKey): Buffer {
  const o = policyKeyLayout.offsets;
  const b = Buffer.alloc(policyKeyLayout.size);
  b.writeUInt32LE(k.endpointId, o.endpoint_id);
  b.writeUInt32LE(k.identity >>> 0, o.identity);
  b.writeUInt8(k.direction, o.direction);
  b.writeUInt8(k.protocol, o.protocol);
  b.writeUInt16LE(k.port, o.port);
  return b;
}

export function decodePolicyKey(b: Buffer): PolicyKey {
  const o = policyKeyLayout.offsets;
  return {
    endpointId: b.readUInt32LE(o.endpoint_id),
    identity: b.readUInt32LE(o.identity),
    direction: b.readUInt8(o.direction),
    protocol: b.readUInt8(o.protocol),
    port: b.readUInt16LE(o.port),
  };
}

export function encodePolicyValue(flags: number = PolicyFlag.ALLOW): Buffer {
  const b = Buffer.alloc(policyValueLayout.size);
  b.writeUInt32LE(flags, policyValueLayout.offsets.flags);
  return b;
}

export interface PolicyRangeKey extends Omit<PolicyKey, 'port'> {
  /** First port of the block. */
  port: number;
  /** Number of leading port bits that are fixed (0..16). */
  portBits: number;
}

export function encodePolicyRangeKey(k: PolicyRangeKey): Buffer {
  const o = policyRangeKeyLayout.offsets;
  const b = Buffer.alloc(policyRangeKeyLayout.size);
  b.writeUInt32LE(POLICY_RANGE_PREFIX_BASE + k.portBits, o.prefixlen);
  b.writeUInt32BE(k.endpointId, o.endpoint_id);
  b.writeUInt32BE(k.identity >>> 0, o.identity);
  b.writeUInt8(k.direction, o.direction);
  b.writeUInt8(k.protocol, o.protocol);
  b.writeUInt16BE(k.port, o.port);
  return b;
}

export function decodePolicyRangeKey(b: Buffer): PolicyRangeKey {
  const o = policyRangeKeyLayout.offsets;
  return {
    portBits: b.readUInt32LE(o.prefixlen) - POLICY_RANGE_PREFIX_BASE,
    endpointId: b.readUInt32BE(o.endpoint_id),
    identity: b.readUInt32BE(o.identity),
    direction: b.readUInt8(o.direction),
    protocol: b.readUInt8(o.protocol),
    port: b.readUInt16BE(o.port),
  };
}

/** The fewest prefix blocks covering [port, endPort]: each is {port, portBits}. */
export function rangeBlocks(port: number, endPort: number): Array<{ port: number; portBits: number }> {
  if (!(Number.isInteger(port) && Number.isInteger(endPort) && port >= 0 && endPort <= 65535 && port <= endPort)) {
    throw new Error(`port range ${port}-${endPort}: need 0 <= port <= endPort <= 65535`);
  }
  const out: Array<{ port: number; portBits: number }> = [];
  let lo = port;
  while (lo <= endPort) {
    let size = 1;
    let bits = 16;
    // grow the block while it stays aligned and inside the range
    while (bits > 0 && lo % (size * 2) === 0 && lo + size * 2 - 1 <= endPort) {
      size *= 2;
      bits--;
    }
    out.push({ port: lo, portBits: bits });
    lo += size;
  }
  return out;
}
