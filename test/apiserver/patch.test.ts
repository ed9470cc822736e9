/**
 * The strategic merge patch directives kubectl's apply rarely sends, with the results the
 * Kubernetes documentation gives for them ("Update API Objects in Place Using kubectl patch" and
 * the strategic-merge-patch design notes), and JSON patch (RFC 6902).
 */
import { RESOURCES } from './resources.js';
import { schemaSet } from './openapi.js';
import { jsonPatch, StrategicMergePatch } from './patch.js';

const smp = new StrategicMergePatch(schemaSet(RESOURCES));
const pod = {
  metadata: { name: 'p', finalizers: ['a', 'b'], labels: { x: '1' } },
  spec: {
    containers: [
      { name: 'web', image: 'nginx:1', ports: [{ containerPort: 80 }] },
      { name: 'log', image: 'busybox' },
    ],
    volumes: [{ name: 'data', emptyDir: {} }],
    tolerations: [{ key: 'a', operator: 'Exists' }],
  },
};

describe('strategic merge patch', () => {
  it('merges containers by name and replaces lists without a merge strategy', () => {
    const out = smp.apply('Pod', pod, {
      spec: {
        containers: [
          { name: 'web', image: 'nginx:2' },
          { name: 'new', image: 'x' },
        ],
        tolerations: [{ key: 'b', operator: 'Exists' }],
      },
    });
    expect(out.spec).toEqual({
      containers: [
        { name: 'web', image: 'nginx:2', ports: [{ containerPort: 80 }] },
        { name: 'log', image: 'busybox' },
        { name: 'new', image: 'x' },
      ],
      volumes: [{ name: 'data', emptyDir: {} }],
      tolerations: [{ key: 'b', operator: 'Exists' }],
    });
  });

  it('$patch: replace replaces a merged list or a map; $patch: delete removes an element', () => {
    const out = smp.apply('Pod', pod, {
      metadata: { labels: { $patch: 'replace', y: '2' } },
      spec: { containers: [{ name: 'only', image: 'x' }, { $patch: 'replace' }] },
    });
    expect(out.metadata).toEqual({ name: 'p', finalizers: ['a', 'b'], labels: { y: '2' } });
    expect((out.spec as { containers: unknown }).containers).toEqual([{ name: 'only', image: 'x' }]);
    const del = smp.apply('Pod', pod, { spec: { containers: [{ name: 'log', $patch: 'delete' }] } });
    expect((del.spec as { containers: Array<{ name: string }> }).containers.map((c) => c.name)).toEqual(['web']);
  });

  it('merges a list of scalars with a merge strategy as a set; $deleteFromPrimitiveList removes', () => {
    const out = smp.apply('Pod', pod, {
      metadata: { finalizers: ['b', 'c'], '$deleteFromPrimitiveList/finalizers': ['a'] },
    });
    expect((out.metadata as { finalizers: string[] }).finalizers).toEqual(['b', 'c']);
  });

  it('$retainKeys drops the keys of a volume that the patch does not keep (a changed volume source)', () => {
    const out = smp.apply('Pod', pod, {
      spec: { volumes: [{ name: 'data', $retainKeys: ['name', 'hostPath'], hostPath: { path: '/x' } }] },
    });
    expect((out.spec as { volumes: unknown }).volumes).toEqual([{ name: 'data', hostPath: { path: '/x' } }]);
  });

  it('$setElementOrder orders the merged list', () => {
    const out = smp.apply('Pod', pod, {
      spec: {
        '$setElementOrder/containers': [{ name: 'log' }, { name: 'web' }],
        containers: [{ name: 'web', image: 'n' }],
      },
    });
    expect((out.spec as { containers: Array<{ name: string }> }).containers.map((c) => c.name)).toEqual(['log', 'web']);
  });

  it('rejects malformed patches', () => {
    expect(() => smp.apply('Pod', pod, [])).toThrow(/JSON object/);
    expect(() => smp.apply('Pod', pod, { spec: { containers: [{ image: 'x' }] } })).toThrow(/lacks "name"/);
    expect(() => smp.apply('Pod', pod, { $patch: 'bogus' })).toThrow(/unknown \$patch/);
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('applies add, replace, remove, move, copy and test in order, and fails whole', () => {
    const doc = { a: { b: [1, 2] }, c: 'x' };
    expect(
      jsonPatch(doc, [
        { op: 'add', path: '/a/b/-', value: 3 },
        { op: 'replace', path: '/c', value: 'y' },
        { op: 'copy', from: '/c', path: '/d' },
        { op: 'move', from: '/a/b/0', path: '/e' },
        { op: 'remove', path: '/d' },
        { op: 'test', path: '/e', value: 1 },
      ]),
    ).toEqual({ a: { b: [2, 3] }, c: 'y', e: 1 });
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/c', value: 'z' }])).toThrow(/test of "\/c" failed/);
    expect(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }])).toThrow(/does not exist/);
    expect(doc).toEqual({ a: { b: [1, 2] }, c: 'x' });
  });
});
