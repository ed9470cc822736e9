/** The Services compiler: Services + EndpointSlices -> frontends, against hand-computed expectations. */
import { toKubeObject } from '../../../agent/store/convert.js';
import { Store } from '../../../agent/store/store.js';
import type { EndpointSlice, KubeObject, Service } from '../../../agent/store/types.js';
import { ServiceCompiler, compileService } from '../../../agent/services/compiler.js';
import { withServices } from '../../../agent/services/index.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import type { ServiceFrontend } from '../../../agent/desired.js';

function svc(spec: Record<string, unknown>, name = 'web', namespace = 'shop'): Service {
  return toKubeObject({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec }) as Service;
}

interface Ep {
  ip: string;
  pod?: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

function slice(
  name: string,
  service: string,
  addressType: 'IPv4' | 'IPv6',
  ports: Array<{ name?: string; port: number; protocol?: string }>,
  eps: Ep[],
  namespace = 'shop',
): EndpointSlice {
  return toKubeObject({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service } },
    addressType,
    ports,
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ...(e.ready !== undefined ? { ready: e.ready } : {}),
        ...(e.serving !== undefined ? { serving: e.serving } : {}),
        ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
      },
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.pod ? { targetRef: { kind: 'Pod', namespace, name: e.pod } } : {}),
    })),
  }) as EndpointSlice;
}

const b = (ip: string, port: number, pod: string, node = 'n1', extra: Partial<Ep> = {}) => ({
  ip,
  port,
  pod: `shop/${pod}`,
  nodeName: node,
  ready: extra.ready ?? true,
  serving: extra.serving ?? true,
  terminating: extra.terminating ?? false,
});

describe('compileService', () => {
  it('one frontend per clusterIP x port, targetPort resolved by the slice port name, per family', () => {
    const s = svc({
      clusterIPs: ['10.96.0.10', 'fd00:96::a'],
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80, targetPort: 'web' },
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
      ],
    });
    const slices = [
      slice(
        'web-a',
        'web',
        'IPv4',
        [
          { name: 'http', port: 8080 },
          { name: 'dns', port: 5353, protocol: 'UDP' },
        ],
        [{ ip: '10.0.0.2', pod: 'a', node: 'n1' }],
      ),
      // the other pod names its port differently: a slice of its own
      slice('web-b', 'web', 'IPv4', [{ name: 'http', port: 9090 }], [{ ip: '10.0.0.3', pod: 'b', node: 'n2' }]),
      slice('web-6', 'web', 'IPv6', [{ name: 'http', port: 8080 }], [{ ip: 'FD00::2', pod: 'a', node: 'n1' }]),
    ];
    const got = compileService(s, slices, 'n1');
    const expected: ServiceFrontend[] = [
      {
        service: 'shop/web',
        scope: 'clusterIP',
        address: '10.96.0.10',
        port: 80,
        protocol: 'TCP',
        portName: 'http',
        affinityTimeoutSeconds: 0,
        backends: [b('10.0.0.2', 8080, 'a'), b('10.0.0.3', 9090, 'b', 'n2')],
        externalLocal: false,
      },
      {
        service: 'shop/web',
        scope: 'clusterIP',
        address: '10.96.0.10',
        port: 53,
        protocol: 'UDP',
        portName: 'dns',
        affinityTimeoutSeconds: 0,
        backends: [b('10.0.0.2', 5353, 'a')],
        externalLocal: false,
      },
      {
        service: 'shop/web',
        scope: 'clusterIP',
        address: 'fd00:96::a',
        port: 80,
        protocol: 'TCP',
        portName: 'http',
        affinityTimeoutSeconds: 0,
        backends: [b('fd00::2', 8080, 'a')],
        externalLocal: false,
      },
      {
        service: 'shop/web',
        scope: 'clusterIP',
        address: 'fd00:96::a',
        port: 53,
        protocol: 'UDP',
        portName: 'dns',
        affinityTimeoutSeconds: 0,
        backends: [],
        externalLocal: false,
      },
    ];
    expect(got).toEqual(expected);
  });

  it('ready endpoints only; when none is ready, the serving-and-terminating ones (kube-proxy)', () => {
    const s = svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] });
    const mixed = slice(
      'x',
      'web',
      'IPv4',
      [{ port: 80 }],
      [
        { ip: '10.0.0.2', pod: 'a' },
        { ip: '10.0.0.3', pod: 'b', ready: false, serving: true, terminating: true },
        { ip: '10.0.0.4', pod: 'c', ready: false, serving: false, terminating: false },
      ],
    );
    expect(compileService(s, [mixed], 'n1')[0]!.backends.map((x) => x.ip)).toEqual(['10.0.0.2']);
    const draining = slice(
      'x',
      'web',
      'IPv4',
      [{ port: 80 }],
      [
        { ip: '10.0.0.3', pod: 'b', ready: false, serving: true, terminating: true },
        { ip: '10.0.0.4', pod: 'c', ready: false, serving: false, terminating: true },
        { ip: '10.0.0.5', pod: 'd', ready: false, serving: true, terminating: false },
      ],
    );
    expect(compileService(s, [draining], 'n1')[0]!.backends).toEqual(
      [b('10.0.0.3', 80, 'b', undefined, { ready: false, serving: true, terminating: true })].map(
        ({ nodeName: _n, ...rest }) => rest,
      ),
    );
    // unset conditions: ready and serving, not terminating
    const bare = slice('x', 'web', 'IPv4', [{ port: 80 }], [{ ip: '10.0.0.9' }]);
    expect(compileService(s, [bare], 'n1')[0]!.backends).toEqual([
      { ip: '10.0.0.9', port: 80, ready: true, serving: true, terminating: false },
    ]);
  });

  it("internalTrafficPolicy Local keeps this node's endpoints on clusterIP frontends only", () => {
    const s = svc({
      type: 'NodePort',
      clusterIP: '10.96.0.7',
      internalTrafficPolicy: 'Local',
      ports: [{ port: 80, nodePort: 30080 }],
    });
    const sl = slice(
      'x',
      'web',
      'IPv4',
      [{ port: 8080 }],
      [
        { ip: '10.0.0.2', pod: 'a', node: 'n1' },
        { ip: '10.0.0.3', pod: 'b', node: 'n2' },
      ],
    );
    // the slice's port is unnamed like the Service's: matched by the empty name
    const [cluster, node] = compileService(s, [sl], 'n1');
    expect(cluster!.backends.map((x) => x.ip)).toEqual(['10.0.0.2']);
    expect(node).toMatchObject({ scope: 'nodePort', address: '0.0.0.0', port: 30080, externalLocal: false });
    expect(node!.backends.map((x) => x.ip)).toEqual(['10.0.0.2', '10.0.0.3']);
  });

  it('NodePort: one frontend per family x nodePort on the unspecified address; externalTrafficPolicy Local', () => {
    const s = svc({
      type: 'NodePort',
      clusterIPs: ['10.96.0.7', 'fd00:96::7'],
      externalTrafficPolicy: 'Local',
      sessionAffinity: 'ClientIP',
      ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }],
    });
    const s4 = slice(
      'x',
      'web',
      'IPv4',
      [{ name: 'http', port: 8080 }],
      [
        { ip: '10.0.0.2', pod: 'a', node: 'n1' },
        { ip: '10.0.0.3', pod: 'b', node: 'n2' },
      ],
    );
    const got = compileService(s, [s4], 'n2');
    expect(got.map((f) => `${f.scope} ${f.address} ${f.port} ${f.affinityTimeoutSeconds} ${f.externalLocal}`)).toEqual([
      'clusterIP 10.96.0.7 80 10800 false',
      'clusterIP fd00:96::7 80 10800 false',
      'nodePort 0.0.0.0 30080 10800 true',
      'nodePort :: 30080 10800 true',
    ]);
    expect(got[0]!.backends.map((x) => x.ip)).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(got[2]!.backends.map((x) => x.ip)).toEqual(['10.0.0.3']);
    // Local keeps this node's backends only: none is masqueraded
    expect(got[2]!.backends.some((x) => x.remote)).toBe(false);
  });

  it("NodePort with externalTrafficPolicy Cluster: backends of other nodes are remote (masqueraded), this node's and unplaced ones are not", () => {
    const s = svc({ type: 'NodePort', clusterIP: '10.96.0.7', ports: [{ port: 80, nodePort: 30080 }] });
    const sl = slice(
      'x',
      'web',
      'IPv4',
      [{ port: 8080 }],
      [
        { ip: '10.0.0.2', pod: 'a', node: 'n1' },
        { ip: '10.0.0.3', pod: 'b', node: 'n2' },
        { ip: '10.0.0.4', pod: 'c' },
      ],
    );
    const [cluster, node] = compileService(s, [sl], 'n1');
    expect(node!.backends.map((x) => [x.ip, x.remote === true])).toEqual([
      ['10.0.0.2', false],
      ['10.0.0.3', true],
      ['10.0.0.4', false],
    ]);
    // a ClusterIP frontend's connections come from pods: never masqueraded
    expect(cluster!.backends.some((x) => x.remote)).toBe(false);
    // a compiler that does not know its node's name masquerades nothing
    expect(compileService(s, [sl], undefined)[1]!.backends.some((x) => x.remote)).toBe(false);
  });

  it('affinity: ClientIP with its own timeout; None gives 0', () => {
    const s = svc({
      clusterIP: '10.96.0.8',
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
      ports: [{ port: 80 }],
    });
    expect(compileService(s, [], 'n1')[0]!.affinityTimeoutSeconds).toBe(60);
    expect(
      compileService(svc({ clusterIP: '10.96.0.8', ports: [{ port: 80 }] }), [], 'n1')[0]!.affinityTimeoutSeconds,
    ).toBe(0);
  });

  it('headless, ExternalName and not-yet-allocated Services have no frontend', () => {
    expect(compileService(svc({ clusterIP: 'None', selector: { app: 'x' } }), [], 'n1')).toEqual([]);
    expect(compileService(svc({ type: 'ExternalName', externalName: 'db.example.org' }), [], 'n1')).toEqual([]);
    expect(compileService(svc({ ports: [{ port: 80 }] }), [], 'n1')).toEqual([]);
  });

  it('a slice port of another protocol or with no port is not a backend port', () => {
    const s = svc({ clusterIP: '10.96.0.9', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] });
    const sl = slice('x', 'web', 'IPv4', [{ name: 'dns', port: 53, protocol: 'TCP' }], [{ ip: '10.0.0.2' }]);
    expect(compileService(s, [sl], 'n1')[0]!.backends).toEqual([]);
  });
});

describe('ServiceCompiler: per-change diffs', () => {
  const web = svc({ clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] });
  const sl = (ips: string[]): EndpointSlice =>
    slice(
      'web-1',
      'web',
      'IPv4',
      [{ name: 'http', port: 8080 }],
      ips.map((ip) => ({ ip })),
    );

  it('a slice change upserts the frontend with its new backends; deleting the Service removes it', () => {
    const c = new ServiceCompiler('n1');
    c.ingest('Service', 'shop/web', web);
    let d = c.flush();
    expect(d.removed).toEqual([]);
    expect(d.upserted.map((f) => [f.address, f.backends.length])).toEqual([['10.96.0.10', 0]]);
    c.ingest('EndpointSlice', 'shop/web-1', sl(['10.0.0.2', '10.0.0.3']));
    d = c.flush();
    expect(d.upserted[0]!.backends.map((x) => `${x.ip}:${x.port}`)).toEqual(['10.0.0.2:8080', '10.0.0.3:8080']);
    // the same slice again: nothing to do
    c.ingest('EndpointSlice', 'shop/web-1', sl(['10.0.0.2', '10.0.0.3']));
    expect(c.flush()).toEqual({ upserted: [], removed: [] });
    c.ingest('EndpointSlice', 'shop/web-1', sl(['10.0.0.3']));
    expect(c.flush().upserted[0]!.backends.map((x) => x.ip)).toEqual(['10.0.0.3']);
    c.ingest('Service', 'shop/web', undefined);
    expect(c.flush()).toEqual({ upserted: [], removed: ['10.96.0.10|80|TCP'] });
    expect(c.snapshot().size).toBe(0);
  });

  it('a port change removes the old frontend and adds the new one', () => {
    const c = new ServiceCompiler('n1');
    c.ingest('Service', 'shop/web', web);
    c.flush();
    c.ingest('Service', 'shop/web', svc({ clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 81 }] }));
    const d = c.flush();
    expect(d.removed).toEqual(['10.96.0.10|80|TCP']);
    expect(d.upserted.map((f) => f.port)).toEqual([81]);
  });

  it('two Services on one address and port: the first keeps it, the second gets it when the first goes', () => {
    const c = new ServiceCompiler('n1');
    c.ingest('Service', 'shop/a', svc({ clusterIP: '10.96.0.10', ports: [{ port: 80 }] }, 'a'));
    c.flush();
    c.ingest('Service', 'shop/b', svc({ clusterIP: '10.96.0.10', ports: [{ port: 80 }] }, 'b'));
    expect(c.flush()).toEqual({ upserted: [], removed: [] });
    expect(c.problems()).toEqual([{ service: 'shop/b', frontend: '10.96.0.10|80|TCP', ownedBy: 'shop/a' }]);
    c.ingest('Service', 'shop/a', undefined);
    const d = c.flush();
    expect(d.removed).toEqual([]);
    expect(d.upserted.map((f) => f.service)).toEqual(['shop/b']);
    expect(c.problems()).toEqual([]);
  });
});

describe('withServices: one diff per store change', () => {
  it('publishes servicesUpserted/servicesRemoved beside the policy diff, and services in the snapshot', () => {
    const store = new Store();
    const compiler = withServices(new PolicyEngine({ nodeName: 'n1' }), 'n1');
    const put = (o: KubeObject) => compiler.apply(store.upsert(o)!);
    const ns = toKubeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } })!;
    expect(put(ns).servicesUpserted).toBeUndefined();
    const d = put(svc({ clusterIP: '10.96.0.10', ports: [{ port: 80 }] }));
    expect(d.servicesUpserted?.map((f) => f.address)).toEqual(['10.96.0.10']);
    expect([...compiler.snapshot().services!.keys()]).toEqual(['10.96.0.10|80|TCP']);
    const gone = compiler.apply(store.delete('Service', 'shop/web')!);
    expect(gone.servicesRemoved).toEqual(['10.96.0.10|80|TCP']);
  });
});
