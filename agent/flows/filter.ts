/**
 * Flow filters with Hubble's semantics: the fields set in one FlowFilter must all match
 * (AND), the values of one field are alternatives (OR); a flow passes when it matches
 * any whitelist filter (or there is none) and no blacklist filter.
 */
import { BlockList, isIP } from 'node:net';
import { compileLabelSelector } from './label-selector.js';
import { EVENT_TYPE } from './names.js';
import type { Endpoint, Flow, FlowFilter, GetFlowsRequest } from './types.js';

export type FlowPredicate = (f: Flow) => boolean;

export class FilterError extends Error {}

const POLICY_DROP_REASONS = new Set([133, 1002]);

/**
 * FlowFilter fields Hubble has and weir cannot evaluate (no L7, DNS, services in flows,
 * workloads, clusters, node labels, tracing, CEL). A filter setting one is refused with
 * the field's name: answering as if it were unset would return flows it excludes.
 */
export const UNSUPPORTED_FILTER_FIELDS = [
  'source_ip_xlated',
  'source_fqdn',
  'source_service',
  'source_workload',
  'source_cluster_name',
  'destination_fqdn',
  'destination_workload',
  'destination_cluster_name',
  'http_status_code',
  'dns_query',
  'http_method',
  'http_path',
  'http_url',
  'http_header',
  'node_labels',
  'trace_id',
  'ip_trace_id',
  'experimental',
] as const;

function isSet(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.values(v).some(isSet);
  return v !== '' && v !== 0 && v !== false;
}

/** Throws FilterError when a filter sets a field weir cannot evaluate. */
export function checkSupported(ff: FlowFilter, where = 'filter'): void {
  for (const field of UNSUPPORTED_FILTER_FIELDS) {
    if (isSet(ff[field])) {
      throw new FilterError(
        `${where}: field "${field}" is not supported by weir (weir evaluates ${SUPPORTED_FILTER_FIELDS.join(', ')})`,
      );
    }
  }
}

export const SUPPORTED_FILTER_FIELDS = [
  'uuid',
  'source_ip',
  'source_pod',
  'source_label',
  'destination_ip',
  'destination_pod',
  'destination_label',
  'destination_service',
  'traffic_direction',
  'verdict',
  'drop_reason_desc',
  'interface',
  'event_type',
  'protocol',
  'source_port',
  'destination_port',
  'reply',
  'source_identity',
  'destination_identity',
  'tcp_flags',
  'node_name',
  'ip_version',
  'encrypted',
] as const;

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const;

/** A node-name pattern ("k8s-*", "worker-1") as a RegExp; "*" is any run of characters. */
function nodePattern(p: string): RegExp {
  if (p.includes('/'))
    throw new FilterError(`node_name: "${p}" names a cluster; weir serves one cluster, give the node name only`);
  const body = p
    .split('*')
    .map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

function ipMatcher(values: string[], field: string): (ip: string) => boolean {
  const list = new BlockList();
  for (const v of values) {
    const [addr, prefix] = v.split('/');
    const family = isIP(addr ?? '');
    if (family === 0)
      throw new FilterError(`${field}: "${v}" is not an IP address or CIDR (e.g. 10.0.0.5 or 10.0.0.0/24)`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(addr!, type);
    else {
      const bits = Number(prefix);
      if (!Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
        throw new FilterError(`${field}: "${v}" has an invalid prefix length`);
      }
      list.addSubnet(addr!, bits, type);
    }
  }
  return (ip) => {
    if (ip === '') return false;
    return list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
  };
}

function podMatcher(values: string[]): (ep: Endpoint) => boolean {
  const parsed = values.map((v) => {
    const slash = v.indexOf('/');
    return slash >= 0 ? { ns: v.slice(0, slash), prefix: v.slice(slash + 1) } : { ns: undefined, prefix: v };
  });
  return (ep) =>
    parsed.some((p) =>
      p.ns !== undefined
        ? p.ns === ep.namespace && ep.pod_name.startsWith(p.prefix)
        : ep.pod_name !== '' && ep.pod_name.startsWith(p.prefix),
    );
}

function labelMatcher(values: string[], field: string): (ep: Endpoint) => boolean {
  const matchers = values.map((v) => {
    try {
      return compileLabelSelector(v);
    } catch (e) {
      throw new FilterError(`${field}: ${(e as Error).message}`);
    }
  });
  return (ep) => matchers.some((m) => m(ep.labels));
}

const PROTOCOLS = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv4', 'icmpv6'];

function protocolMatcher(values: string[]): FlowPredicate {
  const want = new Set(values.map((v) => v.toLowerCase()));
  for (const p of want) {
    if (!PROTOCOLS.includes(p)) throw new FilterError(`protocol: unknown "${p}", use one of ${PROTOCOLS.join(', ')}`);
  }
  return (f) => {
    const l4 = f.l4;
    if (l4.TCP) return want.has('tcp');
    if (l4.UDP) return want.has('udp');
    if (l4.SCTP) return want.has('sctp');
    if (l4.ICMPv4) return want.has('icmp') || want.has('icmpv4');
    if (l4.ICMPv6) return want.has('icmp') || want.has('icmpv6');
    return false;
  };
}

function ports(f: Flow): { source_port: number; destination_port: number } | undefined {
  return f.l4.TCP ?? f.l4.UDP ?? f.l4.SCTP;
}

function portSet(values: string[], field: string): Set<number> {
  return new Set(
    values.map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new FilterError(`${field}: "${v}" is not a port number (0-65535)`);
      return n;
    }),
  );
}

/** Compiles one FlowFilter; throws FilterError naming the field when a value is invalid. */
export function compileFilter(ff: FlowFilter): FlowPredicate {
  const preds: FlowPredicate[] = [];
  const has = <T>(a: T[] | undefined): a is T[] => a !== undefined && a.length > 0;
  checkSupported(ff);

  if (has(ff.uuid)) {
    const s = new Set(ff.uuid);
    preds.push((f) => f.uuid !== '' && s.has(f.uuid));
  }
  if (has(ff.source_ip)) {
    const m = ipMatcher(ff.source_ip, 'source_ip');
    preds.push((f) => m(f.IP.source));
  }
  if (has(ff.destination_ip)) {
    const m = ipMatcher(ff.destination_ip, 'destination_ip');
    preds.push((f) => m(f.IP.destination));
  }
  if (has(ff.source_pod)) {
    const m = podMatcher(ff.source_pod);
    preds.push((f) => m(f.source));
  }
  if (has(ff.destination_pod)) {
    const m = podMatcher(ff.destination_pod);
    preds.push((f) => m(f.destination));
  }
  if (has(ff.source_label)) {
    const m = labelMatcher(ff.source_label, 'source_label');
    preds.push((f) => m(f.source));
  }
  if (has(ff.destination_label)) {
    const m = labelMatcher(ff.destination_label, 'destination_label');
    preds.push((f) => m(f.destination));
  }
  if (has(ff.traffic_direction)) {
    const s = new Set(ff.traffic_direction);
    preds.push((f) => s.has(f.traffic_direction));
  }
  if (has(ff.verdict)) {
    const s = new Set(ff.verdict);
    preds.push((f) => s.has(f.verdict));
  }
  if (has(ff.event_type)) {
    const types = ff.event_type;
    preds.push((f) =>
      types.some((t) => {
        const isPolicyDrop =
          t.type === EVENT_TYPE.policyVerdict &&
          f.event_type.type === EVENT_TYPE.drop &&
          POLICY_DROP_REASONS.has(f.drop_reason_desc);
        if (f.event_type.type !== t.type && !isPolicyDrop) return false;
        return !t.match_sub_type || f.event_type.sub_type === (t.sub_type ?? 0);
      }),
    );
  }
  if (has(ff.protocol)) preds.push(protocolMatcher(ff.protocol));
  if (has(ff.source_port)) {
    const s = portSet(ff.source_port, 'source_port');
    preds.push((f) => {
      const p = ports(f);
      return p !== undefined && s.has(p.source_port);
    });
  }
  if (has(ff.destination_port)) {
    const s = portSet(ff.destination_port, 'destination_port');
    preds.push((f) => {
      const p = ports(f);
      return p !== undefined && s.has(p.destination_port);
    });
  }
  if (has(ff.reply)) {
    const s = new Set(ff.reply);
    preds.push((f) => s.has(f.reply));
  }
  if (has(ff.source_identity)) {
    const s = new Set(ff.source_identity);
    preds.push((f) => s.has(f.source.identity));
  }
  if (has(ff.destination_identity)) {
    const s = new Set(ff.destination_identity);
    preds.push((f) => s.has(f.destination.identity));
  }
  if (has(ff.ip_version)) {
    const s = new Set(ff.ip_version);
    preds.push((f) => s.has(f.IP.ipVersion));
  }
  if (has(ff.drop_reason_desc)) {
    const s = new Set(ff.drop_reason_desc);
    preds.push((f) => s.has(f.drop_reason_desc));
  }
  if (has(ff.interface)) {
    const ifs = ff.interface;
    preds.push((f) =>
      ifs.some((i) => (!i.name || i.name === f.interface.name) && (!i.index || i.index === f.interface.index)),
    );
  }
  if (has(ff.tcp_flags)) {
    // A flow matches one TCPFlags value when it has every flag that value sets.
    const sets = ff.tcp_flags.map((t) => TCP_FLAG_NAMES.filter((n) => t[n as keyof typeof t] === true));
    preds.push((f) => {
      const fl = f.l4.TCP?.flags;
      if (!fl) return false;
      return sets.some((want) => want.every((n) => fl[n as keyof typeof fl] === true));
    });
  }
  if (has(ff.destination_service)) {
    // "namespace/name", "namespace/" (every Service of it) or "name" (in any namespace).
    const want = ff.destination_service;
    preds.push((f) => {
      const s = f.destination_service;
      if (!s) return false;
      return want.some((w) =>
        w.endsWith('/')
          ? s.namespace === w.slice(0, -1)
          : w.includes('/')
            ? w === `${s.namespace}/${s.name}`
            : w === s.name,
      );
    });
  }
  if (has(ff.node_name)) {
    const res = ff.node_name.map(nodePattern);
    preds.push((f) => res.some((r) => r.test(f.node_name)));
  }
  if (has(ff.encrypted)) {
    // weir never encrypts: every flow is unencrypted.
    const s = new Set(ff.encrypted);
    preds.push(() => s.has(false));
  }
  if (preds.length === 0) return () => true;
  if (preds.length === 1) return preds[0]!;
  return (f) => preds.every((p) => p(f));
}

/** Throws FilterError when a GetFlows request asks for something weir cannot honour. */
export function checkRequest(req: GetFlowsRequest): void {
  if (isSet(req.field_mask)) throw new FilterError('field "field_mask" is not supported by weir: every field is sent');
  if (isSet(req.experimental))
    throw new FilterError('field "experimental" is not supported by weir: every field is sent');
  if (isSet(req.extensions)) throw new FilterError('field "extensions" is not supported by weir');
  (req.whitelist ?? []).forEach((f, i) => checkSupported(f, `whitelist[${i}]`));
  (req.blacklist ?? []).forEach((f, i) => checkSupported(f, `blacklist[${i}]`));
}

/** whitelist - blacklist, as GetFlows applies them. */
export function compileFilters(whitelist: FlowFilter[] = [], blacklist: FlowFilter[] = []): FlowPredicate {
  const allow = whitelist.map(compileFilter);
  const deny = blacklist.map(compileFilter);
  if (allow.length === 0 && deny.length === 0) return () => true;
  return (f) => (allow.length === 0 || allow.some((p) => p(f))) && !deny.some((p) => p(f));
}
