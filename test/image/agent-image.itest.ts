/**
 * The agent image, for real (`make test-image`; root; needs `make image` and `make tools`):
 * - the image is pushed with the command docs/install.md gives, to an `oci-archive:` destination
 *   (there is no registry here), and what was pushed is the image that was built;
 * - on the two-node topology of the Kubernetes end-to-end test, each node runs the image with
 *   podman as the chart's DaemonSet runs it: the pod spec is rendered by `helm template` and turned
 *   into podman flags — its args and env, its securityContext (capabilities added and dropped, not
 *   privileged, no privilege escalation, read-only root), its hostPath, ConfigMap and emptyDir
 *   volumes with their mount propagation, hostNetwork (the node's network namespace) and hostPID
 *   as the chart sets them. The only addition is a kubeconfig for the test API server, which stands
 *   in for the service account a real pod would have;
 * - the containers enforce a policy applied with kubectl, serve /metrics and stream flows
 *   (`weir observe` run inside the container, as `kubectl exec` would).
 *
 * @requires root
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { Kubectl } from '../apiserver/kubectl.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { API_HOST, Topology, type TestNode, type TestPod } from '../k8s/topology.js';

const IMAGE =
  process.env.WEIR_IMAGE ??
  `weir/agent:${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version}`;
const PODMAN = ['--runtime', 'runc', '--cgroup-manager=cgroupfs'];
const HELM = resolve('.tools/bin/helm');
const CONTAINER = (n: TestNode) => `wk8i-agent-${n.name}`;
const PIN_ROOT = (n: TestNode) => `/sys/fs/bpf/wk8i-${n.name}`;

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }>;
}
interface PodSpec {
  hostNetwork?: boolean;
  hostPID?: boolean;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Array<{
    name: string;
    hostPath?: { path: string };
    configMap?: { name: string };
    secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
    emptyDir?: object;
  }>;
}

const run = (cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((done) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** podman flags for one container of the pod spec, on `node`. */
function podmanRun(
  spec: PodSpec,
  c: Container,
  node: TestNode,
  files: { config: string; scratch: string; secrets: Map<string, Record<string, string>> },
  extra: string[],
  detach: boolean,
): string[] {
  const flags = [...PODMAN, 'run', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];
  flags.push(detach ? '-d' : '--rm');
  // hostNetwork: the node's network namespace; otherwise a network of its own.
  flags.push(spec.hostNetwork ? `--network=ns:/var/run/netns/${node.netns}` : '--network=none');
  if (spec.hostPID) flags.push('--pid=host');
  const sc = c.securityContext ?? {};
  if (sc.privileged) flags.push('--privileged');
  for (const cap of sc.capabilities?.drop ?? []) flags.push(`--cap-drop=${cap}`);
  for (const cap of sc.capabilities?.add ?? []) flags.push(`--cap-add=${cap}`);
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt=no-new-privileges');
  if (sc.readOnlyRootFilesystem) flags.push('--read-only');
  // kubelet runs containers without a seccomp profile unless the pod asks for one.
  if (!sc.privileged && sc.seccompProfile?.type !== 'RuntimeDefault') flags.push('--security-opt=seccomp=unconfined');
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.fieldRef?.fieldPath;
    const value =
      e.value ??
      (ref === 'spec.nodeName'
        ? node.name
        : ref === 'metadata.namespace'
          ? 'kube-system'
          : ref === 'metadata.name'
            ? `weir-${node.name}`
            : ref === 'status.hostIP' || (ref === 'status.podIP' && spec.hostNetwork)
              ? node.address
              : undefined);
    if (value === undefined) throw new Error(`env ${e.name}: cannot emulate ${JSON.stringify(e.valueFrom)}`);
    env[e.name] = value;
    flags.push('-e', `${e.name}=${value}`);
  }
  const mounted: Array<{ at: string; dir: string }> = [];
  const mount = (dir: string, m: { mountPath: string }, options: string): void => {
    // A mount inside another one (a Secret under the ConfigMap's directory): its mount point is
    // made in the outer volume's directory, as kubelet does.
    for (const outer of mounted)
      if (m.mountPath.startsWith(`${outer.at}/`))
        mkdirSync(join(outer.dir, m.mountPath.slice(outer.at.length + 1)), { recursive: true });
    mounted.push({ at: m.mountPath, dir });
    flags.push('-v', `${dir}:${m.mountPath}:${options}`);
  };
  for (const m of c.volumeMounts ?? []) {
    const v = spec.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`volume ${m.name} is not declared`);
    const propagation =
      m.mountPropagation === 'HostToContainer' ? ',rslave' : m.mountPropagation === 'Bidirectional' ? ',rshared' : '';
    const ro = m.readOnly ? 'ro' : 'rw';
    if (v.hostPath) {
      mkdirSync(v.hostPath.path, { recursive: true }); // type DirectoryOrCreate
      mount(v.hostPath.path, m, `${ro}${propagation}`);
    } else if (v.configMap) mount(files.config, m, 'ro');
    else if (v.secret) {
      // The Secret the chart renders (its certificates), written out as kubelet projects it.
      const data = files.secrets.get(v.secret.secretName);
      if (!data) throw new Error(`secret ${v.secret.secretName} is not rendered by the chart`);
      const dir = join(files.scratch, `secret-${m.name}`);
      mkdirSync(dir, { recursive: true });
      const items = v.secret.items ?? Object.keys(data).map((key) => ({ key, path: key }));
      for (const it of items)
        writeFileSync(join(dir, it.path), Buffer.from(data[it.key] ?? '', 'base64'), { mode: 0o400 });
      mount(dir, m, 'ro');
    } else if (v.emptyDir) {
      const dir = join(files.scratch, `${c.name}-${m.name}`);
      mkdirSync(dir, { recursive: true });
      mount(dir, m, ro);
    } else throw new Error(`volume ${m.name}: only hostPath, configMap, secret and emptyDir are emulated`);
  }
  flags.push(...extra);
  if (c.command) flags.push(`--entrypoint=${c.command[0]}`);
  flags.push(IMAGE);
  // Kubernetes expands $(VAR) in command and args from the container's env.
  const expand = (s: string) => s.replace(/\$\((\w+)\)/g, (all, name: string) => env[name] ?? all);
  flags.push(...(c.command?.slice(1) ?? []).map(expand), ...(c.args ?? []).map(expand));
  return flags;
}

const ns = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const podObj = (p: TestPod): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: p.name, namespace: p.namespace, labels: { app: p.name } },
  spec: {
    nodeName: p.node.name,
    containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80 }] }],
  },
});
const nodeObj = (n: TestNode): KubeObject => ({
  apiVersion: 'v1',
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

describe('the agent image run as the chart runs it, on two nodes (root, podman)', () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'wk8i-'));
  const api = new TestApiServer({ host: API_HOST });
  let kubectl: Kubectl;
  let n1: TestNode;
  let n2: TestNode;
  let a: TestPod;
  let b: TestPod;
  let c: TestPod;
  const healthPort = new Map<string, number>();
  const metricsPort = new Map<string, number>();
  const runDir = (n: TestNode) => join(dir, `run-${n.name}`);

  const removeContainers = () => {
    for (const n of ['node-1', 'node-2'])
      try {
        execFileSync('podman', [...PODMAN, 'rm', '-f', '-t', '0', `wk8i-agent-${n}`], { stdio: 'ignore' });
      } catch {
        /* not there */
      }
  };

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('runs containers, network namespaces and BPF: run as root');
    await ok('podman', ['image', 'exists', IMAGE]).catch(() => {
      throw new Error(`image ${IMAGE} is missing: run 'make image' first`);
    });
    removeContainers();
    topo.create();
    for (const n of ['node-1', 'node-2']) rmSync(`/sys/fs/bpf/wk8i-${n}`, { recursive: true, force: true });
    n1 = topo.addNode(1);
    n2 = topo.addNode(2);
    a = topo.addPod(n1, 'x', 'a', 2);
    b = topo.addPod(n1, 'x', 'b', 3);
    c = topo.addPod(n2, 'x', 'c', 2);
    await api.start();
    kubectl = new Kubectl(api.kubeconfig());
    api.create(nodeObj(n1));
    api.create(nodeObj(n2));
    await kubectl.apply([ns('x'), ...[a, b, c].map(podObj)]);
    for (const p of [a, b, c]) {
      api.update({
        ...api.get('Pod', p.name, 'x')!,
        status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }, { ip: p.ip6 }] },
      });
    }
    const kube = join(dir, 'kube');
    mkdirSync(kube);
    writeFileSync(join(kube, 'kubeconfig'), api.kubeconfig());

    for (const n of [n1, n2]) {
      // One render per node: the nodes share this machine's filesystem, so each gets its own pin
      // root and run dir (on a cluster every node has its own /sys/fs/bpf and /run).
      const values = join(dir, `values-${n.name}.yaml`);
      writeFileSync(
        values,
        stringify({
          image: { repository: IMAGE.split(':')[0], tag: IMAGE.split(':')[1] },
          agent: {
            pinRoot: PIN_ROOT(n),
            runDir: runDir(n),
            logLevel: 'debug',
            extraArgs: ['--kubeconfig=/var/run/weir-test/kubeconfig'],
          },
        }),
      );
      const rendered = parseAllDocuments(
        await ok(HELM, ['template', 'weir', 'charts/weir', '--namespace', 'kube-system', '-f', values]),
      ).map(
        (d) =>
          d.toJS() as {
            kind?: string;
            metadata?: { name: string };
            data?: Record<string, string>;
            stringData?: Record<string, string>;
            spec?: { template: { spec: PodSpec } };
          },
      );
      const ds = rendered.find((o) => o?.kind === 'DaemonSet')!;
      const cm = rendered.find((o) => o?.kind === 'ConfigMap')!;
      const spec = ds.spec!.template.spec;
      const config = join(dir, `config-${n.name}`);
      mkdirSync(config);
      for (const [f, text] of Object.entries(cm.data ?? {})) writeFileSync(join(config, f), text);
      const cfg = (parseAllDocuments(cm.data!['config.yaml']!)[0]!.toJS() ?? {}) as Record<string, number>;
      healthPort.set(n.name, cfg.healthPort ?? 9879);
      metricsPort.set(n.name, cfg.metricsPort ?? 9962);
      const secrets = new Map<string, Record<string, string>>();
      for (const o of rendered.filter((x) => x?.kind === 'Secret')) {
        const data = { ...(o.data ?? {}) };
        for (const [k, v] of Object.entries(o.stringData ?? {})) data[k] = Buffer.from(v).toString('base64');
        secrets.set(o.metadata!.name, data);
      }
      const files = { config, scratch: join(dir, `scratch-${n.name}`), secrets };
      for (const init of spec.initContainers ?? []) await ok('podman', podmanRun(spec, init, n, files, [], false));
      const agent = spec.containers.find((x) => x.name === 'agent')!;
      await ok(
        'podman',
        podmanRun(spec, agent, n, files, ['--name', CONTAINER(n), '-v', `${kube}:/var/run/weir-test:ro`], true),
      );
    }
    for (const n of [n1, n2]) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const res = await fetch(`http://${n.address}:${healthPort.get(n.name)}/readyz`).catch(() => undefined);
        if (res?.status === 200) break;
        if (Date.now() > deadline) {
          const logs = await run('podman', ['logs', CONTAINER(n)]);
          throw new Error(`${n.name}: the agent container is not ready:\n${logs.stdout}${logs.stderr}`);
        }
        await sleep(250);
      }
    }
  }, 180_000);

  afterAll(async () => {
    if (process.env.WEIR_E2E_LOGS)
      for (const n of ['node-1', 'node-2']) {
        const logs = await run('podman', ['logs', `wk8i-agent-${n}`]);
        process.stderr.write(`--- ${n}\n${logs.stdout}${logs.stderr}\n`);
      }
    removeContainers();
    kubectl?.close();
    await api.stop().catch(() => undefined);
    await topo.destroy();
    for (const n of ['node-1', 'node-2']) rmSync(`/sys/fs/bpf/wk8i-${n}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('runs unprivileged with exactly the capabilities the chart adds', async () => {
    const inspect = JSON.parse(await ok('podman', ['inspect', CONTAINER(n1)])) as Array<{
      HostConfig: { Privileged: boolean; ReadonlyRootfs: boolean };
      EffectiveCaps?: string[];
    }>;
    expect(inspect[0]!.HostConfig.Privileged).toBe(false);
    expect(inspect[0]!.HostConfig.ReadonlyRootfs).toBe(true);
    expect([...(inspect[0]!.EffectiveCaps ?? [])].sort()).toEqual([
      'CAP_BPF',
      'CAP_NET_ADMIN',
      'CAP_PERFMON',
      'CAP_SYS_ADMIN',
    ]);
  });

  it('holds node, libbpf1 and iproute2 and none of the build tools', async () => {
    const out = await ok('podman', [
      ...PODMAN,
      'run',
      '--rm',
      '--ulimit',
      'nofile=1024:1024',
      '--ulimit',
      'nproc=4096:4096',
      '--network=none',
      '--entrypoint=sh',
      IMAGE,
      '-c',
      'node --version; dpkg-query -W libbpf1 iproute2 | cut -f1 | cut -d: -f1; for t in npm npx clang gcc g++ make python3; do command -v $t; done; true',
    ]);
    expect(out.trim().split('\n')).toEqual([
      expect.stringMatching(/^v20\./) as unknown as string,
      'iproute2',
      'libbpf1',
    ]);
  });

  it('enforces a policy applied with kubectl: b on node-1 admits a, not c from node-2', async () => {
    const probe = async (from: TestPod, to: TestPod) => (await topo.probe(from, [{ pod: to, port: 80 }]))[0]!;
    expect([await probe(a, b), await probe(c, b), await probe(b, c)]).toEqual([true, true, true]);
    await kubectl.apply([
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'b-from-a', namespace: 'x' },
        spec: {
          podSelector: { matchLabels: { app: 'b' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
        },
      },
    ]);
    const deadline = Date.now() + 10_000;
    let last: boolean[] = [];
    while (Date.now() < deadline) {
      last = [await probe(a, b), await probe(c, b), await probe(b, c)];
      if (!last[1]) break;
    }
    expect(last).toEqual([true, false, true]);
  });

  it('serves metrics that count the drop', async () => {
    const text = await (await fetch(`http://${n1.address}:${metricsPort.get(n1.name)}/metrics`)).text();
    const dropped = text
      .split('\n')
      .filter((l) => l.startsWith('weir_policy_verdicts_total{') && l.includes('action="dropped"'))
      .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
    expect(dropped).toBeGreaterThan(0);
  });

  it('streams flows: weir observe inside the container shows the dropped connection', async () => {
    const out = await ok('podman', [
      'exec',
      CONTAINER(n1),
      'weir',
      'observe',
      `--server=${join(runDir(n1), 'observer.sock')}`,
      '--verdict=DROPPED',
      '--last=100',
      '-o',
      'jsonpb',
    ]);
    const flows = out
      .trim()
      .split('\n')
      .map(
        (l) =>
          (JSON.parse(l) as { flow: { source?: { pod_name?: string }; destination?: { pod_name?: string } } }).flow,
      );
    expect(flows.some((f) => f.source?.pod_name === 'c' && f.destination?.pod_name === 'b')).toBe(true);
  });

  it('is built and pushed with the commands docs/install.md gives (to an OCI archive: no registry here)', async () => {
    const doc = readFileSync('docs/install.md', 'utf8');
    const build = /^make image IMAGE=(\S+)$/m.exec(doc);
    const push = /^podman push (\S+) (\S+)$/m.exec(doc);
    expect({ build: build?.[0], push: push?.[0] }).toEqual({
      build: expect.stringMatching(/^make image IMAGE=/) as unknown,
      push: expect.stringMatching(/^podman push /) as unknown,
    });
    const name = build![1]!;
    expect(push![1]).toBe(name);
    // The documented commands; only the push destination is an archive instead of a registry.
    await ok('make', ['image', `IMAGE=${name}`]);
    const archive = join(dir, 'weir-agent.tar');
    try {
      await ok('podman', ['push', name, `oci-archive:${archive}`]);
      const pushed = (await ok('podman', ['pull', '-q', `oci-archive:${archive}`])).trim();
      const built = (await ok('podman', ['image', 'inspect', IMAGE, '--format', '{{.Id}}'])).trim();
      expect(pushed).toBe(built);
    } finally {
      // `podman untag IMAGE` alone would remove every name of the image: name the one to remove.
      if (name !== IMAGE) await run('podman', ['untag', name, name]);
    }
  }, 300_000);
});
