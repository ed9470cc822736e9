/**
 * The upstream NetworkPolicy e2e model: namespaces x, y, z (labelled ns=<name>), pods a, b, c
 * (labelled pod=<name>) serving 80 and 81 on TCP, UDP and SCTP with named ports
 * serve-<port>-<proto>. Expectations are written as in the upstream suite (Reachability),
 * and checked twice: against `explain` and against a simulation of the datapath's lookup
 * over the compiled entries, with each peer's identity taken from the ipcache (IPv4 and IPv6).
 */
import type { L4Protocol } from '../../../agent/desired.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { policyMatrix, formatTruthTable } from '../../../agent/policy/matrix.js';
import type { ConnectivityMatrix } from '../../../agent/policy/matrix.js';
import { simulateConnection } from '../../../agent/policy/simulate.js';
import { toKubeObject } from '../../../agent/store/convert.js';
import type { KubeObject } from '../../../agent/store/types.js';
import { Reachability as E2eReachability } from '../../e2e/reachability.js';
import type { Peer } from '../../e2e/reachability.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;
export const ALL = NAMESPACES.flatMap((ns) => PODS.map((p) => `${ns}/${p}`));
export const NODE = 'node-1';
export const POD_CIDRS = ['10.244.0.0/16', 'fd00:10:244::/56'];

export function namespaceObj(ns: string, labels: Record<string, string> = { ns }): KubeObject {
  return toKubeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } })!;
}

export function podObj(
  ns: string,
  pod: string,
  labels: Record<string, string> = { pod },
  extra: { node?: string; ips?: string[] } = {},
): KubeObject {
  const ni = NAMESPACES.indexOf(ns as 'x') >= 0 ? NAMESPACES.indexOf(ns as 'x') : 9;
  const pi = PODS.indexOf(pod as 'a') >= 0 ? PODS.indexOf(pod as 'a') : 9;
  const ips = extra.ips ?? [`10.244.${ni}.${pi + 10}`, `fd00:10:244::${ni}:${pi + 10}`];
  const ports = [80, 81].flatMap((port) =>
    (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({
      name: `serve-${port}-${protocol.toLowerCase()}`,
      containerPort: port,
      protocol,
    })),
  );
  return toKubeObject({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: ns, labels },
    spec: { nodeName: extra.node ?? NODE, containers: [{ name: 'c', image: 'agnhost', ports }] },
    status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
  })!;
}

export function cluster(): KubeObject[] {
  return [...NAMESPACES.map((ns) => namespaceObj(ns)), ...NAMESPACES.flatMap((ns) => PODS.map((p) => podObj(ns, p)))];
}

/** A NetworkPolicy from plain spec, as YAML would give it. */
export function np(ns: string, name: string, spec: Record<string, unknown>): KubeObject {
  return toKubeObject({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec,
  })!;
}

/** "x/a", "x/*" (a namespace), "*\/a" (pod a everywhere) or "*" (every pod), as a Peer of the e2e model. */
function peer(sel: string): Peer | undefined {
  if (sel === '*') return undefined;
  const [namespace, pod] = sel.split('/') as [string, string];
  return { ...(namespace !== '*' ? { namespace } : {}), ...(pod !== '*' ? { pod } : {}) };
}

/**
 * Expected connectivity, written as the upstream e2e suite writes it: the conformance suite's
 * Reachability (test/e2e/reachability.ts) with peers as short strings. Loopback is allowed.
 */
export class Reachability {
  private readonly r: E2eReachability;
  constructor(
    allowed: boolean,
    readonly pods: string[] = ALL,
  ) {
    this.r = new E2eReachability(allowed, pods);
  }
  expect(from: string, to: string, allowed: boolean): this {
    this.r.expect(peer(from), peer(to), allowed);
    return this;
  }
  /** Nothing reaches `to` (ingress), unless later expectations say otherwise. */
  expectAllIngress(to: string, allowed: boolean): this {
    return this.expect('*', to, allowed);
  }
  expectAllEgress(from: string, allowed: boolean): this {
    return this.expect(from, '*', allowed);
  }
  matrix(port: number, protocol: L4Protocol): ConnectivityMatrix {
    this.r.allowLoopback();
    const results = [];
    for (const from of this.pods)
      for (const to of this.pods) results.push({ from, to, connected: this.r.get(from, to) });
    return { port, protocol, results };
  }
}

export function engineWith(objects: KubeObject[], opts: { nodeName?: string } = { nodeName: NODE }): PolicyEngine {
  const e = new PolicyEngine({ ...opts, clusterPodCIDRs: POD_CIDRS });
  e.upsertAll(objects);
  return e;
}

/** The connectivity matrix the datapath would produce from the compiled state. */
export function simulatedMatrix(
  engine: PolicyEngine,
  port: number,
  protocol: L4Protocol,
  family: 4 | 6 = 4,
): ConnectivityMatrix {
  const state = engine.snapshot();
  const pods = engine
    .listPods()
    .filter((p) => !p.hostNetwork)
    .map((p) => `${p.namespace}/${p.name}`)
    .sort();
  const results = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) {
        results.push({ from, to, connected: true });
        continue;
      }
      const src = engine.getPod(from)!.pod;
      const dst = engine.getPod(to)!.pod;
      const ipOf = (ips: string[]): string => ips.find((ip) => (family === 4 ? !ip.includes(':') : ip.includes(':')))!;
      const srcId = engine.resolveIP(ipOf(src.ips))!;
      const dstId = engine.resolveIP(ipOf(dst.ips))!;
      results.push({
        from,
        to,
        connected: simulateConnection(state.endpoints.get(from), state.endpoints.get(to), srcId, dstId, protocol, port),
      });
    }
  }
  return { port, protocol, results };
}

/** Checks explain and the compiled entries (both IP families) against the expectation; returns readable tables. */
export function checkTruthTable(
  objects: KubeObject[],
  expected: Reachability,
  port: number,
  protocol: L4Protocol = 'TCP',
): { expected: string; explain: string; v4: string; v6: string } {
  const engine = engineWith([...cluster(), ...objects]);
  return {
    expected: formatTruthTable(expected.matrix(port, protocol)),
    explain: formatTruthTable(policyMatrix(engine, port, protocol)),
    v4: formatTruthTable(simulatedMatrix(engine, port, protocol, 4)),
    v6: formatTruthTable(simulatedMatrix(engine, port, protocol, 6)),
  };
}
