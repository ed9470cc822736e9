/**
 * NodePort end to end (root, kernel): `weir agent` in Kubernetes mode on two "nodes" (network
 * namespaces) against the test API server, and two clients outside every node on the nodes'
 * network. The agents attach from_node / to_node to the interface holding their node's address
 * (the Node object's InternalIPs) and say so in `weir agent status`. A client's TCP connection and
 * UDP datagram to node 1's address at a NodePort reach the backend (on node 1) over IPv4 and IPv6,
 * and the backend sees the client's own address; with externalTrafficPolicy Local node 2 (no local
 * backend) drops the connection as SERVICE_BACKEND_NOT_FOUND and the client times out; an ingress
 * policy on the backend that allows one client's /32 (/128) admits that client through the
 * NodePort and refuses the other (through node 2, masqueraded, neither). An agent restarted with
 * `--nodeport-interfaces` moves the programs to the named interface, one with Services off removes
 * them; SIGTERM after the DaemonSet was deleted (uninstall) leaves no
 * weir program attached anywhere.
 *
 * Services and NetworkPolicies are written with real kubectl, as a user does; EndpointSlices, Node
 * objects and pod status as the controllers and the kubelet would, from the test. Names start with
 * `wnp`, addresses lie in 10.241.0.0/16 and fd00:241::/32, so this file never collides with the
 * other tests on the two-node topology (`wk8`, 10.240.0.0/16).
 *
 * With externalTrafficPolicy Cluster a client also reaches node 2's NodePort, whose only backend runs
 * on node 1: node 2 masquerades the connection (the backend sees node 2's address) and its reply
 * comes back through node 2 to the client from node 2's address and NodePort.
 *
 * Needs `make build` (dist/ and build/bpf/weir.o) and `make tools` (kubectl).
 *
 * @requires root
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAgentStatus } from '../../agent/node/status.js';
import type { NodeAgentStatus } from '../../agent/node/agent.js';
import { Kubectl } from '../apiserver/kubectl.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { LoggedProcess, Topology, type TestClient, type TestNode, type TestPod } from './topology.js';

const CLI = resolve('dist/agent/cli/main.js');
const TOOLS = join(dirname(fileURLToPath(import.meta.url)), 'tools');
const HEALTH_PORT = 18911;
const METRICS_PORT = 18972;
const BACKEND_PORT = 8080;
/** NodePorts: Cluster (TCP, UDP) and Local (TCP, UDP). */
const CLUSTER_TCP = 30080;
const CLUSTER_UDP = 30053;
const LOCAL_TCP = 30081;
const LOCAL_UDP = 30054;

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** A client's prober process: one attempt per request line, answered with what the client saw. */
class PeerProber {
  private seq = 0;
  private readonly waiting = new Map<string, (answer: string) => void>();

  constructor(private readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const sp = line.indexOf(' ');
        const id = line.slice(0, sp);
        this.waiting.get(id)?.(line.slice(sp + 1));
        this.waiting.delete(id);
      }
    });
  }

  async ready(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.child.stdout!.once('data', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`prober exited with ${code}`)));
    });
  }

  /** "ok hello web from ADDRESS", "refused" or "timeout". */
  ask(proto: 'tcp' | 'udp', host: string, port: number, timeoutMs = 500): Promise<string> {
    const id = String(++this.seq);
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(`${id} ${proto} ${host} ${port} ${timeoutMs}\n`);
    });
  }
}

describe('NodePort through the node agent, two nodes and two outside clients (root)', () => {
  const topo = new Topology({ prefix: 'wnp', net: 241 });
  const dir = mkdtempSync(join(tmpdir(), 'wnp-e2e-'));
  const api = new TestApiServer({ host: topo.apiHost, bookmarkIntervalMs: 1000 });
  const agents = new Map<string, LoggedProcess>();
  const probers = new Map<string, PeerProber>();
  let kubectl: Kubectl;
  let n1: TestNode;
  let n2: TestNode;
  let web: TestPod; // the backend, on node 1
  let clientA: TestClient;
  let clientB: TestClient;
  const pinRoot = (n: TestNode) => topo.pinRoot(n);
  const runDir = (n: TestNode) => join(dir, `run-${n.name}`);
  const inNode = (n: TestNode, cmd: string): string =>
    execFileSync('nsenter', [`--net=/var/run/netns/${n.netns}`, 'sh', '-c', cmd], { encoding: 'utf8' });
  /** The programs on an interface's tc hooks, as tc shows them. */
  const tcShow = (n: TestNode, dev: string): string =>
    inNode(n, `tc filter show dev ${dev} ingress; tc filter show dev ${dev} egress`);

  function startAgent(n: TestNode, extra: string[] = []): LoggedProcess {
    const child = topo.spawnIn(n.netns, [
      process.execPath,
      CLI,
      'agent',
      `--kubeconfig=${join(dir, 'kubeconfig')}`,
      `--node-name=${n.name}`,
      `--pin-root=${pinRoot(n)}`,
      `--run-dir=${runDir(n)}`,
      `--health-port=${HEALTH_PORT}`,
      `--metrics-port=${METRICS_PORT}`,
      '--log-level=debug',
      `--pod-name=weir-${n.name}`,
      '--pod-namespace=kube-system',
      ...extra,
    ]);
    const p = new LoggedProcess(child);
    agents.set(n.name, p);
    return p;
  }

  const probe = (from: TestClient, proto: 'tcp' | 'udp', host: string, port: number, timeoutMs?: number) =>
    probers.get(from.name)!.ask(proto, host, port, timeoutMs);
  const greeting = (from: TestClient, family: 4 | 6 = 4) =>
    `ok hello web from ${family === 4 ? from.address : from.address6}`;

  /** Probes until every answer is the expected one (a policy takes effect within a second), or throws. */
  async function until(
    cases: Array<{ from: TestClient; proto: 'tcp' | 'udp'; host: string; port: number; want: string }>,
    ms = 10_000,
  ): Promise<void> {
    const deadline = Date.now() + ms;
    let got: string[] = [];
    while (Date.now() < deadline) {
      got = await Promise.all(cases.map((c) => probe(c.from, c.proto, c.host, c.port)));
      if (got.every((g, i) => g === cases[i]!.want)) return;
    }
    throw new Error(
      `not as expected within ${ms} ms:\n${cases.map((c, i) => `${c.from.name} ${c.proto} ${c.host}:${c.port}: want "${c.want}", got "${got[i]}"`).join('\n')}`,
    );
  }

  const service = (name: string, ips: string[], policy: 'Cluster' | 'Local', tcp: number, udp: number): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'np' },
    spec: {
      type: 'NodePort',
      selector: { app: 'web' },
      clusterIP: ips[0],
      clusterIPs: ips,
      ipFamilies: ['IPv4', 'IPv6'],
      ipFamilyPolicy: 'RequireDualStack',
      externalTrafficPolicy: policy,
      ports: [
        { name: 'http', protocol: 'TCP', port: 80, targetPort: BACKEND_PORT, nodePort: tcp },
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: BACKEND_PORT, nodePort: udp },
      ],
    },
  });
  /** What the EndpointSlice controller writes for a Service whose one pod is `web`, per family. */
  const slices = (svc: string): KubeObject[] =>
    (['IPv4', 'IPv6'] as const).map((family) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${svc}-${family.toLowerCase()}`,
        namespace: 'np',
        labels: {
          'kubernetes.io/service-name': svc,
          'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        },
      },
      addressType: family,
      endpoints: [
        {
          addresses: [family === 'IPv4' ? web.ip : web.ip6!],
          conditions: { ready: true, serving: true, terminating: false },
          nodeName: n1.name,
          targetRef: { kind: 'Pod', namespace: 'np', name: 'web' },
        },
      ],
      ports: [
        { name: 'http', protocol: 'TCP', port: BACKEND_PORT },
        { name: 'dns', protocol: 'UDP', port: BACKEND_PORT },
      ],
    }));

  beforeAll(async () => {
    topo.create();
    for (const n of ['node-1', 'node-2']) rmSync(`/sys/fs/bpf/wnp-${n}`, { recursive: true, force: true });
    n1 = topo.addNode(1);
    n2 = topo.addNode(2);
    web = topo.addPod(n1, 'np', 'web', 2, []);
    topo.spawnIn(web.netns, [process.execPath, join(TOOLS, 'echo-peer-server.mjs'), 'web', String(BACKEND_PORT)]);
    clientA = topo.addClient('client-a', 50);
    clientB = topo.addClient('client-b', 51);
    for (const c of [clientA, clientB]) {
      const p = new PeerProber(topo.spawnIn(c.netns, [process.execPath, join(TOOLS, 'peer-prober.mjs')]));
      await p.ready();
      probers.set(c.name, p);
    }
    await api.start();
    writeFileSync(join(dir, 'kubeconfig'), api.kubeconfig());
    kubectl = new Kubectl(api.kubeconfig());
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
    // The agents' DaemonSet and their pods, as the chart creates them (an uninstall deletes it).
    const ds = api.create({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'weir', namespace: 'kube-system' },
      spec: { selector: { matchLabels: { app: 'weir' } }, template: { metadata: { labels: { app: 'weir' } } } },
    });
    for (const n of [n1, n2]) {
      api.create({
        kind: 'Pod',
        metadata: {
          name: `weir-${n.name}`,
          namespace: 'kube-system',
          labels: { app: 'weir' },
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'weir', uid: ds.metadata.uid, controller: true },
          ],
        },
        spec: { nodeName: n.name, hostNetwork: true, containers: [{ name: 'agent', image: 'weir/agent' }] },
        status: { phase: 'Running', podIP: n.address, podIPs: [{ ip: n.address }] },
      });
      api.create({
        kind: 'Node',
        metadata: { name: n.name },
        spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR, n.podCIDR6] },
        status: {
          addresses: [
            { type: 'InternalIP', address: n.address },
            { type: 'InternalIP', address: n.address6 },
            { type: 'Hostname', address: n.name },
          ],
        },
      });
    }
    await kubectl.apply([
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'np', labels: { 'kubernetes.io/metadata.name': 'np' } },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'np', labels: { app: 'web' } },
        spec: {
          nodeName: n1.name,
          containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: BACKEND_PORT }] }],
        },
      },
      service('web', ['10.241.200.10', 'fd00:241:200::10'], 'Cluster', CLUSTER_TCP, CLUSTER_UDP),
      service('web-local', ['10.241.200.11', 'fd00:241:200::11'], 'Local', LOCAL_TCP, LOCAL_UDP),
    ]);
    api.update({
      ...api.get('Pod', 'web', 'np')!,
      status: { phase: 'Running', podIP: web.ip, podIPs: [{ ip: web.ip }, { ip: web.ip6 }] },
    });
    for (const s of [...slices('web'), ...slices('web-local')]) api.create(s);
    const started = [startAgent(n1), startAgent(n2)];
    await Promise.all(started.map((p) => p.waitFor(/ ready: first sync enforced/)));
  }, 60_000);

  afterAll(async () => {
    await topo.tearDown(agents, async () => {
      kubectl?.close();
      await api.stop().catch(() => undefined);
    });
    rmSync(dir, { recursive: true, force: true });
  });

  it("attaches from_node / to_node to the interface holding the node's address, and says so in weir agent status", async () => {
    for (const n of [n1, n2]) {
      const shown = tcShow(n, 'eth0');
      expect(shown).toMatch(/from_node/);
      expect(shown).toMatch(/to_node/);
      const s = await readAgentStatus<NodeAgentStatus>(runDir(n));
      expect(s.nodePorts).toEqual({
        by: 'node',
        interfaces: [{ name: 'eth0', ifindex: expect.any(Number) as number, addresses: [n.address, n.address6] }],
        missing: [],
        failed: [],
      });
    }
    const out = execFileSync(process.execPath, [CLI, 'agent', 'status', `--run-dir=${runDir(n1)}`]).toString();
    expect(out).toMatch(new RegExp(`nodeports: +eth0 \\(${n1.address}, ${n1.address6}\\)`));
    // The pods' own veth keeps the pod programs.
    expect(tcShow(n1, web.hostVeth)).toMatch(/from_pod[\s\S]*to_pod/);
  });

  it("externalTrafficPolicy Cluster: a client reaches the NodePort of the backend's node over TCP and UDP, IPv4 and IPv6, from its own address", async () => {
    const got = await Promise.all([
      probe(clientA, 'tcp', n1.address, CLUSTER_TCP),
      probe(clientA, 'udp', n1.address, CLUSTER_UDP),
      probe(clientA, 'tcp', n1.address6, CLUSTER_TCP),
      probe(clientA, 'udp', n1.address6, CLUSTER_UDP),
      probe(clientB, 'tcp', n1.address, CLUSTER_TCP),
    ]);
    expect(got).toEqual([
      greeting(clientA),
      greeting(clientA),
      greeting(clientA, 6),
      greeting(clientA, 6),
      greeting(clientB),
    ]);
    // The node itself does not listen there: without the translation the client would be refused.
    expect(await probe(clientA, 'tcp', n1.address, 30999)).toBe('refused');
  });

  it("externalTrafficPolicy Local: the node with the backend answers with the client's own address seen; the other node drops it (SERVICE_BACKEND_NOT_FOUND)", async () => {
    expect(
      await Promise.all([
        probe(clientA, 'tcp', n1.address, LOCAL_TCP),
        probe(clientA, 'udp', n1.address, LOCAL_UDP),
        probe(clientB, 'tcp', n1.address6, LOCAL_TCP),
      ]),
    ).toEqual([greeting(clientA), greeting(clientA), greeting(clientB, 6)]);
    // Node 2 has no local backend: the client's SYN (datagram) is dropped, never refused, never
    // forwarded to node 1 (where the reply would not come back through node 2).
    expect(
      await Promise.all([
        probe(clientA, 'tcp', n2.address, LOCAL_TCP),
        probe(clientA, 'udp', n2.address, LOCAL_UDP),
        probe(clientA, 'tcp', n2.address6, LOCAL_TCP),
      ]),
    ).toEqual(['timeout', 'timeout', 'timeout']);
    const out = execFileSync(process.execPath, [
      CLI,
      'observe',
      `--server=${join(runDir(n2), 'observer.sock')}`,
      '--verdict=DROPPED',
      '--last=1000',
      '-o',
      'jsonpb',
    ]).toString();
    const drops = out
      .trim()
      .split('\n')
      .filter((l) => l.length > 0)
      .map(
        (l) =>
          (JSON.parse(l) as { flow: { drop_reason_desc?: string; IP?: { source?: string; destination?: string } } })
            .flow,
      )
      .filter((f) => f.drop_reason_desc === 'SERVICE_BACKEND_NOT_FOUND');
    expect(drops.map((f) => f.IP?.source)).toEqual(expect.arrayContaining([clientA.address, clientA.address6]));
    // Node 1's Local NodePort still answers meanwhile.
    expect(await probe(clientB, 'tcp', n1.address, LOCAL_TCP)).toBe(greeting(clientB));
  });

  it("externalTrafficPolicy Cluster: a client reaches node 2's NodePort whose only backend runs on node 1, masqueraded (the backend sees node 2's address)", async () => {
    const node2 = (family: 4 | 6) => `ok hello web from ${family === 4 ? n2.address : n2.address6}`;
    const got = await Promise.all([
      probe(clientA, 'tcp', n2.address, CLUSTER_TCP),
      probe(clientA, 'udp', n2.address, CLUSTER_UDP),
      probe(clientA, 'tcp', n2.address6, CLUSTER_TCP),
      probe(clientA, 'udp', n2.address6, CLUSTER_UDP),
      probe(clientB, 'tcp', n2.address, CLUSTER_TCP),
    ]);
    expect(got).toEqual([node2(4), node2(4), node2(6), node2(6), node2(4)]);
    // node 1 keeps the client's own address for its local backend meanwhile
    expect(await probe(clientB, 'tcp', n1.address, CLUSTER_TCP)).toBe(greeting(clientB));
  });

  it("an ingress policy on the backend that allows only client B's address admits B through the NodePort and refuses A", async () => {
    const policy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'web-from-b', namespace: 'np' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ ipBlock: { cidr: `${clientB.address}/32` } }, { ipBlock: { cidr: `${clientB.address6}/128` } }] },
        ],
      },
    };
    await kubectl.apply([policy]);
    const cases = (from: TestClient, want: (f: 4 | 6) => string) => [
      { from, proto: 'tcp' as const, host: n1.address, port: CLUSTER_TCP, want: want(4) },
      { from, proto: 'udp' as const, host: n1.address, port: CLUSTER_UDP, want: want(4) },
      { from, proto: 'tcp' as const, host: n1.address6, port: CLUSTER_TCP, want: want(6) },
      { from, proto: 'tcp' as const, host: n1.address, port: LOCAL_TCP, want: want(4) },
    ];
    // Through node 2 (Cluster, masqueraded) the backend sees node 2's address, which no ipBlock
    // matches: neither client passes there.
    const viaNode2 = (from: TestClient) => ({
      from,
      proto: 'tcp' as const,
      host: n2.address,
      port: CLUSTER_TCP,
      want: 'timeout',
    });
    await until([
      ...cases(clientA, () => 'timeout'),
      ...cases(clientB, (f) => greeting(clientB, f)),
      viaNode2(clientA),
      viaNode2(clientB),
    ]);
    await kubectl.ok(['delete', 'networkpolicy', 'web-from-b', '-n', 'np']);
    await until([...cases(clientA, (f) => greeting(clientA, f))]);
  });

  it("an agent restarted with --nodeport-interfaces serves NodePorts only there (the earlier agent's programs leave eth0), and with Services off nowhere", async () => {
    inNode(n2, 'ip link add np0 type veth peer name np1 && ip link set np0 up && ip link set np1 up');
    agents.get(n2.name)!.kill9();
    const restarted = startAgent(n2, ['--nodeport-interfaces=np0,missing0']);
    await restarted.waitFor(/ ready: first sync enforced/);
    expect(tcShow(n2, 'eth0')).not.toMatch(/from_node|to_node/);
    expect(tcShow(n2, 'np0')).toMatch(/from_node[\s\S]*to_node/);
    const s = await readAgentStatus<NodeAgentStatus>(runDir(n2));
    expect(s.nodePorts).toMatchObject({
      by: 'flag',
      interfaces: [{ name: 'np0', addresses: [] }],
      missing: ['missing0'],
    });
    expect(restarted.lines.join('\n')).toMatch(/--nodeport-interfaces names missing0, which this node does not have/);
    // Services off: no interface serves NodePorts, and the earlier agent's programs leave np0 too.
    restarted.kill9();
    const off = startAgent(n2, ['--services=false', '--nodeport-interfaces=np0']);
    await off.waitFor(/ ready: first sync enforced/);
    expect(tcShow(n2, 'np0') + tcShow(n2, 'eth0')).not.toMatch(/from_node|to_node/);
    expect((await readAgentStatus<NodeAgentStatus>(runDir(n2))).nodePorts).toBeUndefined();
  });

  it('DaemonSet deleted, then SIGTERM (helm uninstall): no weir program stays on any interface, pins gone', async () => {
    api.delete('DaemonSet', 'weir', 'kube-system');
    await sleep(300);
    const exits = [n1, n2].map((n) => {
      const p = agents.get(n.name)!;
      const exited = new Promise<number | null>((r) => p.child.once('exit', (code) => r(code)));
      p.child.kill('SIGTERM');
      return exited;
    });
    expect(await Promise.all(exits)).toEqual([0, 0]);
    for (const n of [n1, n2]) {
      expect(agents.get(n.name)!.lines.join('\n')).toMatch(/\(uninstall\): detaching and unpinning/);
      expect(inNode(n, 'bpftool net show')).not.toMatch(/from_node|to_node|from_pod|to_pod/);
      expect(existsSync(pinRoot(n))).toBe(false);
    }
    // Nothing translates any more: node 1 refuses the NodePort, as a node without weir does.
    expect(await probe(clientA, 'tcp', n1.address, CLUSTER_TCP)).toBe('refused');
    const out = spawnSync(
      'nsenter',
      [`--net=/var/run/netns/${n2.netns}`, process.execPath, CLI, 'agent', 'cleanup', `--pin-root=${pinRoot(n2)}`],
      {
        encoding: 'utf8',
      },
    );
    expect(out.stdout).toBe(`detached from 0 interface(s)\n${pinRoot(n2)} was not there\n`);
  });
});
