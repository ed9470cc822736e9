/**
 * `weir observe` flags -> the flow API's whitelist/blacklist, with Hubble CLI meanings:
 * flags of different kinds must all match (AND), repeated flags are alternatives (OR),
 * --pod / --namespace / --label / --ip / --port / --identity match either side, and
 * --not before a flag turns that one flag into an exclusion. Flags combine by building
 * filters: the AND of two values of one field is computed from what they mean (CIDR
 * containment, pod name prefixes, label selectors joined), never by comparing strings.
 * A pod given without a namespace is in "default", as in Hubble.
 */
import { BlockList, isIP } from 'node:net';
import { EVENT_TYPE_NAMES, parseDropReason, DROP_REASON_NAMES } from './names.js';
import { TrafficDirection, Verdict, type FlowFilter, type TCPFlags } from './types.js';

export const FILTER_FLAGS = [
  'namespace',
  'fromNamespace',
  'toNamespace',
  'pod',
  'fromPod',
  'toPod',
  'label',
  'fromLabel',
  'toLabel',
  'ip',
  'fromIp',
  'toIp',
  'identity',
  'fromIdentity',
  'toIdentity',
  'port',
  'fromPort',
  'toPort',
  'verdict',
  'protocol',
  'type',
  'dropReason',
  'trafficDirection',
  'ipVersion',
  'nodeName',
  'tcpFlags',
  'interface',
  'toService',
] as const;
export type FilterFlag = (typeof FILTER_FLAGS)[number];
export type FilterFlagValues = Partial<Record<FilterFlag, string[]>>;

export class FlagError extends Error {}

function verdicts(values: string[]): number[] {
  return values.map((v) => {
    const u = v.toUpperCase();
    if (u === 'FORWARDED') return Verdict.FORWARDED;
    if (u === 'DROPPED') return Verdict.DROPPED;
    throw new FlagError(`--verdict: unknown verdict "${v}", use FORWARDED or DROPPED`);
  });
}

function directions(values: string[]): number[] {
  return values.map((v) => {
    const u = v.toLowerCase();
    if (u === 'ingress') return TrafficDirection.INGRESS;
    if (u === 'egress') return TrafficDirection.EGRESS;
    throw new FlagError(`--traffic-direction: unknown direction "${v}", use ingress or egress`);
  });
}

function identities(values: string[], flag: string): number[] {
  return values.map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
      throw new FlagError(`${flag}: "${v}" is not an identity number`);
    return n;
  });
}

function portsOf(values: string[], flag: string): string[] {
  for (const v of values) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new FlagError(`${flag}: "${v}" is not a port number (0-65535)`);
  }
  return values;
}

export const DEFAULT_NAMESPACE = 'default';

function qualify(pods: string[], ns: string[] | undefined, flag: string): string[] {
  if (!ns || ns.length === 0) return pods.map((p) => (p.includes('/') ? p : `${DEFAULT_NAMESPACE}/${p}`));
  const out: string[] = [];
  for (const p of pods) {
    if (p.includes('/')) out.push(p);
    else for (const n of ns) out.push(`${n}/${p}`);
  }
  if (out.length === 0) throw new FlagError(`${flag}: give a pod name`);
  return out;
}

/**
 * One criterion is a list of alternative partial filters; the result is the cross product
 * of all criteria (AND across criteria, OR inside one).
 */
type Criterion = FlowFilter[];

function either(src: keyof FlowFilter, dst: keyof FlowFilter, values: unknown[]): Criterion {
  return [{ [src]: values } as FlowFilter, { [dst]: values } as FlowFilter];
}

function criteria(v: FilterFlagValues): Criterion[] {
  const out: Criterion[] = [];
  const has = (k: FilterFlag): string[] | undefined => (v[k] && v[k]!.length > 0 ? v[k] : undefined);

  // Pods first: a namespace given with pods qualifies them instead of adding a criterion.
  let nsUsed = false;
  let fromNsUsed = false;
  let toNsUsed = false;
  if (has('fromPod')) {
    const ns = has('fromNamespace') ?? has('namespace');
    fromNsUsed = has('fromNamespace') !== undefined;
    nsUsed ||= !fromNsUsed && ns !== undefined;
    out.push([{ source_pod: qualify(v.fromPod!, ns, '--from-pod') }]);
  }
  if (has('toPod')) {
    const ns = has('toNamespace') ?? has('namespace');
    toNsUsed = has('toNamespace') !== undefined;
    nsUsed ||= !toNsUsed && ns !== undefined;
    out.push([{ destination_pod: qualify(v.toPod!, ns, '--to-pod') }]);
  }
  if (has('pod')) {
    const ns = has('namespace');
    nsUsed ||= ns !== undefined;
    out.push(either('source_pod', 'destination_pod', qualify(v.pod!, ns, '--pod')));
  }
  if (has('fromNamespace') && !fromNsUsed) out.push([{ source_pod: v.fromNamespace!.map((n) => `${n}/`) }]);
  if (has('toNamespace') && !toNsUsed) out.push([{ destination_pod: v.toNamespace!.map((n) => `${n}/`) }]);
  if (has('namespace') && !nsUsed)
    out.push(
      either(
        'source_pod',
        'destination_pod',
        v.namespace!.map((n) => `${n}/`),
      ),
    );

  if (has('label')) out.push(either('source_label', 'destination_label', v.label!));
  if (has('fromLabel')) out.push([{ source_label: v.fromLabel! }]);
  if (has('toLabel')) out.push([{ destination_label: v.toLabel! }]);
  if (has('ip')) out.push(either('source_ip', 'destination_ip', v.ip!));
  if (has('fromIp')) out.push([{ source_ip: v.fromIp! }]);
  if (has('toIp')) out.push([{ destination_ip: v.toIp! }]);
  if (has('identity'))
    out.push(either('source_identity', 'destination_identity', identities(v.identity!, '--identity')));
  if (has('fromIdentity')) out.push([{ source_identity: identities(v.fromIdentity!, '--from-identity') }]);
  if (has('toIdentity')) out.push([{ destination_identity: identities(v.toIdentity!, '--to-identity') }]);
  if (has('port')) out.push(either('source_port', 'destination_port', portsOf(v.port!, '--port')));
  if (has('fromPort')) out.push([{ source_port: portsOf(v.fromPort!, '--from-port') }]);
  if (has('toPort')) out.push([{ destination_port: portsOf(v.toPort!, '--to-port') }]);
  if (has('verdict')) out.push([{ verdict: verdicts(v.verdict!) }]);
  if (has('protocol')) out.push([{ protocol: v.protocol!.map((p) => p.toLowerCase()) }]);
  if (has('type')) {
    out.push([
      {
        event_type: v.type!.map((t) => {
          const n = EVENT_TYPE_NAMES[t.toLowerCase()] ?? (/^\d+$/.test(t) ? Number(t) : undefined);
          if (n === undefined)
            throw new FlagError(`--type: unknown event type "${t}", use ${Object.keys(EVENT_TYPE_NAMES).join(' or ')}`);
          return { type: n };
        }),
      },
    ]);
  }
  if (has('dropReason')) {
    out.push([
      {
        drop_reason_desc: v.dropReason!.map((r) => {
          const n = parseDropReason(r);
          if (n === undefined)
            throw new FlagError(`--drop-reason: unknown reason "${r}", use one of ${DROP_REASON_NAMES.join(', ')}`);
          return n;
        }),
      },
    ]);
  }
  if (has('trafficDirection')) out.push([{ traffic_direction: directions(v.trafficDirection!) }]);
  if (has('ipVersion')) {
    out.push([
      {
        ip_version: [
          ...new Set(
            v.ipVersion!.map((x) => {
              const s = x.toLowerCase().replace(/^(ipv|v)/, '');
              if (s === '4') return 1;
              if (s === '6') return 2;
              throw new FlagError(`--ip-version: "${x}" is neither v4 nor v6`);
            }),
          ),
        ],
      },
    ]);
  }
  if (has('nodeName')) out.push([{ node_name: v.nodeName! }]);
  if (has('tcpFlags')) out.push([{ tcp_flags: v.tcpFlags!.map(parseTcpFlags) }]);
  if (has('interface')) out.push([{ interface: v.interface!.map((name) => ({ name })) }]);
  if (has('toService')) out.push([{ destination_service: v.toService! }]);
  return out;
}

const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const;

/** "SYN,ACK" -> { SYN: true, ACK: true }: a flow matches when it has all of them. */
function parseTcpFlags(v: string): TCPFlags & { NS?: boolean } {
  const out: Record<string, boolean> = {};
  for (const raw of v.split(',')) {
    const f = raw.trim().toUpperCase();
    if (!(TCP_FLAGS as readonly string[]).includes(f))
      throw new FlagError(`--tcp-flags: unknown flag "${raw}", use ${TCP_FLAGS.join(', ')} (comma-separated)`);
    out[f] = true;
  }
  return out;
}

interface Net {
  list: BlockList;
  addr: string;
  bits: number;
  type: 'ipv4' | 'ipv6';
}

function net(v: string): Net {
  const [addr = '', prefix] = v.split('/');
  const fam = isIP(addr);
  if (fam === 0) throw new FlagError(`"${v}" is not an IP address or CIDR (e.g. 10.0.0.5 or 10.0.0.0/24)`);
  const type = fam === 6 ? 'ipv6' : 'ipv4';
  const max = fam === 6 ? 128 : 32;
  const bits = prefix === undefined ? max : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new FlagError(`"${v}" has an invalid prefix length`);
  const list = new BlockList();
  list.addSubnet(addr, bits, type);
  return { list, addr, bits, type };
}

/** The addresses in both a and b: the narrower of the two when one contains the other, else none. */
function intersectCidr(a: string, b: string): string | undefined {
  const x = net(a);
  const y = net(b);
  if (x.type !== y.type) return undefined;
  if (x.bits <= y.bits && x.list.check(y.addr, y.type)) return b;
  if (y.bits <= x.bits && y.list.check(x.addr, x.type)) return a;
  return undefined;
}

/** Pods matching both "ns/prefix" values: same namespace, the longer prefix when one extends the other. */
function intersectPod(a: string, b: string): string | undefined {
  const [na = '', pa = ''] = a.split('/', 2);
  const [nb = '', pb = ''] = b.split('/', 2);
  if (na !== nb) return undefined;
  if (pa.startsWith(pb)) return a;
  if (pb.startsWith(pa)) return b;
  return undefined;
}

function intersectTcpFlags(a: TCPFlags, b: TCPFlags): TCPFlags {
  return { ...a, ...b };
}

function intersectEventType(
  a: { type: number; match_sub_type?: boolean; sub_type?: number },
  b: { type: number; match_sub_type?: boolean; sub_type?: number },
) {
  if (a.type !== b.type) return undefined;
  if (!a.match_sub_type) return b;
  if (!b.match_sub_type) return a;
  return a.sub_type === b.sub_type ? a : undefined;
}

function sameValue(a: unknown, b: unknown): unknown {
  if (typeof a === 'string' && typeof b === 'string' && /^\d+$/.test(a) && /^\d+$/.test(b))
    return Number(a) === Number(b) ? a : undefined; // ports
  if (typeof a === 'object' || typeof b === 'object') return JSON.stringify(a) === JSON.stringify(b) ? a : undefined;
  return a === b ? a : undefined;
}

/** How two values of one field AND together: the value matching exactly what both match, or none. */
const INTERSECT: Record<string, (a: never, b: never) => unknown> = {
  source_ip: intersectCidr,
  destination_ip: intersectCidr,
  source_pod: intersectPod,
  destination_pod: intersectPod,
  tcp_flags: intersectTcpFlags,
  event_type: intersectEventType,
};

/**
 * AND of two partial filters. A field set in both becomes the pairwise intersection of its
 * values (values stay ORed); label selectors join into one selector. Undefined when no
 * flow can match both.
 */
function merge(a: FlowFilter, b: FlowFilter): FlowFilter | undefined {
  const out: Record<string, unknown[]> = { ...(a as Record<string, unknown[]>) };
  for (const [k, vb] of Object.entries(b as Record<string, unknown[]>)) {
    const va = out[k];
    if (va === undefined) out[k] = vb;
    else if (k === 'source_label' || k === 'destination_label') {
      out[k] = (va as string[]).flatMap((x) => (vb as string[]).map((y) => `${x},${y}`));
    } else {
      const meet = (INTERSECT[k] ?? sameValue) as (x: unknown, y: unknown) => unknown;
      const keep: unknown[] = [];
      for (const x of va)
        for (const y of vb) {
          const m = meet(x, y);
          if (m !== undefined && !keep.some((z) => JSON.stringify(z) === JSON.stringify(m))) keep.push(m);
        }
      if (keep.length === 0) return undefined;
      out[k] = keep;
    }
  }
  return out as FlowFilter;
}

function crossProduct(cs: Criterion[]): FlowFilter[] {
  let acc: FlowFilter[] = [{}];
  for (const c of cs) {
    const next: FlowFilter[] = [];
    for (const a of acc) {
      for (const b of c) {
        const m = merge(a, b);
        if (m) next.push(m);
      }
    }
    acc = next;
  }
  return acc;
}

/** The whitelist for the flags given without --not. Empty: every flow. */
export function buildWhitelist(v: FilterFlagValues): FlowFilter[] {
  const cs = criteria(v);
  if (cs.length === 0) return [];
  const filters = crossProduct(cs);
  if (filters.length === 0) throw new FlagError('these filter flags exclude each other: no flow can match them all');
  return filters;
}

/** The blacklist: each flag given after --not excludes what it alone would select. */
export function buildBlacklist(negated: Array<{ flag: FilterFlag; value: string }>): FlowFilter[] {
  return negated.flatMap(({ flag, value }) => crossProduct(criteria({ [flag]: [value] })));
}
