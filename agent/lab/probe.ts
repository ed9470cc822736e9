/**
 * `weir lab probe`: every chosen pair of lab pods, all at once, each with a short timeout; the
 * result as the truth table of the upstream NetworkPolicy e2e suite or as JSON.
 *
 * `--via service` probes each pair through a Service of the target's namespace that selects the
 * target pod (only it, where there is one) and exposes the probed port (upstream's e2e suite gives every pod one): the
 * connection goes to the Service's ClusterIP and port, `to` stays the pod. `--to-service NS/NAME`
 * probes one Service's ClusterIP from every chosen pod and names the pod that answered.
 */
import type { L4Protocol } from '../desired.js';
import { probeFrom } from './pod-client.js';
import { podKey, type LabPod } from './runtime.js';
import type { ServiceView } from './views.js';

export interface ProbeRequest {
  /** A port number, or a container port name resolved on each destination pod. */
  port: number | string;
  protocol: L4Protocol;
  /** "ns/pod", "ns/" (every pod of a namespace) or undefined for every pod. */
  from?: string;
  to?: string;
  family?: 4 | 6;
  timeoutMs?: number;
  /** Probe through each target's own Service (its ClusterIP) instead of the pod's address. */
  via?: 'pod' | 'service';
}

export interface ProbeResult {
  from: string;
  to: string;
  connected: boolean;
}

export interface ProbeDetail extends ProbeResult {
  /** Port probed (named ports resolved), undefined when the destination has no such named port. */
  port?: number;
  detail: string;
  ms: number;
}

export interface ProbeMatrix {
  port: number | string;
  protocol: L4Protocol;
  results: ProbeResult[];
}

export const DEFAULT_PROBE_TIMEOUT_MS = 1000;

function selects(sel: string | undefined, key: string): boolean {
  if (sel === undefined || sel === '') return true;
  if (sel.endsWith('/')) return key.startsWith(sel);
  if (!sel.includes('/')) return key.startsWith(`${sel}/`);
  return key === sel;
}

export function selectPods(pods: LabPod[], sel: string | undefined, flag: string): LabPod[] {
  const out = pods.filter((p) => selects(sel, podKey(p))).sort((a, b) => podKey(a).localeCompare(podKey(b)));
  if (out.length === 0) {
    throw new Error(
      `${flag} ${sel} matches no lab pod; pods: ${pods.map(podKey).join(', ') || 'none (is the lab up?)'}`,
    );
  }
  return out;
}

/** Resolves a named port against the destination pod's declared container ports. */
export function resolvePort(dst: LabPod, port: number | string, protocol: L4Protocol): number | undefined {
  if (typeof port === 'number') return port;
  return dst.ports.find((p) => p.name === port && p.protocol === protocol)?.port;
}

/**
 * The Service that carries probes to `dst` on its port `port`: in the pod's namespace, with the
 * pod among its endpoints and a Service port of the protocol whose target is that pod port;
 * one whose only endpoint is the pod first (then the probe lands on it), else one that also selects
 * other pods. Returns the Service, its address of the family and the Service port.
 */
export function serviceFor(
  services: ServiceView[],
  dst: LabPod,
  port: number,
  protocol: L4Protocol,
  family: 4 | 6,
): { service: string; ip: string; port: number } | undefined {
  const key = podKey(dst);
  const fits = (only: boolean) => {
    for (const s of services) {
      if (s.namespace !== dst.namespace || !s.endpoints.some((e) => e.pod === key)) continue;
      if (only && !s.endpoints.every((e) => e.pod === key)) continue;
      const ip = s.clusterIPs.find((a) => (family === 4 ? !a.includes(':') : a.includes(':')));
      if (ip === undefined) continue;
      const sp = s.ports.find(
        (p) =>
          p.protocol === protocol &&
          (p.targetPort === port ||
            (typeof p.targetPort === 'string' && resolvePort(dst, p.targetPort, protocol) === port)),
      );
      if (sp) return { service: `${s.namespace}/${s.name}`, ip, port: sp.port };
    }
    return undefined;
  };
  return fits(true) ?? fits(false);
}

/** Runs the probes; sources in parallel, and each source's targets in parallel. */
export async function probePods(
  pods: LabPod[],
  req: ProbeRequest,
  services: ServiceView[] = [],
): Promise<ProbeDetail[]> {
  const sources = selectPods(pods, req.from, '--from');
  const dests = selectPods(pods, req.to, '--to');
  const timeoutMs = req.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const family = req.family ?? 4;
  const route = new Map<string, { ip: string; port: number }>();
  if (req.via === 'service') {
    const missing: string[] = [];
    for (const dst of dests) {
      const port = resolvePort(dst, req.port, req.protocol);
      if (port === undefined) continue;
      const s = serviceFor(services, dst, port, req.protocol, family);
      if (s) route.set(podKey(dst), s);
      else missing.push(`${podKey(dst)} (${req.protocol} ${port})`);
    }
    if (missing.length > 0)
      throw new Error(
        `--via service: no Service selects these pods with the probed port: ${missing.join(', ')}; give each pod a Service (a selector only it matches, a port whose targetPort is the probed port)`,
      );
  }
  const perSource = await Promise.all(
    sources.map(async (src) => {
      const plan = dests.map((dst) => ({ dst, port: resolvePort(dst, req.port, req.protocol) }));
      const targets = plan
        .filter((p) => p.port !== undefined)
        .map((p) => route.get(podKey(p.dst)) ?? { ip: family === 4 ? p.dst.ip4 : p.dst.ip6, port: p.port as number })
        .map((t) => ({ ip: t.ip, port: t.port, protocol: req.protocol }));
      const outcomes = targets.length ? await probeFrom(src.socket, targets, timeoutMs) : [];
      let i = 0;
      return plan.map(({ dst, port }): ProbeDetail => {
        if (port === undefined)
          return {
            from: podKey(src),
            to: podKey(dst),
            connected: false,
            detail: `no ${req.protocol} port named ${String(req.port)}`,
            ms: 0,
          };
        const o = outcomes[i++];
        if (!o) throw new Error(`probe from ${podKey(src)} returned too few results`);
        return { from: podKey(src), to: podKey(dst), port, connected: o.connected, detail: o.detail, ms: o.ms };
      });
    }),
  );
  return perSource.flat();
}

export interface ServiceProbeRequest {
  /** "namespace/name" of the Service. */
  service: string;
  /** The Service's port, by number or by name. */
  port: number | string;
  protocol: L4Protocol;
  from?: string;
  family?: 4 | 6;
  timeoutMs?: number;
}

export interface ServiceProbeResult {
  from: string;
  /** "namespace/name" of the Service. */
  to: string;
  connected: boolean;
  /** "namespace/name" of the pod that answered; null when none did (or an SCTP responder, which cannot say). */
  backend: string | null;
}

export interface ServiceProbeDetail extends ServiceProbeResult {
  address: string;
  port: number;
  detail: string;
  ms: number;
}

/** Probes one Service's ClusterIP and port from every chosen pod. */
export async function probeService(
  pods: LabPod[],
  services: ServiceView[],
  req: ServiceProbeRequest,
): Promise<ServiceProbeDetail[]> {
  const svc = services.find((s) => `${s.namespace}/${s.name}` === req.service);
  if (!svc)
    throw new Error(
      `--to-service ${req.service}: no such Service; services: ${services.map((s) => `${s.namespace}/${s.name}`).join(', ') || 'none'}`,
    );
  const family = req.family ?? 4;
  const sp = svc.ports.find(
    (p) => p.protocol === req.protocol && (typeof req.port === 'number' ? p.port === req.port : p.name === req.port),
  );
  if (!sp)
    throw new Error(
      `Service ${req.service} has no ${req.protocol} port ${String(req.port)}; its ports: ${svc.ports.map((p) => `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol}`).join(', ') || 'none'}`,
    );
  const address = svc.clusterIPs.find((a) => (family === 4 ? !a.includes(':') : a.includes(':')));
  if (address === undefined)
    throw new Error(
      `Service ${req.service} has no IPv${family} ClusterIP${svc.clusterIP === 'None' ? ' (a headless Service is not load balanced: probe its pods)' : ''}`,
    );
  const sources = selectPods(pods, req.from, '--from');
  const timeoutMs = req.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const outcomes = await Promise.all(
    sources.map((src) => probeFrom(src.socket, [{ ip: address, port: sp.port, protocol: req.protocol }], timeoutMs)),
  );
  return sources.map((src, i) => {
    const o = outcomes[i]?.[0];
    if (!o) throw new Error(`probe from ${podKey(src)} returned no result`);
    return {
      from: podKey(src),
      to: req.service,
      connected: o.connected,
      backend: o.connected ? (o.answeredBy ?? null) : null,
      address,
      port: sp.port,
      detail: o.detail,
      ms: o.ms,
    };
  });
}

export function toMatrix(req: Pick<ProbeRequest, 'port' | 'protocol'>, details: ProbeResult[]): ProbeMatrix {
  return {
    port: req.port,
    protocol: req.protocol,
    results: details.map(({ from, to, connected }) => ({ from, to, connected })),
  };
}
