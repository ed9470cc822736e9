/**
 * Reads a V8 heap snapshot (what `node --heapsnapshot-signal` writes): a snapshot holds only the
 * objects reachable from the roots, so the sum of their own sizes is the retained heap. Also
 * groups it by what the objects are (constructor name for objects, type for strings, arrays,
 * code…), so a bench can say where the memory goes.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapSummary {
  /** Bytes of every object reachable from the roots. */
  retained: number;
  /** The largest groups, largest first: name and bytes. */
  top: Array<{ what: string; bytes: number; count: number }>;
}

export function summarizeHeapSnapshot(path: string, topN = 10): HeapSummary {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const fType = fields.indexOf('type');
  const fName = fields.indexOf('name');
  const fSize = fields.indexOf('self_size');
  const groups = new Map<string, { bytes: number; count: number }>();
  let retained = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const size = s.nodes[i + fSize]!;
    retained += size;
    const type = types[s.nodes[i + fType]!]!;
    const what = type === 'object' ? `object ${s.strings[s.nodes[i + fName]!]}` : type;
    const g = groups.get(what);
    if (g) {
      g.bytes += size;
      g.count++;
    } else groups.set(what, { bytes: size, count: 1 });
  }
  const top = [...groups]
    .map(([what, g]) => ({ what, ...g }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, topN);
  return { retained, top };
}
