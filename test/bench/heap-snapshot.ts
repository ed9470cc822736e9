/**
 * Reads a V8 heap snapshot (what `node --heapsnapshot-signal` writes): a snapshot holds only the
 * objects reachable from the roots, so the sum of their own sizes is the retained heap. Also
 * groups it by what the objects are (constructor name for objects, type for strings, arrays,
 * code…) and by who holds them (the first object up the retainer chain that is not a Map, Set,
 * Array or V8 internal, and the field it holds them by), so a bench can say where the memory goes.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface HeapGroup {
  what: string;
  bytes: number;
  count: number;
}

export interface HeapSummary {
  /** Bytes of every object reachable from the roots. */
  retained: number;
  /** The largest groups by kind of object, largest first. */
  top: HeapGroup[];
  /** The largest groups by holder ("Class.field"), largest first. */
  holders: HeapGroup[];
}

/** Containers and V8 internals: the holder is looked for above them. */
const PASS_THROUGH = new Set(['Map', 'Set', 'Array', 'Object', 'system / Context', '(object properties)', '']);

export function summarizeHeapSnapshot(path: string, topN = 10): HeapSummary {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const meta = s.snapshot.meta;
  const width = meta.node_fields.length;
  const fType = meta.node_fields.indexOf('type');
  const fName = meta.node_fields.indexOf('name');
  const fSize = meta.node_fields.indexOf('self_size');
  const fEdges = meta.node_fields.indexOf('edge_count');
  const types = meta.node_types[0];
  const eWidth = meta.edge_fields.length;
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const eTo = meta.edge_fields.indexOf('to_node');
  const edgeTypes = meta.edge_types[0];
  const count = s.nodes.length / width;
  // The first strong retainer of each node, and the name of the edge it holds it by.
  const parent = new Int32Array(count).fill(-1);
  const parentEdge = new Int32Array(count).fill(-1);
  for (let n = 0, e = 0; n < count; n++) {
    const edges = s.nodes[n * width + fEdges]!;
    for (let k = 0; k < edges; k++, e += eWidth) {
      const t = edgeTypes[s.edges[e + eType]!];
      if (t === 'weak' || t === 'shortcut') continue;
      const to = s.edges[e + eTo]! / width;
      if (parent[to] === -1 && to !== n) {
        parent[to] = n;
        parentEdge[to] = t === 'element' || t === 'hidden' ? -2 : s.edges[e + eName]!;
      }
    }
  }
  const typeOf = (n: number): string => types[s.nodes[n * width + fType]!]!;
  const nameOf = (n: number): string => s.strings[s.nodes[n * width + fName]!]!;
  const holderOf = (n: number): string => {
    let cur = n;
    for (let step = 0; step < 8; step++) {
      const p = parent[cur]!;
      if (p < 0) return '(root)';
      const edge = parentEdge[cur]!;
      if (typeOf(p) === 'object' && !PASS_THROUGH.has(nameOf(p)) && edge >= 0) return `${nameOf(p)}.${s.strings[edge]}`;
      cur = p;
    }
    return '(deep)';
  };
  const groups = new Map<string, HeapGroup>();
  const holders = new Map<string, HeapGroup>();
  const add = (m: Map<string, HeapGroup>, what: string, size: number): void => {
    const g = m.get(what);
    if (g) {
      g.bytes += size;
      g.count++;
    } else m.set(what, { what, bytes: size, count: 1 });
  };
  let retained = 0;
  for (let n = 0; n < count; n++) {
    const size = s.nodes[n * width + fSize]!;
    retained += size;
    const type = typeOf(n);
    add(groups, type === 'object' ? `object ${nameOf(n)}` : type, size);
    if (type !== 'code' && type !== 'hidden') add(holders, holderOf(n), size);
  }
  const largest = (m: Map<string, HeapGroup>): HeapGroup[] =>
    [...m.values()].sort((a, b) => b.bytes - a.bytes).slice(0, topN);
  return { retained, top: largest(groups), holders: largest(holders) };
}
