/**
 * A binary trie of IPv4/IPv6 prefixes (one per family) holding values per prefix. Finding the
 * prefixes that contain one (its ancestors) costs at most one step per prefix bit, and finding
 * the prefixes inside one (its descendants) costs the size of that subtree, so matching N
 * prefixes against N others is near-linear instead of the N×N pairwise containment tests.
 */
import type { Family, Prefix } from './cidr.js';

interface TrieNode<T> {
  zero?: TrieNode<T>;
  one?: TrieNode<T>;
  values?: Set<T>;
}

/** The prefix's address as 32-bit words, most significant first. */
function words(p: Prefix): number[] {
  if (p.family === 4) return [Number(p.addr)];
  const out: number[] = [];
  for (let sh = 96n; sh >= 0n; sh -= 32n) out.push(Number((p.addr >> sh) & 0xffffffffn));
  return out;
}

function bitAt(w: number[], i: number): 0 | 1 {
  return ((w[i >>> 5]! >>> (31 - (i & 31))) & 1) as 0 | 1;
}

export class PrefixTrie<T> {
  private readonly roots: Record<Family, TrieNode<T>> = { 4: {}, 6: {} };
  private count = 0;

  /** Number of (prefix, value) pairs held. */
  get size(): number {
    return this.count;
  }

  add(p: Prefix, value: T): void {
    const w = words(p);
    let n = this.roots[p.family];
    for (let i = 0; i < p.bits; i++) {
      const b = bitAt(w, i);
      const next = b === 0 ? n.zero : n.one;
      if (next) n = next;
      else {
        const fresh: TrieNode<T> = {};
        if (b === 0) n.zero = fresh;
        else n.one = fresh;
        n = fresh;
      }
    }
    if (!n.values) n.values = new Set();
    if (!n.values.has(value)) {
      n.values.add(value);
      this.count++;
    }
  }

  /** Removes one value of a prefix; returns whether it was there. Empty branches are pruned. */
  delete(p: Prefix, value: T): boolean {
    const w = words(p);
    const path: TrieNode<T>[] = [this.roots[p.family]];
    let n: TrieNode<T> | undefined = this.roots[p.family];
    for (let i = 0; i < p.bits && n; i++) {
      n = bitAt(w, i) === 0 ? n.zero : n.one;
      if (n) path.push(n);
    }
    if (!n || !n.values?.delete(value)) return false;
    this.count--;
    if (n.values.size === 0) delete n.values;
    for (let i = path.length - 1; i > 0; i--) {
      const node = path[i]!;
      if (node.values || node.zero || node.one) break;
      const parent = path[i - 1]!;
      if (bitAt(w, i - 1) === 0) delete parent.zero;
      else delete parent.one;
    }
    return true;
  }

  /** Values of every held prefix that contains `p` (p itself included), shortest first. */
  *containing(p: Prefix): Generator<T> {
    const w = words(p);
    let n: TrieNode<T> | undefined = this.roots[p.family];
    for (let i = 0; n; i++) {
      if (n.values) yield* n.values;
      if (i >= p.bits) break;
      n = bitAt(w, i) === 0 ? n.zero : n.one;
    }
  }

  /** True when some held prefix contains `p` (p itself included). */
  covers(p: Prefix): boolean {
    for (const _ of this.containing(p)) return true;
    return false;
  }

  /** Values of every held prefix inside `p` (p itself included). */
  *within(p: Prefix): Generator<T> {
    const w = words(p);
    let n: TrieNode<T> | undefined = this.roots[p.family];
    for (let i = 0; i < p.bits && n; i++) n = bitAt(w, i) === 0 ? n.zero : n.one;
    if (!n) return;
    const stack: TrieNode<T>[] = [n];
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x.values) yield* x.values;
      if (x.one) stack.push(x.one);
      if (x.zero) stack.push(x.zero);
    }
  }
}
