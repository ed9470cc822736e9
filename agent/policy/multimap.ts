/** Map of sets, as the compiler's indexes use them. */
export function setIndex<K, V>(m: Map<K, Set<V>>, k: K, v: V, present: boolean): void {
  let s = m.get(k);
  if (present) {
    if (!s) m.set(k, (s = new Set()));
    s.add(v);
  } else if (s) {
    s.delete(v);
    if (s.size === 0) m.delete(k);
  }
}
