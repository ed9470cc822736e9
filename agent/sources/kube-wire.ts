/**
 * client-node's typed list calls return model objects, not the JSON the API server sent:
 * timestamps become Date objects and a few fields are renamed to avoid reserved words
 * (NetworkPolicyIngressRule.from is `_from`). Watch events, in contrast, arrive as raw JSON.
 * `toWire` turns a model object back into wire JSON so everything downstream sees one shape.
 */

/** A Kubernetes object as the API server sends it. */
export interface WireObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** Model property names that differ from the wire names (see client-node's gen/models). */
const RENAMED: Readonly<Record<string, string>> = { _from: 'from', _continue: 'continue' };

export function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (Array.isArray(value)) return value.map(toWire);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined) continue;
    out[RENAMED[k] ?? k] = toWire(v);
  }
  return out;
}

/** "namespace/name" or "name" for cluster-scoped objects. */
export function objectRef(o: WireObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name ?? ''}` : (o.metadata?.name ?? '');
}
