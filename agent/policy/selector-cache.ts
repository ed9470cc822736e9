/**
 * The selector cache: every distinct peer of every policy, with the set of live identities
 * it matches (pod identities for pod peers, CIDR identities and world for ipBlock peers), kept
 * current as identities come and go. Changes are recorded as net additions and removals
 * per selector since the last takeDeltas(), so the compiler can update only what they touch.
 */
import { worldIdentity } from '../desired.js';
import type { Identity } from '../identity/allocator.js';
import type { Prefix } from '../ipcache/cidr.js';
import { PrefixTrie } from '../ipcache/prefix-trie.js';
import type { Labels } from '../store/types.js';
import type { CompiledPeer, PodPeer } from './compiled.js';
import { setIndex } from './multimap.js';
import { selectorMatches } from './selector.js';

export interface SelectorEntry {
  peer: CompiledPeer;
  ids: Set<number>;
  /** Keys of the policies using it. */
  users: Set<string>;
}

export interface SelectorDelta {
  added: Set<number>;
  removed: Set<number>;
}

export class SelectorCache {
  private readonly byKey = new Map<string, SelectorEntry>();
  /** Pod peers without namespaceSelector: they only see identities of one namespace. */
  private readonly nsScoped = new Map<string, Set<SelectorEntry>>();
  /** Pod peers with a namespaceSelector. */
  private readonly cluster = new Set<SelectorEntry>();
  /** ipBlock peers by their cidr, so a prefix finds the selectors containing it in O(bits). */
  private readonly cidr = new PrefixTrie<SelectorEntry>();
  /** The except-lists of ipBlock peers that have one. */
  private readonly excepts = new Map<SelectorEntry, PrefixTrie<true>>();
  private clusterVersion = 0;
  /** Namespace labels (one object per namespace version) -> the cluster selectors matching them. */
  private readonly byNsLabels = new WeakMap<Labels, { version: number; list: SelectorEntry[] }>();
  private readonly liveByNamespace = new Map<string, Set<Identity>>();
  private readonly liveCidrs = new Map<number, Prefix>();
  /** The same live CIDR identities by prefix, so a new selector finds those inside it. */
  private readonly liveCidrTrie = new PrefixTrie<number>();
  private deltas = new Map<SelectorEntry, SelectorDelta>();

  get(key: string): SelectorEntry | undefined {
    return this.byKey.get(key);
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The net changes since the last call, and a fresh record. */
  takeDeltas(): Map<SelectorEntry, SelectorDelta> {
    const d = this.deltas;
    this.deltas = new Map();
    return d;
  }

  /** Selectors that changed since the last takeDeltas(). */
  changed(): IterableIterator<SelectorEntry> {
    return this.deltas.keys();
  }

  private clusterFor(nsLabels: Labels): SelectorEntry[] {
    const cached = this.byNsLabels.get(nsLabels);
    if (cached && cached.version === this.clusterVersion) return cached.list;
    const list = [...this.cluster].filter((s) => selectorMatches((s.peer as PodPeer).namespaceSelector!, nsLabels));
    this.byNsLabels.set(nsLabels, { version: this.clusterVersion, list });
    return list;
  }

  private podPeerMatches(peer: PodPeer, id: Identity): boolean {
    if (peer.namespace !== undefined && peer.namespace !== id.namespace) return false;
    if (peer.namespaceSelector && !selectorMatches(peer.namespaceSelector, id.nsLabels)) return false;
    return selectorMatches(peer.podSelector, id.podLabels);
  }

  /** True when one of the selector's except prefixes contains `p` (the cidr is checked by the caller). */
  private excepted(s: SelectorEntry, p: Prefix): boolean {
    return this.excepts.get(s)?.covers(p) === true;
  }

  /** Records a net change of a selector's identities since the last takeDeltas(). */
  private delta(s: SelectorEntry, id: number, added: boolean): void {
    let d = this.deltas.get(s);
    if (!d) this.deltas.set(s, (d = { added: new Set(), removed: new Set() }));
    if (added) {
      if (!d.removed.delete(id)) d.added.add(id);
    } else if (!d.added.delete(id)) d.removed.add(id);
  }

  /** A pod identity came into use: add it to every selector that matches it. */
  identityLive(id: Identity): void {
    let set = this.liveByNamespace.get(id.namespace);
    if (!set) this.liveByNamespace.set(id.namespace, (set = new Set()));
    set.add(id);
    for (const s of this.nsScoped.get(id.namespace) ?? []) {
      if (selectorMatches((s.peer as PodPeer).podSelector, id.podLabels)) {
        s.ids.add(id.id);
        this.delta(s, id.id, true);
      }
    }
    for (const s of this.clusterFor(id.nsLabels)) {
      if (selectorMatches((s.peer as PodPeer).podSelector, id.podLabels)) {
        s.ids.add(id.id);
        this.delta(s, id.id, true);
      }
    }
  }

  /** A pod identity is no longer used by any pod. */
  identityDead(id: Identity): void {
    this.liveByNamespace.get(id.namespace)?.delete(id);
    if (this.liveByNamespace.get(id.namespace)?.size === 0) this.liveByNamespace.delete(id.namespace);
    const drop = (s: SelectorEntry): void => {
      if (s.ids.delete(id.id)) this.delta(s, id.id, false);
    };
    for (const s of this.nsScoped.get(id.namespace) ?? []) drop(s);
    for (const s of this.clusterFor(id.nsLabels)) drop(s);
  }

  /** A prefix named by a policy got its CIDR identity. */
  cidrLive(id: number, p: Prefix): void {
    this.liveCidrs.set(id, p);
    this.liveCidrTrie.add(p, id);
    for (const s of this.cidr.containing(p)) {
      if (!this.excepted(s, p)) {
        s.ids.add(id);
        this.delta(s, id, true);
      }
    }
  }

  cidrDead(id: number): void {
    const p = this.liveCidrs.get(id);
    if (!p) return;
    this.liveCidrs.delete(id);
    this.liveCidrTrie.delete(p, id);
    for (const s of this.cidr.containing(p)) if (s.ids.delete(id)) this.delta(s, id, false);
  }

  /** Takes a reference on the selector of a peer, creating it with its current matches. */
  acquire(peer: CompiledPeer, user: string): SelectorEntry {
    let s = this.byKey.get(peer.key);
    if (s) {
      s.users.add(user);
      return s;
    }
    s = { peer, ids: new Set(), users: new Set([user]) };
    this.byKey.set(peer.key, s);
    if (peer.kind === 'cidr') {
      if (peer.cidr.bits === 0) s.ids.add(worldIdentity(peer.cidr.family));
      if (peer.except.length > 0) {
        const ex = new PrefixTrie<true>();
        for (const e of peer.except) ex.add(e, true);
        this.excepts.set(s, ex);
      }
      for (const id of this.liveCidrTrie.within(peer.cidr))
        if (!this.excepted(s, this.liveCidrs.get(id)!)) s.ids.add(id);
      this.cidr.add(peer.cidr, s);
    } else if (peer.namespace !== undefined) {
      for (const id of this.liveByNamespace.get(peer.namespace) ?? [])
        if (selectorMatches(peer.podSelector, id.podLabels)) s.ids.add(id.id);
      setIndex(this.nsScoped, peer.namespace, s, true);
    } else {
      for (const set of this.liveByNamespace.values())
        for (const id of set) if (this.podPeerMatches(peer, id)) s.ids.add(id.id);
      this.cluster.add(s);
      this.clusterVersion++;
    }
    return s;
  }

  release(key: string, user: string): void {
    const s = this.byKey.get(key);
    if (!s) return;
    s.users.delete(user);
    if (s.users.size > 0) return;
    this.byKey.delete(key);
    const peer = s.peer;
    if (peer.kind === 'cidr') {
      this.cidr.delete(peer.cidr, s);
      this.excepts.delete(s);
    } else if (peer.namespace !== undefined) setIndex(this.nsScoped, peer.namespace, s, false);
    else {
      this.cluster.delete(s);
      this.clusterVersion++;
    }
  }
}
