/** Translates desired endpoint state into map keys and endpoint flags (pure). */
import type { EndpointState, PolicyEntry } from '../desired.js';
import { Direction, EndpointFlag, Kind, epKindsShift, Protocol } from '../../maps/abi.js';
import { encodePolicyKey, encodePolicyRangeKey, rangeBlocks } from '../../maps/codecs/policy.js';

const PROTO: Record<PolicyEntry['protocol'], number> = { ANY: 0, TCP: Protocol.TCP, UDP: Protocol.UDP, SCTP: Protocol.SCTP };

export interface EndpointKeys {
  /** Exact policy keys by hex. */
  policy: Map<string, Buffer>;
  /** Range (LPM) keys by hex. */
  ranges: Map<string, Buffer>;
  /** Isolation and kind bits of struct weir_endpoint.flags. */
  flags: number;
}

export function endpointKeys(ep: EndpointState, endpointId: number): EndpointKeys {
  const policy = new Map<string, Buffer>();
  const ranges = new Map<string, Buffer>();
  let flags = (ep.ingressIsolated ? EndpointFlag.INGRESS_ISOLATED : 0) | (ep.egressIsolated ? EndpointFlag.EGRESS_ISOLATED : 0);
  for (const e of ep.entries) {
    const direction = e.direction === 'ingress' ? Direction.INGRESS : Direction.EGRESS;
    const protocol = PROTO[e.protocol];
    if (protocol === undefined) throw new Error(`endpoint ${ep.key}: unknown protocol "${e.protocol}" in a policy entry`);
    const anyId = e.remoteIdentity === 0;
    let kind: number;
    if (protocol === 0) {
      kind = anyId ? Kind.ANY_ALL : Kind.ID_ALL;
      const k = encodePolicyKey({ endpointId, identity: e.remoteIdentity, direction, protocol: 0, port: 0 });
      policy.set(k.toString('hex'), k);
    } else if (e.port === 0) {
      kind = anyId ? Kind.ANY_PROTO : Kind.ID_PROTO;
      const k = encodePolicyKey({ endpointId, identity: e.remoteIdentity, direction, protocol, port: 0 });
      policy.set(k.toString('hex'), k);
    } else if (e.endPort <= e.port) {
      kind = anyId ? Kind.ANY_PORT : Kind.ID_PORT;
      const k = encodePolicyKey({ endpointId, identity: e.remoteIdentity, direction, protocol, port: e.port });
      policy.set(k.toString('hex'), k);
    } else {
      kind = anyId ? Kind.ANY_RANGE : Kind.ID_RANGE;
      for (const b of rangeBlocks(e.port, e.endPort)) {
        const k = encodePolicyRangeKey({ endpointId, identity: e.remoteIdentity, direction, protocol, port: b.port, portBits: b.portBits });
        ranges.set(k.toString('hex'), k);
      }
    }
    flags |= kind << epKindsShift(direction);
  }
  return { policy, ranges, flags: flags >>> 0 };
}
