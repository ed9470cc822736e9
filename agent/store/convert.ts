/**
 * Converters from plain Kubernetes objects (parsed YAML or API server JSON) to the typed
 * objects of types.ts. Structural errors (a string where an object belongs) throw a
 * ConversionError naming the object and the field; semantic checks of NetworkPolicy
 * (bad CIDR, port range, operator) are left to agent/policy/compiled.ts so that one
 * invalid policy never stops the others.
 */
import { canonicalIP } from '../ipcache/cidr.js';
import type {
  ContainerPort,
  IPBlock,
  KubeObject,
  LabelSelector,
  LabelSelectorRequirement,
  Labels,
  Namespace,
  NetworkPolicy,
  NetworkPolicyEgressRule,
  NetworkPolicyIngressRule,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  Node,
  Pod,
  PodPhase,
  PolicyType,
  Endpoint,
  EndpointPort,
  EndpointSlice,
  Service,
  ServicePort,
  ServiceType,
} from './types.js';
import { DEFAULT_AFFINITY_TIMEOUT_SECONDS, SERVICE_NAME_LABEL } from './types.js';
import type { L4Protocol } from '../desired.js';

export class ConversionError extends Error {
  constructor(
    readonly object: string,
    readonly field: string,
    problem: string,
  ) {
    super(`${object}: ${field}: ${problem}`);
    this.name = 'ConversionError';
  }
}

type Plain = Record<string, unknown>;

function isPlain(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Reader {
  constructor(readonly object: string) {}
  fail(field: string, problem: string): never {
    throw new ConversionError(this.object, field, problem);
  }
  obj(v: unknown, field: string): Plain {
    if (v === undefined || v === null) return {};
    if (!isPlain(v)) this.fail(field, 'must be an object');
    return v;
  }
  arr(v: unknown, field: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v;
  }
  str(v: unknown, field: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
  reqStr(v: unknown, field: string): string {
    const s = this.str(v, field);
    if (s === undefined || s === '') this.fail(field, 'is required');
    return s;
  }
  labels(v: unknown, field: string): Labels {
    const o = this.obj(v, field);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) {
      // YAML turns `tier: 1` or `enabled: true` into non-strings; Kubernetes would reject them.
      if (typeof val !== 'string')
        this.fail(`${field}.${k}`, `label values must be strings (quote ${JSON.stringify(val)} in YAML)`);
      out[k] = val;
    }
    return out;
  }
}

function metaOf(raw: Plain, kind: string): { name: string; namespace: string; labels: Plain | undefined } {
  const meta = isPlain(raw.metadata) ? raw.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  if (name === '') throw new ConversionError(kind, 'metadata.name', 'is required');
  return { name, namespace, labels: meta.labels as Plain | undefined };
}

export function toNamespace(raw: Plain): Namespace {
  const { name, labels } = metaOf(raw, 'Namespace');
  const r = new Reader(`Namespace ${name}`);
  // The API server adds this label to every namespace; selectors in the wild rely on it.
  return {
    kind: 'Namespace',
    name,
    labels: { ...r.labels(labels, 'metadata.labels'), 'kubernetes.io/metadata.name': name },
  };
}

const PHASES: readonly PodPhase[] = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

function l4(r: Reader, v: unknown, field: string): L4Protocol {
  const p = r.str(v, field) ?? 'TCP';
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP')
    r.fail(field, `unknown protocol "${String(v)}" (use TCP, UDP or SCTP)`);
  return p;
}

export function toPod(raw: Plain): Pod {
  const { name, namespace, labels } = metaOf(raw, 'Pod');
  const r = new Reader(`Pod ${namespace}/${name}`);
  const spec = r.obj(raw.spec, 'spec');
  const status = r.obj(raw.status, 'status');
  const ports: ContainerPort[] = [];
  r.arr(spec.containers, 'spec.containers').forEach((c, i) => {
    const co = r.obj(c, `spec.containers[${i}]`);
    r.arr(co.ports, `spec.containers[${i}].ports`).forEach((p, j) => {
      const f = `spec.containers[${i}].ports[${j}]`;
      const po = r.obj(p, f);
      const n = po.containerPort;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)
        r.fail(`${f}.containerPort`, `must be an integer 1-65535, got ${JSON.stringify(n)}`);
      const portName = r.str(po.name, `${f}.name`);
      const protocol = l4(r, po.protocol, `${f}.protocol`);
      const containerPort = n as number;
      // two literals, not a spread: V8 gives an object built by spreading a fresh object its own
      // hidden class (about 160 bytes more per port, held as long as the pod)
      ports.push(portName ? { name: portName, containerPort, protocol } : { containerPort, protocol });
    });
  });
  const ips: string[] = [];
  const podIPs = r.arr(status.podIPs, 'status.podIPs');
  podIPs.forEach((p, i) => {
    const ip = r.reqStr(r.obj(p, `status.podIPs[${i}]`).ip, `status.podIPs[${i}].ip`);
    ips.push(canonicalOrFail(r, ip, `status.podIPs[${i}].ip`));
  });
  const single = r.str(status.podIP, 'status.podIP');
  if (ips.length === 0 && single) ips.push(canonicalOrFail(r, single, 'status.podIP'));
  const phaseRaw = r.str(status.phase, 'status.phase') ?? (ips.length > 0 ? 'Running' : 'Pending');
  // the constant, not the parsed string: one copy for every pod
  const phase = PHASES.find((p) => p === phaseRaw);
  if (phase === undefined) r.fail('status.phase', `unknown phase "${phaseRaw}"`);
  const nodeName = r.str(spec.nodeName, 'spec.nodeName');
  return {
    kind: 'Pod',
    namespace,
    name,
    labels: r.labels(labels, 'metadata.labels'),
    // copies of their exact length: an array grown by push keeps room for 16 (about 120 bytes
    // more per pod and list, held as long as the pod)
    ips: ips.slice(),
    ...(nodeName ? { nodeName } : {}),
    hostNetwork: spec.hostNetwork === true,
    phase: phase!,
    ports: ports.slice(),
  };
}

function canonicalOrFail(r: Reader, ip: string, field: string): string {
  const c = canonicalIP(ip);
  if (c === undefined) r.fail(field, `"${ip}" is not an IP address`);
  return c;
}

function selector(r: Reader, v: unknown, field: string): LabelSelector {
  const o = r.obj(v, field);
  const matchExpressions: LabelSelectorRequirement[] = r
    .arr(o.matchExpressions, `${field}.matchExpressions`)
    .map((e, i) => {
      const f = `${field}.matchExpressions[${i}]`;
      const eo = r.obj(e, f);
      return {
        key: r.str(eo.key, `${f}.key`) ?? '',
        operator: r.str(eo.operator, `${f}.operator`) ?? '',
        values: r.arr(eo.values, `${f}.values`).map((x, k) => {
          if (typeof x !== 'string')
            r.fail(`${f}.values[${k}]`, `must be a string (quote ${JSON.stringify(x)} in YAML)`);
          return x;
        }),
      };
    });
  return { matchLabels: r.labels(o.matchLabels, `${field}.matchLabels`), matchExpressions };
}

function peers(r: Reader, v: unknown, field: string): NetworkPolicyPeer[] {
  return r.arr(v, field).map((p, i) => {
    const f = `${field}[${i}]`;
    const po = r.obj(p, f);
    const out: NetworkPolicyPeer = {};
    if (po.podSelector !== undefined && po.podSelector !== null)
      out.podSelector = selector(r, po.podSelector, `${f}.podSelector`);
    if (po.namespaceSelector !== undefined && po.namespaceSelector !== null)
      out.namespaceSelector = selector(r, po.namespaceSelector, `${f}.namespaceSelector`);
    if (po.ipBlock !== undefined && po.ipBlock !== null) {
      const b = r.obj(po.ipBlock, `${f}.ipBlock`);
      const block: IPBlock = {
        cidr: r.str(b.cidr, `${f}.ipBlock.cidr`) ?? '',
        except: r.arr(b.except, `${f}.ipBlock.except`).map((x, k) => r.str(x, `${f}.ipBlock.except[${k}]`) ?? ''),
      };
      out.ipBlock = block;
    }
    return out;
  });
}

function ports(r: Reader, v: unknown, field: string): NetworkPolicyPort[] {
  return r.arr(v, field).map((p, i) => {
    const f = `${field}[${i}]`;
    const po = r.obj(p, f);
    const out: NetworkPolicyPort = { protocol: r.str(po.protocol, `${f}.protocol`) ?? 'TCP' };
    if (po.port !== undefined && po.port !== null) {
      if (typeof po.port === 'number') out.port = po.port;
      else if (typeof po.port === 'string') out.port = /^[0-9]+$/.test(po.port) ? Number(po.port) : po.port;
      else r.fail(`${f}.port`, 'must be a number or a port name');
    }
    if (po.endPort !== undefined && po.endPort !== null) {
      if (typeof po.endPort !== 'number') r.fail(`${f}.endPort`, 'must be a number');
      out.endPort = po.endPort;
    }
    return out;
  });
}

export function toNetworkPolicy(raw: Plain): NetworkPolicy {
  const { name, namespace } = metaOf(raw, 'NetworkPolicy');
  const r = new Reader(`NetworkPolicy ${namespace}/${name}`);
  const spec = r.obj(raw.spec, 'spec');
  const ingress: NetworkPolicyIngressRule[] = r.arr(spec.ingress, 'spec.ingress').map((x, i) => {
    const o = r.obj(x, `spec.ingress[${i}]`);
    return { from: peers(r, o.from, `spec.ingress[${i}].from`), ports: ports(r, o.ports, `spec.ingress[${i}].ports`) };
  });
  const egress: NetworkPolicyEgressRule[] = r.arr(spec.egress, 'spec.egress').map((x, i) => {
    const o = r.obj(x, `spec.egress[${i}]`);
    return { to: peers(r, o.to, `spec.egress[${i}].to`), ports: ports(r, o.ports, `spec.egress[${i}].ports`) };
  });
  const written = r.arr(spec.policyTypes, 'spec.policyTypes').map((t, i) => {
    if (t !== 'Ingress' && t !== 'Egress')
      r.fail(`spec.policyTypes[${i}]`, `must be Ingress or Egress, got ${JSON.stringify(t)}`);
    return t as PolicyType;
  });
  // Kubernetes defaulting: Ingress always, Egress when the policy has egress rules.
  const policyTypes: PolicyType[] =
    written.length > 0
      ? [...new Set(written)]
      : spec.egress !== undefined && egress.length > 0
        ? ['Ingress', 'Egress']
        : ['Ingress'];
  return {
    kind: 'NetworkPolicy',
    namespace,
    name,
    podSelector: selector(r, spec.podSelector, 'spec.podSelector'),
    policyTypes,
    policyTypesExplicit: written.length > 0,
    ingress,
    egress,
  };
}

export function toNode(raw: Plain): Node {
  const { name } = metaOf(raw, 'Node');
  const r = new Reader(`Node ${name}`);
  const spec = r.obj(raw.spec, 'spec');
  const status = r.obj(raw.status, 'status');
  const addresses = r.arr(status.addresses, 'status.addresses').map((a, i) => {
    const o = r.obj(a, `status.addresses[${i}]`);
    return {
      type: r.str(o.type, `status.addresses[${i}].type`) ?? '',
      address: r.reqStr(o.address, `status.addresses[${i}].address`),
    };
  });
  const cidrs = r.arr(spec.podCIDRs, 'spec.podCIDRs').map((c, i) => r.reqStr(c, `spec.podCIDRs[${i}]`));
  const single = r.str(spec.podCIDR, 'spec.podCIDR');
  if (cidrs.length === 0 && single) cidrs.push(single);
  return { kind: 'Node', name, addresses, podCIDRs: cidrs };
}

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

function portNumber(r: Reader, v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    r.fail(field, `must be an integer 1-65535, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(r: Reader, v: unknown, field: string, allowed: readonly T[], dflt: T): T {
  const s = r.str(v, field);
  if (s === undefined || s === '') return dflt;
  if (!(allowed as readonly string[]).includes(s)) r.fail(field, `unknown value "${s}" (use ${allowed.join(', ')})`);
  return s as T;
}

/**
 * core/v1 Service with the API server's defaults: type ClusterIP, protocol TCP, targetPort = port,
 * sessionAffinity None (ClientIP's timeout 10800 s), traffic policies Cluster.
 */
export function toService(raw: Plain): Service {
  const { name, namespace, labels } = metaOf(raw, 'Service');
  const r = new Reader(`Service ${namespace}/${name}`);
  const spec = r.obj(raw.spec, 'spec');
  const type = oneOf(r, spec.type, 'spec.type', SERVICE_TYPES, 'ClusterIP');
  const ports: ServicePort[] = r.arr(spec.ports, 'spec.ports').map((x, i) => {
    const f = `spec.ports[${i}]`;
    const po = r.obj(x, f);
    const port = portNumber(r, po.port, `${f}.port`);
    let targetPort: number | string = port;
    if (typeof po.targetPort === 'number') targetPort = portNumber(r, po.targetPort, `${f}.targetPort`);
    else if (typeof po.targetPort === 'string' && po.targetPort !== '')
      targetPort = /^[0-9]+$/.test(po.targetPort)
        ? portNumber(r, Number(po.targetPort), `${f}.targetPort`)
        : po.targetPort;
    else if (po.targetPort !== undefined && po.targetPort !== null && po.targetPort !== 0 && po.targetPort !== '')
      r.fail(`${f}.targetPort`, 'must be a number or a port name');
    const nodePort = po.nodePort === undefined || po.nodePort === null || po.nodePort === 0 ? 0 : po.nodePort;
    return {
      name: r.str(po.name, `${f}.name`) ?? '',
      protocol: l4(r, po.protocol, `${f}.protocol`),
      port,
      targetPort,
      nodePort: nodePort === 0 ? 0 : portNumber(r, nodePort, `${f}.nodePort`),
    };
  });
  const clusterIP = r.str(spec.clusterIP, 'spec.clusterIP') ?? '';
  const written = r.arr(spec.clusterIPs, 'spec.clusterIPs').map((x, i) => r.reqStr(x, `spec.clusterIPs[${i}]`));
  const raws = written.length > 0 ? written : clusterIP !== '' ? [clusterIP] : [];
  const headless = raws[0] === 'None';
  const clusterIPs =
    type === 'ExternalName' || headless
      ? []
      : raws.map((ip, i) => canonicalOrFail(r, ip, written.length > 0 ? `spec.clusterIPs[${i}]` : 'spec.clusterIP'));
  const sessionAffinity = oneOf(r, spec.sessionAffinity, 'spec.sessionAffinity', ['None', 'ClientIP'] as const, 'None');
  const cfg = r.obj(
    r.obj(spec.sessionAffinityConfig, 'spec.sessionAffinityConfig').clientIP,
    'spec.sessionAffinityConfig.clientIP',
  );
  const timeout = cfg.timeoutSeconds;
  if (timeout !== undefined && timeout !== null && (typeof timeout !== 'number' || !Number.isInteger(timeout)))
    r.fail('spec.sessionAffinityConfig.clientIP.timeoutSeconds', 'must be an integer');
  const policies = ['Cluster', 'Local'] as const;
  const selectorRaw = spec.selector;
  const externalName = r.str(spec.externalName, 'spec.externalName');
  return {
    kind: 'Service',
    namespace,
    name,
    labels: r.labels(labels, 'metadata.labels'),
    type,
    ...(selectorRaw !== undefined && selectorRaw !== null ? { selector: r.labels(selectorRaw, 'spec.selector') } : {}),
    clusterIP: headless ? 'None' : (clusterIPs[0] ?? ''),
    clusterIPs,
    ports,
    sessionAffinity,
    affinityTimeoutSeconds:
      sessionAffinity === 'ClientIP'
        ? typeof timeout === 'number' && timeout > 0
          ? timeout
          : DEFAULT_AFFINITY_TIMEOUT_SECONDS
        : 0,
    internalTrafficPolicy: oneOf(r, spec.internalTrafficPolicy, 'spec.internalTrafficPolicy', policies, 'Cluster'),
    externalTrafficPolicy: oneOf(r, spec.externalTrafficPolicy, 'spec.externalTrafficPolicy', policies, 'Cluster'),
    ...(externalName ? { externalName } : {}),
  };
}

/** A condition as kube-proxy reads it: unset is `dflt`. */
function condition(r: Reader, v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') r.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** discovery.k8s.io/v1 EndpointSlice. */
export function toEndpointSlice(raw: Plain): EndpointSlice {
  const { name, namespace, labels } = metaOf(raw, 'EndpointSlice');
  const r = new Reader(`EndpointSlice ${namespace}/${name}`);
  const addressType = oneOf(r, raw.addressType, 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const, 'IPv4');
  if (raw.addressType === undefined || raw.addressType === null || raw.addressType === '')
    r.fail('addressType', 'is required');
  const endpoints: Endpoint[] = r.arr(raw.endpoints, 'endpoints').map((x, i) => {
    const f = `endpoints[${i}]`;
    const eo = r.obj(x, f);
    const addresses = r.arr(eo.addresses, `${f}.addresses`).map((a, j) => {
      const s = r.reqStr(a, `${f}.addresses[${j}]`);
      return addressType === 'FQDN' ? s : canonicalOrFail(r, s, `${f}.addresses[${j}]`);
    });
    const c = r.obj(eo.conditions, `${f}.conditions`);
    const ready = condition(r, c.ready, `${f}.conditions.ready`, true);
    const nodeName = r.str(eo.nodeName, `${f}.nodeName`);
    const ref = eo.targetRef === undefined || eo.targetRef === null ? undefined : r.obj(eo.targetRef, `${f}.targetRef`);
    const refName = ref ? r.str(ref.name, `${f}.targetRef.name`) : undefined;
    return {
      addresses,
      conditions: {
        ready,
        serving: condition(r, c.serving, `${f}.conditions.serving`, true),
        terminating: condition(r, c.terminating, `${f}.conditions.terminating`, false),
      },
      ...(nodeName ? { nodeName } : {}),
      ...(ref && refName
        ? {
            targetRef: {
              kind: r.str(ref.kind, `${f}.targetRef.kind`) ?? '',
              namespace: r.str(ref.namespace, `${f}.targetRef.namespace`) || namespace,
              name: refName,
            },
          }
        : {}),
    };
  });
  const ports: EndpointPort[] = r.arr(raw.ports, 'ports').map((x, i) => {
    const f = `ports[${i}]`;
    const po = r.obj(x, f);
    return {
      name: r.str(po.name, `${f}.name`) ?? '',
      protocol: l4(r, po.protocol, `${f}.protocol`),
      ...(po.port === undefined || po.port === null ? {} : { port: portNumber(r, po.port, `${f}.port`) }),
    };
  });
  const lbls = r.labels(labels, 'metadata.labels');
  return {
    kind: 'EndpointSlice',
    namespace,
    name,
    labels: lbls,
    addressType,
    serviceName: lbls[SERVICE_NAME_LABEL] ?? '',
    endpoints,
    ports,
  };
}

/** Kinds the control plane reads; everything else in a manifest is ignored by the caller. */
export const SUPPORTED_KINDS = ['Namespace', 'Pod', 'NetworkPolicy', 'Node', 'Service', 'EndpointSlice'] as const;

/**
 * Converts one plain object. Returns undefined for kinds weir does not read
 * (Deployments, ConfigMaps, ...). Throws ConversionError for malformed objects.
 */
export function toKubeObject(raw: unknown): KubeObject | undefined {
  if (!isPlain(raw)) throw new ConversionError('object', '(top level)', 'must be a mapping with apiVersion and kind');
  const o = convert(raw);
  const rv = isPlain(raw.metadata) ? raw.metadata.resourceVersion : undefined;
  if (o && typeof rv === 'string' && rv !== '') o.resourceVersion = rv;
  return o;
}

function convert(raw: Plain): KubeObject | undefined {
  switch (raw.kind) {
    case 'Namespace':
      return toNamespace(raw);
    case 'Pod':
      return toPod(raw);
    case 'NetworkPolicy':
      if (raw.apiVersion !== undefined && raw.apiVersion !== 'networking.k8s.io/v1')
        throw new ConversionError(
          `NetworkPolicy ${metaOf(raw, 'NetworkPolicy').name}`,
          'apiVersion',
          `"${String(raw.apiVersion)}" is not supported; use networking.k8s.io/v1`,
        );
      return toNetworkPolicy(raw);
    case 'Node':
      return toNode(raw);
    case 'Service':
      return toService(raw);
    case 'EndpointSlice':
      if (raw.apiVersion !== undefined && raw.apiVersion !== 'discovery.k8s.io/v1')
        throw new ConversionError(
          `EndpointSlice ${metaOf(raw, 'EndpointSlice').name}`,
          'apiVersion',
          `"${String(raw.apiVersion)}" is not supported; use discovery.k8s.io/v1`,
        );
      return toEndpointSlice(raw);
    default:
      return undefined;
  }
}
