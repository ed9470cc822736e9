/**
 * Endpoint compilation, one job of the policy compiler: per local endpoint, its isolation and
 * allow entries from the policies selecting it, and the diff of what changed since the last
 * publication. Endpoints whose own pod or selecting policies changed are recomputed whole; for
 * all others, a selector's net identity changes add or withdraw exactly the entries they produce
 * (entries.ts). Named ports are counted here (egress named ports resolve per peer identity).
 *
 * It keeps per pod an index record (identity, locality, the Pod version it was built from), and
 * recomputes from the Store's current Pod.
 */
import { ReservedIdentity } from '../desired.js';
import type { DesiredDiff, EndpointState, PolicyEntry, RuleRef } from '../desired.js';
import type { Identity } from '../identity/allocator.js';
import type { Store } from '../store/store.js';
import type { Pod } from '../store/types.js';
import { cmp, compareEntries, compareRefs, contribute, materialize, sameRefs } from './entries.js';
import type { EntryAcc, EntryMap } from './entries.js';
import { setIndex } from './multimap.js';
import { namedKey, rulePorts, type PolicyRecord, type PolicyTable } from './policies.js';
import type { SelectorCache, SelectorDelta, SelectorEntry } from './selector-cache.js';
import { selectorMatches } from './selector.js';

/**
 * What the compiler keeps of a pod: its identity and locality, and the version of the Pod it was
 * built from (the Store's object, not a copy), whose addresses and named ports are what was
 * claimed and counted.
 */
export interface PodRecord {
  /** Set for pods that are not hostNetwork and not finished. */
  identity?: Identity;
  local: boolean;
  pod: Pod;
}

interface EndpointRecord {
  header: Omit<EndpointState, 'entries'>;
  entries: EntryMap;
}

export function emptyDiff(): DesiredDiff {
  return {
    endpointsChanged: [],
    endpointsRemoved: [],
    entriesAdded: new Map(),
    entriesRemoved: new Map(),
    ipcacheUpserted: [],
    ipcacheRemoved: [],
  };
}

export class EndpointCompiler {
  readonly pods = new Map<string, PodRecord>();
  readonly podsByNamespace = new Map<string, Set<string>>();
  private readonly localByNamespace = new Map<string, Set<string>>();
  /** "name/PROTO" -> identity -> port -> number of pods. */
  private readonly namedPorts = new Map<string, Map<number, Map<number, number>>>();
  /** Published endpoint states (entries kept as maps for diffing). */
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** Endpoints to recompute whole (their pod or a policy selecting them changed). */
  private readonly dirtyEndpoints = new Set<string>();
  /** Policies whose selected endpoints must be recomputed whole. */
  private readonly dirtyPolicies = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly policies: PolicyTable,
    private readonly selectors: SelectorCache,
  ) {}

  // ---------------------------------------------------------------- inputs

  /** Replaces a pod's record (undefined: the pod is gone); its endpoint is recomputed if local. */
  setPod(key: string, rec: PodRecord | undefined): void {
    const ns = (rec ?? this.pods.get(key)!).pod.namespace;
    const old = this.pods.get(key);
    // Named ports: register the new before unregistering the old, so unchanged ones do not flap.
    if (rec?.identity) this.countNamedPorts(rec, +1);
    if (old?.identity) this.countNamedPorts(old, -1);
    if (rec) this.pods.set(key, rec);
    else this.pods.delete(key);
    setIndex(this.podsByNamespace, ns, key, rec !== undefined);
    setIndex(this.localByNamespace, ns, key, rec?.local === true);
    if (old?.local || rec?.local) this.dirtyEndpoints.add(key);
  }

  /** A policy was set or removed: the endpoints it selected and those it selects now are recomputed. */
  policyChanged(old: PolicyRecord | undefined, rec: PolicyRecord | undefined): void {
    if (rec) {
      for (const ek of this.localByNamespace.get(rec.compiled.namespace) ?? []) {
        const pr = this.pods.get(ek)!;
        if (selectorMatches(rec.compiled.podSelector, pr.identity!.podLabels)) rec.selects.add(ek);
      }
      for (const ek of rec.selects) this.dirtyEndpoints.add(ek);
    }
    for (const ek of old?.selects ?? []) this.dirtyEndpoints.add(ek);
  }

  private countNamedPorts(rec: PodRecord, delta: 1 | -1): void {
    const id = rec.identity!.id;
    for (const { name, protocol, containerPort: port } of rec.pod.ports) {
      if (!name) continue;
      const nk = namedKey(name, protocol);
      let byId = this.namedPorts.get(nk);
      if (!byId) this.namedPorts.set(nk, (byId = new Map()));
      let counts = byId.get(id);
      if (!counts) byId.set(id, (counts = new Map()));
      const n = (counts.get(port) ?? 0) + delta;
      if (n <= 0) {
        counts.delete(port);
        if (counts.size === 0) byId.delete(id);
        if (byId.size === 0) this.namedPorts.delete(nk);
      } else counts.set(port, n);
      if (n === 0 || (n === 1 && delta === 1))
        for (const pk of this.policies.namingEgressPort(nk)) this.dirtyPolicies.add(pk);
    }
  }

  /**
   * Drops the selectors' recorded deltas while no endpoint is published: they only patch
   * published endpoints' entries and recompute endpoints that are recomputed anyway (every local
   * endpoint a policy selects is dirty until it is first published), so before the first
   * publication they would only hold a second copy of every selector's identities.
   */
  forgetDeltasIfUnpublished(): void {
    if (this.endpoints.size === 0) this.selectors.takeDeltas();
  }

  // ------------------------------------------------------------- publishing

  /**
   * Recomputes what changed and returns the endpoints' part of the diff (the ipcache's part is
   * the caller's): dirty endpoints whole, the others by the selector cache's deltas.
   */
  publish(): DesiredDiff {
    // Policies with egress named ports resolve ports per peer identity: recompute them whole.
    for (const s of this.selectors.changed())
      for (const pk of s.users) if (this.policies.get(pk)?.namedEgress.length) this.dirtyPolicies.add(pk);
    for (const pk of this.dirtyPolicies)
      for (const ek of this.policies.get(pk)?.selects ?? []) this.dirtyEndpoints.add(ek);
    this.dirtyPolicies.clear();
    const diff = emptyDiff();
    const touched = new Map<string, string[]>();
    this.applySelectorDeltas(this.selectors.takeDeltas(), touched);
    for (const ek of [...this.dirtyEndpoints].sort()) this.recompute(ek, diff);
    for (const [ek, keys] of [...touched].sort((a, b) => cmp(a[0], b[0]))) {
      const rec = this.endpoints.get(ek);
      if (!rec || this.dirtyEndpoints.has(ek)) continue;
      const added: PolicyEntry[] = [];
      const removed: PolicyEntry[] = [];
      for (const k of keys) {
        const acc = rec.entries.get(k);
        if (!acc) continue;
        const refs = this.refsOf(acc);
        if (refs.length === 0) {
          if (acc.published) removed.push(materialize(acc, acc.published));
          rec.entries.delete(k);
        } else if (!acc.published || !sameRefs(acc.published, refs)) {
          acc.published = refs;
          added.push(materialize(acc, refs));
        }
      }
      if (added.length > 0) diff.entriesAdded.set(ek, added.sort(compareEntries));
      if (removed.length > 0) diff.entriesRemoved.set(ek, removed.sort(compareEntries));
    }
    this.dirtyEndpoints.clear();
    return diff;
  }

  /**
   * A selector gained or lost identities: add or withdraw exactly the entries those
   * identities produce in the rules using the selector, on endpoints not recomputed whole.
   * `touched` collects, per endpoint, the keys of entries changed (repeats allowed).
   */
  private applySelectorDeltas(deltas: Map<SelectorEntry, SelectorDelta>, touched: Map<string, string[]>): void {
    for (const [s, d] of deltas) {
      if (d.added.size === 0 && d.removed.size === 0) continue;
      for (const pk of s.users) {
        const pol = this.policies.get(pk);
        if (!pol || pol.namedEgress.length > 0) continue;
        const uses = pol.rulesBySelector.get(s.peer.key);
        if (!uses) continue;
        for (const ek of pol.selects) {
          if (this.dirtyEndpoints.has(ek)) continue;
          const rec = this.endpoints.get(ek);
          if (!rec) continue;
          let keys = touched.get(ek);
          if (!keys) touched.set(ek, (keys = []));
          for (const { rule: i, times } of uses) {
            const rule = pol.compiled.rules[i]!;
            const ref = pol.refs[i]!;
            const ports = pol.ports[i] ?? rulePorts(rule, this.store.get('Pod', ek)?.ports);
            for (const id of d.added)
              for (const p of ports) keys.push(contribute(rec.entries, rule.direction, id, p, ref, times));
            for (const id of d.removed)
              for (const p of ports) keys.push(contribute(rec.entries, rule.direction, id, p, ref, -times));
          }
        }
      }
    }
  }

  /** The rules an entry comes from, sorted; shared frozen arrays for the common single rule. */
  private refsOf(acc: EntryAcc): readonly RuleRef[] {
    if (!acc.more || acc.more.size === 0) return acc.ref ? this.policies.single(acc.ref) : [];
    const all = [...acc.more.keys()];
    if (acc.ref) all.push(acc.ref);
    return Object.freeze(all.sort(compareRefs));
  }

  private recompute(key: string, diff: DesiredDiff): void {
    const rec = this.pods.get(key);
    const pod = this.store.get('Pod', key);
    const old = this.endpoints.get(key);
    if (!rec || !rec.local || !pod) {
      for (const pr of this.policies.values()) pr.selects.delete(key);
      if (old) {
        this.endpoints.delete(key);
        diff.endpointsRemoved.push(key);
      }
      return;
    }
    const identity = rec.identity!;
    let ingressIsolated = false;
    let egressIsolated = false;
    const entries: EntryMap = new Map();
    for (const pk of this.policies.inNamespace(pod.namespace)) {
      const pol = this.policies.get(pk)!;
      if (!selectorMatches(pol.compiled.podSelector, identity.podLabels)) {
        pol.selects.delete(key);
        continue;
      }
      pol.selects.add(key);
      ingressIsolated ||= pol.compiled.isolatesIngress;
      egressIsolated ||= pol.compiled.isolatesEgress;
      this.addRuleEntries(pol, pod, entries);
    }
    const header: Omit<EndpointState, 'entries'> = {
      key,
      namespace: pod.namespace,
      name: pod.name,
      ips: [...pod.ips],
      identity: identity.id,
      ingressIsolated,
      egressIsolated,
    };
    const added: PolicyEntry[] = [];
    const removed: PolicyEntry[] = [];
    for (const [k, acc] of entries) {
      const refs = this.refsOf(acc);
      const before = old?.entries.get(k)?.published;
      acc.published = refs;
      if (!before || !sameRefs(before, refs)) added.push(materialize(acc, refs));
    }
    for (const [k, acc] of old?.entries ?? [])
      if (!entries.has(k) && acc.published) removed.push(materialize(acc, acc.published));
    this.endpoints.set(key, { header, entries });
    const o = old?.header;
    const headerChanged =
      !o ||
      o.identity !== header.identity ||
      o.ingressIsolated !== ingressIsolated ||
      o.egressIsolated !== egressIsolated ||
      o.ips.join(',') !== header.ips.join(',');
    if (headerChanged) diff.endpointsChanged.push(this.state(key)!);
    if (added.length > 0) diff.entriesAdded.set(key, added.sort(compareEntries));
    if (removed.length > 0) diff.entriesRemoved.set(key, removed.sort(compareEntries));
  }

  private addRuleEntries(pol: PolicyRecord, pod: Pod, out: EntryMap): void {
    const rules = pol.compiled.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (!rule.valid) continue;
      const ref = pol.refs[i]!;
      const ports = pol.ports[i] ?? rulePorts(rule, pod.ports);
      if (rule.peers === 'any') {
        for (const p of ports) contribute(out, rule.direction, ReservedIdentity.any, p, ref, 1);
      } else {
        for (const peer of rule.peers)
          for (const id of this.selectors.get(peer.key)!.ids)
            for (const p of ports) contribute(out, rule.direction, id, p, ref, 1);
      }
      if (rule.direction !== 'egress' || rule.ports === 'any') continue;
      // Egress named ports: against each destination identity's pods (one entry per identity and port).
      for (const port of rule.ports) {
        if (port.kind !== 'named') continue;
        const byId = this.namedPorts.get(namedKey(port.name, port.protocol));
        if (!byId) continue;
        const one = (id: number, p: number): void =>
          void contribute(out, 'egress', id, { protocol: port.protocol, port: p, endPort: p }, ref, 1);
        if (rule.peers === 'any') {
          for (const [id, ports] of byId) for (const p of ports.keys()) one(id, p);
        } else {
          const remotes = new Set<number>();
          for (const peer of rule.peers) for (const id of this.selectors.get(peer.key)!.ids) remotes.add(id);
          for (const id of remotes) for (const p of byId.get(id)?.keys() ?? []) one(id, p);
        }
      }
    }
  }

  // ---------------------------------------------------------------- outputs

  /** The published state of one endpoint, entries sorted. */
  state(key: string): EndpointState | undefined {
    const rec = this.endpoints.get(key);
    if (!rec) return undefined;
    const entries: PolicyEntry[] = [];
    for (const acc of rec.entries.values()) if (acc.published) entries.push(materialize(acc, acc.published));
    return { ...rec.header, ips: [...rec.header.ips], entries: entries.sort(compareEntries) };
  }

  /** Keys of the published endpoints, sorted. */
  keys(): string[] {
    return [...this.endpoints.keys()].sort();
  }

  get size(): number {
    return this.endpoints.size;
  }

  /** Allow entries over every endpoint. */
  entryCount(): number {
    let n = 0;
    for (const e of this.endpoints.values()) n += e.entries.size;
    return n;
  }
}
