/**
 * The Services the services bench programs: N ClusterIP Services, every one with two backends, as
 * a cluster's Service/EndpointSlice pairs would give kube-proxy and weir. One of them — the measured
 * Service, in the middle of the list, since kube-proxy's iptables chain is walked in order — has the
 * bench pod as its only endpoint and one port per kind of traffic measured; every other Service has
 * one port, and its backends lie in a range no packet of the bench reaches.
 */

export interface BenchBackend {
  ip: string;
  port: number;
}

/** One Service port: what kube-proxy writes one KUBE-SVC chain for, and weir one frontend. */
export interface BenchFrontend {
  /** "namespace/name:port". */
  name: string;
  vip: string;
  port: number;
  protocol: 'TCP';
  backends: BenchBackend[];
}

export interface Catalog {
  frontends: BenchFrontend[];
  /** The measured Service's VIP. */
  vip: string;
}

/** The i-th address of 10.<a>.0.0/16 (i < 65,536). */
function addr(a: number, i: number): string {
  return `10.${a}.${(i >> 8) & 255}.${i & 255}`;
}

export interface CatalogOptions {
  services: number;
  /** The bench pod's address. */
  backendIp: string;
  /** The measured Service's ports: Service port -> the port the bench pod listens on. */
  measuredPorts: Array<{ port: number; targetPort: number }>;
  /** Second octet of the VIP range (10.X.0.0/16) and of the unreachable backends' range. */
  vipOctet: number;
  deadOctet: number;
}

export function buildCatalog(o: CatalogOptions): Catalog {
  if (o.services < 1 || o.services > 30_000) throw new Error(`services must be 1..30000 (got ${o.services})`);
  const measured = Math.floor(o.services / 2);
  const frontends: BenchFrontend[] = [];
  let vip = '';
  for (let i = 0; i < o.services; i++) {
    const name = `ns-${i % 100}/svc-${i}`;
    // The measured Service keeps one VIP whatever N is: a client's TCP timestamps are derived from
    // the address it connects to, and the server's TIME_WAIT from the previous N's runs (the same
    // pod-to-pod tuple after translation) would refuse SYNs carrying another VIP's timestamps.
    const v = i === measured ? addr(o.vipOctet, 0xfffe) : addr(o.vipOctet, i + 1);
    if (i === measured) {
      vip = v;
      for (const p of o.measuredPorts)
        frontends.push({
          name: `${name}:${p.port}`,
          vip: v,
          port: p.port,
          protocol: 'TCP',
          backends: [{ ip: o.backendIp, port: p.targetPort }],
        });
      continue;
    }
    const port = o.measuredPorts[0]?.port ?? 80;
    frontends.push({
      name: `${name}:${port}`,
      vip: v,
      port,
      protocol: 'TCP',
      backends: [
        { ip: addr(o.deadOctet, 2 * i + 1), port },
        { ip: addr(o.deadOctet, 2 * i + 2), port },
      ],
    });
  }
  return { frontends, vip };
}
