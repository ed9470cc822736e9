/**
 * The pod-pair truth table, in the upstream NetworkPolicy e2e layout ("." connected,
 * "X" blocked, "?" unknown; rows are sources, columns destinations) and as JSON
 * `{"port":80,"protocol":"TCP","results":[{"from":"x/a","to":"y/b","connected":true}]}`.
 * `weir policy explain --matrix` prints it offline; `weir lab probe` can print measured
 * results with the same functions so the two can be diffed.
 */
import type { L4Protocol } from '../desired.js';
import type { PolicyReader } from './reader.js';
import { explain } from './explain.js';

export interface MatrixResult {
  from: string;
  to: string;
  connected: boolean;
}

export interface ConnectivityMatrix {
  port: number;
  protocol: L4Protocol;
  results: MatrixResult[];
}

/** The expected connectivity of every ordered pair of enforced pods (self pairs included). */
export function policyMatrix(engine: PolicyReader, port: number, protocol: L4Protocol): ConnectivityMatrix {
  const pods = engine
    .listPods()
    .filter((p) => !p.hostNetwork && p.phase !== 'Succeeded' && p.phase !== 'Failed')
    .map((p) => `${p.namespace}/${p.name}`)
    .sort();
  const results: MatrixResult[] = [];
  for (const from of pods)
    for (const to of pods) results.push({ from, to, connected: explain(engine, { from, to, port, protocol }).allowed });
  return { port, protocol, results };
}

/**
 * Tab-separated truth table as the upstream e2e suite prints it: destinations across, sources
 * down, the first column padded to the longest source name (the layout of `weir lab probe`).
 */
export function formatTruthTable(m: Pick<ConnectivityMatrix, 'results'>): string {
  const froms = [...new Set(m.results.map((r) => r.from))].sort();
  const tos = [...new Set(m.results.map((r) => r.to))].sort();
  const value = new Map(m.results.map((r) => [`${r.from}\u0000${r.to}`, r.connected]));
  const width = Math.max(1, ...froms.map((f) => f.length));
  const lines = [['-'.padEnd(width), ...tos].join('\t')];
  for (const from of froms) {
    const marks = tos.map((to) => {
      const v = value.get(`${from}\u0000${to}`);
      return v === undefined ? '?' : v ? '.' : 'X';
    });
    lines.push([from.padEnd(width), ...marks].join('\t'));
  }
  return lines.join('\n');
}
