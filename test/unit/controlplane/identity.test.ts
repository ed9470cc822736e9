/** Identities: label sets to numbers, stable, refcounted, released after a grace period. */
import { CLUSTER_IDENTITY_MIN, LOCAL_SCOPE_IDENTITY_BIT } from '../../../agent/desired.js';
import { CidrIdentityAllocator, IdentityAllocator, isCidrIdentity } from '../../../agent/identity/allocator.js';

class FakeClock {
  t = 0;
  now(): number {
    return this.t;
  }
}

describe('IdentityAllocator', () => {
  it('gives the same number to the same label set, in any order and across instances', () => {
    const a = new IdentityAllocator();
    const b = new IdentityAllocator();
    const x1 = a.acquire('shop', { app: 'web', tier: 'fe' }, { team: 'red' }).identity.id;
    a.acquire('shop', { app: 'db' }, { team: 'red' });
    b.acquire('shop', { app: 'db' }, { team: 'red' });
    const x2 = b.acquire('shop', { tier: 'fe', app: 'web' }, { team: 'red' }).identity.id;
    expect(x1).toBe(x2);
    expect(x1).toBeGreaterThanOrEqual(CLUSTER_IDENTITY_MIN);
    expect(x1).toBeLessThan(LOCAL_SCOPE_IDENTITY_BIT);
  });
  it('tells pods apart by labels, namespace labels and namespace name', () => {
    const a = new IdentityAllocator();
    const ids = new Set([
      a.acquire('shop', { app: 'web' }, { team: 'red' }).identity.id,
      a.acquire('shop', { app: 'db' }, { team: 'red' }).identity.id,
      a.acquire('shop', { app: 'web' }, { team: 'blue' }).identity.id,
      a.acquire('shop2', { app: 'web' }, { team: 'red' }).identity.id,
    ]);
    expect(ids.size).toBe(4);
  });
  it('ignores labels that change with every pod of a workload', () => {
    const a = new IdentityAllocator();
    const base = a.acquire('shop', { app: 'web' }, {}).identity;
    const extras: Record<string, string>[] = [
      { 'pod-template-hash': '7c9d' },
      { 'controller-revision-hash': 'web-5b' },
      { 'statefulset.kubernetes.io/pod-name': 'web-3' },
      { 'apps.kubernetes.io/pod-index': '3' },
      { 'pod-template-generation': '2' },
    ];
    for (const extra of extras) {
      expect(a.acquire('shop', { app: 'web', ...extra }, {}).identity.id).toBe(base.id);
    }
    expect(a.refs(base.id)).toBe(6);
    expect(base.labels).toEqual(['app=web', 'io.kubernetes.pod.namespace=shop']);
  });
  it('lists namespace labels with the ns: prefix', () => {
    const a = new IdentityAllocator();
    expect(
      a.acquire('shop', { app: 'web' }, { 'kubernetes.io/metadata.name': 'shop', team: 'red' }).identity.labels,
    ).toEqual(['app=web', 'io.kubernetes.pod.namespace=shop', 'ns:kubernetes.io/metadata.name=shop', 'ns:team=red']);
  });
  it('keeps a released number for the grace period, then frees it', () => {
    const clock = new FakeClock();
    const a = new IdentityAllocator({ clock, graceMs: 1000 });
    const first = a.acquire('shop', { app: 'web' }, {});
    expect(first.live).toBe(true);
    expect(a.acquire('shop', { app: 'web' }, {}).live).toBe(false);
    expect(a.release(first.identity.id)).toBe(false);
    expect(a.release(first.identity.id)).toBe(true);
    clock.t = 999;
    expect(a.gc()).toEqual([]);
    // Re-created within the grace period: same number, live again.
    const again = a.acquire('shop', { app: 'web' }, {});
    expect(again).toMatchObject({ live: true, identity: { id: first.identity.id } });
    a.release(first.identity.id);
    clock.t = 2500;
    expect(a.gc()).toEqual([first.identity.id]);
    expect(a.get(first.identity.id)).toBeUndefined();
    expect(() => a.release(first.identity.id)).toThrow('released more often than acquired');
  });
  it('probes past a taken number instead of sharing it', () => {
    const a = new IdentityAllocator();
    const seen = new Set<number>();
    for (let i = 0; i < 20000; i++) seen.add(a.acquire('ns', { i: String(i) }, {}).identity.id);
    expect(seen.size).toBe(20000);
  });
});

describe('CidrIdentityAllocator', () => {
  it('gives node-local numbers with the local-scope bit, one per prefix', () => {
    const c = new CidrIdentityAllocator();
    const a = c.acquire('10.0.0.0/8');
    const b = c.acquire('10.1.0.0/16');
    expect(isCidrIdentity(a.id) && isCidrIdentity(b.id)).toBe(true);
    expect(a.id).not.toBe(b.id);
    expect(c.acquire('10.0.0.0/8')).toEqual({ id: a.id, live: false });
    expect(c.cidrOf(b.id)).toBe('10.1.0.0/16');
    expect(isCidrIdentity(300)).toBe(false);
  });
});

describe('identity keys cannot be forged by characters the API server refuses', () => {
  it('{role: "db=x"} and {"role=db": "x"} get different identities', async () => {
    const { IdentityAllocator } = await import('../../../agent/identity/allocator.js');
    const a = new IdentityAllocator();
    const ns = { 'kubernetes.io/metadata.name': 'x' };
    const one = a.acquire('x', { role: 'db=x' }, ns).identity;
    const two = a.acquire('x', { 'role=db': 'x' }, ns).identity;
    const three = a.acquire('x', { 'ns:kubernetes.io/metadata.name': 'x' }, {}).identity;
    const four = a.acquire('x', {}, ns).identity;
    expect(new Set([one.id, two.id, three.id, four.id]).size).toBe(4);
    // Valid label sets keep the key they always had.
    expect(a.acquire('x', { app: 'web' }, ns).identity.labels).toEqual([
      'app=web',
      'io.kubernetes.pod.namespace=x',
      'ns:kubernetes.io/metadata.name=x',
    ]);
  });
});
