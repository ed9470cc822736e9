/** The node agent cuts a burst of changes into slices of bounded compile work (agent/node/slices.ts). */
import { sliceChanges, weightOf } from '../../../agent/node/slices.js';
import { toKubeObject } from '../../../agent/store/convert.js';
import type { KubeObject } from '../../../agent/store/types.js';

const policy = (name: string, blocks: number): KubeObject =>
  toKubeObject({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: 'x' },
    spec: {
      podSelector: {},
      egress: [{ to: Array.from({ length: blocks }, (_, i) => ({ ipBlock: { cidr: `20.0.${i}.0/24` } })) }],
    },
  })!;
const ns = (name: string): KubeObject => toKubeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })!;

describe('slices of a burst', () => {
  it('weighs a policy by its peers and ports, anything else as one', () => {
    expect(weightOf(policy('p', 200))).toBe(201);
    expect(weightOf(ns('a'))).toBe(1);
  });

  it('keeps every object whole and in order, each slice within the weight unless one object alone exceeds it', () => {
    const ups = [ns('a'), policy('p1', 200), policy('p2', 250), ns('b'), policy('huge', 1000), policy('p3', 10)];
    const dels = [{ kind: 'NetworkPolicy' as const, key: 'x/old' }];
    const slices = sliceChanges(ups, dels, 500);
    expect(slices.map((s) => s.upserts.map((o) => o.name))).toEqual([['a', 'p1', 'p2', 'b'], ['huge'], ['p3']]);
    // Deletions come last, after every upsert of the burst.
    expect(slices.map((s) => s.deletes)).toEqual([[], [], dels]);
  });

  it('a small burst is one slice', () => {
    expect(sliceChanges([ns('a'), policy('p', 3)], [])).toHaveLength(1);
    expect(sliceChanges([], [])).toEqual([{ upserts: [], deletes: [] }]);
  });
});
