/**
 * What `weir lab restart-agent` shows: the pinned datapath read before the agent is killed and
 * after the new one adopted it (agent/datapath/inspect.ts, read-only), compared for what a
 * restart must never do: lose established connections or widen access.
 */
import { inspectDatapath } from '../datapath/inspect.js';

/**
 * What each cluster identity number stands for (its label list), as one agent numbered them.
 * Numbers are hashed from the labels, but two label sets whose hashes collide get theirs in the
 * order they arrive, so a restarted agent may number them the other way round: entries are
 * compared by what their identity stands for, not by its number.
 */
export type IdentityNames = ReadonlyMap<number, readonly string[]>;

export interface DatapathSnapshot {
  /** Per host-side ifindex: isolation and allow entries (an identity the agent named, as its labels). */
  endpoints: Map<number, { ingressIsolated: boolean; egressIsolated: boolean; entries: Set<string> }>;
  /** Conntrack entries that are not revoked. */
  connections: Set<string>;
}

const MAX_CONNECTIONS = 1 << 20;

/** The pinned datapath, with the identities `identities` names written as their labels. */
export function snapshotDatapath(pinRoot: string, identities: IdentityNames = new Map()): DatapathSnapshot {
  const v = inspectDatapath(pinRoot, { connections: MAX_CONNECTIONS });
  return withIdentityNames(
    {
      endpoints: new Map(
        v.endpoints.map((e) => [
          e.ifindex,
          { ingressIsolated: e.ingressIsolated, egressIsolated: e.egressIsolated, entries: new Set(e.entries) },
        ]),
      ),
      connections: new Set(
        v.connections
          .filter((c) => !c.state.includes('revoked'))
          .map((c) => `${c.direction} ${c.ifindex} ${c.protocol} ${c.src} -> ${c.dst}`),
      ),
    },
    identities,
  );
}

/** Writes "identity=N" of every entry as "identity={labels}" where `identities` names N. */
export function withIdentityNames(s: DatapathSnapshot, identities: IdentityNames): DatapathSnapshot {
  const named = (entry: string): string =>
    entry.replace(/\bidentity=(\d+)/, (whole, n: string) => {
      const labels = identities.get(Number(n));
      return labels && labels.length > 0 ? `identity={${labels.join(',')}}` : whole;
    });
  return {
    endpoints: new Map(
      [...s.endpoints].map(([ifindex, e]) => [ifindex, { ...e, entries: new Set([...e.entries].map(named)) }]),
    ),
    connections: s.connections,
  };
}

export interface RestartComparison {
  connectionsBefore: number;
  connectionsKept: number;
  entriesBefore: number;
  entriesAfter: number;
  /** Every way the adopted datapath allows more than before; empty when nothing was widened. */
  widened: string[];
}

export function compareSnapshots(before: DatapathSnapshot, after: DatapathSnapshot): RestartComparison {
  const widened: string[] = [];
  let entriesBefore = 0;
  let entriesAfter = 0;
  for (const e of before.endpoints.values()) entriesBefore += e.entries.size;
  for (const [ifindex, a] of after.endpoints) {
    entriesAfter += a.entries.size;
    const b = before.endpoints.get(ifindex);
    if (!b) continue; // an interface the previous agent had not enforced yet gains isolation, never loses it
    if (b.ingressIsolated && !a.ingressIsolated) widened.push(`ifindex ${ifindex}: ingress no longer isolated`);
    if (b.egressIsolated && !a.egressIsolated) widened.push(`ifindex ${ifindex}: egress no longer isolated`);
    for (const entry of a.entries) if (!b.entries.has(entry)) widened.push(`ifindex ${ifindex}: new entry ${entry}`);
  }
  let kept = 0;
  for (const c of before.connections) if (after.connections.has(c)) kept++;
  return {
    connectionsBefore: before.connections.size,
    connectionsKept: kept,
    entriesBefore,
    entriesAfter,
    widened,
  };
}
