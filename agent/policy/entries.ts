/**
 * The allow entries of one endpoint as the compiler accumulates them: each entry counts, per
 * rule, how many (peer, identity, port) combinations produce it, so an identity leaving a
 * selector withdraws exactly its share. Plus the orderings used for deterministic output.
 */
import type { Direction, L4Protocol, PolicyEntry, RuleRef } from '../desired.js';

/**
 * One allow entry of an endpoint with what produced it: per rule, how many (peer, identity,
 * port) combinations yield it. Most entries come from one rule, kept inline (`ref`, `n`);
 * others spill into `more`. The entry exists while any count is positive; `published` is
 * the derivedFrom last handed out in a diff.
 */
export interface EntryAcc {
  direction: Direction;
  remoteIdentity: number;
  protocol: L4Protocol | 'ANY';
  port: number;
  endPort: number;
  ref: RuleRef | undefined;
  n: number;
  more: Map<RuleRef, number> | undefined;
  published: readonly RuleRef[] | undefined;
}
export type EntryMap = Map<string, EntryAcc>;

/** A port (range) a rule allows once its peers are known. */
export interface PortSpec {
  protocol: L4Protocol | 'ANY';
  port: number;
  endPort: number;
}

/** Adds `delta` contributions of `ref` to one entry; returns the entry's key. */
export function contribute(
  out: EntryMap,
  direction: Direction,
  remoteIdentity: number,
  p: PortSpec,
  ref: RuleRef,
  delta: number,
): string {
  // entryKey() of agent/desired.ts, inlined: this runs for every entry of every endpoint.
  const k = `${direction}|${remoteIdentity}|${p.protocol}|${p.port}|${p.endPort}`;
  const acc = out.get(k);
  if (!acc) {
    if (delta < 0) return k;
    out.set(k, {
      direction,
      remoteIdentity,
      protocol: p.protocol,
      port: p.port,
      endPort: p.endPort,
      ref,
      n: delta,
      more: undefined,
      published: undefined,
    });
    return k;
  }
  if (acc.ref === ref) {
    acc.n += delta;
    if (acc.n <= 0) {
      acc.ref = undefined;
      acc.n = 0;
      // Promote one spilled contribution so the inline slot stays the common case.
      const first = acc.more?.entries().next();
      if (first && !first.done) {
        [acc.ref, acc.n] = first.value;
        acc.more!.delete(first.value[0]);
      }
    }
    return k;
  }
  if (acc.ref === undefined && delta > 0 && !acc.more?.has(ref)) {
    acc.ref = ref;
    acc.n = delta;
    return k;
  }
  const m = (acc.more ??= new Map());
  const n = (m.get(ref) ?? 0) + delta;
  if (n > 0) m.set(ref, n);
  else m.delete(ref);
  return k;
}

/** Code-unit order: deterministic and much cheaper than localeCompare. */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareEntries(a: PolicyEntry, b: PolicyEntry): number {
  return (
    cmp(a.direction, b.direction) ||
    a.remoteIdentity - b.remoteIdentity ||
    cmp(a.protocol, b.protocol) ||
    a.port - b.port ||
    a.endPort - b.endPort
  );
}

export function compareRefs(a: RuleRef, b: RuleRef): number {
  return cmp(a.policy, b.policy) || cmp(a.direction, b.direction) || a.rule - b.rule;
}

/**
 * The entry as the diff and snapshot carry it. derivedFrom arrays are frozen and shared
 * between entries of the same rule (hundreds of thousands of entries, a few thousand rules).
 */
export function materialize(acc: EntryAcc, refs: readonly RuleRef[]): PolicyEntry {
  return {
    direction: acc.direction,
    remoteIdentity: acc.remoteIdentity,
    protocol: acc.protocol,
    port: acc.port,
    endPort: acc.endPort,
    derivedFrom: refs as RuleRef[],
  };
}

export function sameRefs(a: readonly RuleRef[], b: readonly RuleRef[]): boolean {
  return a.length === b.length && a.every((r, i) => compareRefs(r, b[i]!) === 0);
}
