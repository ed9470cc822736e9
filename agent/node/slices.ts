/**
 * Cuts one batch of changes into slices of bounded compile work, so the node agent's event loop
 * turns between them and its health, status and metrics endpoints keep answering while a burst
 * (a relist, a flood of large policies) is compiled. A NetworkPolicy weighs one plus its peers
 * (an ipBlock is a selector and an ipcache prefix to compile); anything else weighs one. One
 * object is never split: the CIDR budget (agent/ipcache/budget.ts) bounds the largest policy.
 * Upserts come first, deletions in the last slice, so a burst that replaces a policy never
 * passes through a state without either.
 */
import type { KubeKind, KubeObject } from '../store/index.js';

/** Work units per slice: about a quarter of a second of compiling on a small node. */
export const SLICE_WEIGHT = 8192;

export interface Slice {
  upserts: KubeObject[];
  deletes: Array<{ kind: KubeKind; key: string }>;
}

export function weightOf(o: KubeObject): number {
  if (o.kind !== 'NetworkPolicy') return 1;
  let w = 1;
  for (const r of o.ingress) w += r.from.length + r.ports.length;
  for (const r of o.egress) w += r.to.length + r.ports.length;
  return w;
}

export function sliceChanges(
  upserts: KubeObject[],
  deletes: Array<{ kind: KubeKind; key: string }>,
  maxWeight = SLICE_WEIGHT,
): Slice[] {
  const out: Slice[] = [];
  let cur: Slice = { upserts: [], deletes: [] };
  let weight = 0;
  for (const o of upserts) {
    const w = weightOf(o);
    if (cur.upserts.length > 0 && weight + w > maxWeight) {
      out.push(cur);
      cur = { upserts: [], deletes: [] };
      weight = 0;
    }
    cur.upserts.push(o);
    weight += w;
  }
  cur.deletes = deletes;
  out.push(cur);
  return out;
}
