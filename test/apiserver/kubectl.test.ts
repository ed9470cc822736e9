/**
 * Real kubectl (v1.34, default flags: client-side apply, validation on) against the test API
 * server, on loopback, for every kind the e2e tests write: apply creates, `get -o json` shows what
 * was applied, a second apply of a changed manifest sends a strategic merge patch that the server
 * merges as Kubernetes does (fields others set survive, lists with a merge key merge by it, atomic
 * lists are replaced), `get --watch` streams the changes, delete removes, and an unknown field is
 * rejected by the server's strict field validation. Needs `make tools`; no root.
 */
import type { ResourceName } from './resources.js';
import { TestApiServer, type KubeObject } from './server.js';
import { jsonStream, Kubectl } from './kubectl.js';

interface WatchEvent {
  type: string;
  object: KubeObject;
}

async function until<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ns = (labels: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: 'shop', labels },
});

const pod = (env: Array<{ name: string; value: string }>, ports: number[]): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } },
  spec: {
    containers: [
      { name: 'web', image: 'nginx', env, ports: ports.map((p) => ({ containerPort: p, protocol: 'TCP' })) },
      { name: 'sidecar', image: 'busybox', command: ['sleep', '3600'] },
    ],
  },
});

const service = (ports: Array<{ name: string; port: number; targetPort: number }>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { selector: { app: 'web' }, ports: ports.map((p) => ({ ...p, protocol: 'TCP' })) },
});

const slice = (ips: string[]): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
});

const policy = (from: string[]): KubeObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'web', namespace: 'shop' },
  spec: {
    podSelector: { matchLabels: { app: 'web' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: from.map((app) => ({ podSelector: { matchLabels: { app } } })), ports: [{ port: 80 }] }],
  },
});

describe('real kubectl against the test API server', () => {
  const api = new TestApiServer();
  let kubectl: Kubectl;

  beforeAll(async () => {
    await api.start();
    kubectl = new Kubectl(api.kubeconfig());
  });
  afterAll(async () => {
    kubectl?.close();
    await api.stop();
  });

  it('applies, changes (strategic merge patch), gets, watches and deletes each kind', async () => {
    // A watch of each resource from before anything exists.
    const watches = Object.fromEntries(
      ['namespaces', 'pods', 'services', 'endpointslices', 'networkpolicies'].map((r) => [
        r,
        kubectl.start([
          'get',
          r,
          ...(r === 'namespaces' ? [] : ['-n', 'shop']),
          '--watch',
          '--output-watch-events',
          '-o',
          'json',
        ]),
      ]),
    );
    // Each kubectl has listed (nothing yet) and holds its watch open.
    await until('the five watches to be open', () =>
      Object.keys(watches).every((r) => api.activeWatches(r as ResourceName) > 0) ? true : undefined,
    );

    const created = await kubectl.apply([
      ns({ team: 'a', tier: 'gold' }),
      pod(
        [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
        ],
        [80, 81],
      ),
      service([
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'https', port: 443, targetPort: 8443 },
      ]),
      slice(['10.0.0.1', '10.0.0.2']),
      policy(['a', 'b']),
    ]);
    expect(created.trim().split('\n')).toEqual([
      'namespace/shop created',
      'pod/web created',
      'service/web created',
      'endpointslice.discovery.k8s.io/web-1 created',
      'networkpolicy.networking.k8s.io/web created',
    ]);

    // What other writers do meanwhile (the API server, a controller, kubelet): kept by the next apply.
    const n = api.get('Namespace', 'shop')!;
    api.update({
      ...n,
      metadata: { ...n.metadata, labels: { ...n.metadata.labels, 'kubernetes.io/metadata.name': 'shop' } },
    });
    const s = api.get('Service', 'web', 'shop')!;
    api.update({ ...s, spec: { ...(s.spec as object), clusterIP: '10.96.0.10' } });
    const p = api.get('Pod', 'web', 'shop')!;
    api.update({ ...p, status: { phase: 'Running', podIP: '10.0.0.1' } });

    const changed = await kubectl.apply([
      ns({ team: 'b' }),
      pod([{ name: 'B', value: '3' }], [80]),
      service([
        { name: 'http', port: 80, targetPort: 9090 },
        { name: 'metrics', port: 9100, targetPort: 9100 },
      ]),
      slice(['10.0.0.3']),
      policy(['c']),
    ]);
    expect(changed.trim().split('\n')).toEqual([
      'namespace/shop configured',
      'pod/web configured',
      'service/web configured',
      'endpointslice.discovery.k8s.io/web-1 configured',
      'networkpolicy.networking.k8s.io/web configured',
    ]);

    const gotNs = await kubectl.getJson<KubeObject>(['namespace', 'shop']);
    expect(gotNs.metadata.labels).toEqual({ team: 'b', 'kubernetes.io/metadata.name': 'shop' });
    const gotPod = await kubectl.getJson<KubeObject>(['pod', 'web', '-n', 'shop']);
    expect(gotPod.spec).toEqual({
      containers: [
        {
          name: 'web',
          image: 'nginx',
          env: [{ name: 'B', value: '3' }],
          ports: [{ containerPort: 80, protocol: 'TCP' }],
        },
        { name: 'sidecar', image: 'busybox', command: ['sleep', '3600'] },
      ],
    });
    expect(gotPod.status).toEqual({ phase: 'Running', podIP: '10.0.0.1' });
    const gotSvc = await kubectl.getJson<KubeObject>(['service', 'web', '-n', 'shop']);
    expect(gotSvc.spec).toEqual({
      selector: { app: 'web' },
      clusterIP: '10.96.0.10',
      ports: [
        { name: 'http', port: 80, targetPort: 9090, protocol: 'TCP' },
        { name: 'metrics', port: 9100, targetPort: 9100, protocol: 'TCP' },
      ],
    });
    const gotSlice = await kubectl.getJson<KubeObject>(['endpointslices', 'web-1', '-n', 'shop']);
    expect(gotSlice.endpoints).toEqual([{ addresses: ['10.0.0.3'], conditions: { ready: true } }]);
    const gotPolicy = await kubectl.getJson<KubeObject>(['networkpolicy', 'web', '-n', 'shop']);
    expect(gotPolicy.spec).toEqual(policy(['c']).spec);
    const annotation = gotPolicy.metadata.annotations as Record<string, string>;
    const applied = policy(['c']);
    expect(JSON.parse(annotation['kubectl.kubernetes.io/last-applied-configuration']!)).toEqual({
      ...applied,
      metadata: { ...applied.metadata, annotations: {} },
    });
    const list = await kubectl.getJson<{ kind: string; items: KubeObject[] }>(['pods', '--all-namespaces']);
    expect(list.items.map((i) => `${i.kind} ${i.metadata.namespace}/${i.metadata.name}`)).toEqual(['Pod shop/web']);

    const deleted = await kubectl.delete([policy([]), slice([]), service([]), pod([], [])]);
    expect(deleted.trim().split('\n')).toEqual([
      'networkpolicy.networking.k8s.io "web" deleted from shop namespace',
      'endpointslice.discovery.k8s.io "web-1" deleted from shop namespace',
      'service "web" deleted from shop namespace',
      'pod "web" deleted from shop namespace',
    ]);
    const gone = await kubectl.run(['get', 'networkpolicy', 'web', '-n', 'shop', '-o', 'json']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/NotFound.*networkpolicies "web" not found|networkpolicies.* "web" not found/);
    expect(await kubectl.ok(['delete', 'namespace', 'shop'])).toBe('namespace "shop" deleted\n');

    // Created by apply; changed by another writer (not for slices and policies), then by the second
    // apply (the patch); deleted. The changes carry what the patch made.
    const expected: Record<string, string[]> = {
      namespaces: ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'],
      pods: ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'],
      services: ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'],
      endpointslices: ['ADDED', 'MODIFIED', 'DELETED'],
      networkpolicies: ['ADDED', 'MODIFIED', 'DELETED'],
    };
    for (const [resource, w] of Object.entries(watches)) {
      const events = await until(`the watch of ${resource} to see the deletion`, () => {
        const ev = jsonStream<WatchEvent>(w.output());
        return ev.some((e) => e.type === 'DELETED') ? ev : undefined;
      });
      w.stop();
      expect({ resource, types: events.map((e) => e.type) }).toEqual({ resource, types: expected[resource] });
      expect(events.map((e) => e.object.metadata.name)).toEqual(
        events.map(() => (resource.startsWith('endpoint') ? 'web-1' : resource === 'namespaces' ? 'shop' : 'web')),
      );
    }
    const policyEvents = jsonStream<WatchEvent>(watches.networkpolicies!.output());
    expect(policyEvents[1]!.object.spec).toEqual(policy(['c']).spec);
  }, 120_000);

  it('rejects an unknown field (validation on: strict field validation on the server)', async () => {
    const bad = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'typo', namespace: 'default' },
      spec: { podSelectr: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'] },
    };
    const r = await kubectl.run(['apply', '-f', '-'], JSON.stringify(bad));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: strict decoding error: unknown field "spec.podSelectr"',
    );
    expect(api.get('NetworkPolicy', 'typo', 'default')).toBeUndefined();

    // The same in a change of an existing object (a PATCH): rejected, the object stays as it was.
    const good = { ...bad, spec: { podSelector: {}, policyTypes: ['Ingress'] } };
    await kubectl.apply([good]);
    const typo = { ...good, spec: { ...good.spec, ingress: [{ form: [{ podSelector: {} }] }] } };
    const r2 = await kubectl.run(['apply', '-f', '-'], JSON.stringify(typo));
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('unknown field "spec.ingress[0].form"');
    expect(api.get('NetworkPolicy', 'typo', 'default')!.spec).toEqual(good.spec);
    await kubectl.delete([good]);
  });
});
