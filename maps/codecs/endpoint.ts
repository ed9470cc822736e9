/** endpoints map: key __u32 host-side ifindex -> struct weir_endpoint. */
import { layout } from './layout.js';

export const endpointLayout = layout('weir_endpoint', [
  { name: 'endpoint_id', type: 'u32' },
  { name: 'identity', type: 'u32' },
  { name: 'policy_rev', type: 'u32' },
  { name: 'flags', type: 'u32' },
] as const);

export interface EndpointValue {
  endpointId: number;
  identity: number;
  policyRev: number;
  flags: number;
}

export const ENDPOINT_KEY_SIZE = 4;

export function encodeEndpointKey(ifindex: number): Buffer {
  const b = Buffer.alloc(ENDPOINT_KEY_SIZE);
  b.writeUInt32LE(ifindex);
  return b;
}
export const decodeEndpointKey = (b: Buffer): number => b.readUInt32LE(0);

export function encodeEndpoint(v: EndpointValue): Buffer {
  const o = endpointLayout.offsets;
  const b = Buffer.alloc(endpointLayout.size);
  b.writeUInt32LE(v.endpointId, o.endpoint_id);
  b.writeUInt32LE(v.identity, o.identity);
  b.writeUInt32LE(v.policyRev >>> 0, o.policy_rev);
  b.writeUInt32LE(v.flags >>> 0, o.flags);
  return b;
}

export function decodeEndpoint(b: Buffer): EndpointValue {
  const o = endpointLayout.offsets;
  return {
    endpointId: b.readUInt32LE(o.endpoint_id),
    identity: b.readUInt32LE(o.identity),
    policyRev: b.readUInt32LE(o.policy_rev),
    flags: b.readUInt32LE(o.flags),
  };
}
