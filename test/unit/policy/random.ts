/** Seeded random clusters and policies for the differential and incremental tests. */
import type { KubeObject } from '../../../agent/store/types.js';
import { toKubeObject } from '../../../agent/store/convert.js';

/** mulberry32: small, seeded, good enough for test inputs. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

export const NODES = ['node-1', 'node-2'];
export const POD_CIDRS = ['10.244.0.0/16', 'fd00:10:244::/56'];
const APPS = ['web', 'db', 'api'];
const TIERS = ['fe', 'be'];
const TEAMS = ['red', 'blue'];
const ENVS = ['prod', 'dev'];
export const QUERY_PORTS = [53, 80, 81, 8080, 9090, 9091];
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

/** Container ports depend on the app label only, as pods of one workload share a template. */
function portsFor(app: string | undefined): { name: string; containerPort: number; protocol: string }[] {
  switch (app) {
    case 'web':
      return [
        { name: 'http', containerPort: 80, protocol: 'TCP' },
        { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
      ];
    case 'db':
      return [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
      ];
    case 'api':
      return [
        { name: 'http', containerPort: 81, protocol: 'TCP' },
        { name: 'metrics', containerPort: 9091, protocol: 'TCP' },
        { name: 'dns', containerPort: 53, protocol: 'SCTP' },
      ];
    default:
      return [];
  }
}

export function randomNamespace(r: Rng, name: string): KubeObject {
  const labels: Record<string, string> = {};
  if (r.chance(0.7)) labels.team = r.pick(TEAMS);
  if (r.chance(0.5)) labels.env = r.pick(ENVS);
  return toKubeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } })!;
}

export function randomPodLabels(r: Rng): Record<string, string> {
  const labels: Record<string, string> = {};
  if (r.chance(0.85)) labels.app = r.pick(APPS);
  if (r.chance(0.5)) labels.tier = r.pick(TIERS);
  if (r.chance(0.3)) labels['pod-template-hash'] = `h${r.int(5)}`;
  return labels;
}

export function podObject(
  ns: string,
  name: string,
  labels: Record<string, string>,
  index: number,
  node: string,
  hostNetwork = false,
): KubeObject {
  const ips = hostNetwork
    ? [`192.168.0.${NODES.indexOf(node) + 1}`]
    : [`10.244.${Math.floor(index / 200)}.${(index % 200) + 2}`, `fd00:10:244::${index.toString(16)}:2`];
  return toKubeObject({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: { nodeName: node, hostNetwork, containers: [{ name: 'main', ports: portsFor(labels.app) }] },
    status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
  })!;
}

function randomSelector(r: Rng, kind: 'pod' | 'ns'): Record<string, unknown> {
  const keys = kind === 'pod' ? ['app', 'tier'] : ['team', 'env'];
  const vals: Record<string, string[]> = kind === 'pod' ? { app: APPS, tier: TIERS } : { team: TEAMS, env: ENVS };
  const pickVal = (k: string): string => r.pick(vals[k]!);
  const sel: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } = {};
  const roll = r.int(4);
  if (roll === 0) return {};
  if (roll >= 1) {
    const k = r.pick(keys);
    sel.matchLabels = { [k]: pickVal(k) };
  }
  if (roll >= 2) {
    const k = r.pick(keys);
    const op = r.pick(['In', 'NotIn', 'Exists', 'DoesNotExist']);
    sel.matchExpressions = [
      op === 'In' || op === 'NotIn'
        ? { key: k, operator: op, values: [pickVal(k), ...(r.chance(0.5) ? [pickVal(k)] : [])] }
        : { key: k, operator: op },
    ];
    if (roll === 3 && r.chance(0.5)) delete sel.matchLabels;
  }
  return sel;
}

function randomPeer(r: Rng): Record<string, unknown> {
  switch (r.int(5)) {
    case 0:
      return { podSelector: randomSelector(r, 'pod') };
    case 1:
      return { namespaceSelector: randomSelector(r, 'ns') };
    case 2:
      return { namespaceSelector: randomSelector(r, 'ns'), podSelector: randomSelector(r, 'pod') };
    case 3:
      return {
        ipBlock: r.chance(0.5)
          ? { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }
          : { cidr: r.pick(['10.244.0.0/24', '10.0.0.0/8', '::/0', '203.0.113.0/24']) },
      };
    default:
      return r.chance(0.2) ? { ipBlock: { cidr: '10.0.0.0/8', except: ['not-a-cidr'] } } : { podSelector: {} };
  }
}

function randomPort(r: Rng): Record<string, unknown> {
  const proto = r.chance(0.3) ? {} : { protocol: r.pick(PROTOCOLS) };
  switch (r.int(6)) {
    case 0:
      return { ...proto, port: r.pick(QUERY_PORTS) };
    case 1:
      return { ...proto, port: r.pick([80, 8080, 9090]), endPort: r.pick([81, 9091, 8080]) };
    case 2:
      return { ...proto, port: r.pick(['http', 'metrics', 'dns']) };
    case 3:
      return proto.protocol ? proto : { protocol: 'UDP' };
    case 4:
      return { ...proto, port: r.pick(QUERY_PORTS) };
    default:
      return r.chance(0.3) ? { port: 70000 } : { ...proto, port: 81 };
  }
}

export function randomPolicy(r: Rng, ns: string, name: string): KubeObject {
  const rules = (peerKey: 'from' | 'to'): unknown[] =>
    Array.from({ length: r.int(3) }, () => {
      const rule: Record<string, unknown> = {};
      if (r.chance(0.7)) rule[peerKey] = Array.from({ length: 1 + r.int(2) }, () => randomPeer(r));
      if (r.chance(0.6)) rule.ports = Array.from({ length: 1 + r.int(2) }, () => randomPort(r));
      return rule;
    });
  const spec: Record<string, unknown> = { podSelector: randomSelector(r, 'pod') };
  if (r.chance(0.8)) spec.ingress = rules('from');
  if (r.chance(0.6)) spec.egress = rules('to');
  const types = r.int(4);
  if (types === 1) spec.policyTypes = ['Ingress'];
  if (types === 2) spec.policyTypes = ['Egress'];
  if (types === 3) spec.policyTypes = ['Ingress', 'Egress'];
  return toKubeObject({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec,
  })!;
}

export function nodeObject(name: string): KubeObject {
  const i = NODES.indexOf(name);
  return toKubeObject({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: { podCIDRs: [`10.244.${100 + i}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: `192.168.0.${i + 1}` }] },
  })!;
}

export interface RandomCluster {
  objects: KubeObject[];
  namespaces: string[];
}

export function randomCluster(
  r: Rng,
  opts: { namespaces?: number; pods?: number; policies?: number } = {},
): RandomCluster {
  const namespaces = Array.from({ length: opts.namespaces ?? 2 + r.int(3) }, (_, i) => `n${i}`);
  const objects: KubeObject[] = [...NODES.map(nodeObject), ...namespaces.map((n) => randomNamespace(r, n))];
  const pods = opts.pods ?? 3 + r.int(6);
  for (let i = 0; i < pods; i++) {
    objects.push(
      podObject(
        r.pick(namespaces),
        `p${i}`,
        randomPodLabels(r),
        i,
        r.chance(0.75) ? NODES[0]! : NODES[1]!,
        r.chance(0.05),
      ),
    );
  }
  const policies = opts.policies ?? 1 + r.int(4);
  for (let i = 0; i < policies; i++) objects.push(randomPolicy(r, r.pick(namespaces), `np${i}`));
  return { objects, namespaces };
}
