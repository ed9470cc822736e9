/**
 * The Kubernetes source against the test API server: first sync, wire-shaped objects,
 * restart after errors, relist after an outage removes what was deleted meanwhile; Services and
 * EndpointSlices listed and watched like the rest, and not at all with Services off.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubernetesSource, POLICY_RESOURCES, type KubernetesChange } from '../../agent/sources/kubernetes.js';
import { toKubeObject } from '../../agent/store/convert.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';

const namespace = (name: string): KubeObject => ({
  kind: 'Namespace',
  metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
});
const pod = (ns: string, name: string, ip: string, node = 'node-a'): KubeObject => ({
  kind: 'Pod',
  metadata: {
    name,
    namespace: ns,
    labels: { app: name },
    managedFields: [{ manager: 'kubelet', operation: 'Update' }],
  },
  spec: {
    nodeName: node,
    volumes: [{ name: 'v', emptyDir: {} }],
    containers: [
      { name: 'c', image: 'x', env: [{ name: 'A', value: '1' }], ports: [{ name: 'http', containerPort: 80 }] },
    ],
  },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
});
const policy: KubeObject = {
  kind: 'NetworkPolicy',
  metadata: { name: 'allow-b', namespace: 'x' },
  spec: {
    podSelector: { matchLabels: { app: 'a' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }], ports: [{ port: 'http', protocol: 'TCP' }] }],
  },
};

async function until(pred: () => boolean, what: string, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Kubernetes source', () => {
  let server: TestApiServer;
  let source: KubernetesSource | undefined;
  let changes: KubernetesChange[];
  const errors: string[] = [];

  beforeEach(async () => {
    server = new TestApiServer({ bookmarkIntervalMs: 200 });
    await server.start();
    changes = [];
    errors.length = 0;
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await server.stop();
  });

  function startSource(): KubernetesSource {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    source = new KubernetesSource({
      kubeConfig: kc,
      onChange: (c) => changes.push(c),
      onError: (r, e) => errors.push(`${r}: ${e.message}`),
      backoff: { initialMs: 50, maxMs: 200 },
      pageSize: 2,
    });
    source.start();
    return source;
  }
  const seen = (action: string, resource: string, ref: string) =>
    changes.some(
      (c) =>
        c.action === action &&
        c.resource === resource &&
        `${c.object.metadata?.namespace ? `${c.object.metadata.namespace}/` : ''}${c.object.metadata?.name}` === ref,
    );

  it('lists every resource (paged), signals the first sync and delivers wire JSON', async () => {
    server.create(namespace('x'));
    server.create({
      kind: 'Node',
      metadata: { name: 'node-a' },
      status: { addresses: [{ type: 'InternalIP', address: '10.240.0.1' }] },
    });
    for (let i = 0; i < 5; i++) server.create(pod('x', `p${i}`, `10.240.1.${i + 1}`, i % 2 ? 'node-a' : 'node-b'));
    server.create(policy);
    const s = startSource();
    await s.synced;
    expect(s.isSynced).toBe(true);
    expect(changes.filter((c) => c.resource === 'pods' && c.action === 'add')).toHaveLength(5);
    const np = changes.find((c) => c.resource === 'networkpolicies')!.object;
    expect(np.kind).toBe('NetworkPolicy');
    expect(np.apiVersion).toBe('networking.k8s.io/v1');
    expect((np.spec as { ingress: Array<Record<string, unknown>> }).ingress[0]).toHaveProperty('from');
    expect(typeof np.metadata?.creationTimestamp).toBe('string');
    const counts = s.eventCounts();
    expect(counts).toContainEqual({ resource: 'pods', action: 'add', count: 5 });
    expect(counts).toContainEqual({ resource: 'nodes', action: 'add', count: 1 });
    // What weir never reads is not kept (listed and watched objects alike).
    const listed = changes.find((c) => c.resource === 'pods')!.object as {
      metadata: Record<string, unknown>;
      spec: { volumes?: unknown; containers: Array<Record<string, unknown>> };
      status: Record<string, unknown>;
    };
    expect(listed.metadata.managedFields).toBeUndefined();
    expect(listed.spec.volumes).toBeUndefined();
    expect(listed.spec.containers[0]).toEqual({ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80 }] });
    expect(listed.status).toEqual({ phase: 'Running', podIP: '10.240.1.1', podIPs: [{ ip: '10.240.1.1' }] });
    server.create({
      ...pod('x', 'watched', '10.240.1.9'),
      metadata: { name: 'watched', namespace: 'x', managedFields: [{ manager: 'kubectl' }] },
    });
    await until(() => changes.some((c) => c.object.metadata?.name === 'watched'), 'watched pod');
    const watched = changes.find((c) => c.object.metadata?.name === 'watched')!.object;
    expect(watched.metadata?.managedFields).toBeUndefined();
    expect((watched.spec as { volumes?: unknown }).volumes).toBeUndefined();
  });

  it('does not report sync while the API server cannot be reached, and syncs once it is back', async () => {
    await server.stop();
    const s = startSource();
    await until(() => errors.length >= 2, 'retries against a server that is down');
    expect(s.isSynced).toBe(false);
    server.create(namespace('late'));
    await server.start();
    await s.synced;
    expect(seen('add', 'namespaces', 'late')).toBe(true);
  });

  it('restarts informers after dropped watch connections and keeps delivering', async () => {
    const s = startSource();
    await s.synced;
    await until(() => server.activeWatches() === 6, 'six watches');
    server.dropWatches();
    await until(() => Object.values(s.status()).every((st) => st.restarts >= 1 && st.watching), 'restarted watches');
    server.create(namespace('after-drop'));
    await until(() => seen('add', 'namespaces', 'after-drop'), 'event after restart');
    expect(errors.length).toBeGreaterThanOrEqual(4);
  });

  it('after an outage relists and removes what was deleted meanwhile', async () => {
    server.create(namespace('x'));
    server.create(pod('x', 'stays', '10.240.1.1'));
    server.create(pod('x', 'goes', '10.240.1.2'));
    server.create(policy);
    const s = startSource();
    await s.synced;
    await until(() => server.activeWatches() === 6, 'six watches');
    await server.stop();
    await until(() => Object.values(s.status()).every((st) => !st.watching), 'watches down');
    server.delete('Pod', 'goes', 'x');
    server.delete('NetworkPolicy', 'allow-b', 'x');
    server.create(pod('x', 'new', '10.240.1.3'));
    server.compact();
    await server.start();
    await until(
      () =>
        seen('delete', 'pods', 'x/goes') &&
        seen('delete', 'networkpolicies', 'x/allow-b') &&
        seen('add', 'pods', 'x/new'),
      'relist',
    );
    expect(seen('delete', 'pods', 'x/stays')).toBe(false);
    expect(server.counts.watchGone.pods ?? 0).toBeGreaterThanOrEqual(1);
    expect(s.keys('pods').sort()).toEqual(['x/new', 'x/stays']);
  });

  it('lists and watches Services and EndpointSlices (in pages), which convert to the store objects', async () => {
    server.create(namespace('x'));
    for (let i = 0; i < 3; i++)
      server.create({
        kind: 'Service',
        metadata: { name: `s${i}`, namespace: 'x' },
        spec: { clusterIP: `10.96.0.${10 + i}`, selector: { app: 'a' }, ports: [{ port: 80, targetPort: 'http' }] },
      });
    const s = startSource();
    await s.synced;
    expect(s.keys('services').sort()).toEqual(['x/s0', 'x/s1', 'x/s2']);
    server.create({
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: { name: 's0-abc', namespace: 'x', labels: { 'kubernetes.io/service-name': 's0' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.240.1.1'], conditions: { ready: true }, nodeName: 'node-a' }],
      ports: [{ name: '', port: 80, protocol: 'TCP' }],
    });
    await until(() => seen('add', 'endpointslices', 'x/s0-abc'), 'watched EndpointSlice');
    const slice = changes.find((c) => c.resource === 'endpointslices')!.object;
    expect(slice).toMatchObject({ kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' });
    expect(toKubeObject(slice)).toMatchObject({ kind: 'EndpointSlice', serviceName: 's0', addressType: 'IPv4' });
    const svc = changes.find((c) => c.resource === 'services')!.object;
    expect(toKubeObject(svc)).toMatchObject({ kind: 'Service', clusterIPs: ['10.96.0.10'], type: 'ClusterIP' });
    server.delete('Service', 's1', 'x');
    await until(() => seen('delete', 'services', 'x/s1'), 'deleted Service');
  });

  it('with Services off watches neither Services nor EndpointSlices', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    source = new KubernetesSource({ kubeConfig: kc, onChange: (c) => changes.push(c), resources: POLICY_RESOURCES });
    source.start();
    await source.synced;
    await until(() => server.activeWatches() === 4, 'four watches');
    expect(Object.keys(source.status()).sort()).toEqual(['namespaces', 'networkpolicies', 'nodes', 'pods']);
    expect(source.keys('services')).toEqual([]);
  });
});
