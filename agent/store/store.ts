/**
 * The current cluster objects, in one place: the only copy the agent holds. Sources (Kubernetes
 * informers, lab manifests) call upsert/delete; each call returns the typed change, which the
 * PolicyEngine applies (it keeps indexes and reads objects from here).
 *
 * Change detection: an object whose resourceVersion is the one held is unchanged (the API
 * server's promise); otherwise its normalised fields are compared, so an update that touched
 * nothing weir reads (a status condition, managedFields) is not a change either. Lab objects
 * have no resourceVersion and are compared by their fields.
 */
import { isDeepStrictEqual } from 'node:util';
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
    // Unchanged: the object held stays (the compiler holds it too; a newer copy would be a second).
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

  /**
   * Makes the store reflect a change that came from another store (a change of this store is
   * already reflected: nothing happens).
   */
  record(c: StoreChange): void {
    const m = this.objects[c.kind] as Map<string, KubeObject>;
    if (c.new) {
      if (m.get(c.key) !== c.new) m.set(c.key, c.new);
    } else m.delete(c.key);
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

/** True when `b` changes nothing weir reads in `a`: the same resourceVersion, or the same normalised fields. */
export function sameObject(a: KubeObject, b: KubeObject): boolean {
  if (a.resourceVersion !== undefined && a.resourceVersion === b.resourceVersion) return true;
  if (a.kind !== b.kind) return false;
  const { resourceVersion: _a, ...fa } = a;
  const { resourceVersion: _b, ...fb } = b;
  return isDeepStrictEqual(fa, fb);
}
