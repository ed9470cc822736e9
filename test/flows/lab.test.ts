/**
 * Flows and metrics in a real lab, as a user sees them: pods in network namespaces, the
 * eBPF datapath enforcing a policy, `weir observe` reading the lab's flow API by itself,
 * and /metrics counting. Needs root (network namespaces, BPF); CI runs it as root.
 *
 * @requires root
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { parseExposition, sample } from '../metrics/exposition.js';

const WEIR = resolve('bin/weir');
const PREFIX = 'wob';
const dir = mkdtempSync(join(tmpdir(), 'wob-lab-'));
const runDir = join(dir, 'run');
const env: NodeJS.ProcessEnv = {
  ...process.env,
  WEIR_LAB_PREFIX: PREFIX,
  WEIR_LAB_CIDR4: '10.230.1.0/24',
  WEIR_LAB_CIDR6: 'fd00:230:1::/64',
  WEIR_LAB_PIN_ROOT: `/sys/fs/bpf/${PREFIX}-lab`,
  WEIR_LAB_RUN_DIR: runDir,
  WEIR_LAB_METRICS_PORT: '0',
  NODE_NO_WARNINGS: '1',
};
const children: ChildProcess[] = [];

function weir(args: string[]): Promise<string> {
  return new Promise((res, rej) =>
    execFile(process.execPath, [WEIR, ...args], { env, maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      err ? rej(new Error(`weir ${args.join(' ')} failed: ${stderr || err.message}\n${stdout}`)) : res(stdout),
    ),
  );
}

let files = 0;
function manifest(objects: unknown[]): string {
  const path = join(dir, `m${files++}.yaml`);
  writeFileSync(path, objects.map((o) => stringify(o)).join('---\n'));
  return path;
}

const namespace = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const pod = (ns: string, name: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, labels },
  spec: {
    containers: [
      {
        name: 'app',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP' },
          { name: 'dns', containerPort: 53, protocol: 'UDP' },
        ],
      },
    ],
  },
});
const dbFromWeb = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: 'shop', name: 'db-from-web' },
  spec: {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 'http' }] }],
  },
};

interface JsonFlow {
  verdict: string;
  drop_reason_desc?: string;
  traffic_direction: string;
  source: { namespace?: string; pod_name?: string; labels?: string[]; identity: number };
  destination: { namespace?: string; pod_name?: string; labels?: string[]; identity: number };
  l4: {
    TCP?: { destination_port: number; source_port: number };
    UDP?: { destination_port: number; source_port: number };
  };
  event_type: { type: number };
}

async function observe(...args: string[]): Promise<JsonFlow[]> {
  const out = await weir(['observe', '-o', 'jsonpb', '--last', '1000', ...args]);
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { flow?: JsonFlow })
    .filter((r) => r.flow)
    .map((r) => r.flow!);
}

/**
 * One connection attempt. Denied attempts are counted exactly with UDP (one datagram, never
 * resent, so a long timeout changes nothing but lets a busy machine send it); an allowed TCP
 * connection may take long too, and a resent SYN of it is a packet of a known connection,
 * not a new verdict.
 */
async function probe(from: string, to: string, port: string, protocol = 'TCP', timeoutMs = 5000): Promise<boolean> {
  const r = JSON.parse(
    await weir([
      'lab',
      'probe',
      '--from',
      from,
      '--to',
      to,
      '--port',
      port,
      '--protocol',
      protocol,
      '--timeout',
      String(timeoutMs),
      '-o',
      'json',
    ]),
  ) as {
    results: Array<{ connected: boolean }>;
  };
  return r.results.every((x) => x.connected);
}

async function metrics(): Promise<Awaited<ReturnType<typeof parseExposition>>> {
  const st = JSON.parse(await weir(['lab', 'status'])) as { metricsUrl?: string };
  if (!st.metricsUrl) throw new Error('the lab serves no metrics');
  const res = await fetch(st.metricsUrl);
  return parseExposition(await res.text());
}

const podName = (ep: JsonFlow['source']) => `${ep.namespace ?? ''}/${ep.pod_name ?? ''}`;

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the lab creates network namespaces and loads BPF programs: run the tests as root');
  const up = await weir([
    'lab',
    'up',
    '--cluster',
    manifest([
      namespace('shop'),
      namespace('ops'),
      pod('shop', 'web', { app: 'web' }),
      pod('shop', 'db', { app: 'db' }),
      pod('ops', 'probe', { app: 'probe' }),
    ]),
  ]);
  expect(up).toMatch(/flows: unix:.*observer\.sock \(weir observe\)/);
  await weir(['lab', 'apply', '-f', manifest([dbFromWeb])]);
}, 90_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  try {
    await weir(['lab', 'down']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

describe('flows and metrics in the lab', () => {
  it('moves the drop and verdict counters by exactly the number of connections made', async () => {
    const before = await metrics();
    const denied = 3;
    const allowed = 2;
    for (let i = 0; i < denied; i++) expect(await probe('ops/probe', 'shop/db', 'dns', 'UDP', 2500)).toBe(false);
    for (let i = 0; i < allowed; i++) expect(await probe('shop/web', 'shop/db', 'http')).toBe(true);
    const after = await metrics();
    const delta = (name: string, labels: Record<string, string>) =>
      (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    expect(delta('weir_drops_total', { reason: 'policy_denied', direction: 'ingress' })).toBe(denied);
    expect(delta('weir_policy_verdicts_total', { direction: 'ingress', match: 'none', action: 'dropped' })).toBe(
      denied,
    );
    expect(delta('weir_policy_verdicts_total', { direction: 'ingress', match: 'l3_l4', action: 'forwarded' })).toBe(
      allowed,
    );
    // each connection also left its sender (not isolated for egress) as one policy verdict
    expect(
      delta('weir_policy_verdicts_total', { direction: 'egress', match: 'not_isolated', action: 'forwarded' }),
    ).toBe(denied + allowed);
    expect(delta('weir_flows_processed_total', { type: 'drop', verdict: 'dropped' })).toBe(denied);
  }, 60_000);

  it('counts policy changes, times their enforcement and reports what is enforced', async () => {
    const before = await metrics();
    const denyOps = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: 'ops', name: 'deny-all' },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    };
    await weir(['lab', 'apply', '-f', manifest([denyOps])]);
    const after = await metrics();
    const delta = (name: string, labels: Record<string, string> = {}) =>
      (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    expect(delta('weir_kubernetes_events_total', { resource: 'networkpolicy', action: 'added' })).toBe(1);
    expect(delta('weir_policy_realization_latency_seconds_count')).toBe(1);
    expect(delta('weir_policy_compile_duration_seconds_count')).toBe(1);
    expect(sample(after, 'weir_endpoints_enforced', { direction: 'ingress' })).toBe(2); // shop/db and ops/probe
    expect(sample(after, 'weir_identities_in_use')).toBe(3);
    // map fill from what the reconciler holds: three endpoints, their pod addresses in the ipcache
    expect(sample(after, 'weir_map_entries', { map: 'weir_endpoints' })).toBe(3);
    expect(sample(after, 'weir_map_entries', { map: 'weir_ipcache' })).toBeGreaterThanOrEqual(3);
    expect(sample(after, 'weir_map_capacity', { map: 'weir_policy' })).toBeGreaterThan(0);
    const pressure = sample(after, 'weir_map_pressure', { map: 'weir_endpoints' })!;
    expect(pressure).toBeCloseTo(3 / sample(after, 'weir_map_capacity', { map: 'weir_endpoints' })!, 9);
    await weir(['lab', 'delete', '-f', manifest([denyOps])]);
  }, 30_000);

  it('shows a denied connection as DROPPED with both pods and the reason, an allowed one as FORWARDED', async () => {
    expect(await probe('ops/probe', 'shop/db', 'http', 'TCP', 3000)).toBe(false);
    const flows = await observe();
    const drop = flows.find(
      (f) =>
        f.verdict === 'DROPPED' &&
        podName(f.source) === 'ops/probe' &&
        podName(f.destination) === 'shop/db' &&
        f.l4.TCP !== undefined,
    );
    expect(drop).toMatchObject({
      drop_reason_desc: 'POLICY_DENIED',
      traffic_direction: 'INGRESS',
      l4: { TCP: { destination_port: 8080 } },
    });
    expect(drop!.source.labels).toContain('k8s:app=probe');
    const fwd = flows.find(
      (f) =>
        f.verdict === 'FORWARDED' &&
        podName(f.source) === 'shop/web' &&
        podName(f.destination) === 'shop/db' &&
        f.traffic_direction === 'INGRESS',
    );
    expect(fwd).toBeDefined();
    expect(fwd!.drop_reason_desc).toBeUndefined();
  }, 30_000);

  it('narrows the output with each filter as documented', async () => {
    expect(await probe('shop/web', 'ops/probe', 'dns', 'UDP')).toBe(true);
    const all = await observe();
    const check = async (args: string[], pred: (f: JsonFlow) => boolean) => {
      const got = await observe(...args);
      expect({ args, n: got.length > 0 }).toEqual({ args, n: true });
      expect({ args, bad: got.filter((f) => !pred(f)) }).toEqual({ args, bad: [] });
      expect(got.length).toBeLessThan(all.length);
      expect(got.length).toBe(all.filter(pred).length);
    };
    await check(['--verdict', 'DROPPED'], (f) => f.verdict === 'DROPPED');
    await check(['--not', '--verdict', 'DROPPED'], (f) => f.verdict !== 'DROPPED');
    await check(['--from-pod', 'ops/probe'], (f) => podName(f.source) === 'ops/probe');
    await check(['--to-pod', 'shop/db'], (f) => podName(f.destination) === 'shop/db');
    await check(
      ['--pod', 'ops/probe'],
      (f) => podName(f.source) === 'ops/probe' || podName(f.destination) === 'ops/probe',
    );
    await check(['--namespace', 'ops'], (f) => f.source.namespace === 'ops' || f.destination.namespace === 'ops');
    await check(['--from-namespace', 'ops'], (f) => f.source.namespace === 'ops');
    await check(['--to-namespace', 'ops'], (f) => f.destination.namespace === 'ops');
    await check(['--label', 'app=probe'], (f) =>
      [f.source, f.destination].some((e) => (e.labels ?? []).includes('k8s:app=probe')),
    );
    await check(['--protocol', 'udp'], (f) => f.l4.UDP !== undefined);
    await check(['--port', '53'], (f) => f.l4.UDP?.destination_port === 53 || f.l4.UDP?.source_port === 53);
    await check(['--traffic-direction', 'egress'], (f) => f.traffic_direction === 'EGRESS');
    await check(['--type', 'drop'], (f) => f.event_type.type === 1);
    await check(['--drop-reason', 'POLICY_DENIED'], (f) => f.drop_reason_desc === 'POLICY_DENIED');
    const dbId = all.find((f) => podName(f.destination) === 'shop/db')!.destination.identity;
    await check(['--identity', String(dbId)], (f) => f.source.identity === dbId || f.destination.identity === dbId);
    await check(
      ['--verdict', 'DROPPED', '--from-pod', 'ops/probe', '--to-pod', 'shop/db', '--protocol', 'tcp', '--port', '8080'],
      (f) =>
        f.verdict === 'DROPPED' &&
        podName(f.source) === 'ops/probe' &&
        podName(f.destination) === 'shop/db' &&
        f.l4.TCP?.destination_port === 8080,
    );
  }, 180_000);

  it('prints compact and table lines with both pods, verdict and reason', async () => {
    const compact = await weir(['observe', '--last', '200', '--verdict', 'DROPPED', '--from-pod', 'ops/probe']);
    expect(compact).toMatch(
      /: ops\/probe:\d+ \(ID:\d+\) -> shop\/db:8080 \(ID:\d+\) Policy denied INGRESS DROPPED \(TCP Flags: SYN\)\n/,
    );
    const table = await weir(['observe', '--last', '200', '-o', 'table', '--to-pod', 'shop/db']);
    expect(table.split('\n')[0]).toMatch(/^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+SUMMARY/);
    expect(table).toMatch(/ops\/probe:\d+\s+shop\/db:8080\s+Policy denied INGRESS\s+DROPPED/);
  }, 30_000);

  it('--follow streams a connection made after it started', async () => {
    const child = spawn(
      process.execPath,
      [WEIR, 'observe', '--follow', '-o', 'jsonpb', '--from-pod', 'ops/probe', '--verdict', 'DROPPED'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // wait until the stream is open on the server
    let connected = 0;
    for (let i = 0; i < 200 && connected < 1; i++) {
      connected = (JSON.parse(await weir(['observe', '--status', '-o', 'json'])) as { connected_clients: number })
        .connected_clients;
      if (connected < 1) await new Promise((r) => setTimeout(r, 100));
    }
    expect(connected).toBe(1);
    expect(out).toBe(''); // nothing from before it started
    expect(await probe('ops/probe', 'shop/db', 'dns', 'UDP', 2500)).toBe(false);
    for (let i = 0; i < 400 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    expect({ out, err }).toEqual({ out: expect.stringMatching(/\n/), err: '' });
    const lines = out.split('\n').filter((l) => l.trim());
    expect(lines).toHaveLength(1);
    const f = (JSON.parse(lines[0]!) as { flow: JsonFlow }).flow;
    expect(f).toMatchObject({
      verdict: 'DROPPED',
      drop_reason_desc: 'POLICY_DENIED',
      source: { namespace: 'ops', pod_name: 'probe' },
      destination: { namespace: 'shop', pod_name: 'db' },
    });
  }, 90_000);

  it('reports its status: flows held and seen, capacity, nothing lost', async () => {
    const st = JSON.parse(await weir(['observe', '--status', '-o', 'json'])) as Record<string, number>;
    expect(st.max_flows).toBe(4095);
    expect(st.seen_flows).toBeGreaterThanOrEqual(st.num_flows!);
    expect(st.num_flows).toBeGreaterThan(0);
    expect(st.lost_events).toBe(0);
  }, 30_000);
});
