/**
 * The Kubernetes API server's validation (1.34) of the objects weir reads — Namespace, Pod,
 * NetworkPolicy, Node, Service, EndpointSlice — on their plain form (parsed YAML or API JSON), with the API server's
 * field paths and messages (`spec.ingress[0].ports[1].protocol: Unsupported value: "tcp":
 * supported values: "SCTP", "TCP", "UDP"`). What the API server would refuse, `weir lab` refuses
 * too; the node agent reports it (an object from an API server never fails here).
 *
 * Only the rules that bear on what weir reads are checked (names, labels, selectors, ports,
 * ipBlocks, policyTypes, container ports); type errors are left to the converters.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { parsePrefix, prefixContains } from '../ipcache/cidr.js';
import type { Prefix } from '../ipcache/cidr.js';

export interface FieldError {
  /** Path as the API server writes it: "spec.egress[0].to[2].ipBlock.cidr". */
  field: string;
  /** The API server's error body: `Invalid value: "x": ...`, `Required value: ...`, ... */
  message: string;
}

export function formatFieldError(e: FieldError): string {
  return `${e.field}: ${e.message}`;
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Go's %#v-like quoting the API server uses for values: strings quoted, numbers bare. */
function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

class Errors {
  readonly list: FieldError[] = [];
  invalid(field: string, value: unknown, detail: string): void {
    this.list.push({ field, message: `Invalid value: ${shown(value)}: ${detail}` });
  }
  required(field: string, detail = ''): void {
    this.list.push({ field, message: detail ? `Required value: ${detail}` : 'Required value' });
  }
  forbidden(field: string, detail: string): void {
    this.list.push({ field, message: `Forbidden: ${detail}` });
  }
  notSupported(field: string, value: unknown, supported: readonly string[]): void {
    const values = [...supported]
      .sort()
      .map((s) => JSON.stringify(s))
      .join(', ');
    this.list.push({ field, message: `Unsupported value: ${shown(value)}: supported values: ${values}` });
  }
}

// ------------------------------------------------------------ apimachinery's string checks

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** IsDNS1123Label. */
export function dns1123Label(v: string): string[] {
  const out: string[] = [];
  if (v.length > 63) out.push('must be no more than 63 characters');
  if (!DNS1123_LABEL.test(v))
    out.push(
      "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    );
  return out;
}

/** IsDNS1123Subdomain. */
export function dns1123Subdomain(v: string): string[] {
  const out: string[] = [];
  if (v.length > 253) out.push('must be no more than 253 characters');
  if (!DNS1123_SUBDOMAIN.test(v))
    out.push(
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  return out;
}

/** IsQualifiedName: a label key, `[prefix/]name`. */
export function qualifiedName(v: string): string[] {
  const out: string[] = [];
  const parts = v.split('/');
  let name: string;
  if (parts.length === 1) name = parts[0]!;
  else if (parts.length === 2) {
    const [prefix, n] = parts as [string, string];
    name = n;
    if (prefix.length === 0) out.push('prefix part must be non-empty');
    else for (const m of dns1123Subdomain(prefix)) out.push(`prefix part ${m}`);
  } else {
    return [
      "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ];
  }
  if (name.length === 0) out.push('name part must be non-empty');
  else if (name.length > 63) out.push('name part must be no more than 63 characters');
  if (name.length > 0 && !QUALIFIED_NAME.test(name))
    out.push(
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    );
  return out;
}

/** IsValidLabelValue. */
export function labelValue(v: string): string[] {
  const out: string[] = [];
  if (v.length > 63) out.push('must be no more than 63 characters');
  if (!LABEL_VALUE.test(v))
    out.push(
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    );
  return out;
}

/** IsValidPortNum. */
function portNum(n: number): string[] {
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? [] : ['must be between 1 and 65535, inclusive'];
}

/** IsValidPortName (IANA_SVC_NAME). */
export function portName(v: string): string[] {
  const out: string[] = [];
  if (v.length > 15) out.push('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(v)) out.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  if (v.includes('--')) out.push('must not contain consecutive hyphens');
  if (!/[a-z]/.test(v)) out.push('must contain at least one letter (a-z)');
  if (v.startsWith('-') || v.endsWith('-')) out.push('must not begin or end with a hyphen');
  return out;
}

/** A CIDR as the API server's legacy CIDR fields take it: address/bits, bits required. */
function cidrProblem(v: string): string | undefined {
  const slash = v.indexOf('/');
  const bad = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';
  if (slash < 0) return bad;
  const ip = v.slice(0, slash);
  const bits = v.slice(slash + 1);
  const width = isIPv4(ip) ? 32 : isIPv6(ip) && !ip.includes('%') ? 128 : 0;
  if (width === 0 || !/^[0-9]{1,3}$/.test(bits) || Number(bits) > width) return bad;
  return undefined;
}

// ------------------------------------------------------------ shared object parts

function validateLabels(e: Errors, labels: unknown, field: string): void {
  if (!isPlain(labels)) return;
  for (const [k, v] of Object.entries(labels)) {
    for (const m of qualifiedName(k)) e.invalid(field, k, m);
    if (typeof v === 'string') for (const m of labelValue(v)) e.invalid(field, v, m);
  }
}

function validateMeta(e: Errors, raw: Plain, namespaced: boolean, nameCheck: (v: string) => string[]): void {
  const meta = isPlain(raw.metadata) ? raw.metadata : {};
  const name = meta.name;
  if (typeof name !== 'string' || name === '') e.required('metadata.name', 'name or generateName is required');
  else for (const m of nameCheck(name)) e.invalid('metadata.name', name, m);
  if (namespaced && typeof meta.namespace === 'string' && meta.namespace !== '')
    for (const m of dns1123Label(meta.namespace)) e.invalid('metadata.namespace', meta.namespace, m);
  validateLabels(e, meta.labels, 'metadata.labels');
}

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

function validateSelector(e: Errors, sel: unknown, field: string): void {
  if (!isPlain(sel)) return;
  validateLabels(e, sel.matchLabels, `${field}.matchLabels`);
  list(sel.matchExpressions).forEach((x, i) => {
    if (!isPlain(x)) return;
    const f = `${field}.matchExpressions[${i}]`;
    const values = list(x.values);
    switch (x.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) e.required(`${f}.values`, "must be specified when `operator` is 'In' or 'NotIn'");
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0)
          e.forbidden(`${f}.values`, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        break;
      default:
        e.invalid(`${f}.operator`, x.operator ?? '', 'not a valid selector operator');
    }
    const key = typeof x.key === 'string' ? x.key : '';
    for (const m of qualifiedName(key)) e.invalid(`${f}.key`, key, m);
    if (OPERATORS.includes(String(x.operator)))
      values.forEach((v, j) => {
        if (typeof v === 'string') for (const m of labelValue(v)) e.invalid(`${f}.values[${j}]`, v, m);
      });
  });
}

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

// ------------------------------------------------------------ NetworkPolicy

function validateIPBlock(e: Errors, b: Plain, field: string): void {
  const cidr = b.cidr;
  if (typeof cidr !== 'string' || cidr === '') {
    e.required(`${field}.cidr`);
    return;
  }
  const p = cidrProblem(cidr);
  if (p) e.invalid(`${field}.cidr`, cidr, p);
  list(b.except).forEach((x, i) => {
    const f = `${field}.except[${i}]`;
    if (typeof x !== 'string') return;
    const xp = cidrProblem(x);
    if (xp) {
      e.invalid(f, x, xp);
      return;
    }
    if (p) return;
    const outer = parsePrefix(cidr) as Prefix;
    const inner = parsePrefix(x) as Prefix;
    const contained = prefixContains(outer, inner) && outer.bits < inner.bits;
    if (!contained) e.invalid(f, x, 'must be a strict subset of `cidr`');
  });
}

function validatePeer(e: Errors, peer: unknown, field: string): void {
  if (!isPlain(peer)) return;
  const has = (k: string): boolean => peer[k] !== undefined && peer[k] !== null;
  const n = ['podSelector', 'namespaceSelector', 'ipBlock'].filter(has).length;
  if (has('podSelector')) validateSelector(e, peer.podSelector, `${field}.podSelector`);
  if (has('namespaceSelector')) validateSelector(e, peer.namespaceSelector, `${field}.namespaceSelector`);
  if (n === 0) e.required(field, 'must specify a peer');
  else if (has('ipBlock') && n > 1) e.forbidden(field, 'may not specify both ipBlock and another peer');
  if (has('ipBlock') && isPlain(peer.ipBlock)) validateIPBlock(e, peer.ipBlock, `${field}.ipBlock`);
}

function validatePolicyPort(e: Errors, port: unknown, field: string): void {
  if (!isPlain(port)) return;
  const proto = port.protocol;
  if (proto !== undefined && proto !== null && !PROTOCOLS.includes(String(proto)))
    e.notSupported(`${field}.protocol`, proto, PROTOCOLS);
  const p = port.port;
  const end = port.endPort;
  const hasEnd = end !== undefined && end !== null;
  if (p === undefined || p === null) {
    if (hasEnd) e.invalid(`${field}.endPort`, end, 'may not be specified when `port` is not specified');
    return;
  }
  if (typeof p === 'number') {
    for (const m of portNum(p)) e.invalid(`${field}.port`, p, m);
    if (hasEnd && typeof end === 'number') {
      if (end < p) e.invalid(`${field}.endPort`, p, 'must be greater than or equal to `port`');
      for (const m of portNum(end)) e.invalid(`${field}.endPort`, end, m);
    }
  } else if (typeof p === 'string') {
    if (hasEnd) e.invalid(`${field}.endPort`, end, 'may not be specified when `port` is non-numeric');
    for (const m of portName(p)) e.invalid(`${field}.port`, p, m);
  }
}

function validateNetworkPolicy(e: Errors, raw: Plain): void {
  validateMeta(e, raw, true, dns1123Subdomain);
  const spec = isPlain(raw.spec) ? raw.spec : {};
  validateSelector(e, spec.podSelector, 'spec.podSelector');
  for (const [side, peers] of [
    ['ingress', 'from'],
    ['egress', 'to'],
  ] as const) {
    list(spec[side]).forEach((r, i) => {
      if (!isPlain(r)) return;
      list(r.ports).forEach((p, j) => validatePolicyPort(e, p, `spec.${side}[${i}].ports[${j}]`));
      list(r[peers]).forEach((p, j) => validatePeer(e, p, `spec.${side}[${i}].${peers}[${j}]`));
    });
  }
  const types = list(spec.policyTypes);
  if (types.length > 2) e.invalid('spec.policyTypes', types.join(', '), 'may not specify more than two policyTypes');
  else
    types.forEach((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress') e.notSupported(`spec.policyTypes[${i}]`, t, ['Ingress', 'Egress']);
    });
}

// ------------------------------------------------------------ Pod, Namespace, Node

function validatePod(e: Errors, raw: Plain): void {
  validateMeta(e, raw, true, dns1123Subdomain);
  const spec = isPlain(raw.spec) ? raw.spec : {};
  list(spec.containers).forEach((c, i) => {
    if (!isPlain(c)) return;
    list(c.ports).forEach((p, j) => {
      if (!isPlain(p)) return;
      const f = `spec.containers[${i}].ports[${j}]`;
      if (typeof p.containerPort === 'number')
        for (const m of portNum(p.containerPort)) e.invalid(`${f}.containerPort`, p.containerPort, m);
      if (p.protocol !== undefined && p.protocol !== null && !PROTOCOLS.includes(String(p.protocol)))
        e.notSupported(`${f}.protocol`, p.protocol, PROTOCOLS);
      if (typeof p.name === 'string' && p.name !== '')
        for (const m of portName(p.name)) e.invalid(`${f}.name`, p.name, m);
    });
  });
}

// ------------------------------------------------------------ Service, EndpointSlice

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** IsDNS1035Label: a Service's name. */
export function dns1035Label(v: string): string[] {
  const out: string[] = [];
  if (v.length > 63) out.push('must be no more than 63 characters');
  if (!DNS1035_LABEL.test(v))
    out.push(
      "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    );
  return out;
}

const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const TRAFFIC_POLICIES = ['Cluster', 'Local'];
/** core.MaxClientIPServiceAffinitySeconds. */
const MAX_AFFINITY_SECONDS = 86400;
const IP_EXAMPLE = 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)';

function validateService(e: Errors, raw: Plain): void {
  validateMeta(e, raw, true, dns1035Label);
  const spec = isPlain(raw.spec) ? raw.spec : {};
  const type = spec.type === undefined || spec.type === null || spec.type === '' ? 'ClusterIP' : spec.type;
  if (!SERVICE_TYPES.includes(String(type))) e.notSupported('spec.type', type, SERVICE_TYPES);
  const ips = list(spec.clusterIPs).length > 0 ? list(spec.clusterIPs) : spec.clusterIP ? [spec.clusterIP] : [];
  const field = list(spec.clusterIPs).length > 0 ? (i: number) => `spec.clusterIPs[${i}]` : () => 'spec.clusterIP';
  const headless = ips[0] === 'None';
  if (type === 'ExternalName') {
    if (typeof spec.externalName !== 'string' || spec.externalName === '') e.required('spec.externalName');
  } else {
    ips.forEach((ip, i) => {
      if (i === 0 && ip === 'None') return;
      if (typeof ip !== 'string' || (!isIPv4(ip) && !isIPv6(ip))) e.invalid(field(i), ip, IP_EXAMPLE);
    });
    if (ips.length > 2) e.invalid('spec.clusterIPs', ips.join(','), 'may only hold up to 2 values');
    if (
      ips.length === 2 &&
      typeof ips[0] === 'string' &&
      typeof ips[1] === 'string' &&
      isIPv4(ips[0]) === isIPv4(ips[1])
    )
      e.invalid('spec.clusterIPs', ips.join(','), 'may specify no more than one IP for each IP family');
    if (headless && type !== 'ClusterIP')
      e.invalid('spec.clusterIPs[0]', 'None', 'may only be set to "None" for ClusterIP type services');
  }
  const ports = list(spec.ports);
  if (ports.length === 0 && !headless && type !== 'ExternalName') e.required('spec.ports');
  const names = new Set<string>();
  ports.forEach((p, i) => {
    if (!isPlain(p)) return;
    const f = `spec.ports[${i}]`;
    const name = typeof p.name === 'string' ? p.name : '';
    if (ports.length > 1 && name === '') e.required(`${f}.name`);
    else if (name !== '') for (const m of dns1123Label(name)) e.invalid(`${f}.name`, name, m);
    if (names.has(name)) e.list.push({ field: `${f}.name`, message: `Duplicate value: ${shown(name)}` });
    names.add(name);
    if (typeof p.port === 'number') for (const m of portNum(p.port)) e.invalid(`${f}.port`, p.port, m);
    if (p.protocol !== undefined && p.protocol !== null && !PROTOCOLS.includes(String(p.protocol)))
      e.notSupported(`${f}.protocol`, p.protocol, PROTOCOLS);
    if (typeof p.targetPort === 'number' && p.targetPort !== 0)
      for (const m of portNum(p.targetPort)) e.invalid(`${f}.targetPort`, p.targetPort, m);
    if (typeof p.targetPort === 'string' && p.targetPort !== '' && !/^[0-9]+$/.test(p.targetPort))
      for (const m of portName(p.targetPort)) e.invalid(`${f}.targetPort`, p.targetPort, m);
    if (typeof p.nodePort === 'number' && p.nodePort !== 0) {
      if (type === 'ClusterIP' || type === 'ExternalName')
        e.forbidden(`${f}.nodePort`, `may not be used when \`type\` is '${String(type)}'`);
      else for (const m of portNum(p.nodePort)) e.invalid(`${f}.nodePort`, p.nodePort, m);
    }
  });
  if (isPlain(spec.selector)) validateLabels(e, spec.selector, 'spec.selector');
  const affinity = spec.sessionAffinity ?? 'None';
  if (!['ClientIP', 'None'].includes(String(affinity)))
    e.notSupported('spec.sessionAffinity', affinity, ['ClientIP', 'None']);
  const cfg = isPlain(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : undefined;
  const timeout = cfg && isPlain(cfg.clientIP) ? cfg.clientIP.timeoutSeconds : undefined;
  if (affinity === 'ClientIP' && typeof timeout === 'number' && (timeout <= 0 || timeout > MAX_AFFINITY_SECONDS))
    e.invalid(
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
      timeout,
      `must be greater than 0 and less than ${MAX_AFFINITY_SECONDS}`,
    );
  if (affinity === 'None' && cfg !== undefined && isPlain(cfg.clientIP))
    e.invalid('spec.sessionAffinityConfig', JSON.stringify(cfg), "must not be set when `sessionAffinity` is 'None'");
  for (const key of ['internalTrafficPolicy', 'externalTrafficPolicy'] as const) {
    const v = spec[key];
    if (v === undefined || v === null || v === '') continue;
    if (!TRAFFIC_POLICIES.includes(String(v))) e.notSupported(`spec.${key}`, v, TRAFFIC_POLICIES);
    else if (key === 'externalTrafficPolicy' && type !== 'NodePort' && type !== 'LoadBalancer')
      e.invalid(`spec.${key}`, v, "may only be set when `type` is 'NodePort' or 'LoadBalancer'");
  }
}

const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'];

function validateEndpointSlice(e: Errors, raw: Plain): void {
  validateMeta(e, raw, true, dns1123Subdomain);
  const at = raw.addressType;
  if (at === undefined || at === null || at === '') e.required('addressType');
  else if (!ADDRESS_TYPES.includes(String(at))) e.notSupported('addressType', at, ADDRESS_TYPES);
  list(raw.endpoints).forEach((ep, i) => {
    if (!isPlain(ep)) return;
    const f = `endpoints[${i}].addresses`;
    const addrs = list(ep.addresses);
    if (addrs.length === 0) e.required(f, 'must contain at least 1 address');
    addrs.forEach((a, j) => {
      if (typeof a !== 'string') return;
      if (at === 'IPv4' && !isIPv4(a)) e.invalid(`${f}[${j}]`, a, 'must be a valid IPv4 address');
      if (at === 'IPv6' && !isIPv6(a)) e.invalid(`${f}[${j}]`, a, 'must be a valid IPv6 address');
      if (at === 'FQDN') for (const m of dns1123Subdomain(a)) e.invalid(`${f}[${j}]`, a, m);
    });
    if (typeof ep.nodeName === 'string')
      for (const m of dns1123Subdomain(ep.nodeName)) e.invalid(`endpoints[${i}].nodeName`, ep.nodeName, m);
  });
  const names = new Set<string>();
  list(raw.ports).forEach((p, i) => {
    if (!isPlain(p)) return;
    const f = `ports[${i}]`;
    const name = typeof p.name === 'string' ? p.name : '';
    if (name !== '') for (const m of dns1123Label(name)) e.invalid(`${f}.name`, name, m);
    if (names.has(name)) e.list.push({ field: `${f}.name`, message: `Duplicate value: ${shown(name)}` });
    names.add(name);
    if (p.protocol !== undefined && p.protocol !== null && !PROTOCOLS.includes(String(p.protocol)))
      e.notSupported(`${f}.protocol`, p.protocol, PROTOCOLS);
    if (typeof p.port === 'number') for (const m of portNum(p.port)) e.invalid(`${f}.port`, p.port, m);
  });
}

/**
 * The API server's field errors for one plain object, empty when it would accept it. Kinds
 * weir does not read give no errors.
 */
export function validateObject(raw: unknown): FieldError[] {
  if (!isPlain(raw)) return [];
  const e = new Errors();
  switch (raw.kind) {
    case 'NetworkPolicy':
      validateNetworkPolicy(e, raw);
      break;
    case 'Pod':
      validatePod(e, raw);
      break;
    case 'Namespace':
      validateMeta(e, raw, false, dns1123Label);
      break;
    case 'Node':
      validateMeta(e, raw, false, dns1123Subdomain);
      break;
    case 'Service':
      validateService(e, raw);
      break;
    case 'EndpointSlice':
      validateEndpointSlice(e, raw);
      break;
  }
  return e.list;
}
