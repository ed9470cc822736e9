/**
 * charts/weir rendered by the real helm (`helm template`, `helm lint --strict`, `helm install
 * --dry-run=client` for NOTES), with default values, a matrix of non-default ones and as a subchart;
 * every object validated against the Kubernetes schemas; the security-relevant fields asserted; bad
 * values rejected by helm itself through values.schema.json.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../../agent/node/config.js';
import { CHART, Helm, type Rendered } from './render.js';
import { unknownFields, validateObject, type RenderedObject } from './validate.js';

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  volumeMounts?: Array<{ name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }>;
  readinessProbe?: { httpGet?: { path: string; port: string } };
  livenessProbe?: { httpGet?: { path: string; port: string } };
  resources?: unknown;
}
interface PodSpec {
  hostNetwork?: boolean;
  priorityClassName?: string;
  serviceAccountName?: string;
  tolerations?: unknown[];
  initContainers?: Container[];
  containers: Container[];
  volumes: Array<{ name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string } }>;
  securityContext?: Record<string, unknown>;
}
interface DaemonSetSpec {
  updateStrategy: { type: string; rollingUpdate?: { maxUnavailable?: number | string } };
  template: { metadata: { annotations?: Record<string, string>; labels?: Record<string, string> }; spec: PodSpec };
}
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

/** The relay's objects are checked in relay.test.ts; these tests look at the rest. */
const notRelay = (o: RenderedObject) => o.metadata.labels?.['app.kubernetes.io/component'] !== 'relay';
const one = (r: Rendered, kind: string): RenderedObject => {
  const list = r.byKind(kind).filter(notRelay);
  expect(list).toHaveLength(1);
  return list[0]!;
};
const dsSpec = (r: Rendered) => one(r, 'DaemonSet').spec as DaemonSetSpec;
const agent = (r: Rendered) => dsSpec(r).template.spec.containers.find((c) => c.name === 'agent')!;

/** Every (apiGroup, resource, verb) the ClusterRole grants. */
function grants(r: Rendered): string[] {
  const rules = one(r, 'ClusterRole').rules as Rule[];
  return rules
    .flatMap((rule) =>
      rule.apiGroups.flatMap((g) =>
        rule.resources.flatMap((res) => rule.verbs.map((v) => `${g || 'core'}/${res}:${v}`)),
      ),
    )
    .sort();
}

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/** Value sets rendered, linted and validated besides the defaults and values-custom.yaml. */
const MATRIX: Array<[string, string[]]> = [
  ['metrics off', ['metrics.enabled=false']],
  ['ServiceMonitor and dashboards on', ['metrics.serviceMonitor.enabled=true', 'dashboards.enabled=true']],
  ['existing ServiceAccount, no RBAC', ['serviceAccount.create=false', 'serviceAccount.name=sa', 'rbac.create=false']],
  ['image by digest', [`image.digest=${DIGEST}`]],
  [
    'no bpffs init container, AppArmor left alone',
    ['bpffsMount.enabled=false', 'securityContext.appArmorUnconfined=false'],
  ],
  ['OnDelete updates, no tolerations', ['updateStrategy.type=OnDelete', 'tolerations=null']],
  ['pod security context', ['podSecurityContext.runAsUser=0', 'podSecurityContext.seccompProfile.type=RuntimeDefault']],
  ['global values of a parent chart', ['global.imageRegistry=registry.example', 'global.labels.team=net']],
];

describe('Helm chart charts/weir', () => {
  let helm: Helm;
  let defaults: Rendered;
  let custom: Rendered;
  const tmp = mkdtempSync(join(tmpdir(), 'wk8-chart-'));
  const customOpts = { values: ['test/chart/values-custom.yaml'], name: 'prod', namespace: 'weir-system' };

  beforeAll(() => {
    helm = new Helm();
    defaults = helm.template();
    custom = helm.template(customOpts);
  }, 120_000);
  afterAll(() => {
    helm?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it.each([
    ['default values', () => defaults],
    ['non-default values', () => custom],
  ])('renders only objects valid against the Kubernetes schemas (%s)', (_name, get) => {
    const r = get();
    expect(r.objects.length).toBeGreaterThanOrEqual(7);
    for (const o of r.objects) expect(() => validateObject(o)).not.toThrow();
  });

  it('passes helm lint --strict with default and non-default values', () => {
    expect(helm.lint()).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(helm.lint(['test/chart/values-custom.yaml'])).toMatch(/0 chart\(s\) failed/);
  });

  it.each(MATRIX)('renders valid objects and lints cleanly: %s', (_name, set) => {
    const r = helm.template({ set });
    expect(r.byKind('DaemonSet')).toHaveLength(1);
    for (const o of r.objects) expect(() => validateObject(o)).not.toThrow();
    expect(helm.run(['lint', '--strict', CHART, ...set.flatMap((x) => ['--set', x])])).toMatch(/0 chart\(s\) failed/);
  });

  it('works as a subchart: a parent chart passes global values and its own settings for weir', () => {
    const parent = join(tmp, 'platform');
    mkdirSync(join(parent, 'charts'), { recursive: true });
    cpSync(CHART, join(parent, 'charts', 'weir'), { recursive: true });
    writeFileSync(
      join(parent, 'Chart.yaml'),
      'apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: weir\n    version: 0.1.0\n',
    );
    writeFileSync(
      join(parent, 'values.yaml'),
      'global:\n  imageRegistry: registry.example\nweir:\n  image:\n    tag: "0.2.0"\n  metrics:\n    port: 19962\n',
    );
    const r = helm.template({ chart: parent, name: 'platform' });
    for (const o of r.objects) expect(() => validateObject(o)).not.toThrow();
    expect(agent(r).image).toBe('weir/agent:0.2.0');
    expect(agent(r).ports!.find((p) => p.name === 'metrics')!.containerPort).toBe(19962);
    expect(one(r, 'DaemonSet').metadata.name).toBe('platform-weir');
    // A parent's values are still checked against weir's schema.
    writeFileSync(join(parent, 'values.yaml'), 'weir:\n  metrics:\n    port: http\n');
    expect(() => helm.template({ chart: parent, name: 'platform' })).toThrow(/weir[\s\S]*\/metrics\/port/);
  });

  it('pins the image by digest when one is given, else by tag', () => {
    const r = helm.template({ set: [`image.digest=${DIGEST}`, 'image.tag=ignored'] });
    const spec = dsSpec(r).template.spec;
    for (const c of [...spec.initContainers!, ...spec.containers]) expect(c.image).toBe(`weir/agent@${DIGEST}`);
    expect(one(r, 'Pod').spec).toMatchObject({ containers: [{ image: `weir/agent@${DIGEST}` }] });
    expect(agent(defaults).image).toBe('weir/agent:0.1.0');
  });

  it('the schema check catches wrong types and unknown fields', () => {
    const ds = structuredClone(one(defaults, 'DaemonSet'));
    const spec = ds.spec as DaemonSetSpec;
    (spec.template.spec.containers[0]!.ports![0] as { containerPort: unknown }).containerPort = 'health';
    expect(() => validateObject(ds)).toThrow(/containerPort must be integer/);
    const typo = structuredClone(one(defaults, 'DaemonSet'));
    (typo.spec as DaemonSetSpec).template.spec.containers[0]!.volumeMounts![0]!.mountPropagation = undefined;
    (
      typo.spec as { template: { spec: { containers: Array<Record<string, unknown>> } } }
    ).template.spec.containers[0]!.volumeMount = [];
    expect(unknownFields(typo, 'V1DaemonSet')).toEqual(['.spec.template.spec.containers[0].volumeMount']);
  });

  it('grants read-only access to what the agent watches, its DaemonSet, plus events', () => {
    const expected = [
      'core/namespaces:get',
      'core/namespaces:list',
      'core/namespaces:watch',
      'core/nodes:get',
      'core/nodes:list',
      'core/nodes:watch',
      'core/pods:get',
      'core/pods:list',
      'core/pods:watch',
      'networking.k8s.io/networkpolicies:get',
      'networking.k8s.io/networkpolicies:list',
      'networking.k8s.io/networkpolicies:watch',
      'core/services:list',
      'core/services:watch',
      'discovery.k8s.io/endpointslices:list',
      'discovery.k8s.io/endpointslices:watch',
      'apps/daemonsets:get',
      'apps/daemonsets:list',
      'apps/daemonsets:watch',
      'core/events:create',
      'core/events:patch',
      'events.k8s.io/events:create',
      'events.k8s.io/events:patch',
    ].sort();
    expect(grants(defaults)).toEqual(expected);
    expect(grants(custom)).toEqual(expected);
    const binding = one(defaults, 'ClusterRoleBinding') as RenderedObject & {
      roleRef: { name: string };
      subjects: Array<{ name: string; namespace: string }>;
    };
    expect(binding.roleRef.name).toBe(one(defaults, 'ClusterRole').metadata.name);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'weir', namespace: 'kube-system' }]);
    expect(one(defaults, 'ServiceAccount').metadata.name).toBe('weir');
  });

  it('uses an existing ServiceAccount when told not to create one', () => {
    expect(custom.byKind('ServiceAccount').filter(notRelay)).toHaveLength(0);
    expect(dsSpec(custom).template.spec.serviceAccountName).toBe('existing-sa');
    const binding = one(custom, 'ClusterRoleBinding') as RenderedObject & {
      subjects: Array<{ name: string; namespace: string }>;
    };
    expect(binding.subjects[0]).toMatchObject({ name: 'existing-sa', namespace: 'weir-system' });
  });

  it('runs the agent with BPF, NET_ADMIN, SYS_ADMIN and PERFMON instead of privileged mode', () => {
    for (const r of [defaults, custom]) {
      const sc = agent(r).securityContext!;
      expect(sc.privileged).toBe(false);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect([...sc.capabilities!.add!].sort()).toEqual(['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_ADMIN']);
      expect(sc.capabilities!.drop).toEqual(['ALL']);
    }
  });

  it('mounts bpffs from the node, Bidirectional only in the privileged init container', () => {
    const spec = dsSpec(defaults).template.spec;
    expect(spec.volumes.find((v) => v.name === 'bpffs')!.hostPath).toEqual({
      path: '/sys/fs/bpf',
      type: 'DirectoryOrCreate',
    });
    const init = spec.initContainers!.find((c) => c.name === 'mount-bpf-fs')!;
    expect(init.securityContext!.privileged).toBe(true);
    expect(init.volumeMounts).toEqual([{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional' }]);
    expect(agent(defaults).volumeMounts!.find((m) => m.name === 'bpffs')).toEqual({
      name: 'bpffs',
      mountPath: '/sys/fs/bpf',
      mountPropagation: 'HostToContainer',
    });
    // Kubernetes rejects Bidirectional propagation in a container that is not privileged.
    for (const r of [defaults, custom]) {
      const s = dsSpec(r).template.spec;
      for (const c of [...(s.initContainers ?? []), ...s.containers]) {
        if (c.volumeMounts?.some((m) => m.mountPropagation === 'Bidirectional'))
          expect(c.securityContext?.privileged).toBe(true);
      }
    }
    expect(dsSpec(custom).template.spec.initContainers).toBeUndefined();
  });

  it('puts the flow socket directory on a hostPath and the config in a read-only mount', () => {
    for (const [r, dir, extra] of [
      [defaults, '/run/weir', []],
      [custom, '/var/run/weir-prod', ['/var/log/weir']],
    ] as const) {
      const spec = dsSpec(r).template.spec;
      expect(spec.volumes.find((v) => v.name === 'run')!.hostPath).toEqual({ path: dir, type: 'DirectoryOrCreate' });
      expect(agent(r).volumeMounts!.find((m) => m.name === 'run')!.mountPath).toBe(dir);
      expect(agent(r).volumeMounts!.find((m) => m.name === 'config')).toMatchObject({
        mountPath: '/etc/weir',
        readOnly: true,
      });
      // Only these node paths are mounted (and the ones asked for in extraVolumes).
      expect(
        spec.volumes
          .filter((v) => v.hostPath)
          .map((v) => v.hostPath!.path)
          .sort(),
      ).toEqual(['/sys/fs/bpf', dir, ...extra].sort());
    }
  });

  it('adds extraVolumes to the pod and extraVolumeMounts to the agent, and the pod securityContext', () => {
    const spec = dsSpec(custom).template.spec;
    expect(spec.volumes.slice(-2)).toEqual([
      { name: 'certs', secret: { secretName: 'weir-certs' } },
      { name: 'node-log', hostPath: { path: '/var/log/weir', type: 'DirectoryOrCreate' } },
    ]);
    expect(agent(custom).volumeMounts!.slice(-2)).toEqual([
      { name: 'certs', mountPath: '/etc/weir-certs', readOnly: true },
      { name: 'node-log', mountPath: '/var/log/weir' },
    ]);
    // Every mount names a volume of the pod.
    for (const r of [defaults, custom]) {
      const names = new Set(dsSpec(r).template.spec.volumes.map((v) => v.name));
      for (const m of agent(r).volumeMounts!) expect(names.has(m.name)).toBe(true);
    }
    expect(spec.securityContext).toEqual({ seccompProfile: { type: 'Unconfined' } });
    expect(dsSpec(defaults).template.spec.securityContext).toBeUndefined();
    // flows-tls: the agents' certificate for the relay (on by default), relay.test.ts
    expect(dsSpec(defaults).template.spec.volumes.map((v) => v.name)).toEqual([
      'bpffs',
      'run',
      'config',
      'tmp',
      'flows-tls',
    ]);
  });

  it('schedules on every node as a system-critical DaemonSet with a bounded rolling update', () => {
    const d = dsSpec(defaults);
    expect(d.template.spec.hostNetwork).toBe(true);
    expect(d.template.spec.priorityClassName).toBe('system-node-critical');
    expect(d.template.spec.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(d.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    expect(dsSpec(custom).updateStrategy.rollingUpdate!.maxUnavailable).toBe('20%');
    expect(dsSpec(custom).template.spec.tolerations).toHaveLength(1);
    expect(agent(custom).resources).toEqual({
      requests: { cpu: '250m', memory: '256Mi' },
      limits: { cpu: '1', memory: '1Gi' },
    });
  });

  it('passes the node name from the downward API and probes /healthz and /readyz', () => {
    const c = agent(defaults);
    expect(c.args).toEqual([
      'agent',
      '--config=/etc/weir/config.yaml',
      '--node-name=$(NODE_NAME)',
      // the relay (on by default) reads the flow API over TCP with mutual TLS: relay.test.ts
      '--observer-address=$(HOST_IP):4244',
      '--observer-tls-ca=/etc/weir/flows-tls/ca.crt',
      '--observer-tls-cert=/etc/weir/flows-tls/tls.crt',
      '--observer-tls-key=/etc/weir/flows-tls/tls.key',
    ]);
    expect(c.env!.find((e) => e.name === 'NODE_NAME')!.valueFrom!.fieldRef!.fieldPath).toBe('spec.nodeName');
    expect(c.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.ports).toEqual([
      { name: 'health', containerPort: 9879, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9962, protocol: 'TCP' },
    ]);
    expect(agent(custom).args).toContain('--watch-timeout-seconds=120');
    expect(agent(custom).image).toBe('myorg/weir-agent:0.1.0-rc1');
    expect(c.image).toBe('weir/agent:0.1.0');
  });

  it('writes a ConfigMap the agent accepts, and rolls the pods when it changes', () => {
    const cfg = (r: Rendered) => {
      const cm = r.byKind('ConfigMap').find((c) => (c.data as Record<string, string>)['config.yaml'] !== undefined)!;
      return parseConfigText((cm.data as Record<string, string>)['config.yaml']!, 'ConfigMap');
    };
    expect(cfg(defaults)).toEqual({
      pinRoot: '/sys/fs/bpf/weir',
      runDir: '/run/weir',
      hostAccess: true,
      localDelivery: true,
      clusterPodCIDRs: [],
      healthPort: 9879,
      logLevel: 'info',
      watchTimeoutSeconds: 300,
      metricsPort: 9962,
      flowsCapacity: 4095,
      allowedFlows: true,
      podMetrics: false,
      podMetricsMaxPods: 100,
      services: true,
      nodePortInterfaces: [],
    });
    expect(cfg(custom)).toMatchObject({
      pinRoot: '/sys/fs/bpf/weir-prod',
      hostAccess: false,
      localDelivery: false,
      allowedFlows: false,
      clusterPodCIDRs: ['10.96.0.0/12', 'fd00:10::/56'],
      podMetrics: true,
      podMetricsMaxPods: 250,
      nodePortInterfaces: ['eth0', 'bond0'],
    });
    const sum = (r: Rendered) => dsSpec(r).template.metadata.annotations!['checksum/config'];
    expect(sum(defaults)).toMatch(/^[0-9a-f]{64}$/);
    expect(sum(custom)).not.toBe(sum(defaults));
  });

  it('exposes metrics on 9962 through a headless Service, with an optional ServiceMonitor', () => {
    const svc = one(defaults, 'Service') as RenderedObject & {
      spec: { clusterIP: string; ports: Array<{ port: number; targetPort: string }> };
    };
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 9962, targetPort: 'metrics', protocol: 'TCP' }]);
    expect(defaults.byKind('ServiceMonitor')).toHaveLength(0);
    type Endpoint = { port: string; interval: string; relabelings?: unknown[]; metricRelabelings?: unknown[] };
    const sm = one(custom, 'ServiceMonitor') as RenderedObject & { spec: { endpoints: Endpoint[] } };
    expect(sm.metadata.labels!.release).toBe('prometheus');
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', interval: '15s' });
    expect(sm.spec.endpoints[0]!.relabelings).toEqual([
      { sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' },
      { sourceLabels: ['__meta_kubernetes_pod_label_topology_kubernetes_io_zone'], targetLabel: 'zone' },
    ]);
    expect(sm.spec.endpoints[0]!.metricRelabelings).toEqual([
      { sourceLabels: ['__name__'], regex: 'weir_kubernetes_events_total', action: 'drop' },
    ]);
    // By default every series gets the agent pod's node as label `node` (the dashboard selects by it).
    const byDefault = one(
      helm.template({ set: ['metrics.serviceMonitor.enabled=true'] }),
      'ServiceMonitor',
    ) as RenderedObject & { spec: { endpoints: Endpoint[] } };
    expect(byDefault.spec.endpoints[0]!.relabelings).toEqual([
      { sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node', action: 'replace' },
    ]);
    expect(byDefault.spec.endpoints[0]!.metricRelabelings).toBeUndefined();
    const r = helm.template({ set: ['metrics.enabled=false'] });
    expect(r.byKind('Service').filter(notRelay)).toHaveLength(0);
    expect(agent(r).ports!.map((p) => p.name)).toEqual(['health']);
  });

  it('ships the Grafana dashboard as a labelled ConfigMap when asked', () => {
    const names = (r: Rendered) => r.byKind('ConfigMap').map((c) => c.metadata.name);
    expect(names(custom).sort()).toEqual(['dataplane', 'dataplane-dashboards']);
    expect(names(defaults)).toEqual(['weir']);
    const cm = custom.byKind('ConfigMap').find((c) => c.metadata.name === 'dataplane-dashboards')!;
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels!.grafana_dashboard).toBe('1');
    const shipped = JSON.parse(readFileSync('charts/weir/dashboards/weir.json', 'utf8')) as unknown;
    expect(JSON.parse((cm.data as Record<string, string>)['weir.json']!)).toEqual(shipped);
  });

  it('rejects values that break the schema through helm itself, naming the field', () => {
    const rejects = (set: string[]) => () => helm.template({ set });
    const schemaError = /values don't meet the specifications of the schema/;
    expect(rejects(['metrics.port=http'])).toThrow(schemaError);
    expect(rejects(['metrics.port=http'])).toThrow(/at '\/metrics\/port': got string, want integer/);
    expect(rejects(['agent.pinroot=/sys/fs/bpf/x'])).toThrow(
      /at '\/agent': additional properties 'pinroot' not allowed/,
    );
    expect(rejects(['image.digest=latest'])).toThrow(/at '\/image\/digest'/);
    expect(rejects(['metrics.serviceMonitor.relabelings[0].action=rename'])).toThrow(
      /at '\/metrics\/serviceMonitor\/relabelings\/0\/action'/,
    );
    expect(rejects(['extraVolumeMounts[0].name=x', 'extraVolumeMounts[0].mountPath=relative'])).toThrow(
      /at '\/extraVolumeMounts\/0\/mountPath'/,
    );
    expect(rejects(['podMetrics.maxPods=0'])).toThrow(/at '\/podMetrics\/maxPods'/);
    expect(rejects(['tolerations=all'])).toThrow(/at '\/tolerations'/);
    // helm lint --strict reports the same.
    expect(() => helm.run(['lint', '--strict', CHART, '--set', 'agent.logLevel=loud'])).toThrow(/\/agent\/logLevel/);
    // Not a schema matter, a template one: the chart's own message.
    expect(rejects(['serviceAccount.create=false'])).toThrow(/serviceAccount\.name is required/);
  });

  it('has a helm test pod that checks the agents through their readiness and metrics endpoints', () => {
    type TestPod = RenderedObject & {
      spec: { restartPolicy: string; containers: Container[]; nodeSelector?: unknown };
    };
    const pod = one(defaults, 'Pod') as TestPod;
    expect(pod.metadata.annotations!['helm.sh/hook']).toBe('test');
    expect(pod.spec.restartPolicy).toBe('Never');
    const c = pod.spec.containers[0]!;
    expect(c.image).toBe(agent(defaults).image);
    expect(c.args).toEqual([
      'agent',
      'check',
      '--host=$(HOST_IP)',
      '--health-port=9879',
      '--metrics-port=9962',
      '--service=weir-metrics.kube-system.svc',
    ]);
    expect(c.env).toEqual([{ name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }]);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    // Lands where agents run; is not itself selected by the metrics Service.
    expect(pod.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    const selector = (one(defaults, 'Service').spec as { selector: Record<string, string> }).selector;
    expect(Object.entries(selector).every(([k, v]) => pod.metadata.labels![k] === v)).toBe(false);
    const customPod = one(custom, 'Pod') as TestPod;
    expect(customPod.spec.containers[0]!.args).toEqual([
      'agent',
      'check',
      '--host=$(HOST_IP)',
      '--health-port=19879',
      '--metrics-port=19962',
      '--service=dataplane-metrics.weir-system.svc',
    ]);
    const noMetrics = one(helm.template({ set: ['metrics.enabled=false'] }), 'Pod') as TestPod;
    expect(noMetrics.spec.containers[0]!.args).toEqual(['agent', 'check', '--host=$(HOST_IP)', '--health-port=9879']);
  });

  it('ships a dashboard that selects nodes by the node label, in its variable and every query', () => {
    const text = readFileSync('charts/weir/dashboards/weir.json', 'utf8');
    const dash = JSON.parse(text) as {
      templating: { list: Array<{ name: string; query?: unknown; definition?: string }> };
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    const variable = dash.templating.list.find((v) => v.name === 'node')!;
    expect(variable.definition).toBe('label_values(weir_forwards_total, node)');
    expect(variable.query).toMatchObject({ query: 'label_values(weir_forwards_total, node)' });
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(10);
    for (const e of exprs)
      for (const selector of e.expr.match(/weir_[a-z_]+\{[^}]*\}|weir_[a-z_]+(?![a-z_{])/g) ?? [])
        expect(`${e.title}: ${selector}`).toMatch(/\{[^}]*node=~"\$node"/);
    expect(text).not.toMatch(/instance/);
  });

  it('prints NOTES that say how to check enforcement', () => {
    const notes = helm.notes();
    expect(notes).toContain('kubectl -n kube-system rollout status daemonset/weir');
    expect(notes).toContain('weir agent status');
    expect(notes).toContain('helm test weir -n kube-system');
    expect(helm.notes(customOpts)).toContain('A ServiceMonitor was created');
  });
});
