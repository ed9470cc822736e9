/**
 * The conformance suite's cases (test/e2e/netpol-cases.ts, the upstream NetworkPolicy e2e
 * cases that `weir lab` replays through the kernel) replayed through the compiler alone:
 * every probe's truth table must come out of `explain` and of the datapath lookup simulated
 * over the compiled entries, for the probe's port, protocol and address family. A failure
 * here points at the compiler; a failure only in the lab points at the datapath or the lab.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { L4Protocol } from '../../../agent/desired.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { explain } from '../../../agent/policy/explain.js';
import { simulateConnection } from '../../../agent/policy/simulate.js';
import { Store } from '../../../agent/store/store.js';
import { toKubeObject } from '../../../agent/store/convert.js';
import type { Pod } from '../../../agent/store/types.js';
import { netpolCases } from '../../e2e/netpol-cases.js';
import type { Manifest, Probe } from '../../e2e/netpol-cases.js';

const CIDR4 = '10.244.0.0/16';
const CIDR6 = 'fd00:10:244::/64';
const NODE = 'node-1';

const model = new Map<string, Manifest>();
for (const doc of parseAllDocuments(readFileSync('examples/e2e-model/cluster.yaml', 'utf8'))) {
  const o = doc.toJS() as { kind: string; metadata: { name: string; namespace?: string } } | null;
  if (o)
    model.set(
      `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`,
      o as unknown as Manifest,
    );
}

/** Pods get a node and stable addresses, as the lab gives them when it starts them. */
const addresses = new Map<string, number>();
function withAddresses(m: Manifest): Manifest {
  if (m.kind !== 'Pod') return m;
  const meta = m.metadata as { name: string; namespace?: string };
  const key = `${meta.namespace ?? 'default'}/${meta.name}`;
  if (!addresses.has(key)) addresses.set(key, addresses.size + 10);
  const n = addresses.get(key)!;
  return {
    ...m,
    spec: { ...(m.spec as object), nodeName: NODE },
    status: { phase: 'Running', podIPs: [{ ip: `10.244.0.${n}` }, { ip: `fd00:10:244::${n.toString(16)}` }] },
  };
}

function results(
  engine: PolicyEngine,
  probe: Probe,
): {
  explained: { from: string; to: string; connected: boolean }[];
  simulated: { from: string; to: string; connected: boolean }[];
} {
  const state = engine.snapshot();
  const pods = probe.expect.pods;
  // `from` as `weir lab probe --from` takes it: a pod, or "ns/" for every pod of a namespace.
  const froms = probe.from
    ? pods.filter((p) => p === probe.from || (probe.from!.endsWith('/') && p.startsWith(probe.from!)))
    : pods;
  const explained = [];
  const simulated = [];
  for (const from of froms) {
    for (const to of pods) {
      const dst = engine.getPod(to)!.pod as Pod;
      // A named probe port resolves against the destination pod, as the lab's probe does.
      const port =
        typeof probe.port === 'number'
          ? probe.port
          : dst.ports.find((p) => p.name === probe.port && p.protocol === probe.protocol)?.containerPort;
      if (port === undefined) {
        explained.push({ from, to, connected: false });
        simulated.push({ from, to, connected: false });
        continue;
      }
      const protocol = probe.protocol as L4Protocol;
      explained.push({ from, to, connected: explain(engine, { from, to, port, protocol }).allowed });
      if (from === to) {
        simulated.push({ from, to, connected: true });
        continue;
      }
      const src = engine.getPod(from)!.pod;
      const fam = (ips: string[]): string => ips.find((ip) => ip.includes(':') === (probe.family === 6))!;
      const srcId = engine.resolveIP(fam(src.ips))!;
      const dstId = engine.resolveIP(fam(dst.ips))!;
      simulated.push({
        from,
        to,
        connected: simulateConnection(state.endpoints.get(from), state.endpoints.get(to), srcId, dstId, protocol, port),
      });
    }
  }
  return { explained, simulated };
}

const cases = netpolCases({ cidr4: CIDR4, cidr6: CIDR6, model });

describe('the conformance cases, compiled', () => {
  it('has the cases the lab runs', () => {
    expect(cases.length).toBeGreaterThan(30);
  });
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const store = new Store();
    const engine = new PolicyEngine({ nodeName: NODE, clusterPodCIDRs: [CIDR4, CIDR6] });
    engine.applyAll([...model.values()].map((m) => store.upsert(toKubeObject(withAddresses(m))!)!).filter(Boolean));
    const failures: string[] = [];
    for (const step of c.steps) {
      for (const m of step.apply ?? []) {
        const ch = store.upsert(toKubeObject(withAddresses(m))!);
        if (ch) engine.apply(ch);
      }
      for (const m of step.delete ?? []) {
        const o = toKubeObject(m)!;
        const ch = store.delete(
          o.kind,
          o.kind === 'Namespace' || o.kind === 'Node' ? o.name : `${o.namespace}/${o.name}`,
        );
        if (ch) engine.apply(ch);
      }
      for (const probe of step.probes) {
        const r = results(engine, probe);
        for (const [what, cells] of [
          ['explain', r.explained],
          ['compiled entries', r.simulated],
        ] as const) {
          const wrong = probe.expect.mismatches(cells);
          if (wrong.length > 0) {
            failures.push(
              `${step.does}: ${probe.protocol}/${probe.port} IPv${probe.family ?? 4} by ${what}: ${wrong.map((w) => `${w.from}->${w.to} ${w.connected ? 'connected' : 'blocked'}`).join(', ')}\nexpected:\n${probe.expect.table()}`,
            );
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });
});
