/**
 * The node agent's first sync: with `deferUntilStart` the changes before `start()` only fill the
 * store and the compilers, and the one publication at the start must realize the same desired
 * state (endpoints, entries, ipcache, Service frontends) as publishing every batch as it came
 * (the incremental path, the reference here), and the agents must stay alike after the start.
 */
import { Agent, type Enforcement } from '../../../agent/daemon.js';
import type { DesiredDiff, DesiredState } from '../../../agent/desired.js';
import { entryKey } from '../../../agent/desired.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { withServices } from '../../../agent/services/index.js';
import { toKubeObject } from '../../../agent/store/convert.js';
import type { KubeObject } from '../../../agent/store/types.js';
import { objectKey } from '../../../agent/store/index.js';
import { populateCluster, type ClusterShape } from '../../bench/kube-objects.js';
import type { KubeObject as WireObject } from '../../apiserver/server.js';
import { Rng, randomPodLabels, randomPolicy } from '../policy/random.js';

const API_VERSION: Record<string, string> = {
  Namespace: 'v1',
  Node: 'v1',
  Pod: 'v1',
  Service: 'v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  EndpointSlice: 'discovery.k8s.io/v1',
};

/** Records what the agent hands the kernel side. */
class Recorder implements Enforcement {
  readonly kind = 'recorder';
  resyncs: DesiredState[] = [];
  diffs: DesiredDiff[] = [];
  async resync(state: DesiredState): Promise<void> {
    this.resyncs.push(state);
  }
  async apply(diff: DesiredDiff): Promise<void> {
    this.diffs.push(diff);
  }
  async close(): Promise<void> {}
}

/** An order-independent form of a desired state. */
function normal(s: DesiredState): unknown {
  return {
    endpoints: [...s.endpoints.values()]
      .map((e) => ({ ...e, entries: e.entries.map((x) => `${entryKey(x)}<-${JSON.stringify(x.derivedFrom)}`).sort() }))
      .sort((a, b) => a.key.localeCompare(b.key)),
    ipcache: [...s.ipcache.values()].map((e) => `${e.cidr}=${e.identity}`).sort(),
    services: [...(s.services?.entries() ?? [])].map(([k, f]) => `${k}=${JSON.stringify(f)}`).sort(),
  };
}

const NODE = 'node-0';

function agentPair(services: boolean): { deferred: Agent; reference: Agent; recorders: [Recorder, Recorder] } {
  const make = (defer: boolean): [Agent, Recorder] => {
    const engine = new PolicyEngine({ nodeName: NODE, clusterPodCIDRs: ['10.64.0.0/10'] });
    const enforcement = new Recorder();
    const agent = new Agent({
      nodeName: NODE,
      compiler: services ? withServices(engine, NODE) : engine,
      enforcement,
      deferUntilStart: defer,
    });
    return [agent, enforcement];
  };
  const [deferred, rd] = make(true);
  const [reference, rr] = make(false);
  return { deferred, reference, recorders: [rd, rr] };
}

/** The generated cluster (as the kubelet and the controllers write it), as the Store reads it. */
function cluster(shape: ClusterShape): KubeObject[] {
  const wire: WireObject[] = [];
  let rv = 1;
  populateCluster((o) => {
    const w = { ...o, metadata: { ...o.metadata, uid: `uid-${rv}`, resourceVersion: String(rv++) } };
    wire.push(w);
    return w;
  }, shape);
  return wire.map((w) => toKubeObject({ ...w, apiVersion: API_VERSION[w.kind!] }) as KubeObject);
}

/** Pages of `size` per kind, in the order the agent lists them (as the informers deliver them). */
function pages(objects: KubeObject[], size: number): KubeObject[][] {
  const order = ['Namespace', 'Node', 'Pod', 'NetworkPolicy', 'Service', 'EndpointSlice'];
  const out: KubeObject[][] = [];
  for (const kind of order) {
    const of = objects.filter((o) => o.kind === kind);
    for (let i = 0; i < of.length; i += size) out.push(of.slice(i, i + size));
  }
  return out;
}

const SHAPE: ClusterShape = {
  namespaces: 12,
  podsPerNs: 9,
  nodes: 6,
  policiesPerNs: 5,
  servicesPerNs: 3,
  localPods: 14,
  appsPerNs: 3,
};

describe('the first sync, changes ingested until the start', () => {
  for (const services of [true, false]) {
    it(`realizes the same state as publishing every batch (a generated cluster${services ? ', Services on' : ''})`, async () => {
      const { deferred, reference, recorders } = agentPair(services);
      const objects = cluster(SHAPE);
      for (const page of pages(objects, 25)) {
        const r1 = await deferred.update(page);
        const r2 = await reference.update(page);
        expect(r1.changes).toBe(r2.changes);
        expect(r1.revision).toBe(r2.revision);
      }
      // before the start the deferred agent hands the kernel side nothing; the reference every page
      expect(recorders[0].diffs).toHaveLength(0);
      expect(recorders[1].diffs.length).toBeGreaterThan(0);
      await deferred.start();
      await reference.start();
      const [mine, ref] = [recorders[0].resyncs[0]!, recorders[1].resyncs[0]!];
      expect(mine.endpoints.size).toBe(SHAPE.localPods);
      expect(ref.ipcache.size).toBeGreaterThan(SHAPE.namespaces * SHAPE.podsPerNs);
      if (services) expect(ref.services?.size).toBeGreaterThan(0);
      expect([...mine.endpoints.values()].some((e) => e.entries.length > 0)).toBe(true);
      expect(normal(mine)).toEqual(normal(ref));
    });
  }

  it('stays alike through relabels, deletions and policy changes before and after the start (random clusters)', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const r = new Rng(seed);
      const { deferred, reference, recorders } = agentPair(true);
      const objects = cluster({ ...SHAPE, namespaces: 4 + r.int(4), localPods: 3 + r.int(10) });
      const namespaces = [...new Set(objects.filter((o) => o.kind === 'Pod').map((o) => o.namespace!))];
      // random policies beside the generated ones, some deleted again before the start
      const extra = Array.from({ length: 3 + r.int(6) }, (_, i) => randomPolicy(r, r.pick(namespaces), `rnd-${i}`));
      const both = async (upserts: KubeObject[], deletes: Array<{ kind: KubeObject['kind']; key: string }> = []) => {
        await deferred.update(upserts, deletes);
        await reference.update(upserts, deletes);
      };
      for (const page of pages([...objects, ...extra], 1 + r.int(30))) await both(page);
      const pods = objects.filter((o) => o.kind === 'Pod');
      let rv = 1_000_000;
      const relabel = (): KubeObject[] =>
        Array.from({ length: 1 + r.int(8) }, () => {
          const p = r.pick(pods) as KubeObject & { labels: Record<string, string> };
          return { ...p, labels: { ...p.labels, ...randomPodLabels(r) }, resourceVersion: String(rv++) } as KubeObject;
        });
      await both(relabel(), [
        { kind: 'Pod', key: objectKey(r.pick(pods)) },
        { kind: 'NetworkPolicy', key: objectKey(r.pick(extra)) },
      ]);
      await deferred.start();
      await reference.start();
      expect(normal(recorders[0].resyncs[0]!)).toEqual(normal(recorders[1].resyncs[0]!));
      // after the start both publish each change, the same way
      const before = [recorders[0].diffs.length, recorders[1].diffs.length];
      await both(relabel(), [
        { kind: 'NetworkPolicy', key: objectKey(r.pick(objects.filter((o) => o.kind === 'NetworkPolicy'))) },
      ]);
      const d0 = recorders[0].diffs.slice(before[0]);
      const d1 = recorders[1].diffs.slice(before[1]);
      expect(d0.length).toBeGreaterThan(0);
      expect(d0).toEqual(d1);
      expect(normal(deferred.compiler.snapshot())).toEqual(normal(reference.compiler.snapshot()));
    }
  });
});
