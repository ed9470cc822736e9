/**
 * The datapath's verdict, simulated over compiled state: resolve the peer's address in the
 * ipcache (longest prefix), then, if the endpoint is isolated in that direction, look for
 * an entry with the exact identity or identity 0, and the exact port, a range holding it,
 * port 0 of the protocol, or protocol ANY. Used by tests to check the compiler against
 * explain, and by anyone who wants "what would the kernel do" without a kernel.
 */
import type { Direction, EndpointState, L4Protocol } from '../desired.js';

export function entryAllows(
  ep: EndpointState,
  direction: Direction,
  remoteIdentity: number,
  protocol: L4Protocol,
  port: number,
): boolean {
  const isolated = direction === 'ingress' ? ep.ingressIsolated : ep.egressIsolated;
  if (!isolated) return true;
  return ep.entries.some(
    (e) =>
      e.direction === direction &&
      (e.remoteIdentity === remoteIdentity || e.remoteIdentity === 0) &&
      (e.protocol === 'ANY' || (e.protocol === protocol && (e.port === 0 || (port >= e.port && port <= e.endPort)))),
  );
}

/**
 * Both enforcement points of one connection: the sender's egress (if it is a local
 * endpoint) and the receiver's ingress (likewise). Identities are what each side's
 * ipcache lookup of the other's address gives.
 */
export function simulateConnection(
  src: EndpointState | undefined,
  dst: EndpointState | undefined,
  srcIdentity: number,
  dstIdentity: number,
  protocol: L4Protocol,
  port: number,
): boolean {
  const egress = src ? entryAllows(src, 'egress', dstIdentity, protocol, port) : true;
  const ingress = dst ? entryAllows(dst, 'ingress', srcIdentity, protocol, port) : true;
  return egress && ingress;
}
