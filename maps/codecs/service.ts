/**
 * Services (bpf/lib/lb.h): frontends (weir_svc), their backends (weir_svc_be), written by the
 * syncer, and the per-connection translation state the datapath alone writes (weir_lb_fwd,
 * weir_lb_rev, weir_lb_aff, weir_nat), read by tools and tests.
 */
import { layout } from './layout.js';
import { familyOf, readAddr, writeAddr } from './addr.js';
import { SvcBackendFlag } from '../abi.js';

export const svcKeyLayout = layout('weir_svc_key', [
  { name: 'addr', type: { bytes: 16 } },
  { name: 'port', type: 'u16' },
  { name: 'protocol', type: 'u8' },
  { name: 'family', type: 'u8' },
  { name: 'scope', type: 'u8' },
  { name: '_pad', type: { bytes: 3 } },
] as const);
export const svcValueLayout = layout('weir_svc_value', [
  { name: 'svc_id', type: 'u32' },
  { name: 'backend_set', type: 'u32' },
  { name: 'count', type: 'u16' },
  { name: 'flags', type: 'u8' },
  { name: '_pad', type: 'u8' },
  { name: 'affinity_timeout', type: 'u32' },
] as const);
export const svcBeKeyLayout = layout('weir_svc_be_key', [
  { name: 'backend_set', type: 'u32' },
  { name: 'slot', type: 'u32' },
] as const);
export const svcBeValueLayout = layout('weir_svc_be_value', [
  { name: 'addr', type: { bytes: 16 } },
  { name: 'port', type: 'u16' },
  { name: 'family', type: 'u8' },
  { name: 'flags', type: 'u8' },
  { name: '_pad2', type: 'u32' },
] as const);
export const lbKeyLayout = layout('weir_lb_key', [
  { name: 'a_addr', type: { bytes: 16 } },
  { name: 'b_addr', type: { bytes: 16 } },
  { name: 'a_port', type: 'u16' },
  { name: 'b_port', type: 'u16' },
  { name: 'protocol', type: 'u8' },
  { name: 'family', type: 'u8' },
  { name: '_pad', type: 'u16' },
  { name: 'ifindex', type: 'u32' },
] as const);
export const lbFwdValueLayout = layout('weir_lb_fwd_value', [
  { name: 'addr', type: { bytes: 16 } },
  { name: 'port', type: 'u16' },
  { name: 'slot', type: 'u16' },
  { name: 'backend_set', type: 'u32' },
  { name: 'svc_id', type: 'u32' },
  { name: 'flags', type: 'u32' },
] as const);
export const lbRevValueLayout = layout('weir_lb_rev_value', [
  { name: 'addr', type: { bytes: 16 } },
  { name: 'port', type: 'u16' },
  { name: '_pad', type: 'u16' },
  { name: 'flags', type: 'u32' },
] as const);
export const natValueLayout = layout('weir_nat_value', [
  { name: 'addr', type: { bytes: 16 } },
  { name: 'port', type: 'u16' },
  { name: '_pad', type: 'u16' },
  { name: 'flags', type: 'u32' },
] as const);
export const lbAffKeyLayout = layout('weir_lb_aff_key', [
  { name: 'svc_id', type: 'u32' },
  { name: 'family', type: 'u8' },
  { name: '_pad', type: { bytes: 3 } },
  { name: 'addr', type: { bytes: 16 } },
] as const);
export const lbAffValueLayout = layout('weir_lb_aff_value', [
  { name: 'last_ns', type: 'u64' },
  { name: 'addr', type: { bytes: 16 } },
  { name: 'port', type: 'u16' },
  { name: 'slot', type: 'u16' },
  { name: '_pad', type: 'u32' },
] as const);

export const SERVICE_LAYOUTS = [
  svcKeyLayout,
  svcValueLayout,
  svcBeKeyLayout,
  svcBeValueLayout,
  lbKeyLayout,
  lbFwdValueLayout,
  lbRevValueLayout,
  natValueLayout,
  lbAffKeyLayout,
  lbAffValueLayout,
];

export interface SvcKey {
  /** The frontend's address; "0.0.0.0" / "::" for a NodePort. */
  addr: string;
  port: number;
  /** IPPROTO_* */
  protocol: number;
  /** maps/abi.ts SvcScope */
  scope: number;
}
export interface SvcValue {
  svcId: number;
  backendSet: number;
  count: number;
  /** maps/abi.ts SvcFlag bits */
  flags: number;
  affinityTimeout: number;
}
export interface SvcBackendKey {
  backendSet: number;
  slot: number;
}
export interface SvcBackendValue {
  addr: string;
  port: number;
  /** On another node (WEIR_SVC_BE_F_REMOTE): a NodePort connection to it under Cluster is masqueraded. */
  remote?: boolean;
}

export function encodeSvcKey(k: SvcKey): Buffer {
  const o = svcKeyLayout.offsets;
  const b = Buffer.alloc(svcKeyLayout.size);
  const family = writeAddr(b, o.addr, k.addr);
  b.writeUInt16LE(k.port, o.port);
  b.writeUInt8(k.protocol, o.protocol);
  b.writeUInt8(family, o.family);
  b.writeUInt8(k.scope, o.scope);
  return b;
}
export function decodeSvcKey(b: Buffer): SvcKey {
  const o = svcKeyLayout.offsets;
  return {
    addr: readAddr(b, o.addr, b.readUInt8(o.family)),
    port: b.readUInt16LE(o.port),
    protocol: b.readUInt8(o.protocol),
    scope: b.readUInt8(o.scope),
  };
}
export function encodeSvcValue(v: SvcValue): Buffer {
  const o = svcValueLayout.offsets;
  const b = Buffer.alloc(svcValueLayout.size);
  b.writeUInt32LE(v.svcId, o.svc_id);
  b.writeUInt32LE(v.backendSet, o.backend_set);
  b.writeUInt16LE(v.count, o.count);
  b.writeUInt8(v.flags, o.flags);
  b.writeUInt32LE(v.affinityTimeout, o.affinity_timeout);
  return b;
}
export function decodeSvcValue(b: Buffer): SvcValue {
  const o = svcValueLayout.offsets;
  return {
    svcId: b.readUInt32LE(o.svc_id),
    backendSet: b.readUInt32LE(o.backend_set),
    count: b.readUInt16LE(o.count),
    flags: b.readUInt8(o.flags),
    affinityTimeout: b.readUInt32LE(o.affinity_timeout),
  };
}
export function encodeSvcBackendKey(k: SvcBackendKey): Buffer {
  const b = Buffer.alloc(svcBeKeyLayout.size);
  b.writeUInt32LE(k.backendSet, svcBeKeyLayout.offsets.backend_set);
  b.writeUInt32LE(k.slot, svcBeKeyLayout.offsets.slot);
  return b;
}
export function decodeSvcBackendKey(b: Buffer): SvcBackendKey {
  return {
    backendSet: b.readUInt32LE(svcBeKeyLayout.offsets.backend_set),
    slot: b.readUInt32LE(svcBeKeyLayout.offsets.slot),
  };
}
export function encodeSvcBackendValue(v: SvcBackendValue): Buffer {
  const o = svcBeValueLayout.offsets;
  const b = Buffer.alloc(svcBeValueLayout.size);
  b.writeUInt8(writeAddr(b, o.addr, v.addr), o.family);
  b.writeUInt16LE(v.port, o.port);
  b.writeUInt8(v.remote ? SvcBackendFlag.REMOTE : 0, o.flags);
  return b;
}
export function decodeSvcBackendValue(b: Buffer): SvcBackendValue {
  const o = svcBeValueLayout.offsets;
  const out: SvcBackendValue = { addr: readAddr(b, o.addr, b.readUInt8(o.family)), port: b.readUInt16LE(o.port) };
  if (b.readUInt8(o.flags) & SvcBackendFlag.REMOTE) out.remote = true;
  return out;
}

/** One translated connection as weir_lb_fwd holds it: the client's tuple to the frontend -> its backend. */
export interface LbForward {
  client: string;
  clientPort: number;
  frontend: string;
  frontendPort: number;
  protocol: number;
  ifindex: number;
  backend: string;
  backendPort: number;
  backendSet: number;
  slot: number;
  svcId: number;
  flags: number;
}
export function decodeLbForward(k: Buffer, v: Buffer): LbForward {
  const ko = lbKeyLayout.offsets;
  const vo = lbFwdValueLayout.offsets;
  const family = k.readUInt8(ko.family);
  return {
    client: readAddr(k, ko.a_addr, family),
    clientPort: k.readUInt16LE(ko.a_port),
    frontend: readAddr(k, ko.b_addr, family),
    frontendPort: k.readUInt16LE(ko.b_port),
    protocol: k.readUInt8(ko.protocol),
    ifindex: k.readUInt32LE(ko.ifindex),
    backend: readAddr(v, vo.addr, family),
    backendPort: v.readUInt16LE(vo.port),
    backendSet: v.readUInt32LE(vo.backend_set),
    slot: v.readUInt16LE(vo.slot),
    svcId: v.readUInt32LE(vo.svc_id),
    flags: v.readUInt32LE(vo.flags),
  };
}

/** Key of weir_lb_rev: the reply's tuple (backend -> client) on the client's interface. */
export interface LbReverseKey {
  backend: string;
  backendPort: number;
  client: string;
  clientPort: number;
  protocol: number;
  family: 4 | 6;
  ifindex: number;
}
export function decodeLbReverseKey(k: Buffer): LbReverseKey {
  const o = lbKeyLayout.offsets;
  const family = k.readUInt8(o.family) === 6 ? 6 : 4;
  return {
    backend: readAddr(k, o.a_addr, family),
    backendPort: k.readUInt16LE(o.a_port),
    client: readAddr(k, o.b_addr, family),
    clientPort: k.readUInt16LE(o.b_port),
    protocol: k.readUInt8(o.protocol),
    family,
    ifindex: k.readUInt32LE(o.ifindex),
  };
}

/**
 * One half of a masqueraded NodePort connection as weir_nat holds it (bpf/weir_abi.h): forward,
 * (client, backend) -> the node address and allocated port; reverse, (backend, node address,
 * allocated port) -> the client.
 */
export interface NatEntry {
  /** The key's a side (forward: the client; reverse: the backend). */
  a: string;
  aPort: number;
  /** The key's b side (forward: the backend; reverse: the node address). */
  b: string;
  bPort: number;
  protocol: number;
  ifindex: number;
  /** Forward: the node address and port the packet leaves from; reverse: the client's. */
  addr: string;
  port: number;
  /** maps/abi.ts NatFlag bits */
  flags: number;
}
export function decodeNatEntry(k: Buffer, v: Buffer): NatEntry {
  const ko = lbKeyLayout.offsets;
  const vo = natValueLayout.offsets;
  const family = k.readUInt8(ko.family);
  return {
    a: readAddr(k, ko.a_addr, family),
    aPort: k.readUInt16LE(ko.a_port),
    b: readAddr(k, ko.b_addr, family),
    bPort: k.readUInt16LE(ko.b_port),
    protocol: k.readUInt8(ko.protocol),
    ifindex: k.readUInt32LE(ko.ifindex),
    addr: readAddr(v, vo.addr, family),
    port: v.readUInt16LE(vo.port),
    flags: v.readUInt32LE(vo.flags),
  };
}
export function encodeNatEntry(e: NatEntry): [Buffer, Buffer] {
  const ko = lbKeyLayout.offsets;
  const vo = natValueLayout.offsets;
  const k = Buffer.alloc(lbKeyLayout.size);
  const family = writeAddr(k, ko.a_addr, e.a);
  writeAddr(k, ko.b_addr, e.b);
  k.writeUInt16LE(e.aPort, ko.a_port);
  k.writeUInt16LE(e.bPort, ko.b_port);
  k.writeUInt8(e.protocol, ko.protocol);
  k.writeUInt8(family, ko.family);
  k.writeUInt32LE(e.ifindex, ko.ifindex);
  const v = Buffer.alloc(natValueLayout.size);
  writeAddr(v, vo.addr, e.addr);
  v.writeUInt16LE(e.port, vo.port);
  v.writeUInt32LE(e.flags, vo.flags);
  return [k, v];
}

/** Key of weir_lb_aff: (frontend number, client address). */
export function encodeLbAffinityKey(svcId: number, client: string): Buffer {
  const o = lbAffKeyLayout.offsets;
  const b = Buffer.alloc(lbAffKeyLayout.size);
  b.writeUInt32LE(svcId, o.svc_id);
  b.writeUInt8(familyOf(client), o.family);
  writeAddr(b, o.addr, client);
  return b;
}
