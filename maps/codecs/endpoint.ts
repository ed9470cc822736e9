/** endpoints map: key __u32 host-side ifindex -> struct weir_endpoint. */
import { layout } from './layout.js';
import { readAddr, writeAddr } from './addr.js';

export const endpointLayout = layout('weir_endpoint', [
  { name: 'endpoint_id', type: 'u32' },
  { name: 'identity', type: 'u32' },
  { name: 'policy_rev', type: 'u32' },
  { name: 'flags', type: 'u32' },
  { name: 'ipv4', type: { bytes: 4 } },
  { name: 'ipv6', type: { bytes: 16 } },
] as const);

export interface EndpointValue {
  endpointId: number;
  identity: number;
  policyRev: number;
  flags: number;
  /** The pod's IPv4 and IPv6 address ('' when it has none of that family): its only valid sources. */
  ipv4: string;
  ipv6: string;
}

export const ENDPOINT_KEY_SIZE = 4;

/** The record before it carried the pod's addresses (endpoint_id, identity, policy_rev, flags). */
export const ENDPOINT_V1_SIZE = 16;

/**
 * An endpoint record of the 16-byte layout, in today's: the same four fields, no addresses. With
 * no address every packet the pod sends (but ARP and link-local neighbour discovery) is dropped as
 * INVALID_SOURCE until the record is written again with the pod's addresses: the upgrade fails
 * closed.
 */
export function upgradeEndpointV1(v: Buffer): Buffer {
  const b = Buffer.alloc(endpointLayout.size);
  v.copy(b, 0, 0, ENDPOINT_V1_SIZE);
  return b;
}

/** The first IPv4 and the first IPv6 address of a pod's list. */
export function endpointAddresses(ips: readonly string[]): { ipv4: string; ipv6: string } {
  return { ipv4: ips.find((ip) => !ip.includes(':')) ?? '', ipv6: ips.find((ip) => ip.includes(':')) ?? '' };
}

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
  if (v.ipv4) {
    const a = Buffer.alloc(16);
    writeAddr(a, 0, v.ipv4);
    a.copy(b, o.ipv4, 0, 4);
  }
  if (v.ipv6) writeAddr(b, o.ipv6, v.ipv6);
  return b;
}

export function decodeEndpoint(b: Buffer): EndpointValue {
  const o = endpointLayout.offsets;
  return {
    endpointId: b.readUInt32LE(o.endpoint_id),
    identity: b.readUInt32LE(o.identity),
    policyRev: b.readUInt32LE(o.policy_rev),
    flags: b.readUInt32LE(o.flags),
    ipv4: b.readUInt32LE(o.ipv4) === 0 ? '' : readAddr(b, o.ipv4, 4),
    ipv6: b.subarray(o.ipv6, o.ipv6 + 16).every((x) => x === 0) ? '' : readAddr(b, o.ipv6, 6),
  };
}
