/**
 * Conformance: the upstream Kubernetes NetworkPolicy e2e cases (test/e2e/netpol-cases.ts)
 * replayed through `weir lab` with the eBPF datapath: x/y/z namespaces, a/b/c pods, ports 80
 * and 81 over TCP, UDP and SCTP. Every probe of every case must match its truth table.
 * Needs root (network namespaces, BPF); CI runs it as root.
 *
 * It also records how long each `weir lab apply` took to be realized in the datapath, for
 * the `lab` bench suite (build/lab-apply-times.json).
 *
 * With WEIR_CONFORMANCE_VIA=service (`make test-conformance-services`) every probe goes through
 * the target pod's own Service (examples/e2e-model/services.yaml, `weir lab probe --via service`):
 * the datapath translates each ClusterIP to the pod before policy, and the truth tables must be
 * the same as pod to pod.
 *
 * @requires root
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { netpolCases, type Manifest, type Probe } from './netpol-cases.js';
import { realizedMs, testLab, type ProbeJson } from './lab-harness.js';

const CLUSTER = 'examples/e2e-model/cluster.yaml';
const SERVICES = 'examples/e2e-model/services.yaml';
const VIA = process.env.WEIR_CONFORMANCE_VIA === 'service' ? 'service' : 'pod';
const PROBE_TIMEOUT_MS = 1000;
const RETRY_TIMEOUT_MS = 3000;

const lab = testLab('k');
const model = new Map<string, Manifest>();
for (const doc of parseAllDocuments(readFileSync(CLUSTER, 'utf8'))) {
  const o = doc.toJS() as { kind: string; metadata: { name: string; namespace?: string } } | null;
  if (o)
    model.set(
      `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`,
      o as unknown as Manifest,
    );
}
const cases = netpolCases({ cidr4: lab.cidr4, cidr6: lab.cidr6, model });
const applyTimes: { case: string; step: string; ms: number }[] = [];
/** Connections that timed out where expected and were probed again (reported, not hidden). */
let retried = 0;

async function probe(p: Probe): Promise<string[]> {
  const base = [
    'lab',
    'probe',
    '--port',
    String(p.port),
    '--protocol',
    p.protocol,
    '--family',
    String(p.family ?? 4),
    '--via',
    VIA,
    '-o',
    'json',
  ];
  const first = JSON.parse(
    (await lab.weir([...base, '--timeout', String(PROBE_TIMEOUT_MS), ...(p.from ? ['--from', p.from] : [])])).stdout,
  ) as ProbeJson;
  const wrong = p.expect.mismatches(first.results);
  // A connection that should have been made but timed out on a busy machine gets one more
  // try with a longer timeout; a connection made where none is allowed never does.
  const verdicts = await Promise.all(
    wrong.map(async (cell) => {
      if (!cell.connected) {
        const again = JSON.parse(
          (await lab.weir([...base, '--from', cell.from, '--to', cell.to, '--timeout', String(RETRY_TIMEOUT_MS)]))
            .stdout,
        ) as ProbeJson;
        retried++;
        if (again.results[0]?.connected === true) return undefined;
      }
      return `${cell.from} -> ${cell.to}: ${cell.connected ? 'connected' : 'not connected'}, expected ${cell.connected ? 'not connected' : 'connected'}`;
    }),
  );
  const failures = verdicts.filter((v): v is string => v !== undefined);
  if (failures.length === 0) return [];
  return [`${p.protocol}/${p.port} IPv${p.family ?? 4}:`, ...failures, 'expected:', p.expect.table()];
}

function policiesOf(objects: Manifest[]): Manifest[] {
  return objects.filter((o) => o.kind === 'NetworkPolicy');
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the conformance suite creates network namespaces and loads BPF programs: run it as root');
  await lab.weir(['lab', 'up', '--cluster', CLUSTER]);
  if (VIA === 'service') await lab.weir(['lab', 'apply', '-f', SERVICES]);
}, 120_000);

afterAll(async () => {
  if (retried > 0)
    process.stderr.write(`conformance: ${retried} expected connection(s) timed out once and were probed again\n`);
  await lab.cleanup();
  if (applyTimes.length > 0 && VIA === 'pod') {
    mkdirSync('build', { recursive: true });
    writeFileSync(
      'build/lab-apply-times.json',
      `${JSON.stringify({ measuredAt: new Date().toISOString(), samples: applyTimes }, null, 2)}\n`,
    );
  }
}, 60_000);

describe(`NetworkPolicy conformance through weir lab${VIA === 'service' ? ", every probe through the target pod's Service" : ''}`, () => {
  for (const c of cases) {
    test(
      c.name,
      async () => {
        const applied: Manifest[] = [];
        try {
          for (const step of c.steps) {
            if (step.apply) {
              const out = await lab.weir(['lab', 'apply', '-f', lab.manifest(step.apply)]);
              applyTimes.push({ case: c.name, step: step.does, ms: realizedMs(out.stdout) });
              applied.push(...step.apply);
            }
            if (step.delete) await lab.weir(['lab', 'delete', '-f', lab.manifest(step.delete)]);
            const problems = (await Promise.all(step.probes.map(probe))).flat();
            if (problems.length > 0) throw new Error(`after "${step.does}":\n${problems.join('\n')}`);
          }
        } finally {
          const policies = policiesOf(applied);
          if (policies.length > 0) await lab.weir(['lab', 'delete', '-f', lab.manifest(policies)]);
          if (c.restores?.length)
            await lab.weir([
              'lab',
              'apply',
              '-f',
              lab.manifest(c.restores.map((r) => model.get(`${r.kind}/${r.key}`) as Manifest)),
            ]);
          if (c.extra?.length) await lab.weir(['lab', 'delete', '-f', lab.manifest(c.extra)]);
        }
      },
      120_000,
    );
  }
});
