/**
 * The lab's Service allocator, as the API server's: ClusterIPs from the lab's own Service ranges
 * (one of each family, so every lab Service is dual-stack), an in-range `spec.clusterIP` honoured,
 * an out-of-range or taken one refused with the API server's field and message; NodePorts from
 * 30000-32767. An updated Service keeps the addresses and node ports it was given.
 */
import { isIPv4 } from 'node:net';
import type { Service, ServicePort } from '../store/types.js';
import { cidrContains, parseCidr, serviceAddress, type LabConfig, type ParsedCidr } from './config.js';

export const NODE_PORT_MIN = 30000;
export const NODE_PORT_MAX = 32767;

export type Allocation = { ok: true; service: Service } | { ok: false; error: string };

export class LabServiceAllocator {
  private readonly ranges: Record<4 | 6, { range: ParsedCidr; text: string }>;

  constructor(config: LabConfig) {
    this.ranges = {
      4: { range: parseCidr(config.svcCidr4, 4), text: config.svcCidr4 },
      6: { range: parseCidr(config.svcCidr6, 6), text: config.svcCidr6 },
    };
  }

  /**
   * Gives `svc` its ClusterIPs and node ports. `others` are the other Services of the lab (their
   * addresses and node ports are taken); `previous` is this Service as the lab holds it now.
   */
  allocate(svc: Service, others: Iterable<Service>, previous?: Service): Allocation {
    if (svc.type === 'ExternalName' || svc.clusterIP === 'None') return { ok: true, service: svc };
    const usedIPs = new Set<string>();
    const usedPorts = new Set<number>();
    for (const o of others) {
      if (o.namespace === svc.namespace && o.name === svc.name) continue;
      for (const ip of o.clusterIPs) usedIPs.add(ip);
      for (const p of o.ports) if (p.nodePort) usedPorts.add(p.nodePort);
    }
    const written = svc.clusterIPs;
    const kept = written.length === 0 && previous ? previous.clusterIPs : written;
    for (const [i, ip] of kept.entries()) {
      const family = isIPv4(ip) ? 4 : 6;
      const field = i === 0 ? 'spec.clusterIP' : `spec.clusterIPs[${i}]`;
      const r = this.ranges[family];
      if (!cidrContains(r.range, ip))
        return {
          ok: false,
          error: `${field}: Invalid value: "${ip}": provided IP is not in the valid range. The range of valid IPs is ${r.text}`,
        };
      if (usedIPs.has(ip))
        return { ok: false, error: `${field}: Invalid value: "${ip}": provided IP is already allocated` };
    }
    const clusterIPs = [...kept];
    for (const family of [4, 6] as const) {
      if (clusterIPs.some((ip) => (isIPv4(ip) ? 4 : 6) === family)) continue;
      const free = this.freeAddress(family, usedIPs);
      if (free === undefined)
        return {
          ok: false,
          error: `spec.clusterIPs: Internal error: the Service range ${this.ranges[family].text} is full`,
        };
      clusterIPs.push(free);
    }
    const isNodePort = svc.type === 'NodePort' || svc.type === 'LoadBalancer';
    // Written node ports (or those the Service had) first, then free ones for the rest.
    const wanted = svc.ports.map((p) =>
      !isNodePort
        ? 0
        : p.nodePort || (previous?.ports.find((q) => q.name === p.name && q.protocol === p.protocol)?.nodePort ?? 0),
    );
    for (const [i, nodePort] of wanted.entries()) {
      if (nodePort === 0) continue;
      if (nodePort < NODE_PORT_MIN || nodePort > NODE_PORT_MAX)
        return {
          ok: false,
          error: `spec.ports[${i}].nodePort: Invalid value: ${nodePort}: provided port is not in the valid range. The range of valid ports is ${NODE_PORT_MIN}-${NODE_PORT_MAX}`,
        };
      if (usedPorts.has(nodePort))
        return {
          ok: false,
          error: `spec.ports[${i}].nodePort: Invalid value: ${nodePort}: provided port is already allocated`,
        };
      usedPorts.add(nodePort);
    }
    const ports: ServicePort[] = [];
    for (const [i, p] of svc.ports.entries()) {
      let nodePort = wanted[i] ?? 0;
      if (isNodePort && nodePort === 0) {
        nodePort = NODE_PORT_MIN;
        while (usedPorts.has(nodePort) && nodePort <= NODE_PORT_MAX) nodePort++;
        if (nodePort > NODE_PORT_MAX)
          return { ok: false, error: `spec.ports[${i}].nodePort: Internal error: no free node port` };
        usedPorts.add(nodePort);
      }
      ports.push(isNodePort ? { ...p, nodePort } : p);
    }
    return { ok: true, service: { ...svc, clusterIP: clusterIPs[0]!, clusterIPs, ports } };
  }

  private freeAddress(family: 4 | 6, used: Set<string>): string | undefined {
    for (let n = 0; ; n++) {
      const ip = serviceAddress(this.ranges[family].range, n);
      if (ip === undefined) return undefined;
      if (!used.has(ip)) return ip;
    }
  }
}
