/**
 * The Services compiler: Services and EndpointSlices (and this node's name) -> the load-balanced
 * frontends the datapath translates (`DesiredState.services`), as kube-proxy reads them.
 *
 * - One frontend per clusterIP x port; a NodePort (or LoadBalancer) Service also has one per
 *   family of its clusterIPs x nodePort, on the unspecified address ("0.0.0.0" / "::").
 * - Backends come from the Service's EndpointSlices of the frontend's family (the
 *   `kubernetes.io/service-name` label) whose port has the Service port's name and protocol: that
 *   port is the backend's (targetPort resolved by name per slice, as the EndpointSlice controller
 *   wrote it). Ready endpoints; when none, the serving and terminating ones (kube-proxy's rule).
 *   internalTrafficPolicy Local (clusterIP frontends) or externalTrafficPolicy Local (nodePort
 *   frontends) keep only this node's endpoints, before that choice.
 * - Headless Services (clusterIP None), ExternalName Services and Services without an allocated
 *   clusterIP have no frontend: nothing is load balanced for them.
 * - sessionAffinity ClientIP gives the frontend its timeout (defaulted to 10800 s by conversion).
 * - A NodePort frontend's backend whose endpoint names another node than this one is `remote`:
 *   under externalTrafficPolicy Cluster the datapath masquerades connections given to it, as
 *   kube-proxy does. An endpoint without a node name, or a compiler without one, counts as local
 *   (its connections keep the client's source: a reply that then misses this node fails, but
 *   nothing is ever judged as this node's own traffic that is not).
 *
 * Pure: no I/O, same inputs same output. `ServiceCompiler` keeps the inputs and returns, per
 * change, the frontends that came, changed or went.
 */
import { isIPv4 } from 'node:net';
import { frontendKey, type ServiceBackend, type ServiceFrontend } from '../desired.js';
import type { EndpointSlice, KubeObject, Service, ServicePort } from '../store/types.js';

function familyOf(ip: string): 4 | 6 {
  return isIPv4(ip) ? 4 : 6;
}

/** The backends of one Service port in one family, chosen as kube-proxy chooses them. */
export function serviceBackends(
  port: ServicePort,
  family: 4 | 6,
  slices: Iterable<EndpointSlice>,
  localNode: string | undefined,
): ServiceBackend[] {
  const addressType = family === 4 ? 'IPv4' : 'IPv6';
  const seen = new Map<string, ServiceBackend>();
  for (const slice of slices) {
    if (slice.addressType !== addressType) continue;
    const sp = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (sp?.port === undefined) continue;
    for (const ep of slice.endpoints) {
      const ip = ep.addresses[0];
      if (ip === undefined) continue;
      const key = `${ip}|${sp.port}`;
      if (seen.has(key)) continue;
      seen.set(key, {
        ip,
        port: sp.port,
        ...(ep.targetRef?.kind === 'Pod' ? { pod: `${ep.targetRef.namespace}/${ep.targetRef.name}` } : {}),
        ...(ep.nodeName !== undefined ? { nodeName: ep.nodeName } : {}),
        ready: ep.conditions.ready,
        serving: ep.conditions.serving,
        terminating: ep.conditions.terminating,
      });
    }
  }
  let all = [...seen.values()];
  if (localNode !== undefined) all = all.filter((b) => b.nodeName === localNode);
  const ready = all.filter((b) => b.ready);
  const chosen = ready.length > 0 ? ready : all.filter((b) => b.serving && b.terminating);
  return chosen.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

/** Whether a Service is load balanced at all (headless and ExternalName Services are not). */
export function isLoadBalanced(svc: Service): boolean {
  return svc.type !== 'ExternalName' && svc.clusterIP !== 'None' && svc.clusterIPs.length > 0;
}

/** Every frontend of one Service, given its EndpointSlices. */
export function compileService(
  svc: Service,
  slices: Iterable<EndpointSlice>,
  nodeName: string | undefined,
): ServiceFrontend[] {
  if (!isLoadBalanced(svc)) return [];
  const sliceList = [...slices];
  const key = `${svc.namespace}/${svc.name}`;
  const out: ServiceFrontend[] = [];
  const internalLocal = svc.internalTrafficPolicy === 'Local' ? nodeName : undefined;
  const externalLocal = svc.externalTrafficPolicy === 'Local';
  for (const ip of svc.clusterIPs) {
    for (const p of svc.ports) {
      out.push({
        service: key,
        scope: 'clusterIP',
        address: ip,
        port: p.port,
        protocol: p.protocol,
        portName: p.name,
        affinityTimeoutSeconds: svc.affinityTimeoutSeconds,
        backends: serviceBackends(p, familyOf(ip), sliceList, internalLocal),
        externalLocal: false,
      });
    }
  }
  if (svc.type === 'NodePort' || svc.type === 'LoadBalancer') {
    const families = [...new Set(svc.clusterIPs.map(familyOf))];
    for (const family of families) {
      for (const p of svc.ports) {
        if (p.nodePort === 0) continue;
        out.push({
          service: key,
          scope: 'nodePort',
          address: family === 4 ? '0.0.0.0' : '::',
          port: p.nodePort,
          protocol: p.protocol,
          portName: p.name,
          affinityTimeoutSeconds: svc.affinityTimeoutSeconds,
          backends: serviceBackends(p, family, sliceList, externalLocal ? nodeName : undefined).map((b) =>
            nodeName !== undefined && b.nodeName !== undefined && b.nodeName !== nodeName ? { ...b, remote: true } : b,
          ),
          externalLocal,
        });
      }
    }
  }
  return out;
}

export interface ServiceChanges {
  upserted: ServiceFrontend[];
  /** frontendKey() of frontends that are gone. */
  removed: string[];
}

/** A frontend two Services claim: the first keeps it (by "namespace/name"), the other is told. */
export interface ServiceConflict {
  service: string;
  frontend: string;
  ownedBy: string;
}

export class ServiceCompiler {
  private readonly services = new Map<string, Service>();
  /** Service key -> its slices by slice key. */
  private readonly slices = new Map<string, Map<string, EndpointSlice>>();
  /** Slice key -> the service key it was filed under. */
  private readonly sliceOwner = new Map<string, string>();
  /** Frontends by frontendKey(), and which Service owns each. */
  private readonly frontends = new Map<string, ServiceFrontend>();
  private readonly byService = new Map<string, Set<string>>();
  private readonly dirty = new Set<string>();
  private readonly conflicts = new Map<string, ServiceConflict>();

  constructor(private readonly nodeName?: string) {}

  /** Takes one store change; only Services and EndpointSlices matter. */
  ingest(kind: KubeObject['kind'], key: string, obj: KubeObject | undefined): void {
    if (kind === 'Service') {
      if (obj?.kind === 'Service') this.services.set(key, obj);
      else this.services.delete(key);
      this.dirty.add(key);
    } else if (kind === 'EndpointSlice') {
      const before = this.sliceOwner.get(key);
      if (before !== undefined) {
        this.slices.get(before)?.delete(key);
        if (this.slices.get(before)?.size === 0) this.slices.delete(before);
        this.sliceOwner.delete(key);
        this.dirty.add(before);
      }
      if (obj?.kind === 'EndpointSlice' && obj.serviceName !== '') {
        const owner = `${obj.namespace}/${obj.serviceName}`;
        let m = this.slices.get(owner);
        if (!m) this.slices.set(owner, (m = new Map()));
        m.set(key, obj);
        this.sliceOwner.set(key, owner);
        this.dirty.add(owner);
      }
    }
  }

  /** Recomputes the Services that changed; returns the frontends that came, changed or went. */
  flush(): ServiceChanges {
    const upserted = new Map<string, ServiceFrontend>();
    const removed = new Set<string>();
    const retry = new Set<string>();
    for (const svcKey of [...this.dirty].sort()) {
      const svc = this.services.get(svcKey);
      const next = svc ? compileService(svc, this.slices.get(svcKey)?.values() ?? [], this.nodeName) : [];
      const old = this.byService.get(svcKey) ?? new Set<string>();
      const now = new Set<string>();
      for (const f of next) {
        const fk = frontendKey(f);
        const owner = this.frontends.get(fk)?.service;
        if (owner !== undefined && owner !== svcKey) {
          this.conflicts.set(`${svcKey}|${fk}`, { service: svcKey, frontend: fk, ownedBy: owner });
          continue;
        }
        this.conflicts.delete(`${svcKey}|${fk}`);
        now.add(fk);
        if (JSON.stringify(this.frontends.get(fk)) !== JSON.stringify(f)) {
          this.frontends.set(fk, f);
          upserted.set(fk, f);
          removed.delete(fk);
        }
      }
      for (const fk of old) {
        if (now.has(fk)) continue;
        this.frontends.delete(fk);
        upserted.delete(fk);
        removed.add(fk);
        // A Service that was refused this frontend may take it now.
        for (const c of this.conflicts.values()) if (c.frontend === fk) retry.add(c.service);
      }
      for (const c of [...this.conflicts.values()])
        if (c.service === svcKey && !svc) this.conflicts.delete(`${c.service}|${c.frontend}`);
      if (now.size > 0) this.byService.set(svcKey, now);
      else this.byService.delete(svcKey);
    }
    this.dirty.clear();
    if (retry.size > 0) {
      for (const s of retry) this.dirty.add(s);
      const more = this.flush();
      for (const fk of more.removed) {
        upserted.delete(fk);
        removed.add(fk);
      }
      for (const f of more.upserted) {
        upserted.set(frontendKey(f), f);
        removed.delete(frontendKey(f));
      }
    }
    return {
      upserted: [...upserted.values()],
      removed: [...removed].filter((fk) => !this.frontends.has(fk)).sort(),
    };
  }

  /** Every frontend now, by frontendKey(). */
  snapshot(): Map<string, ServiceFrontend> {
    return new Map(this.frontends);
  }

  /** One frontend by frontendKey() ("address|port|protocol"). */
  frontend(key: string): ServiceFrontend | undefined {
    return this.frontends.get(key);
  }

  /** Frontends two Services claim (a clusterIP or nodePort allocated twice). */
  problems(): ServiceConflict[] {
    return [...this.conflicts.values()];
  }

  getService(key: string): Service | undefined {
    return this.services.get(key);
  }

  /** The frontends of one Service ("namespace/name"). */
  frontendsOf(key: string): ServiceFrontend[] {
    return [...(this.byService.get(key) ?? [])].map((fk) => this.frontends.get(fk)!).filter(Boolean);
  }
}
