/** Converters, the manifest loader and the Store's change events. */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConversionError, toKubeObject, toNetworkPolicy } from '../../../agent/store/convert.js';
import { ManifestError, loadManifests, parseManifests } from '../../../agent/store/manifests.js';
import { Store } from '../../../agent/store/store.js';
import type { Pod } from '../../../agent/store/types.js';

describe('converters', () => {
  it('reads a pod: labels, dual-stack IPs (canonical), node, ports with default protocol', () => {
    const p = toKubeObject({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
      spec: {
        nodeName: 'n1',
        containers: [
          {
            name: 'c',
            ports: [
              { name: 'http', containerPort: 8080 },
              { containerPort: 53, protocol: 'UDP' },
            ],
          },
        ],
      },
      status: { phase: 'Running', podIPs: [{ ip: '10.1.0.5' }, { ip: 'FD00:0:0::5' }] },
    }) as Pod;
    expect(p).toEqual({
      kind: 'Pod',
      namespace: 'shop',
      name: 'web-0',
      labels: { app: 'web' },
      ips: ['10.1.0.5', 'fd00::5'],
      nodeName: 'n1',
      hostNetwork: false,
      phase: 'Running',
      ports: [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { containerPort: 53, protocol: 'UDP' },
      ],
    });
  });
  it('defaults the namespace to "default" and adds kubernetes.io/metadata.name to namespaces', () => {
    expect(toKubeObject({ kind: 'Pod', metadata: { name: 'p' } })).toMatchObject({
      namespace: 'default',
      phase: 'Pending',
      ips: [],
    });
    expect(toKubeObject({ kind: 'Namespace', metadata: { name: 'x', labels: { team: 'a' } } })).toEqual({
      kind: 'Namespace',
      name: 'x',
      labels: { team: 'a', 'kubernetes.io/metadata.name': 'x' },
    });
  });
  it('defaults policyTypes as Kubernetes does', () => {
    const base = { kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'x' } };
    expect(toNetworkPolicy({ ...base, spec: { podSelector: {} } }).policyTypes).toEqual(['Ingress']);
    expect(toNetworkPolicy({ ...base, spec: { podSelector: {}, egress: [{}] } }).policyTypes).toEqual([
      'Ingress',
      'Egress',
    ]);
    expect(toNetworkPolicy({ ...base, spec: { podSelector: {}, egress: [] } }).policyTypes).toEqual(['Ingress']);
    expect(
      toNetworkPolicy({ ...base, spec: { podSelector: {}, policyTypes: ['Egress'], ingress: [{}] } }).policyTypes,
    ).toEqual(['Egress']);
  });
  it('reads node addresses and pod CIDRs', () => {
    expect(
      toKubeObject({
        kind: 'Node',
        metadata: { name: 'n1' },
        spec: { podCIDR: '10.244.1.0/24' },
        status: { addresses: [{ type: 'InternalIP', address: '192.168.1.10' }] },
      }),
    ).toEqual({
      kind: 'Node',
      name: 'n1',
      addresses: [{ type: 'InternalIP', address: '192.168.1.10' }],
      podCIDRs: ['10.244.1.0/24'],
    });
  });
  it('ignores kinds weir does not read', () => {
    expect(toKubeObject({ kind: 'Deployment', metadata: { name: 'd' } })).toBeUndefined();
  });
  it.each([
    [
      { kind: 'Pod', metadata: { name: 'p', labels: { tier: 1 } } },
      'Pod default/p: metadata.labels.tier: label values must be strings (quote 1 in YAML)',
    ],
    [
      { kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ ports: [{ containerPort: 0 }] }] } },
      'Pod default/p: spec.containers[0].ports[0].containerPort: must be an integer 1-65535, got 0',
    ],
    [
      { kind: 'Pod', metadata: { name: 'p' }, status: { podIP: '10.0.0.300' } },
      'Pod default/p: status.podIP: "10.0.0.300" is not an IP address',
    ],
    [{ kind: 'Pod', metadata: {} }, 'Pod: metadata.name: is required'],
    [
      { apiVersion: 'extensions/v1beta1', kind: 'NetworkPolicy', metadata: { name: 'old' } },
      'NetworkPolicy old: apiVersion: "extensions/v1beta1" is not supported; use networking.k8s.io/v1',
    ],
    [
      { kind: 'NetworkPolicy', metadata: { name: 'p' }, spec: { policyTypes: ['Both'] } },
      'NetworkPolicy default/p: spec.policyTypes[0]: must be Ingress or Egress, got "Both"',
    ],
    [
      { kind: 'NetworkPolicy', metadata: { name: 'p' }, spec: { ingress: {} } },
      'NetworkPolicy default/p: spec.ingress: must be a list',
    ],
  ])('rejects malformed input with the object and field: %#', (raw, message) => {
    expect(() => toKubeObject(raw)).toThrow(ConversionError);
    expect(() => toKubeObject(raw)).toThrow(message);
  });
});

describe('manifests', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-compiler-manifests-'));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(
      join(dir, 'a.yaml'),
      'kind: Namespace\nmetadata: {name: x}\n---\nkind: Pod\nmetadata: {name: a, namespace: x}\n---\n# empty\n',
    );
    writeFileSync(
      join(dir, 'sub', 'list.json'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            kind: 'NetworkPolicy',
            apiVersion: 'networking.k8s.io/v1',
            metadata: { name: 'np', namespace: 'x' },
            spec: {},
          },
          { kind: 'ConfigMap', metadata: { name: 's' } },
        ],
      }),
    );
    writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads multi-document YAML and kind: List from files and directories', () => {
    expect(loadManifests([dir]).map((o) => `${o.kind}/${o.name}`)).toEqual([
      'Namespace/x',
      'Pod/a',
      'NetworkPolicy/np',
    ]);
  });
  it('names the file and document of an error', () => {
    expect(() =>
      parseManifests(
        'kind: Pod\nmetadata: {name: ok}\n---\nkind: Pod\nmetadata: {name: bad, labels: {n: 5}}\n',
        'pods.yaml',
      ),
    ).toThrow(
      'pods.yaml: document 2: Pod default/bad: metadata.labels.n: label values must be strings (quote 5 in YAML)',
    );
    expect(() => parseManifests('kind: [unclosed', 'broken.yaml')).toThrow(ManifestError);
    expect(() => loadManifests([join(dir, 'missing.yaml')])).toThrow(
      `${join(dir, 'missing.yaml')}: no such file or directory`,
    );
  });
});

describe('Store', () => {
  it('returns typed add/modify/delete events and nothing for no-op writes', () => {
    const s = new Store();
    const ns = toKubeObject({ kind: 'Namespace', metadata: { name: 'x' } })!;
    expect(s.upsert(ns)).toMatchObject({ kind: 'Namespace', type: 'added', key: 'x', new: ns });
    expect(s.upsert(ns)).toBeUndefined();
    const ns2 = toKubeObject({ kind: 'Namespace', metadata: { name: 'x', labels: { a: 'b' } } })!;
    expect(s.upsert(ns2)).toMatchObject({ type: 'modified', old: ns, new: ns2 });
    expect(s.delete('Namespace', 'x')).toMatchObject({ type: 'deleted', old: ns2 });
    expect(s.delete('Namespace', 'x')).toBeUndefined();
    expect(s.size('Namespace')).toBe(0);
  });

  it('detects change by resourceVersion, then by the fields weir reads, not by what else the API server changed', () => {
    const s = new Store();
    const pod = (rv: string, app: string, extra: Record<string, unknown> = {}) =>
      toKubeObject({
        kind: 'Pod',
        metadata: { name: 'p', namespace: 'x', resourceVersion: rv, labels: { app } },
        status: { podIP: '10.0.0.1', ...extra },
      })!;
    const v1 = pod('1', 'a');
    expect(v1.resourceVersion).toBe('1');
    expect(s.upsert(v1)).toMatchObject({ type: 'added' });
    // The same resourceVersion is the same object.
    expect(s.upsert(pod('1', 'a'))).toBeUndefined();
    // A new resourceVersion that changes nothing weir reads (a status condition) is no change,
    // and the store keeps the object it holds (the compiler holds that one too).
    const v2 = pod('2', 'a', { conditions: [{ type: 'Ready', status: 'True' }] });
    expect(s.upsert(v2)).toBeUndefined();
    expect(s.get('Pod', 'x/p')).toBe(v1);
    // A new resourceVersion with a new label is a change.
    const v3 = pod('3', 'b');
    expect(s.upsert(v3)).toMatchObject({ type: 'modified', new: v3 });
    // Objects without a resourceVersion (the lab's) are compared by their fields.
    const lab = { ...(v3 as Pod), resourceVersion: undefined };
    delete lab.resourceVersion;
    expect(s.upsert(lab)).toBeUndefined();
    expect(s.upsert({ ...lab, labels: { app: 'c' } })).toMatchObject({ type: 'modified' });
  });
});
