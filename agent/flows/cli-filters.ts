/**
 * `weir observe` flags -> the flow API's whitelist/blacklist, with Hubble CLI meanings:
 * flags of different kinds must all match (AND), repeated flags are alternatives (OR),
 * --pod / --namespace / --label / --ip / --port / --identity match either side, and
 * --not before a flag turns that one flag into an exclusion.
 */
import { EVENT_TYPE_NAMES, parseDropReason, DROP_REASON_NAMES } from './names.js';
import { TrafficDirection, Verdict, type FlowFilter } from './types.js';

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

function qualify(pods: string[], ns: string[] | undefined, flag: string): string[] {
  if (!ns || ns.length === 0) return pods;
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
        ip_version: v.ipVersion!.map((x) => {
          const s = x.toLowerCase().replace(/^ipv/, '');
          if (s === '4') return 1;
          if (s === '6') return 2;
          throw new FlagError(`--ip-version: "${x}" is neither 4 nor 6`);
        }),
      },
    ]);
  }
  return out;
}

/** AND of two partial filters. Label selectors combine into one selector; other fields intersect. */
function merge(a: FlowFilter, b: FlowFilter): FlowFilter | undefined {
  const out: Record<string, unknown[]> = { ...(a as Record<string, unknown[]>) };
  for (const [k, vb] of Object.entries(b as Record<string, unknown[]>)) {
    const va = out[k];
    if (va === undefined) out[k] = vb;
    else if (k === 'source_label' || k === 'destination_label') {
      out[k] = (va as string[]).flatMap((x) => (vb as string[]).map((y) => `${x},${y}`));
    } else {
      const keep = va.filter((x) => vb.some((y) => JSON.stringify(y) === JSON.stringify(x)));
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
