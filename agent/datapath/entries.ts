/** Translates desired endpoint state into map keys and endpoint flags (pure). */
import type { EndpointState, PolicyEntry } from '../desired.js';
import { Direction, EndpointFlag, Kind, epKindsShift, Protocol } from '../../maps/abi.js';
import { encodePolicyKey, encodePolicyRangeKey, rangeBlocks } from '../../maps/codecs/policy.js';

const PROTO: Record<PolicyEntry['protocol'], number> = {
  ANY: 0,
  TCP: Protocol.TCP,
  UDP: Protocol.UDP,
  SCTP: Protocol.SCTP,
};

export interface EndpointKeys {
  /** Exact policy keys by hex. */
  policy: Map<string, Buffer>;
  /** Range (LPM) keys by hex. */
  ranges: Map<string, Buffer>;
  /** Isolation and kind bits of struct weir_endpoint.flags. */
  flags: number;
  /** How many entries produce each key and kind bit, and name each remote identity. */
  refs: EntryRefs;
}

/** Reference counts of an endpoint's entries, so that entries can be added and removed one by one. */
export interface EntryRefs {
  /** Isolation bits (they come from the endpoint, not from its entries). */
  isolation: number;
  policy: Map<string, number>;
  ranges: Map<string, number>;
  /** Kind bit (already shifted for its direction) -> entries of that kind. */
  kinds: Map<number, number>;
  /** Remote identity (ANY excluded) -> entries naming it. */
  ids: Map<number, number>;
}

/** The map keys and kind bit of one entry. */
export interface EntryKeys {
  policy: Array<[string, Buffer]>;
  ranges: Array<[string, Buffer]>;
  /** The entry's kind bit, shifted for its direction. */
  kindBit: number;
}

export function entryKeys(e: PolicyEntry, endpointId: number, endpointKey: string): EntryKeys {
  const direction = e.direction === 'ingress' ? Direction.INGRESS : Direction.EGRESS;
  const protocol = PROTO[e.protocol];
  if (protocol === undefined)
    throw new Error(`endpoint ${endpointKey}: unknown protocol "${e.protocol}" in a policy entry`);
  const anyId = e.remoteIdentity === 0;
  const policy: Array<[string, Buffer]> = [];
  const ranges: Array<[string, Buffer]> = [];
  let kind: number;
  if (protocol === 0) {
    kind = anyId ? Kind.ANY_ALL : Kind.ID_ALL;
    const k = encodePolicyKey({ endpointId, identity: e.remoteIdentity, direction, protocol: 0, port: 0 });
    policy.push([k.toString('hex'), k]);
  } else if (e.port === 0) {
    kind = anyId ? Kind.ANY_PROTO : Kind.ID_PROTO;
    const k = encodePolicyKey({ endpointId, identity: e.remoteIdentity, direction, protocol, port: 0 });
    policy.push([k.toString('hex'), k]);
  } else if (e.endPort <= e.port) {
    kind = anyId ? Kind.ANY_PORT : Kind.ID_PORT;
    const k = encodePolicyKey({ endpointId, identity: e.remoteIdentity, direction, protocol, port: e.port });
    policy.push([k.toString('hex'), k]);
  } else {
    kind = anyId ? Kind.ANY_RANGE : Kind.ID_RANGE;
    for (const b of rangeBlocks(e.port, e.endPort)) {
      const k = encodePolicyRangeKey({
        endpointId,
        identity: e.remoteIdentity,
        direction,
        protocol,
        port: b.port,
        portBits: b.portBits,
      });
      ranges.push([k.toString('hex'), k]);
    }
  }
  return { policy, ranges, kindBit: (kind << epKindsShift(direction)) >>> 0 };
}

/** Adds `delta` to a count; a count reaching zero is removed. Returns the new count. */
export function addCount<K>(m: Map<K, number>, k: K, delta: number): number {
  const n = (m.get(k) ?? 0) + delta;
  if (n > 0) m.set(k, n);
  else m.delete(k);
  return n;
}

/** Adds (delta 1) or removes (delta -1) one entry's keys to reference counts. */
export function countEntry(refs: EntryRefs, e: PolicyEntry, keys: EntryKeys, delta: 1 | -1): void {
  for (const [h] of keys.policy) addCount(refs.policy, h, delta);
  for (const [h] of keys.ranges) addCount(refs.ranges, h, delta);
  addCount(refs.kinds, keys.kindBit, delta);
  if (e.remoteIdentity !== 0) addCount(refs.ids, e.remoteIdentity, delta);
}

/** struct weir_endpoint.flags from reference counts. */
export function flagsOf(refs: EntryRefs): number {
  let flags = refs.isolation;
  for (const bit of refs.kinds.keys()) flags |= bit;
  return flags >>> 0;
}

export function endpointKeys(ep: EndpointState, endpointId: number): EndpointKeys {
  const policy = new Map<string, Buffer>();
  const ranges = new Map<string, Buffer>();
  const isolation =
    (ep.ingressIsolated ? EndpointFlag.INGRESS_ISOLATED : 0) | (ep.egressIsolated ? EndpointFlag.EGRESS_ISOLATED : 0);
  const refs: EntryRefs = { isolation, policy: new Map(), ranges: new Map(), kinds: new Map(), ids: new Map() };
  for (const e of ep.entries) {
    const keys = entryKeys(e, endpointId, ep.key);
    for (const [h, k] of keys.policy) policy.set(h, k);
    for (const [h, k] of keys.ranges) ranges.set(h, k);
    countEntry(refs, e, keys, 1);
  }
  return { policy, ranges, flags: flagsOf(refs), refs };
}
