/**
 * charts/weir rendered with Helm's template semantics (test/chart/render), default and
 * non-default values; every object validated against the Kubernetes schemas; the
 * security-relevant fields asserted.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../../agent/node/config.js';
import { Renderer, type Rendered } from './render.js';
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
}
interface DaemonSetSpec {
  updateStrategy: { type: string; rollingUpdate?: { maxUnavailable?: number | string } };
  template: { metadata: { annotations?: Record<string, string>; labels?: Record<string, string> }; spec: PodSpec };
}
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

const one = (r: Rendered, kind: string): RenderedObject => {
  const list = r.byKind(kind);
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

describe('Helm chart charts/weir', () => {
  let renderer: Renderer;
  let defaults: Rendered;
  let custom: Rendered;
  const tmp = mkdtempSync(join(tmpdir(), 'wk8-chart-'));

  beforeAll(() => {
    renderer = new Renderer();
    defaults = renderer.render();
    custom = renderer.render(['test/chart/values-custom.yaml'], { name: 'prod', namespace: 'weir-system' });
  }, 120_000);
  afterAll(() => {
    renderer?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it.each([
    ['default values', () => defaults],
    ['non-default values', () => custom],
  ])('renders only objects valid against the Kubernetes schemas (%s)', (_name, get) => {
    const r = get();
    expect(r.objects.length).toBeGreaterThanOrEqual(6);
    for (const o of r.objects) expect(() => validateObject(o)).not.toThrow();
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

  it('grants read-only access to what the agent watches, plus events', () => {
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
    expect(custom.byKind('ServiceAccount')).toHaveLength(0);
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
    for (const [r, dir] of [
      [defaults, '/run/weir'],
      [custom, '/var/run/weir-prod'],
    ] as const) {
      const spec = dsSpec(r).template.spec;
      expect(spec.volumes.find((v) => v.name === 'run')!.hostPath).toEqual({ path: dir, type: 'DirectoryOrCreate' });
      expect(agent(r).volumeMounts!.find((m) => m.name === 'run')!.mountPath).toBe(dir);
      expect(agent(r).volumeMounts!.find((m) => m.name === 'config')).toMatchObject({
        mountPath: '/etc/weir',
        readOnly: true,
      });
      // Only these node paths are mounted.
      expect(
        spec.volumes
          .filter((v) => v.hostPath)
          .map((v) => v.hostPath!.path)
          .sort(),
      ).toEqual(['/sys/fs/bpf', dir].sort());
    }
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
    expect(c.args).toEqual(['agent', '--config=/etc/weir/config.yaml', '--node-name=$(NODE_NAME)']);
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
      clusterPodCIDRs: [],
      healthPort: 9879,
      logLevel: 'info',
      watchTimeoutSeconds: 300,
      metricsPort: 9962,
      flowsCapacity: 4095,
      podMetrics: false,
      podMetricsMaxPods: 100,
    });
    expect(cfg(custom)).toMatchObject({
      pinRoot: '/sys/fs/bpf/weir-prod',
      hostAccess: false,
      clusterPodCIDRs: ['10.96.0.0/12', 'fd00:10::/56'],
      podMetrics: true,
      podMetricsMaxPods: 250,
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
    const sm = one(custom, 'ServiceMonitor') as RenderedObject & {
      spec: { endpoints: Array<{ port: string; interval: string }> };
    };
    expect(sm.metadata.labels!.release).toBe('prometheus');
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', interval: '15s' });
    const off = join(tmp, 'no-metrics.yaml');
    writeFileSync(off, 'metrics:\n  enabled: false\n');
    const r = renderer.render([off]);
    expect(r.byKind('Service')).toHaveLength(0);
    expect(agent(r).ports!.map((p) => p.name)).toEqual(['health']);
  });

  it('ships the Grafana dashboard as a labelled ConfigMap when asked', () => {
    const names = (r: Rendered) => r.byKind('ConfigMap').map((c) => c.metadata.name);
    expect(names(defaults)).toEqual(['weir']);
    const cm = custom.byKind('ConfigMap').find((c) => c.metadata.name === 'dataplane-dashboards')!;
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels!.grafana_dashboard).toBe('1');
    const shipped = JSON.parse(readFileSync('charts/weir/dashboards/weir.json', 'utf8')) as unknown;
    expect(JSON.parse((cm.data as Record<string, string>)['weir.json']!)).toEqual(shipped);
  });

  it('rejects values that break the schema, naming the field', () => {
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'metrics:\n  port: http\n');
    expect(() => renderer.render([bad])).toThrow(/metrics\.port/);
    writeFileSync(bad, 'agent:\n  pinroot: /sys/fs/bpf/x\n');
    expect(() => renderer.render([bad])).toThrow(/pinroot/);
    writeFileSync(bad, 'serviceAccount:\n  create: false\n');
    expect(() => renderer.render([bad])).toThrow(/serviceAccount\.name is required/);
  });

  it('prints NOTES that say how to check enforcement', () => {
    expect(defaults.notes).toContain('kubectl -n kube-system rollout status daemonset/weir');
    expect(defaults.notes).toContain('weir agent status');
    expect(custom.notes).toContain('A ServiceMonitor was created');
  });
});
