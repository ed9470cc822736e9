/** The lab's Service allocator and EndpointSlice derivation (no kernel). */
import { resolveLabConfig } from '../../../agent/lab/config.js';
import { LabServiceAllocator } from '../../../agent/lab/services.js';
import { deriveEndpointSlices } from '../../../agent/services/endpointslices.js';
import { toKubeObject } from '../../../agent/store/convert.js';
import type { Pod, Service } from '../../../agent/store/types.js';

const config = resolveLabConfig({ svcCidr4: '10.96.0.0/24', svcCidr6: 'fd00:96::/120' }, {});

function svc(spec: Record<string, unknown>, name = 'web', namespace = 'shop'): Service {
  return toKubeObject({ kind: 'Service', metadata: { name, namespace }, spec }) as Service;
}

function pod(
  name: string,
  labels: Record<string, string>,
  ips: string[],
  ports: Array<{ name?: string; containerPort: number; protocol?: string }> = [],
  phase = 'Running',
): Pod {
  return toKubeObject({
    kind: 'Pod',
    metadata: { name, namespace: 'shop', labels },
    spec: { nodeName: 'lab', containers: [{ name: 'c', ports }] },
    status: { phase, podIPs: ips.map((ip) => ({ ip })) },
  }) as Pod;
}

describe('LabServiceAllocator', () => {
  const alloc = new LabServiceAllocator(config);

  it('gives a Service one address of each family, skipping taken ones, and keeps them on update', () => {
    const first = alloc.allocate(svc({ ports: [{ port: 80 }] }, 'a'), []);
    expect(first).toMatchObject({
      ok: true,
      service: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1', 'fd00:96::1'] },
    });
    const a = (first as { service: Service }).service;
    const second = alloc.allocate(svc({ ports: [{ port: 80 }] }, 'b'), [a]);
    expect(second).toMatchObject({ ok: true, service: { clusterIPs: ['10.96.0.2', 'fd00:96::2'] } });
    // the same Service applied again without a clusterIP keeps what it had
    expect(alloc.allocate(svc({ ports: [{ port: 81 }] }, 'a'), [a], a)).toMatchObject({
      ok: true,
      service: { clusterIPs: ['10.96.0.1', 'fd00:96::1'], ports: [{ port: 81 }] },
    });
  });

  it('honours an in-range clusterIP and refuses one out of range or taken, naming the field', () => {
    expect(alloc.allocate(svc({ clusterIP: '10.96.0.10', ports: [{ port: 53 }] }), [])).toMatchObject({
      ok: true,
      service: { clusterIPs: ['10.96.0.10', 'fd00:96::1'] },
    });
    expect(alloc.allocate(svc({ clusterIP: '10.97.0.10', ports: [{ port: 53 }] }), [])).toEqual({
      ok: false,
      error:
        'spec.clusterIP: Invalid value: "10.97.0.10": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/24',
    });
    const other = svc({ clusterIPs: ['10.96.0.10'], ports: [{ port: 53 }] }, 'other');
    expect(alloc.allocate(svc({ clusterIP: '10.96.0.10', ports: [{ port: 53 }] }), [other])).toEqual({
      ok: false,
      error: 'spec.clusterIP: Invalid value: "10.96.0.10": provided IP is already allocated',
    });
  });

  it('allocates node ports from 30000 and leaves headless and ExternalName Services alone', () => {
    const r = alloc.allocate(
      svc({
        type: 'NodePort',
        ports: [
          { name: 'a', port: 80 },
          { name: 'b', port: 81, nodePort: 30000 },
        ],
      }),
      [],
    );
    // a written node port is kept; the others get free ones around it
    expect(r.ok && r.service.ports.map((p) => p.nodePort)).toEqual([30001, 30000]);
    const ok = alloc.allocate(
      svc({
        type: 'NodePort',
        ports: [
          { name: 'a', port: 80, nodePort: 30000 },
          { name: 'b', port: 81 },
        ],
      }),
      [],
    );
    expect(ok.ok && ok.service.ports.map((p) => p.nodePort)).toEqual([30000, 30001]);
    const taken = (r as { service: Service }).service;
    expect(alloc.allocate(svc({ type: 'NodePort', ports: [{ port: 80, nodePort: 30001 }] }, 'x'), [taken])).toEqual({
      ok: false,
      error: 'spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated',
    });
    const headless = svc({ clusterIP: 'None', selector: { app: 'x' } });
    expect(alloc.allocate(headless, [])).toEqual({ ok: true, service: headless });
  });

  it('refuses Service ranges that overlap the pod ranges', () => {
    expect(() => resolveLabConfig({ svcCidr4: '10.88.1.0/24' }, {})).toThrow(/overlaps the pod range 10.88.0.0\/16/);
  });
});

describe('deriveEndpointSlices', () => {
  const web = svc({
    clusterIPs: ['10.96.0.1', 'fd00:96::1'],
    selector: { app: 'web' },
    ports: [
      { name: 'http', port: 80, targetPort: 'http' },
      { name: 'metrics', port: 9090, targetPort: 9090 },
    ],
  });

  it('one slice per family and per set of resolved ports; pods without the named port leave that port', () => {
    const pods = [
      pod('w1', { app: 'web' }, ['10.88.0.2', 'fd00:88::2'], [{ name: 'http', containerPort: 8080 }]),
      pod('w2', { app: 'web' }, ['10.88.0.3', 'fd00:88::3'], [{ name: 'http', containerPort: 8080 }]),
      pod('w3', { app: 'web' }, ['10.88.0.4', 'fd00:88::4'], []),
      pod('other', { app: 'db' }, ['10.88.0.5', 'fd00:88::5'], [{ name: 'http', containerPort: 8080 }]),
      pod('done', { app: 'web' }, ['10.88.0.6'], [{ name: 'http', containerPort: 8080 }], 'Succeeded'),
    ];
    const slices = deriveEndpointSlices(web, pods);
    expect(
      slices.map((s) => ({
        name: s.name,
        type: s.addressType,
        ports: s.ports.map((p) => `${p.name}:${p.port}`),
        eps: s.endpoints.map((e) => `${e.targetRef?.name}@${e.addresses[0]}`),
      })),
    ).toEqual([
      { name: 'web-ipv4', type: 'IPv4', ports: ['http:8080', 'metrics:9090'], eps: ['w1@10.88.0.2', 'w2@10.88.0.3'] },
      { name: 'web-ipv4-2', type: 'IPv4', ports: ['metrics:9090'], eps: ['w3@10.88.0.4'] },
      { name: 'web-ipv6', type: 'IPv6', ports: ['http:8080', 'metrics:9090'], eps: ['w1@fd00:88::2', 'w2@fd00:88::3'] },
      { name: 'web-ipv6-2', type: 'IPv6', ports: ['metrics:9090'], eps: ['w3@fd00:88::4'] },
    ]);
    expect(slices[0]!.labels['kubernetes.io/service-name']).toBe('web');
    expect(slices[0]!.endpoints[0]).toMatchObject({
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: 'lab',
      targetRef: { kind: 'Pod', namespace: 'shop', name: 'w1' },
    });
  });

  it('a Service selecting nothing keeps one empty slice per family; no selector, no slices', () => {
    expect(deriveEndpointSlices(web, []).map((s) => [s.name, s.endpoints.length])).toEqual([
      ['web-ipv4', 0],
      ['web-ipv6', 0],
    ]);
    expect(deriveEndpointSlices(svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }), [])).toEqual([]);
  });
});
