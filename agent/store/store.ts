/**
 * The current cluster objects, in one place. Sources (Kubernetes informers, lab
 * manifests) call upsert/delete; each call returns the typed change, which the
 * PolicyEngine applies.
 */
import { objectKey } from './types.js';
import type { EndpointSlice, KubeKind, KubeObject, Namespace, NetworkPolicy, Node, Pod, Service } from './types.js';

type ByKind = {
  Namespace: Namespace;
  Pod: Pod;
  NetworkPolicy: NetworkPolicy;
  Node: Node;
  Service: Service;
  EndpointSlice: EndpointSlice;
};

export type StoreChange = {
  [K in KubeKind]: { kind: K; type: 'added' | 'modified' | 'deleted'; key: string; old?: ByKind[K]; new?: ByKind[K] };
}[KubeKind];

export class Store {
  private readonly objects: { [K in KubeKind]: Map<string, ByKind[K]> } = {
    Namespace: new Map(),
    Pod: new Map(),
    NetworkPolicy: new Map(),
    Node: new Map(),
    Service: new Map(),
    EndpointSlice: new Map(),
  };

  /** Adds or replaces an object. Returns undefined when nothing changed. */
  upsert(o: KubeObject): StoreChange | undefined {
    const key = objectKey(o);
    const m = this.objects[o.kind] as Map<string, KubeObject>;
    const old = m.get(key);
    if (old !== undefined && sameObject(old, o)) return undefined;
    m.set(key, o);
    return { kind: o.kind, type: old ? 'modified' : 'added', key, old, new: o } as StoreChange;
  }

  /** Removes an object by kind and key ("namespace/name" or "name"). */
  delete(kind: KubeKind, key: string): StoreChange | undefined {
    const m = this.objects[kind] as Map<string, KubeObject>;
    const old = m.get(key);
    if (old === undefined) return undefined;
    m.delete(key);
    return { kind, type: 'deleted', key, old } as StoreChange;
  }

  get<K extends KubeKind>(kind: K, key: string): ByKind[K] | undefined {
    return this.objects[kind].get(key);
  }

  list<K extends KubeKind>(kind: K): ByKind[K][] {
    return [...this.objects[kind].values()];
  }

  size(kind: KubeKind): number {
    return this.objects[kind].size;
  }
}

function sameObject(a: KubeObject, b: KubeObject): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
