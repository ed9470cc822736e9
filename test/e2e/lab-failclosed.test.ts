/**
 * Full maps in a real lab never open the datapath (each case is a defect an adversarial lab
 * run found in the former reconciler). Maps are sized small at load (`weir lab up --map-max`)
 * so that a full map is cheap to reach. Needs root (network namespaces, BPF).
 *
 * @requires root
 */
import { testLab, type ProbeJson, type TestLab } from './lab-harness.js';

const POLICY_MAX = 8;
const LPM_MAX = 4;

const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fc', labels: { team: 'fc' } } };
const pod = (name: string, app: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: 'fc', name, labels: { app } },
  spec: { containers: [{ name: 'c', ports: [{ containerPort: 80, protocol: 'TCP' }] }] },
});
const policy = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: 'fc', name },
  spec,
});
/** Fills weir_policy: one entry per port for the client endpoint. */
const filler = policy('filler', {
  podSelector: { matchLabels: { app: 'client' } },
  ingress: [
    {
      from: [{ podSelector: { matchLabels: { app: 'server' } } }],
      ports: Array.from({ length: POLICY_MAX }, (_, i) => ({ port: 1001 + i })),
    },
  ],
});
/** The victim admits only the client, on 80. */
const victimPolicy = policy('victim-in', {
  podSelector: { matchLabels: { app: 'victim' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }],
});

interface JsonFlow {
  verdict?: string;
  drop_reason_desc?: string;
  destination?: { pod_name?: string };
}

let lab: TestLab;
beforeAll(async () => {
  lab = testLab('fc');
  await lab.weir([
    'lab',
    'up',
    '--map-max',
    `weir_policy=${POLICY_MAX}`,
    '--map-max',
    `weir_ipc_lpm=${LPM_MAX}`,
    '--cluster',
    lab.manifest([ns, pod('client', 'client'), pod('server', 'server')]),
  ]);
}, 120_000);
afterAll(async () => {
  await lab?.cleanup();
}, 60_000);

async function probeTo(target: string, from?: string): Promise<ProbeJson['results']> {
  const args = ['lab', 'probe', '--to', target, '--port', '80', '-o', 'json', '--timeout', '500'];
  if (from) args.push('--from', from);
  const { stdout } = await lab.weir(args);
  return (JSON.parse(stdout) as ProbeJson).results.filter((r) => r.from !== r.to);
}

async function applyFails(objects: unknown[]): Promise<string> {
  try {
    await lab.weir(['lab', 'apply', '-f', lab.manifest(objects)]);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('weir lab apply succeeded, but the map was full');
}

async function eventually(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('a full weir_policy never opens a pod', () => {
  it('a pod created while weir_policy is full is closed (NO_ENDPOINT), and enforced as its policies say once room is made', async () => {
    await lab.weir(['lab', 'apply', '-f', lab.manifest([victimPolicy, filler])]);
    const msg = await applyFails([pod('victim', 'victim')]);
    expect(msg).toMatch(/weir_policy is full/);
    // the pod exists
    const { stdout: pods } = await lab.weir(['lab', 'get', 'pods']);
    expect(pods).toMatch(/victim/);
    // nobody reaches it, on any port it serves
    const rows = await probeTo('fc/victim');
    expect(rows.length).toBeGreaterThanOrEqual(2);
    expect(rows.filter((r) => r.connected)).toEqual([]);
    // and its flows say why
    const { stdout } = await lab.weir(['observe', '-o', 'jsonpb', '--last', '200', '--to-pod', 'fc/victim']);
    const flows = stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => (JSON.parse(l) as { flow?: JsonFlow }).flow)
      .filter((f): f is JsonFlow => f !== undefined);
    expect(flows.filter((f) => f.verdict === 'DROPPED').map((f) => f.drop_reason_desc)).toContain('NO_ENDPOINT');
    // the status names what fails
    const { stdout: status } = await lab.weir(['lab', 'status']);
    expect(status).toMatch(/endpoint fc\/victim/);
    expect(status).toMatch(/weir_policy/);
    // room is made: the retry writes the victim, enforced exactly as its policy says
    await lab.weir(['lab', 'delete', '-f', lab.manifest([filler])]);
    await eventually(async () => (await probeTo('fc/victim', 'fc/client')).every((r) => r.connected), 20_000);
    expect((await probeTo('fc/victim', 'fc/server')).map((r) => r.connected)).toEqual([false]);
  }, 120_000);

  it('a policy whose entries do not all fit leaves nothing half-written, and the previous state in force', async () => {
    // the client admits the server on 1001..1008 (8 entries): one more than weir_policy has room for
    // with the victim's entry in place
    const msg = await applyFails([filler]);
    expect(msg).toMatch(/weir_policy is full/);
    const { stdout: metrics } = await lab.weir(['lab', 'status']);
    const st = JSON.parse(metrics) as { sync?: { failing: unknown[] } };
    expect(st.sync?.failing.length).toBeGreaterThan(0);
    // nothing of the filler was left in the kernel: the server reaches the client on none of its ports
    const { stdout: dp } = await lab.weir(['datapath', 'show', '--pin-root', `/sys/fs/bpf/${lab.prefix}`]);
    expect(dp).not.toMatch(/\b100[1-8]\b/);
    // deleting the policy that could not be written leaves the maps as they were, and the queue clean
    await lab.weir(['lab', 'delete', '-f', lab.manifest([filler])]);
    await eventually(async () => {
      const s = JSON.parse((await lab.weir(['lab', 'status'])).stdout) as { sync?: { failing: unknown[] } };
      return s.sync?.failing.length === 0;
    }, 20_000);
    expect((await probeTo('fc/victim', 'fc/client')).every((r) => r.connected)).toBe(true);
  }, 120_000);
});
