/** The expected-truth-table model of the conformance suite finds every wrong cell. */
import { Reachability, ALL_PODS } from '../e2e/reachability.js';

const observe = (connected: (from: string, to: string) => boolean) =>
  ALL_PODS.flatMap((from) => ALL_PODS.map((to) => ({ from, to, connected: connected(from, to) })));

describe('Reachability', () => {
  test('a default-deny-ingress table: nothing reaches x but each pod reaches itself', () => {
    const r = new Reachability(true).expect(undefined, { namespace: 'x' }, false).allowLoopback();
    expect(r.get('y/a', 'x/b')).toBe(false);
    expect(r.get('x/a', 'x/a')).toBe(true);
    expect(r.get('x/a', 'y/b')).toBe(true);
    expect(r.table().split('\n')[1]).toBe('x/a\t.\tX\tX\t.\t.\t.\t.\t.\t.');
  });

  test('mismatches names exactly the cells that differ, in both directions', () => {
    const r = new Reachability(true).expect(undefined, { namespace: 'x', pod: 'a' }, false).allowLoopback();
    expect(r.mismatches(observe((f, t) => t !== 'x/a' || f === 'x/a'))).toEqual([]);
    const allOpen = r.mismatches(observe(() => true));
    expect(allOpen).toHaveLength(8);
    expect(allOpen.every((c) => c.to === 'x/a' && c.connected)).toBe(true);
    const oneMissing = r.mismatches(observe((f, t) => !(f === 'z/c' && t === 'y/b') && (t !== 'x/a' || f === 'x/a')));
    expect(oneMissing).toEqual([{ from: 'z/c', to: 'y/b', connected: false }]);
  });

  test('an observed pair without an expectation is an error, not a pass', () => {
    expect(() => new Reachability(true).mismatches([{ from: 'q/a', to: 'x/a', connected: true }])).toThrow(
      /no expectation for q\/a -> x\/a/,
    );
  });
});
