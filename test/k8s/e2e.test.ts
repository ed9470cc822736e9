/**
 * End to end (root, kernel): `weir agent` in Kubernetes mode against the test API server, on two
 * "nodes" (network namespaces) of one machine, each with its own agent and pin path, pods behind
 * routed veths. Policies created, changed and deleted through the API change connectivity within
 * one second; an agent killed with -9 and restarted keeps established connections flowing and denied
 * ones denied; an API outage keeps enforcement, and the relist afterwards removes what was deleted
 * meanwhile; cross-node traffic obeys policy on both sides. SIGTERM while the agents' DaemonSet
 * exists (upgrade, restart) leaves every program attached; SIGTERM after the DaemonSet was deleted
 * (uninstall) leaves no weir program attached on either node and no pins.
 *
 * Namespaces, Pods and NetworkPolicies are written with real kubectl (`kubectl apply -f`,
 * `kubectl delete`), as a user does; what kubelet and the chart's controllers write (Node objects,
 * pod status, the agents' DaemonSet and pods), a deletion while the API server is down and the
 * uninstall's refusals are written from the test.
 *
 * Needs `make build` (dist/ and build/bpf/weir.o) and `make tools` (kubectl).
 *
 * @requires root
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readAgentStatus } from '../../agent/node/status.js';
import { Kubectl } from '../apiserver/kubectl.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { API_HOST, LoggedProcess, Topology, type TestNode, type TestPod } from './topology.js';

const CLI = resolve('dist/agent/cli/main.js');
const HEALTH_PORT = 18901;
const METRICS_PORT = 18962;
const ONE_SECOND = 1000;

const ns = (name: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
});
const nodeObj = (n: TestNode): KubeObject => ({
  kind: 'Node',
  metadata: { name: n.name },
  spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR, n.podCIDR6] },
  status: {
    addresses: [
      { type: 'InternalIP', address: n.address },
      { type: 'InternalIP', address: n.address6 },
    ],
  },
});
const podObj = (p: TestPod): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: p.name, namespace: p.namespace, labels: { app: p.name } },
  spec: {
    nodeName: p.node.name,
    containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }],
  },
});
/** What kubelet reports for a running pod (the status subresource). */
const podStatus = (ip: string, ip6?: string): Record<string, unknown> => ({
  phase: 'Running',
  podIP: ip,
  podIPs: [{ ip }, ...(ip6 ? [{ ip: ip6 }] : [])],
});
const policy = (name: string, namespace: string, spec: Record<string, unknown>): KubeObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace },
  spec,
});

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe('weir agent in Kubernetes mode, two nodes on one machine (root)', () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'wk8-e2e-'));
  const api = new TestApiServer({ host: API_HOST, bookmarkIntervalMs: 1000 });
  const agents = new Map<string, LoggedProcess>();
  let kubectl: Kubectl;
  /** `kubectl apply -f` of these objects, as a user does. */
  const apply = async (...objects: KubeObject[]): Promise<void> => {
    await kubectl.apply(objects);
  };
  /** `kubectl delete networkpolicy NAME -n x`. */
  const deletePolicy = async (name: string): Promise<void> => {
    await kubectl.ok(['delete', 'networkpolicy', name, '-n', 'x']);
  };
  let n1: TestNode;
  let n2: TestNode;
  let a: TestPod; // x/a on node-1
  let b: TestPod; // x/b on node-1
  let c: TestPod; // x/c on node-2
  let d: TestPod; // x/d on node-2, behind a bridge
  const pinRoot = (n: TestNode) => topo.pinRoot(n);
  const runDir = (n: TestNode) => join(dir, `run-${n.name}`);
  const agentPodName = (n: TestNode) => `weir-${n.name}`;
  /** What tc and bpftool show on a node: weir's filters on the pods' host-side veths. */
  const attached = (n: TestNode): string => {
    const inNode = (cmd: string) =>
      execFileSync('nsenter', [`--net=/var/run/netns/${n.netns}`, 'sh', '-c', cmd], { encoding: 'utf8' });
    const veths = [a, b, c, d].filter((p) => p.node === n).map((p) => p.hostVeth);
    return [
      ...veths.flatMap((v) => [inNode(`tc filter show dev ${v} ingress`), inNode(`tc filter show dev ${v} egress`)]),
      inNode('bpftool net show'),
    ].join('');
  };

  function startAgent(n: TestNode): LoggedProcess {
    const kubeconfig = join(dir, 'kubeconfig');
    const child = topo.spawnIn(n.netns, [
      process.execPath,
      CLI,
      'agent',
      `--kubeconfig=${kubeconfig}`,
      `--node-name=${n.name}`,
      `--pin-root=${pinRoot(n)}`,
      `--run-dir=${runDir(n)}`,
      `--health-port=${HEALTH_PORT}`,
      `--metrics-port=${METRICS_PORT}`,
      '--log-level=debug',
      `--pod-name=${agentPodName(n)}`,
      '--pod-namespace=kube-system',
    ]);
    const p = new LoggedProcess(child);
    agents.set(n.name, p);
    return p;
  }

  const probe = async (from: TestPod, to: TestPod, family: 4 | 6 = 4): Promise<boolean> =>
    (await topo.probe(from, [{ pod: to, port: 80, family }]))[0]!;
  /** The same expectations for IPv4 and IPv6. */
  const both = (o: Record<string, boolean>): Record<string, boolean> =>
    Object.fromEntries(
      Object.entries(o).flatMap(([k, v]) => [
        [k, v],
        [`${k} v6`, v],
      ]),
    );
  /** Probes over IPv4 and IPv6; keys "a->b" (IPv4) and "a->b v6". */
  const matrix = async (): Promise<Record<string, boolean>> => {
    const pairs: Array<[TestPod, TestPod]> = [
      [a, b],
      [c, b],
      [b, c],
    ];
    const out: Record<string, boolean> = {};
    const results = await Promise.all(pairs.flatMap(([f, t]) => [probe(f, t, 4), probe(f, t, 6)]));
    pairs.forEach(([f, t], i) => {
      out[`${f.name}->${t.name}`] = results[2 * i]!;
      out[`${f.name}->${t.name} v6`] = results[2 * i + 1]!;
    });
    return out;
  };

  /** Time from now until every expectation holds (probing repeatedly), or throws after `ms`. */
  async function until(expect: Record<string, boolean>, ms = 10_000): Promise<number> {
    const t0 = Date.now();
    let last: Record<string, boolean> = {};
    while (Date.now() - t0 < ms) {
      last = await matrix();
      if (Object.entries(expect).every(([k, v]) => last[k] === v)) return Date.now() - t0;
    }
    throw new Error(
      `connectivity did not become ${JSON.stringify(expect)} within ${ms} ms; last ${JSON.stringify(last)}`,
    );
  }

  /** Waits until an agent's four watches are open again (after an API outage). */
  async function watching(n: TestNode, ms = 40_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await readAgentStatus<{ watches: Record<string, { watching: boolean }> }>(runDir(n));
      if (Object.values(s.watches).every((w) => w.watching)) return;
      if (Date.now() > deadline) throw new Error(`${n.name}: watches not open again: ${JSON.stringify(s.watches)}`);
      await sleep(200);
    }
  }

  beforeAll(async () => {
    topo.create();
    for (const n of ['node-1', 'node-2']) rmSync(`/sys/fs/bpf/wk8-${n}`, { recursive: true, force: true });
    n1 = topo.addNode(1);
    n2 = topo.addNode(2);
    a = topo.addPod(n1, 'x', 'a', 2);
    b = topo.addPod(n1, 'x', 'b', 3);
    c = topo.addPod(n2, 'x', 'c', 2);
    d = topo.addBridgedPod(n2, 'x', 'd', 130);
    await api.start();
    writeFileSync(join(dir, 'kubeconfig'), api.kubeconfig());
    kubectl = new Kubectl(api.kubeconfig());
    api.create(ns('kube-system'));
    // The agents' DaemonSet and their pods (hostNetwork, owned by it), as the chart creates them.
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
          name: agentPodName(n),
          namespace: 'kube-system',
          labels: { app: 'weir' },
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'weir', uid: ds.metadata.uid, controller: true },
          ],
        },
        spec: { nodeName: n.name, hostNetwork: true, containers: [{ name: 'agent', image: 'weir/agent' }] },
        status: { phase: 'Running', podIP: n.address, podIPs: [{ ip: n.address }] },
      });
    }
    api.create(nodeObj(n1));
    api.create(nodeObj(n2));
    // The user applies the namespace and the pods; kubelet reports each pod running with its address.
    const exporter: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'node-exporter', namespace: 'x', labels: { app: 'exporter' } },
      spec: { nodeName: n1.name, hostNetwork: true, containers: [{ name: 'c', image: 'x' }] },
    };
    await kubectl.apply([ns('x'), ...[a, b, c, d].map(podObj), exporter]);
    const reportStatus = (name: string, status: Record<string, unknown>): void => {
      api.update({ ...api.get('Pod', name, 'x')!, status });
    };
    for (const p of [a, b, c, d]) reportStatus(p.name, podStatus(p.ip, p.ip6));
    // A hostNetwork pod (node address, no veth of its own) is never an endpoint.
    reportStatus('node-exporter', podStatus(n1.address));
    const r1 = startAgent(n1);
    const r2 = startAgent(n2);
    await Promise.all([r1.waitFor(/ ready: first sync enforced/), r2.waitFor(/ ready: first sync enforced/)]);
  }, 60_000);

  afterAll(async () => {
    await topo.tearDown(agents, async () => {
      kubectl?.close();
      await api.stop().catch(() => undefined);
    });
    rmSync(dir, { recursive: true, force: true });
  });

  it('is ready once the first sync is enforced, and reports it on /readyz and on its control socket only', async () => {
    const res = await fetch(`http://${n1.address}:${HEALTH_PORT}/readyz`);
    expect(res.status).toBe(200);
    // The node network learns nothing about pods or policies from the health port.
    expect((await fetch(`http://${n1.address}:${HEALTH_PORT}/statusz`)).status).toBe(404);
    const status = await readAgentStatus<{
      ready: boolean;
      endpoints: { enforced: number; waitingForInterface: string[] };
    }>(runDir(n1));
    expect(status.ready).toBe(true);
    expect(status.endpoints).toEqual({ enforced: 2, waitingForInterface: [] });
    expect(await matrix()).toEqual({
      'a->b': true,
      'c->b': true,
      'b->c': true,
      'a->b v6': true,
      'c->b v6': true,
      'b->c v6': true,
    });
    const out = execFileSync(process.execPath, [CLI, 'agent', 'status', `--run-dir=${runDir(n2)}`]).toString();
    expect(out).toMatch(/ready: +yes/);
    expect(out).toMatch(/endpoints: +2 with an interface/);
    // its memory settled once the first sync was enforced (agent/node/memory.ts)
    expect(out).toMatch(/memory: +settled [1-9]\d* time\(s\)/);
    // What the chart's `helm test` pod runs: both agents ready and serving metrics.
    const check = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, 'agent', 'check', ...args], { encoding: 'utf8' });
    const ok = check(
      `--host=${n1.address}`,
      `--host=${n2.address}`,
      `--health-port=${HEALTH_PORT}`,
      `--metrics-port=${METRICS_PORT}`,
    );
    expect({ status: ok.status, stdout: ok.stdout }).toEqual({
      status: 0,
      stdout: `${n1.address}: ready, metrics served\n${n2.address}: ready, metrics served\n`,
    });
    const wrong = check(`--host=${n1.address}`, `--health-port=${HEALTH_PORT + 1}`);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(new RegExp(`^${n1.address}: no agent answers on port ${HEALTH_PORT + 1}`));
  });

  it('a policy created, changed and deleted through the API changes connectivity within one second each time', async () => {
    await apply(policy('deny-b', 'x', { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Ingress'] }));
    const created = await until({
      'a->b': false,
      'c->b': false,
      'b->c': true,
      'a->b v6': false,
      'c->b v6': false,
      'b->c v6': true,
    });
    await apply(
      policy('deny-b', 'x', {
        podSelector: { matchLabels: { app: 'b' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }], ports: [{ port: 'http' }] }],
      }),
    );
    const changed = await until({ 'a->b': true, 'c->b': false, 'a->b v6': true, 'c->b v6': false });
    await deletePolicy('deny-b');
    const deleted = await until({ 'a->b': true, 'c->b': true, 'a->b v6': true, 'c->b v6': true });
    expect({ created, changed, deleted }).toEqual({
      created: expect.any(Number) as number,
      changed: expect.any(Number) as number,
      deleted: expect.any(Number) as number,
    });
    for (const ms of [created, changed, deleted]) expect(ms).toBeLessThan(ONE_SECOND);
    process.stdout.write(
      `policy change -> connectivity observed (ms, incl. probe): created ${created}, changed ${changed}, deleted ${deleted}\n`,
    );
  });

  it('reports dropped flows with both pods named on the node that dropped them (weir observe)', async () => {
    await apply(policy('deny-b', 'x', { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Ingress'] }));
    await until({ 'c->b': false });
    const out = execFileSync(process.execPath, [
      CLI,
      'observe',
      `--server=${join(dir, 'run-node-1', 'observer.sock')}`,
      '--verdict=DROPPED',
      '--last=1000',
      '-o',
      'jsonpb',
    ]).toString();
    const flows = out
      .trim()
      .split('\n')
      .map(
        (l) =>
          (
            JSON.parse(l) as {
              flow: {
                source?: { pod_name?: string };
                destination?: { pod_name?: string };
                verdict?: string;
                drop_reason_desc?: string;
                interface?: { name?: string };
              };
            }
          ).flow,
      );
    // A connection attempt in flight while the policy arrived is dropped as POLICY_REVOKED; new ones as POLICY_DENIED.
    const fromC = flows.filter(
      (f) => f.source?.pod_name === 'c' && f.destination?.pod_name === 'b' && f.drop_reason_desc === 'POLICY_DENIED',
    );
    expect(fromC.length).toBeGreaterThan(0);
    expect(fromC[0]).toMatchObject({ verdict: 'DROPPED', interface: { name: b.hostVeth } });
    await deletePolicy('deny-b');
    await until({ 'c->b': true });
  });

  it('enforces cross-node traffic on both sides: egress on the sending node, ingress on the receiving node', async () => {
    // Egress of c (node-2) denies b; node-1 allows everything: only node-2 can stop it.
    await apply(
      policy('c-egress', 'x', {
        podSelector: { matchLabels: { app: 'c' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      }),
    );
    await until({ 'c->b': false, 'b->c': true, 'a->b': true });
    await deletePolicy('c-egress');
    // Ingress of c (node-2) allows only a (node-1): node-2 resolves a and b by the identities of remote pods.
    await apply(
      policy('c-ingress', 'x', {
        podSelector: { matchLabels: { app: 'c' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      }),
    );
    await until({ 'b->c': false, 'c->b': true });
    expect(await topo.probe(a, [{ pod: c, port: 80 }])).toEqual([true]);
    await deletePolicy('c-ingress');
    await until({ 'b->c': true });
  });

  it('enforces on a pod behind a bridge (bridge CNI), found through the bridge FDB', async () => {
    expect(agents.get(n2.name)!.lines.join('\n')).toMatch(
      /pod x\/d: host-side interface wk8n2d \(ifindex \d+, by bridge\)/,
    );
    const toD = async () =>
      Object.fromEntries(
        await Promise.all(
          [a, b, c].map(async (p) => [`${p.name}->d`, (await topo.probe(p, [{ pod: d, port: 80 }]))[0]] as const),
        ),
      );
    expect(await toD()).toEqual({ 'a->d': true, 'b->d': true, 'c->d': true });
    await apply(
      policy('d-from-a', 'x', {
        podSelector: { matchLabels: { app: 'd' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      }),
    );
    const deadline = Date.now() + 5000;
    let last = await toD();
    while (Date.now() < deadline && !(last['a->d'] && !last['b->d'] && !last['c->d'])) last = await toD();
    expect(last).toEqual({ 'a->d': true, 'b->d': false, 'c->d': false });
    await deletePolicy('d-from-a');
  });

  it('kill -9 and restart: an established connection keeps flowing and a denied one stays denied', async () => {
    await apply(
      policy('only-a', 'x', {
        podSelector: { matchLabels: { app: 'b' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      }),
    );
    await until({ 'a->b': true, 'c->b': false });
    const stream = topo.stream(a, b, 80, 20);
    const echoes: number[] = [];
    let closed = false;
    stream.stdout?.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n')) {
        if (l.startsWith('echo ')) echoes.push(Date.now());
        if (l === 'closed' || l.startsWith('error')) closed = true;
      }
    });
    while (echoes.length < 5) await sleep(20);

    agents.get(n1.name)!.kill9();
    const killedAt = Date.now();
    // While node-1 has no agent: denied stays denied, the stream flows.
    const deniedWhileDown = [await probe(c, b), await probe(c, b), await probe(c, b)];
    const restarted = startAgent(n1);
    const restartAt = Date.now();
    await restarted.waitFor(/ ready: first sync enforced/);
    const restartedReadyMs = Date.now() - restartAt;
    expect(restarted.lines.filter((l) => /^\S+Z error /.test(l))).toEqual([]);
    const deniedAfter = [await probe(c, b), await probe(c, b)];
    const newFromA = await probe(a, b);
    await sleep(200);

    expect(deniedWhileDown).toEqual([false, false, false]);
    expect(deniedAfter).toEqual([false, false]);
    expect(newFromA).toBe(true);
    expect(closed).toBe(false);
    // No gap longer than half a second in the echoes across the restart.
    const across = echoes.filter((t) => t >= killedAt - 1000);
    const gaps = across.slice(1).map((t, i) => t - across[i]!);
    expect(Math.max(...gaps)).toBeLessThan(500);
    process.stdout.write(
      `restart: ${across.length} echoes across kill -9 + restart, longest gap ${Math.max(...gaps)} ms; restarted agent ready after ${restartedReadyMs} ms\n`,
    );
    expect(echoes[echoes.length - 1]!).toBeGreaterThan(killedAt + 500);
    process.kill(stream.pid!, 'SIGKILL');
    await deletePolicy('only-a');
    await until({ 'c->b': true });
  }, 60_000);

  it('API outage: enforcement continues; the relist afterwards removes what was deleted meanwhile', async () => {
    await apply(policy('deny-all', 'x', { podSelector: {}, policyTypes: ['Ingress'] }));
    await until({ 'a->b': false, 'c->b': false, 'b->c': false });
    await api.stop();
    await sleep(300);
    // The agents lost the API; the datapath keeps the last known state.
    expect(await matrix()).toEqual(both({ 'a->b': false, 'c->b': false, 'b->c': false }));
    // Deleted while the API server is down: no client can do that; the test writes the store.
    api.delete('NetworkPolicy', 'deny-all', 'x');
    api.compact();
    await api.start();
    await until({ 'a->b': true, 'c->b': true, 'b->c': true }, 40_000);
    expect(agents.get(n1.name)!.lines.join('\n')).toMatch(/watch of networkpolicies failed/);
    await watching(n1);
    await watching(n2);
  }, 90_000);

  it('an agent restarted while the API is down keeps the pinned state and is not ready until it has listed', async () => {
    await apply(
      policy('only-a', 'x', {
        podSelector: { matchLabels: { app: 'b' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      }),
    );
    await until({ 'a->b': true, 'c->b': false });
    await api.stop();
    agents.get(n1.name)!.kill9();
    const restarted = startAgent(n1);
    await restarted.waitFor(/health on/);
    await sleep(500);
    const res = await fetch(`http://${n1.address}:${HEALTH_PORT}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/waiting for the first list of .*networkpolicies/);
    expect(await matrix()).toEqual(both({ 'a->b': true, 'c->b': false, 'b->c': true }));
    await api.start();
    await restarted.waitFor(/ ready: first sync enforced/, 40_000);
    expect(await matrix()).toEqual(both({ 'a->b': true, 'c->b': false, 'b->c': true }));
    await watching(n2);
    await deletePolicy('only-a');
    await until({ 'c->b': true });
  }, 90_000);

  it('SIGTERM while the DaemonSet exists (upgrade, restart): programs stay attached, connections flow, policy holds', async () => {
    await apply(
      policy('only-a', 'x', {
        podSelector: { matchLabels: { app: 'b' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
      }),
    );
    await until({ 'a->b': true, 'c->b': false });
    const before = attached(n1);
    expect(before).toMatch(/from_pod/);
    expect(before).toMatch(/to_pod/);
    const stream = topo.stream(a, b, 80, 20);
    const echoes: number[] = [];
    let closed = false;
    stream.stdout?.on('data', (buf: Buffer) => {
      for (const l of buf.toString().split('\n')) {
        if (l.startsWith('echo ')) echoes.push(Date.now());
        if (l === 'closed' || l.startsWith('error')) closed = true;
      }
    });
    while (echoes.length < 5) await sleep(20);

    const agent1 = agents.get(n1.name)!;
    const exited = new Promise<number | null>((r) => agent1.child.once('exit', (code) => r(code)));
    const stoppedAt = Date.now();
    agent1.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(agent1.lines.join('\n')).toMatch(
      /SIGTERM: stopping; programs and maps stay pinned and keep enforcing: DaemonSet kube-system\/weir is present/,
    );
    // With no agent on node-1: still attached and pinned, the stream flows, c is still denied.
    expect(attached(n1)).toBe(before);
    expect(existsSync(pinRoot(n1))).toBe(true);
    expect(await matrix()).toEqual(both({ 'a->b': true, 'c->b': false, 'b->c': true }));
    await sleep(300);
    expect(closed).toBe(false);
    const across = echoes.filter((t) => t >= stoppedAt - 1000);
    const gaps = across.slice(1).map((t, i) => t - across[i]!);
    expect(Math.max(...gaps)).toBeLessThan(500);
    expect(echoes[echoes.length - 1]!).toBeGreaterThan(stoppedAt + 200);
    process.kill(stream.pid!, 'SIGKILL');
    process.stdout.write(
      `SIGTERM with the DaemonSet present: ${across.length} echoes across the stop, longest gap ${Math.max(...gaps)} ms\n`,
    );

    const restarted = startAgent(n1);
    await restarted.waitFor(/ ready: first sync enforced/);
    expect(await matrix()).toEqual(both({ 'a->b': true, 'c->b': false, 'b->c': true }));
    await deletePolicy('only-a');
    await until({ 'c->b': true });
  }, 60_000);

  it('DaemonSet deleted, then SIGTERM (helm uninstall): no weir program stays attached on either node, pins gone', async () => {
    await apply(policy('deny-c', 'x', { podSelector: { matchLabels: { app: 'c' } }, policyTypes: ['Ingress'] }));
    await apply(policy('deny-b', 'x', { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Ingress'] }));
    await until({ 'b->c': false, 'a->b': false });
    for (const n of [n1, n2]) expect(attached(n)).toMatch(/from_pod/);
    // helm uninstall deletes the DaemonSet (background propagation), then at once the
    // ClusterRoleBinding and the ServiceAccount: by the time the garbage collector has the pods
    // stopped, the API refuses the agents. Their watch of the DaemonSet saw the deletion.
    api.delete('DaemonSet', 'weir', 'kube-system');
    api.forbid();
    await sleep(200);
    const termAt = Date.now();
    const stopping = [n1, n2].map((n) => {
      const p = agents.get(n.name)!;
      const exited = new Promise<number | null>((r) => p.child.once('exit', (code) => r(code)));
      p.child.kill('SIGTERM');
      return exited;
    });
    expect(await Promise.all(stopping)).toEqual([0, 0]);
    process.stdout.write(
      `uninstall: both agents detached, unpinned and exited ${Date.now() - termAt} ms after SIGTERM\n`,
    );
    for (const n of [n1, n2]) {
      const log = agents.get(n.name)!.lines.join('\n');
      expect(log).toMatch(
        /SIGTERM: DaemonSet kube-system\/weir was deleted \(seen by the watch\) \(could not read pod kube-system\/weir-node-\d \(HTTP 403\)\) \(uninstall\): detaching and unpinning/,
      );
      expect(log).toMatch(new RegExp(`uninstall: detached from \\d+ interface\\(s\\).*removed ${pinRoot(n)}`));
      const left = attached(n);
      expect(left).not.toMatch(/from_pod|to_pod|bpf/);
      expect(existsSync(pinRoot(n))).toBe(false);
    }
    // Nothing enforces any more: the policies still exist in the API, but traffic flows.
    expect(await matrix()).toEqual(both({ 'a->b': true, 'c->b': true, 'b->c': true }));
    // The manual cleanup finds nothing left.
    const out = execFileSync('nsenter', [
      `--net=/var/run/netns/${n2.netns}`,
      process.execPath,
      CLI,
      'agent',
      'cleanup',
      `--pin-root=${pinRoot(n2)}`,
    ]).toString();
    expect(out).toBe(`detached from 0 interface(s)\n${pinRoot(n2)} was not there\n`);
  });
});
