/** FlowEvents and a FlowContext built by hand, as the datapath and the store would give them. */
import type { FlowEvent } from '../../agent/flows/event.js';
import type { FlowContext, PodInfo } from '../../agent/flows/enrich.js';

export const PODS: Record<string, PodInfo & { identity: number }> = {
  '10.230.0.10': { namespace: 'shop', name: 'frontend-7d9f', labels: { app: 'frontend', tier: 'web' }, identity: 256 },
  '10.230.0.11': { namespace: 'shop', name: 'backend-0', labels: { app: 'backend', tier: 'api' }, identity: 257 },
  '10.230.0.12': { namespace: 'ops', name: 'prober', labels: { app: 'prober' }, identity: 258 },
  'fd00:230::10': { namespace: 'shop', name: 'frontend-7d9f', labels: { app: 'frontend', tier: 'web' }, identity: 256 },
};

export const WORLD_CIDR_ID = (1 << 24) | 1;

export function makeContext(): FlowContext & { bump(): void } {
  let gen = 0;
  return {
    podByIp: (ip) => PODS[ip],
    identityLabels: (id) => (id === WORLD_CIDR_ID ? ['cidr:203.0.113.0/24', 'reserved:world'] : undefined),
    interfaceName: (ifindex) => `wob-veth${ifindex}`,
    generation: () => gen,
    bump: () => {
      gen++;
    },
  };
}

export function ev(p: Partial<FlowEvent> = {}): FlowEvent {
  return {
    tsNs: process.hrtime.bigint(),
    ifindex: 7,
    endpointId: 11,
    srcIdentity: 256,
    dstIdentity: 257,
    srcAddr: '10.230.0.10',
    dstAddr: '10.230.0.11',
    srcPort: 43210,
    dstPort: 8080,
    family: 4,
    protocol: 6,
    direction: 0,
    verdict: 0,
    match: 1,
    dropReason: 0,
    tcpFlags: 0x02,
    flags: 0x02,
    len: 60,
    ...p,
  };
}

/** frontend -> backend:8080 denied at backend's ingress. */
export const denied = (p: Partial<FlowEvent> = {}) => ev({ verdict: 1, match: 0, dropReason: 1, ...p });
/** prober -> backend:8080 allowed (L3-L4 rule). */
export const allowed = (p: Partial<FlowEvent> = {}) =>
  ev({ srcAddr: '10.230.0.12', srcIdentity: 258, verdict: 0, match: 1, ...p });
