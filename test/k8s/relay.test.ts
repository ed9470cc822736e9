/**
 * End to end (root, kernel): `weir relay` over two `weir agent`s in Kubernetes mode, on two
 * "nodes" (network namespaces) of one machine, against the test API server (topology.ts).
 * The agents serve their flow API on TCP with mutual TLS (certificates made here by openssl);
 * the relay finds them as the pods of the agents' DaemonSet through the API, as the chart runs
 * it. Shown: `weir observe` through the relay returns flows of both nodes merged in time
 * order, follows new ones, an agent killed shows as unavailable in GetNodes while the stream
 * keeps the other node's flows, and shows connected again once restarted, with its flows back
 * in the stream; the agents refuse clients without a certificate of their CA.
 *
 * Needs `make build`. Shares the topology's names with e2e.test.ts: run under the root-tests lock.
 *
 * @requires root
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ObserverClient } from '../../agent/flows/client.js';
import { NodeState } from '../../agent/flows/types.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { makeCa, makeCert, type Pem } from '../relay/certs.js';
import { API_HOST, LoggedProcess, Topology, type TestNode, type TestPod } from './topology.js';

const CLI = resolve('dist/agent/cli/main.js');
const HEALTH_PORT = 18911;
const AGENT_FLOW_PORT = 14244;
const RELAY_ADDRESS = `${API_HOST}:14245`;
const AGENT_LABELS = { 'app.kubernetes.io/name': 'weir', 'app.kubernetes.io/component': 'agent' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('weir relay over two agents in Kubernetes mode (root)', () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'wk8-relay-'));
  const api = new TestApiServer({ host: API_HOST, bookmarkIntervalMs: 1000 });
  const agents = new Map<string, LoggedProcess>();
  const procs: LoggedProcess[] = [];
  let n1: TestNode;
  let n2: TestNode;
  let a: TestPod; // x/a on node-1
  let b: TestPod; // x/b on node-1
  let c: TestPod; // x/c on node-2
  let ca: Pem;
  let agentCert: Pem;
  let relayCert: Pem;
  let relay: ObserverClient;
  const pinRoot = (n: TestNode) => topo.pinRoot(n);

  function startAgent(n: TestNode): LoggedProcess {
    const p = new LoggedProcess(
      topo.spawnIn(n.netns, [
        process.execPath,
        CLI,
        'agent',
        `--kubeconfig=${join(dir, 'kubeconfig')}`,
        `--node-name=${n.name}`,
        `--pin-root=${pinRoot(n)}`,
        `--run-dir=${join(dir, `run-${n.name}`)}`,
        `--health-port=${HEALTH_PORT}`,
        '--metrics-port=0',
        `--observer-address=${n.address}:${AGENT_FLOW_PORT}`,
        `--observer-tls-ca=${ca.certFile}`,
        `--observer-tls-cert=${agentCert.certFile}`,
        `--observer-tls-key=${agentCert.keyFile}`,
      ]),
    );
    agents.set(n.name, p);
    procs.push(p);
    return p;
  }

  const probe = async (from: TestPod, to: TestPod): Promise<boolean> =>
    (await topo.probe(from, [{ pod: to, port: 80, family: 4 }]))[0]!;

  /** `weir observe` through the relay, as a user runs it. */
  const observe = (args: string[]): Array<Record<string, unknown>> =>
    execFileSync(process.execPath, [CLI, 'observe', '--server', RELAY_ADDRESS, '-o', 'jsonpb', ...args])
      .toString()
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  const nodeState = async (name: string) => (await relay.getNodes()).nodes.find((n) => n.name === name)?.state;
  async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
    const t0 = Date.now();
    while (!(await cond())) {
      if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
      await sleep(100);
    }
  }

  beforeAll(async () => {
    ca = makeCa(dir, 'ca');
    agentCert = makeCert(dir, ca, 'agent', 'weir-agent');
    relayCert = makeCert(dir, ca, 'relay', 'weir-relay');
    topo.create();
    for (const n of ['node-1', 'node-2']) rmSync(`/sys/fs/bpf/wk8-${n}`, { recursive: true, force: true });
    n1 = topo.addNode(1);
    n2 = topo.addNode(2);
    a = topo.addPod(n1, 'x', 'a', 2);
    b = topo.addPod(n1, 'x', 'b', 3);
    c = topo.addPod(n2, 'x', 'c', 2);
    await api.start();
    writeFileSync(join(dir, 'kubeconfig'), api.kubeconfig());
    for (const name of ['x', 'weir-system'])
      api.create({ kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
    for (const n of [n1, n2]) {
      api.create({
        kind: 'Node',
        metadata: { name: n.name },
        spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR, n.podCIDR6] },
        status: { addresses: [{ type: 'InternalIP', address: n.address }] },
      });
      // the agents' DaemonSet pods: host network, so their address is the node's
      api.create({
        kind: 'Pod',
        metadata: { name: `weir-${n.name}`, namespace: 'weir-system', labels: AGENT_LABELS },
        spec: { nodeName: n.name, hostNetwork: true, containers: [{ name: 'agent', image: 'weir' }] },
        status: { phase: 'Running', podIP: n.address, podIPs: [{ ip: n.address }] },
      } as KubeObject);
    }
    for (const p of [a, b, c])
      api.create({
        kind: 'Pod',
        metadata: { name: p.name, namespace: p.namespace, labels: { app: p.name } },
        spec: {
          nodeName: p.node.name,
          containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }],
        },
        status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
      });
    // b admits only a: c -> b is dropped at b, on node-1
    api.create({
      kind: 'NetworkPolicy',
      metadata: { name: 'b-from-a', namespace: 'x' },
      spec: {
        podSelector: { matchLabels: { app: 'b' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      },
    });
    const r1 = startAgent(n1);
    const r2 = startAgent(n2);
    await Promise.all([r1.waitFor(/ ready: first sync enforced/), r2.waitFor(/ ready: first sync enforced/)]);
    const rp = new LoggedProcess(
      spawn(process.execPath, [
        CLI,
        'relay',
        `--kubeconfig=${join(dir, 'kubeconfig')}`,
        '--namespace=weir-system',
        `--agent-port=${AGENT_FLOW_PORT}`,
        `--listen=${RELAY_ADDRESS}`,
        `--peer-tls-ca=${ca.certFile}`,
        `--peer-tls-cert=${relayCert.certFile}`,
        `--peer-tls-key=${relayCert.keyFile}`,
        '--check-interval=1',
      ]),
    );
    procs.push(rp);
    await rp.waitFor(/flow API on/);
    relay = new ObserverClient(RELAY_ADDRESS);
    await until(
      async () =>
        (await nodeState('node-1')) === NodeState.NODE_CONNECTED &&
        (await nodeState('node-2')) === NodeState.NODE_CONNECTED,
      'both agents connected',
    );
  }, 90_000);

  afterAll(async () => {
    relay?.close();
    await topo.tearDown(new Map(procs.map((p, i) => [`process ${i + 1}`, p])), () => api.stop().catch(() => undefined));
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns the flows of both nodes merged in time order, each with its node', async () => {
    expect(await probe(a, c)).toBe(true); // a's egress on node-1, c's ingress on node-2
    expect(await probe(c, b)).toBe(false); // dropped at b's ingress on node-1
    const rs = await until(async () => observe(['--last', '100']).length >= 3, 'flows in the relay').then(() =>
      observe(['--last', '100']),
    );
    const flows = rs.map((r) => r.flow as { node_name: string; time: string; verdict: string });
    expect(new Set(flows.map((f) => f.node_name))).toEqual(new Set(['node-1', 'node-2']));
    expect(rs.every((r) => r.node_name === (r.flow as { node_name: string }).node_name)).toBe(true);
    const times = flows.map((f) => f.time);
    expect(times).toEqual([...times].sort()); // RFC 3339 UTC with 9 digits: text order is time order
    const drops = observe(['--last', '100', '--verdict', 'DROPPED']).map((r) => r.flow as Record<string, unknown>);
    expect(drops.length).toBeGreaterThanOrEqual(1);
    expect(drops.every((f) => f.node_name === 'node-1' && f.drop_reason_desc === 'POLICY_DENIED')).toBe(true);
    // --last N is the N most recent cluster-wide
    const last2 = observe(['--last', '2']).map((r) => (r.flow as { time: string }).time);
    expect(last2).toEqual(times.slice(-2));
    const s = await relay.serverStatus();
    expect(s.num_connected_nodes?.value).toBe(2);
    expect(s.num_flows).toBeGreaterThanOrEqual(flows.length);
  }, 60_000);

  it('follows new flows of both nodes; an agent killed is unavailable in GetNodes and the stream goes on, and back when restarted', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const f = spawn(process.execPath, [CLI, 'observe', '--server', RELAY_ADDRESS, '--follow', '-o', 'jsonpb']);
    let buf = '';
    f.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    });
    const nodesSeen = (after: number) =>
      new Set(lines.slice(after).flatMap((l) => (l.flow ? [(l.flow as { node_name: string }).node_name] : [])));
    try {
      await sleep(1000);
      const mark0 = lines.length;
      expect(await probe(b, c)).toBe(true);
      await until(() => nodesSeen(mark0).size === 2, 'followed flows of both nodes');
      const followed = lines
        .slice(mark0)
        .filter((l) => l.flow)
        .map((l) => (l.flow as { time: string }).time);
      expect(followed).toEqual([...followed].sort());

      agents.get('node-2')!.kill9();
      await until(async () => (await nodeState('node-2')) === NodeState.NODE_UNAVAILABLE, 'node-2 unavailable');
      expect(await nodeState('node-1')).toBe(NodeState.NODE_CONNECTED);
      const mark1 = lines.length;
      expect(await probe(a, b)).toBe(true); // node-1 only
      await until(() => nodesSeen(mark1).has('node-1'), 'node-1 flows while node-2 is away');
      expect((await relay.serverStatus()).unavailable_nodes).toEqual(['node-2']);

      await startAgent(n2).waitFor(/ ready: first sync enforced/);
      await until(async () => (await nodeState('node-2')) === NodeState.NODE_CONNECTED, 'node-2 connected again');
      await sleep(1500);
      const mark2 = lines.length;
      expect(await probe(b, c)).toBe(true);
      await until(() => nodesSeen(mark2).has('node-2'), 'node-2 flows in the same stream again');
      expect(f.exitCode).toBeNull();
    } finally {
      f.kill('SIGINT');
    }
  }, 120_000);

  it("the agents' flow API refuses clients without a certificate of their CA", async () => {
    const addr = `${n1.address}:${AGENT_FLOW_PORT}`;
    const opts = { 'grpc.ssl_target_name_override': 'weir-agent', 'grpc.default_authority': 'weir-agent' };
    const other = makeCa(dir, 'other-ca');
    const otherCert = makeCert(dir, other, 'other', 'weir-relay');
    const refused: Array<[string, ObserverClient]> = [
      ['plaintext', new ObserverClient(addr)],
      ['no client certificate', new ObserverClient(addr, grpc.credentials.createSsl(ca.cert), opts)],
      [
        'a certificate of another CA',
        new ObserverClient(addr, grpc.credentials.createSsl(ca.cert, otherCert.key, otherCert.cert), opts),
      ],
    ];
    for (const [what, cl] of refused) {
      const r = await cl.serverStatus(3000).then(
        () => 'answered',
        (e: grpc.ServiceError) => e.code,
      );
      expect([what, r]).toEqual([what, grpc.status.UNAVAILABLE]);
      cl.close();
    }
    const ok = new ObserverClient(addr, grpc.credentials.createSsl(ca.cert, relayCert.key, relayCert.cert), opts);
    expect((await ok.serverStatus()).node_name).toBe('node-1');
    ok.close();
  });
});
