/**
 * The lab as a source of cluster objects. Namespaces and NetworkPolicies pass through to the
 * agent; a Pod first becomes a real network namespace (agent/lab/runtime), and then reaches the
 * agent with the addresses, node and phase the lab gave it, as a kubelet and the API server
 * would report them. A Service gets its ClusterIPs (and node ports) from the lab's Service ranges
 * (agent/lab/services.ts), and the lab plays the EndpointSlice controller: every change of
 * Services or Pods carries, in the same update, the EndpointSlices derived from them
 * (agent/services/endpointslices.ts). Deleting a Namespace deletes its Pods, Services,
 * EndpointSlices and NetworkPolicies, as Kubernetes does.
 */
import type { Agent, ObjectRef, RealizeResult } from '../daemon.js';
import {
  objectKey,
  sameObject,
  type EndpointSlice,
  type KubeObject,
  type Namespace,
  type NetworkPolicy,
  type Pod,
  type Service,
} from '../store/index.js';
import { type LabPod, type LabPodSpec, type LabRuntime } from '../lab/runtime.js';
import { LabServiceAllocator } from '../lab/services.js';
import { deriveEndpointSlices, LAB_SLICE_MANAGER } from '../services/endpointslices.js';

const MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
const ALL_KINDS = ['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy'] as const;

/** Pods set up at once; more only queue up the kernel's rtnl lock. */
const POD_SETUP_CONCURRENCY = 4;

export interface SourceReport extends RealizeResult {
  created: string[];
  configured: string[];
  unchanged: string[];
  deleted: string[];
  /** Warnings and errors the compiler has for the policies this call touched. */
  warnings: string[];
  /** Objects refused as the API server would refuse them (a namespace that does not exist), in words. */
  refused: string[];
}

/**
 * Problems the compiler reports for these policies ("namespace/name"), formatted for the user:
 * errors (a rule or the whole policy refused, e.g. over the CIDR budget) and warnings.
 */
export type PolicyProblems = (policyKeys: string[]) => { errors: string[]; warnings: string[] };

export type Progress = (line: string) => void;

const kindOrder: Record<KubeObject['kind'], number> = {
  Namespace: 0,
  Node: 1,
  Pod: 2,
  Service: 3,
  EndpointSlice: 4,
  NetworkPolicy: 5,
};

const deleteOrder: Record<KubeObject['kind'], number> = {
  NetworkPolicy: 0,
  EndpointSlice: 1,
  Service: 2,
  Pod: 3,
  Node: 4,
  Namespace: 5,
};

function describe(o: KubeObject): string {
  return `${o.kind.toLowerCase()}/${objectKey(o)}`;
}

async function inBatches<T>(items: T[], size: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(size, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

export class LabSource {
  private readonly allocator: LabServiceAllocator;

  constructor(
    readonly runtime: LabRuntime,
    readonly agent: Agent,
    private readonly problems: PolicyProblems = () => ({ errors: [], warnings: [] }),
  ) {
    this.allocator = new LabServiceAllocator(runtime.config);
  }

  /**
   * The EndpointSlices the lab's controller keeps, once these changes are made: upserts of the
   * slices that differ from those in the store, deletions of those no Service derives any more.
   * Slices written by hand (for a Service without selector) are left alone.
   */
  private sliceChanges(
    upserts: KubeObject[],
    deletes: ObjectRef[],
  ): { upserts: EndpointSlice[]; deletes: ObjectRef[] } {
    const store = this.agent.store;
    const gone = new Set(deletes.map((d) => `${d.kind}:${d.key}`));
    const world = <K extends 'Pod' | 'Service'>(kind: K): Map<string, K extends 'Pod' ? Pod : Service> => {
      const m = new Map<string, K extends 'Pod' ? Pod : Service>();
      for (const o of store.list(kind)) if (!gone.has(`${kind}:${objectKey(o)}`)) m.set(objectKey(o), o as never);
      for (const o of upserts) if (o.kind === kind) m.set(objectKey(o), o as never);
      return m;
    };
    const pods = [...world('Pod').values()];
    const wanted = new Map<string, EndpointSlice>();
    for (const svc of world('Service').values())
      for (const sl of deriveEndpointSlices(svc, pods)) wanted.set(objectKey(sl), sl);
    const out = { upserts: [] as EndpointSlice[], deletes: [] as ObjectRef[] };
    for (const [key, sl] of wanted) {
      const before = store.get('EndpointSlice', key);
      if (!before || JSON.stringify(before) !== JSON.stringify(sl)) out.upserts.push(sl);
    }
    for (const sl of store.list('EndpointSlice')) {
      const key = objectKey(sl);
      if (sl.labels[MANAGED_BY] === LAB_SLICE_MANAGER && !wanted.has(key) && !gone.has(`EndpointSlice:${key}`))
        out.deletes.push({ kind: 'EndpointSlice', key });
    }
    return out;
  }

  /** Services with their ClusterIPs and node ports; those the API server would refuse go to `refused`. */
  private allocate(objects: KubeObject[], refused: string[]): KubeObject[] {
    const store = this.agent.store;
    const services = new Map(store.list('Service').map((s) => [objectKey(s), s]));
    return objects.flatMap((o): KubeObject[] => {
      if (o.kind !== 'Service') return [o];
      const key = objectKey(o);
      const r = this.allocator.allocate(o, services.values(), store.get('Service', key));
      if (!r.ok) {
        refused.push(`service/${key}: Service "${o.name}" is invalid: ${r.error}`);
        return [];
      }
      services.set(key, r.service);
      return [r.service];
    });
  }

  private podSpec(p: Pod): LabPodSpec {
    return {
      namespace: p.namespace,
      name: p.name,
      labels: { ...p.labels },
      ports: p.ports.map((c) => ({ port: c.containerPort, protocol: c.protocol, ...(c.name ? { name: c.name } : {}) })),
    };
  }

  /** The Pod as the API server would show it once the lab has started it. */
  private scheduled(p: Pod, lp: LabPod): Pod {
    return {
      ...p,
      ips: [lp.ip4, lp.ip6],
      nodeName: this.runtime.config.nodeName,
      phase: 'Running',
      hostNetwork: false,
    };
  }

  /** Creates or updates objects (`kubectl apply`). Resolves when the datapath enforces them. */
  async apply(objects: KubeObject[], progress: Progress = () => undefined): Promise<SourceReport> {
    const sorted = [...objects].sort((a, b) => kindOrder[a.kind] - kindOrder[b.kind]);
    const report: SourceReport = {
      revision: 0,
      changes: 0,
      compileMs: 0,
      realizedMs: 0,
      created: [],
      configured: [],
      unchanged: [],
      deleted: [],
      warnings: [],
      refused: [],
    };
    const store = this.agent.store;
    // Namespaced objects need their Namespace (in the store or in this call), as the API server
    // answers `namespaces "x" not found`; those are refused, the others applied.
    const namespaced = sorted.filter((o) => {
      if (o.kind === 'Namespace' || o.kind === 'Node') return true;
      if (store.get('Namespace', o.namespace) || sorted.some((n) => n.kind === 'Namespace' && n.name === o.namespace))
        return true;
      report.refused.push(
        `${describe(o)}: namespaces "${o.namespace}" not found; add a Namespace object for it to the file or apply one first`,
      );
      return false;
    });
    const accepted = this.allocate(namespaced, report.refused);
    const pods = accepted.filter((o): o is Pod => o.kind === 'Pod');
    const ready = new Map<string, Pod>();
    let done = 0;
    const t0 = performance.now();
    await inBatches(pods, POD_SETUP_CONCURRENCY, async (p) => {
      const key = objectKey(p);
      const existing = this.runtime.get(key);
      const lp = existing ? await this.runtime.updatePod(this.podSpec(p)) : await this.runtime.addPod(this.podSpec(p));
      ready.set(key, this.scheduled(p, lp));
      done++;
      if (!existing) progress(`[${done}/${pods.length}] pod ${key} ${lp.ip4} ${lp.ip6} on ${lp.hostVeth}`);
    });
    const upserts = accepted.map((o) => (o.kind === 'Pod' ? (ready.get(objectKey(o)) as Pod) : o));
    this.recordIntent(upserts, []);
    for (const o of upserts) {
      const before = store.get(o.kind, objectKey(o));
      if (!before) report.created.push(describe(o));
      else if (sameObject(before, o)) report.unchanged.push(describe(o));
      else report.configured.push(describe(o));
    }
    const slices = this.sliceChanges(upserts, []);
    const r = await this.agent.update([...upserts, ...slices.upserts], slices.deletes);
    this.recordIntent([], []);
    const { errors, warnings } = this.problems(upserts.filter((o) => o.kind === 'NetworkPolicy').map(objectKey));
    return {
      ...report,
      ...r,
      realizedMs: round(performance.now() - t0),
      warnings,
      refused: [...report.refused, ...errors],
    };
  }

  /** Deletes objects (`kubectl delete -f`), with a Namespace's Pods, Services, EndpointSlices and NetworkPolicies. */
  async delete(objects: KubeObject[], progress: Progress = () => undefined): Promise<SourceReport> {
    const store = this.agent.store;
    const refs: ObjectRef[] = [];
    const seen = new Set<string>();
    const add = (o: Namespace | Pod | NetworkPolicy | Service | EndpointSlice | KubeObject): void => {
      const id = `${o.kind}:${objectKey(o)}`;
      if (seen.has(id) || !store.get(o.kind, objectKey(o))) return;
      seen.add(id);
      refs.push({ kind: o.kind, key: objectKey(o) });
    };
    for (const o of objects) {
      if (o.kind === 'Namespace') {
        for (const p of store.list('NetworkPolicy')) if (p.namespace === o.name) add(p);
        for (const p of store.list('Pod')) if (p.namespace === o.name) add(p);
        for (const p of store.list('Service')) if (p.namespace === o.name) add(p);
        for (const p of store.list('EndpointSlice')) if (p.namespace === o.name) add(p);
      }
      add(o);
    }
    // Policies go first and namespaces last, so no pod is ever less isolated than before.
    refs.sort((a, b) => deleteOrder[a.kind] - deleteOrder[b.kind]);
    const t0 = performance.now();
    const slices = this.sliceChanges([], refs);
    this.recordIntent(slices.upserts, [...refs, ...slices.deletes]);
    const r = await this.agent.update(slices.upserts, [...refs, ...slices.deletes]);
    this.recordIntent([], []);
    const podKeys = refs.filter((x) => x.kind === 'Pod').map((x) => x.key);
    await inBatches(podKeys, POD_SETUP_CONCURRENCY, async (key) => {
      await this.runtime.removePod(key);
      progress(`pod ${key} removed`);
    });
    const notFound = objects.filter((o) => !seen.has(`${o.kind}:${objectKey(o)}`)).map(describe);
    return {
      ...r,
      realizedMs: round(performance.now() - t0),
      created: [],
      configured: [],
      unchanged: notFound,
      deleted: refs.map((x) => `${x.kind.toLowerCase()}/${x.key}`),
      warnings: [],
      refused: [],
    };
  }

  /**
   * Writes to the lab's state the objects the store holds with these changes made: before a
   * change reaches the datapath (so an agent restarted meanwhile enforces what was asked, never
   * less) and after it (the store as it is).
   */
  private recordIntent(upserts: KubeObject[], deletes: ObjectRef[]): void {
    const store = this.agent.store;
    const all = new Map<string, KubeObject>();
    for (const kind of ALL_KINDS) for (const o of store.list(kind)) all.set(`${kind}:${objectKey(o)}`, o);
    for (const o of upserts) all.set(`${o.kind}:${objectKey(o)}`, o);
    for (const d of deletes) all.delete(`${d.kind}:${d.key}`);
    this.runtime.objects = [...all.values()];
    this.runtime.save();
  }

  /** The lab's pods with their addresses and interfaces. */
  pods(): LabPod[] {
    return this.runtime.list();
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
