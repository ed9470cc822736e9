/**
 * Incremental compilation: after every change (pod created, deleted, relabelled, moved;
 * namespace relabelled; policy added, changed, removed; node added or removed), the diff
 * applied to the previous state equals the engine's snapshot, and that equals a full
 * recompute from scratch. A label change touches only what depends on it.
 */
import type { DesiredDiff, DesiredState, EndpointState, PolicyEntry } from '../../../agent/desired.js';
import { entryKey, isEmptyDiff } from '../../../agent/desired.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { Store } from '../../../agent/store/store.js';
import type { StoreChange } from '../../../agent/store/store.js';
import type { KubeObject, Pod } from '../../../agent/store/types.js';
import {
  NODES,
  POD_CIDRS,
  Rng,
  nodeObject,
  podObject,
  randomCluster,
  randomNamespace,
  randomPodLabels,
  randomPolicy,
} from './random.js';
import { cluster, np, podObj } from './model.js';

interface Mirror {
  headers: Map<string, Omit<EndpointState, 'entries'>>;
  entries: Map<string, Map<string, PolicyEntry>>;
  ipcache: Map<string, number>;
}

function emptyMirror(): Mirror {
  return { headers: new Map(), entries: new Map(), ipcache: new Map() };
}

function applyDiff(m: Mirror, d: DesiredDiff): void {
  for (const k of d.endpointsRemoved) {
    m.headers.delete(k);
    m.entries.delete(k);
  }
  for (const ep of d.endpointsChanged) {
    const { entries: _ignored, ...header } = ep;
    m.headers.set(ep.key, header);
    if (!m.entries.has(ep.key)) m.entries.set(ep.key, new Map());
  }
  for (const [k, list] of d.entriesRemoved) for (const e of list) m.entries.get(k)?.delete(entryKey(e));
  for (const [k, list] of d.entriesAdded) for (const e of list) m.entries.get(k)!.set(entryKey(e), e);
  for (const c of d.ipcacheRemoved) m.ipcache.delete(c);
  for (const e of d.ipcacheUpserted) m.ipcache.set(e.cidr, e.identity);
}

/** A comparable, order-independent form. */
function normalState(s: DesiredState): unknown {
  return {
    endpoints: [...s.endpoints.values()]
      .map((e) => ({ ...e, entries: [...e.entries].sort((a, b) => entryKey(a).localeCompare(entryKey(b))) }))
      .sort((a, b) => a.key.localeCompare(b.key)),
    ipcache: [...s.ipcache.values()].map((e) => `${e.cidr}=${e.identity}`).sort(),
  };
}

function normalMirror(m: Mirror): unknown {
  return {
    endpoints: [...m.headers.values()]
      .map((h) => ({
        ...h,
        entries: [...(m.entries.get(h.key)?.values() ?? [])].sort((a, b) => entryKey(a).localeCompare(entryKey(b))),
      }))
      .sort((a, b) => a.key.localeCompare(b.key)),
    ipcache: [...m.ipcache].map(([c, id]) => `${c}=${id}`).sort(),
  };
}

function fresh(store: Store, nodeName: string): PolicyEngine {
  const e = new PolicyEngine({ nodeName, clusterPodCIDRs: POD_CIDRS });
  e.upsertAll([
    ...store.list('Node'),
    ...store.list('Namespace'),
    ...store.list('Pod'),
    ...store.list('NetworkPolicy'),
  ]);
  return e;
}

function randomChange(r: Rng, store: Store, namespaces: string[], counter: { n: number }): StoreChange | undefined {
  const pods = store.list('Pod');
  const policies = store.list('NetworkPolicy');
  switch (r.int(10)) {
    case 0:
      return store.upsert(
        podObject(r.pick(namespaces), `q${counter.n}`, randomPodLabels(r), 300 + counter.n++, r.pick(NODES)),
      );
    case 1:
      return pods.length
        ? (store.delete('Pod', `${r.pick(pods).namespace}/${r.pick(pods).name}`) ??
            store.delete('Pod', `${pods[0]!.namespace}/${pods[0]!.name}`))
        : undefined;
    case 2:
    case 3: {
      if (!pods.length) return undefined;
      const p = r.pick(pods);
      return store.upsert({ ...p, labels: randomPodLabels(r) });
    }
    case 4: {
      if (!pods.length) return undefined;
      const p = r.pick(pods);
      const moved: Pod = r.chance(0.5) ? { ...p, nodeName: r.pick(NODES) } : { ...p, phase: 'Succeeded' };
      return store.upsert(moved);
    }
    case 5:
      return store.upsert(randomNamespace(r, r.pick(namespaces)));
    case 6:
      return store.upsert(randomPolicy(r, r.pick(namespaces), `np${r.int(6)}`));
    case 7:
      return policies.length
        ? store.delete('NetworkPolicy', `${r.pick(policies).namespace}/${r.pick(policies).name}`)
        : undefined;
    case 8:
      return r.chance(0.5)
        ? store.delete('Namespace', r.pick(namespaces))
        : store.upsert(randomNamespace(r, r.pick(namespaces)));
    default:
      return r.chance(0.5) ? store.delete('Node', NODES[1]!) : store.upsert(nodeObject(NODES[1]!));
  }
}

describe('incremental diffs equal a full recompute', () => {
  it('over 100 random clusters with 25 random changes each, on both nodes', () => {
    let changes = 0;
    let nonEmpty = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const r = new Rng(seed * 7919);
      const { objects, namespaces } = randomCluster(r);
      const store = new Store();
      const engines = NODES.map((n) => new PolicyEngine({ nodeName: n, clusterPodCIDRs: POD_CIDRS }));
      const mirrors = NODES.map(() => emptyMirror());
      const initial = objects.map((o) => store.upsert(o)!);
      engines.forEach((e, i) => applyDiff(mirrors[i]!, e.applyAll(initial)));
      const counter = { n: 0 };
      for (let step = 0; step < 25; step++) {
        const ch = randomChange(r, store, namespaces, counter);
        if (!ch) continue;
        changes++;
        engines.forEach((e, i) => {
          const d = e.apply(ch);
          if (!isEmptyDiff(d)) nonEmpty++;
          applyDiff(mirrors[i]!, d);
          const snap = normalState(e.snapshot());
          const label = `seed ${seed} step ${step} node ${NODES[i]} ${ch.kind} ${ch.type} ${ch.key}`;
          expect({ label, state: normalMirror(mirrors[i]!) }).toEqual({ label, state: snap });
          expect({ label, state: snap }).toEqual({ label, state: normalState(fresh(store, NODES[i]!).snapshot()) });
        });
      }
    }
    expect(changes).toBeGreaterThan(1500);
    expect(nonEmpty).toBeGreaterThan(changes / 4);
  });
});

describe('a change touches only what depends on it', () => {
  function base(): { engine: PolicyEngine; store: Store } {
    const store = new Store();
    const engine = new PolicyEngine({ nodeName: 'node-1', clusterPodCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'] });
    const objs: KubeObject[] = [
      ...cluster(),
      np('x', 'from-b', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          { from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] },
        ],
      }),
    ];
    engine.applyAll(objs.map((o) => store.upsert(o)!));
    return { engine, store };
  }

  it('relabelling a pod that no selector cares about changes only its own endpoint and ipcache entries', () => {
    const { engine, store } = base();
    const d = engine.apply(store.upsert(podObj('z', 'c', { pod: 'c', extra: 'yes' }))!);
    expect(d.endpointsChanged.map((e) => e.key)).toEqual(['z/c']);
    expect([...d.entriesAdded.keys(), ...d.entriesRemoved.keys()]).toEqual([]);
    expect(d.ipcacheUpserted.map((e) => e.cidr).sort()).toEqual(['10.244.2.12/32', 'fd00:10:244::2:12/128']);
    expect(d.ipcacheRemoved).toEqual([]);
  });

  it('relabelling a pod into a peer selector adds exactly one entry to the selecting endpoint', () => {
    const { engine, store } = base();
    const d = engine.apply(store.upsert(podObj('z', 'c', { pod: 'b', was: 'c' }))!);
    const added = d.entriesAdded.get('x/a')!;
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      direction: 'ingress',
      protocol: 'TCP',
      port: 80,
      endPort: 80,
      derivedFrom: [{ policy: 'x/from-b', direction: 'ingress', rule: 0 }],
    });
    expect(added[0]!.remoteIdentity).toBe(engine.getPod('z/c')!.identity!.id);
    expect([...d.entriesRemoved.keys()]).toEqual([]);
  });

  it('a pod churned inside a Deployment (new pod-template-hash) keeps its identity and changes no entry', () => {
    const { engine, store } = base();
    const before = engine.getPod('y/b')!.identity!.id;
    const d = engine.apply(store.upsert(podObj('y', 'b', { pod: 'b', 'pod-template-hash': '5d9f7c' }))!);
    expect(engine.getPod('y/b')!.identity!.id).toBe(before);
    expect(isEmptyDiff(d)).toBe(true);
  });

  it('removing the policy removes its entries and isolation and nothing else', () => {
    const { engine, store } = base();
    const entries = engine.snapshot().endpoints.get('x/a')!.entries;
    const d = engine.apply(store.delete('NetworkPolicy', 'x/from-b')!);
    expect(d.endpointsChanged.map((e) => [e.key, e.ingressIsolated])).toEqual([['x/a', false]]);
    expect(d.entriesRemoved.get('x/a')!.map(entryKey).sort()).toEqual(entries.map(entryKey).sort());
    expect(entries).toHaveLength(3); // x/b, y/b, z/b
    expect(d.ipcacheUpserted).toEqual([]);
  });
});

describe('robustness', () => {
  it('deleting objects the engine never saw changes nothing', () => {
    const e = new PolicyEngine({ nodeName: 'node-1' });
    e.upsertAll(cluster());
    for (const kind of ['Pod', 'NetworkPolicy', 'Namespace', 'Node'] as const) {
      expect(
        isEmptyDiff(
          e.apply({
            kind,
            type: 'deleted',
            key: kind === 'Namespace' || kind === 'Node' ? 'nope' : 'x/nope',
          } as StoreChange),
        ),
      ).toBe(true);
    }
  });
  it('a policy deleted and re-created in one batch compiles as if it had never left', () => {
    const store = new Store();
    const e = new PolicyEngine({ nodeName: 'node-1' });
    const pol = np('x', 'p', {
      podSelector: {},
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    e.applyAll([...cluster(), pol].map((o) => store.upsert(o)!));
    const before = normalState(e.snapshot());
    const d = e.applyAll([store.delete('NetworkPolicy', 'x/p')!, store.upsert(pol)!]);
    expect(normalState(e.snapshot())).toEqual(before);
    expect([...d.entriesRemoved.keys()]).toEqual([]);
  });
});
