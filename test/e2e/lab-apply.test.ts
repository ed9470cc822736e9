/**
 * `weir lab apply` as kubectl answers: an object the API server would refuse is named with its
 * field and left out, the valid objects of the same file are applied, and the exit status says
 * so; a warning (accepted, but not enforced as written) exits 0, or 1 under --strict. Needs root
 * (network namespaces, BPF); CI runs it as root.
 *
 * @requires root
 */
import { execFile } from 'node:child_process';
import { WEIR, testLab, type ProbeJson } from './lab-harness.js';

const lab = testLab('v');

const namespace = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const pod = (ns: string, name: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, labels },
  spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
});
const policy = (ns: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: ns, name },
  spec,
});

/** Runs weir and resolves with its exit status, whatever it is. */
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [WEIR, ...args], { env: lab.env }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      res({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

async function reach(from: string, to: string): Promise<boolean> {
  const r = await lab.weir([
    'lab',
    'probe',
    '--port',
    'http',
    '--from',
    from,
    '--to',
    to,
    '--timeout',
    '800',
    '-o',
    'json',
  ]);
  return (JSON.parse(r.stdout) as ProbeJson).results[0]!.connected;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('weir lab creates network namespaces and loads BPF programs: run the tests as root');
  await lab.weir([
    'lab',
    'up',
    '--cluster',
    lab.manifest([namespace('app'), pod('app', 'web', { app: 'web' }), pod('app', 'db', { app: 'db' })]),
  ]);
}, 60_000);

afterAll(async () => {
  await lab.cleanup();
}, 60_000);

describe('weir lab apply exit status', () => {
  test('a valid policy exits 0', async () => {
    const r = await run([
      'lab',
      'apply',
      '-f',
      lab.manifest([
        policy('app', 'ok', {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ ports: [{ protocol: 'TCP', port: 'http' }] }],
        }),
      ]),
    ]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.stdout).toMatch(/networkpolicy\/app\/ok created/);
    expect(r.code).toBe(0);
  }, 30_000);

  test('an invalid policy is refused with its field; the valid objects of the file are applied; exit 1', async () => {
    const file = lab.manifest([
      policy('app', 'lower-case', {
        podSelector: {},
        ingress: [{ ports: [{ port: 80 }, { protocol: 'tcp', port: 81 }] }],
      }),
      policy('app', 'db-isolated', { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'] }),
    ]);
    const r = await run(['lab', 'apply', '-f', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'NetworkPolicy app/lower-case is invalid: spec.ingress[0].ports[1].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"',
    );
    expect(r.stdout).toMatch(/networkpolicy\/app\/db-isolated created/);
    expect(r.stdout).not.toMatch(/lower-case/);
    // The valid one is enforced: db takes nothing any more, web still takes http.
    expect(await reach('app/db', 'app/web')).toBe(true);
    expect(await reach('app/web', 'app/db')).toBe(false);
    const policies = JSON.parse((await lab.weir(['lab', 'get', 'policies', '-o', 'json'])).stdout) as {
      name: string;
    }[];
    expect(policies.map((p) => p.name).sort()).toEqual(['db-isolated', 'ok']);
  }, 30_000);

  test('labels the API server refuses and a prefix-less ipBlock are named; exit 1', async () => {
    const r = await run([
      'lab',
      'apply',
      '-f',
      lab.manifest([
        pod('app', 'forged', { 'role=db': 'x' }),
        policy('app', 'host', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '192.0.2.1' } }] }] }),
      ]),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'Pod app/forged is invalid: metadata.labels: Invalid value: "role=db": name part must consist of',
    );
    expect(r.stderr).toContain(
      'NetworkPolicy app/host is invalid: spec.egress[0].to[0].ipBlock.cidr: Invalid value: "192.0.2.1": must be a valid CIDR value',
    );
  }, 30_000);

  test('a policy in a namespace that does not exist is refused with the namespace named; exit 1', async () => {
    const r = await run([
      'lab',
      'apply',
      '-f',
      lab.manifest([policy('nowhere', 'p', { podSelector: {} }), pod('nowhere', 'p', {})]),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('networkpolicy/nowhere/p: namespaces "nowhere" not found');
    expect(r.stderr).toContain('pod/nowhere/p: namespaces "nowhere" not found');
  }, 30_000);

  test('a policy over the namespace CIDR budget is refused as a whole, naming the map; it isolates and allows nothing; exit 1', async () => {
    const to = Array.from({ length: 20_481 }, (_, i) => ({ ipBlock: { cidr: `20.${i >> 8}.${i & 255}.0/24` } }));
    expect(await reach('app/web', 'app/db')).toBe(false); // db is isolated by db-isolated
    expect(await reach('app/db', 'app/web')).toBe(true);
    const r = await run([
      'lab',
      'apply',
      '-f',
      lab.manifest([
        policy('app', 'huge', {
          podSelector: { matchLabels: { app: 'db' } },
          policyTypes: ['Egress'],
          egress: [{ to }],
        }),
      ]),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "error: NetworkPolicy app/huge: spec: names 20,481 CIDR prefixes; with the other policies of namespace app that makes 20,481, over the per-namespace budget of 20,480 entries of the node's ipcache map weir_ipc_lpm",
    );
    // Fail closed: db is now isolated for egress and allowed nothing.
    expect(await reach('app/db', 'app/web')).toBe(false);
    await lab.weir(['lab', 'delete', '-f', lab.manifest([policy('app', 'huge', { podSelector: {} })])]);
    expect(await reach('app/db', 'app/web')).toBe(true);
  }, 60_000);

  test('a warning exits 0, and 1 under --strict', async () => {
    const cover = policy('app', 'from-pod-range', {
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: lab.cidr4 } }] }],
    });
    const plain = await run(['lab', 'apply', '-f', lab.manifest([cover])]);
    expect(plain.stderr).toContain('warning: NetworkPolicy app/from-pod-range: spec.ingress[0].from[0].ipBlock.cidr');
    expect(plain.code).toBe(0);
    const strict = await run(['lab', 'apply', '--strict', '-f', lab.manifest([cover])]);
    expect(strict.stderr).toContain('warning: NetworkPolicy app/from-pod-range');
    expect(strict.code).toBe(1);
  }, 30_000);
});
