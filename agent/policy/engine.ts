/**
 * The policy compiler: Namespaces, Pods, Nodes and NetworkPolicies in, desired datapath
 * state out (identities, ipcache, per-endpoint isolation and allow entries), kept up to
 * date incrementally. Pure: no I/O, the clock is injected.
 *
 * Incremental shape: peers are selectors cached with the set of live identities they
 * match (selector-cache.ts, as in Cilium). Endpoints whose own pod or selecting policies
 * changed are recomputed whole; for all others, a selector's net identity changes add or
 * withdraw exactly the entries they produce (entries.ts). Only entries that differ from
 * what was last published are reported in the DesiredDiff.
 */
import { ReservedIdentity } from '../desired.js';
import type {
  DesiredDiff,
  DesiredState,
  Direction,
  EndpointState,
  L4Protocol,
  PolicyEntry,
  RuleRef,
} from '../desired.js';
import { CidrIdentityAllocator, IdentityAllocator } from '../identity/allocator.js';
import type { Clock, Identity } from '../identity/allocator.js';
import {
  canonicalPrefix,
  formatPrefix,
  hostCIDR,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
} from '../ipcache/cidr.js';
import type { Prefix } from '../ipcache/cidr.js';
import { Ipcache } from '../ipcache/ipcache.js';
import type { StoreChange } from '../store/store.js';
import { objectKey } from '../store/types.js';
import type { KubeObject, Labels, Namespace, NetworkPolicy, Node, Pod } from '../store/types.js';
import { compilePolicy } from './compiled.js';
import type { CompiledPolicy, CompiledRule, PolicyProblem } from './compiled.js';
import { cmp, compareEntries, compareRefs, contribute, materialize, sameRefs } from './entries.js';
import type { EntryAcc, EntryMap, PortSpec } from './entries.js';
import { setIndex } from './multimap.js';
import { CidrBudget, type CidrBudgetOptions } from '../ipcache/budget.js';
import { SelectorCache } from './selector-cache.js';
import type { SelectorDelta, SelectorEntry } from './selector-cache.js';
import { selectorMatches } from './selector.js';

export interface PolicyEngineOptions {
  /**
   * The node whose pods are local endpoints (pods with IPs scheduled there). Leave unset
   * to treat every pod as a local endpoint, IPs or not: offline explain and one-machine labs.
   */
  nodeName?: string;
  /** Pod network prefixes in addition to the nodes' spec.podCIDRs. */
  clusterPodCIDRs?: string[];
  clock?: Clock;
  /** How long a released identity keeps its number (default 30 s). */
  identityGraceMs?: number;
  /** Budget of policy CIDR prefixes per namespace and in all (agent/ipcache/budget.ts). */
  cidrBudget?: CidrBudgetOptions;
}

interface PodRecord {
  pod: Pod;
  /** Set for pods that are not hostNetwork and not finished. */
  identity?: Identity;
  local: boolean;
  ipCIDRs: string[];
}

interface PolicyRecord {
  compiled: CompiledPolicy;
  selects: Set<string>;
  selectorKeys: string[];
  cidrIds: number[];
  namedEgress: string[];
  /** Per rule (parallel to compiled.rules): its RuleRef, and its ports when they do not depend on the endpoint. */
  refs: RuleRef[];
  ports: (PortSpec[] | undefined)[];
  /** Selector key -> the rules using it and how many of their peers it is. */
  rulesBySelector: Map<string, { rule: number; times: number }[]>;
}

interface EndpointRecord {
  header: Omit<EndpointState, 'entries'>;
  entries: EntryMap;
}

const DEFAULT_NS_LABEL = 'kubernetes.io/metadata.name';

function namedKey(name: string, protocol: L4Protocol): string {
  return `${name}/${protocol}`;
}

function emptyDiff(): DesiredDiff {
  return {
    endpointsChanged: [],
    endpointsRemoved: [],
    entriesAdded: new Map(),
    entriesRemoved: new Map(),
    ipcacheUpserted: [],
    ipcacheRemoved: [],
  };
}

export class PolicyEngine {
  readonly nodeName: string | undefined;
  private readonly identities: IdentityAllocator;
  private readonly cidrIdentities: CidrIdentityAllocator;
  private readonly ipcache = new Ipcache();
  private readonly extraPodCIDRs: string[];
  /** A node changed: the cluster's pod CIDRs are rebuilt at the next flush. */
  private podCIDRsDirty = false;

  private readonly namespaces = new Map<string, Namespace>();
  private readonly nodes = new Map<string, Node>();
  private readonly pods = new Map<string, PodRecord>();
  private readonly podsByNamespace = new Map<string, Set<string>>();
  private readonly localByNamespace = new Map<string, Set<string>>();
  private readonly policies = new Map<string, PolicyRecord>();
  private readonly policiesByNamespace = new Map<string, Set<string>>();

  private readonly selectors = new SelectorCache();
  private readonly cidrBudget: CidrBudget;
  /** Policies refused by the CIDR budget: tried again when room is given back. */
  private readonly overBudget = new Set<string>();

  /** "name/PROTO" -> identity -> port -> number of pods. */
  private readonly namedPorts = new Map<string, Map<number, Map<number, number>>>();
  private readonly namedEgressPolicies = new Map<string, Set<string>>();

  /** Published endpoint states (entries kept as maps for diffing). */
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** Endpoints to recompute whole (their pod or a policy selecting them changed). */
  private readonly dirtyEndpoints = new Set<string>();
  /** Policies whose selected endpoints must be recomputed whole. */
  private readonly dirtyPolicies = new Set<string>();
  /** One frozen RuleRef object per rule, so contributions can be keyed by it. */
  private readonly ruleRefs = new Map<string, RuleRef>();
  private readonly singleRefs = new Map<RuleRef, readonly RuleRef[]>();

  constructor(opts: PolicyEngineOptions = {}) {
    this.nodeName = opts.nodeName;
    const idOpts = {
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.identityGraceMs !== undefined ? { graceMs: opts.identityGraceMs } : {}),
    };
    this.identities = new IdentityAllocator(idOpts);
    this.cidrIdentities = new CidrIdentityAllocator(idOpts);
    this.cidrBudget = new CidrBudget(opts.cidrBudget);
    this.extraPodCIDRs = (opts.clusterPodCIDRs ?? []).map((c) => {
      const p = canonicalPrefix(c);
      if (!p) throw new Error(`clusterPodCIDRs: "${c}" is not a valid CIDR (expected e.g. 10.244.0.0/16)`);
      return p;
    });
    this.refreshPodCIDRs();
  }

  // ---------------------------------------------------------------- inputs

  /** Applies one store change and returns what must change in the datapath. */
  apply(change: StoreChange): DesiredDiff {
    this.ingest(change.kind, change.key, change.new);
    return this.flush();
  }

  /** Applies many changes, recomputing each affected endpoint once (start-up, resync). */
  applyAll(changes: Iterable<StoreChange>): DesiredDiff {
    for (const c of changes) this.ingest(c.kind, c.key, c.new);
    return this.flush();
  }

  /** Adds or replaces objects directly (without a Store). */
  upsertAll(objects: Iterable<KubeObject>): DesiredDiff {
    for (const o of objects) this.ingest(o.kind, objectKey(o), o);
    return this.flush();
  }

  private ingest(kind: KubeObject['kind'], key: string, obj: KubeObject | undefined): void {
    switch (kind) {
      case 'Namespace':
        this.setNamespace(key, obj as Namespace | undefined);
        break;
      case 'Pod':
        this.setPod(key, obj as Pod | undefined);
        break;
      case 'NetworkPolicy':
        this.setPolicy(key, obj as NetworkPolicy | undefined);
        break;
      case 'Node':
        this.setNode(key, obj as Node | undefined);
        break;
    }
  }

  private readonly defaultNsLabels = new Map<string, Labels>();

  /** A namespace's labels; one not (yet) seen has only its name label, as the API server sets. */
  private nsLabels(ns: string): Labels {
    const known = this.namespaces.get(ns)?.labels;
    if (known) return known;
    let d = this.defaultNsLabels.get(ns);
    if (!d) this.defaultNsLabels.set(ns, (d = { [DEFAULT_NS_LABEL]: ns }));
    return d;
  }

  private setNamespace(name: string, ns: Namespace | undefined): void {
    if (ns) this.namespaces.set(name, ns);
    else this.namespaces.delete(name);
    for (const key of this.podsByNamespace.get(name) ?? []) this.setPod(key, this.pods.get(key)!.pod);
  }

  private setNode(name: string, node: Node | undefined): void {
    const old = this.nodes.get(name);
    for (const a of old?.addresses ?? []) {
      const c = hostCIDR(a.address);
      if (c) this.ipcache.unclaim(c, 'node', name);
    }
    if (node) this.nodes.set(name, node);
    else this.nodes.delete(name);
    const id =
      this.nodeName !== undefined && name === this.nodeName ? ReservedIdentity.host : ReservedIdentity.remoteNode;
    for (const a of node?.addresses ?? []) {
      const c = hostCIDR(a.address);
      if (c) this.ipcache.claim(c, 'node', name, id);
    }
    // Once per flush, not per node: a list of 1,000 nodes would otherwise rebuild it 1,000 times.
    this.podCIDRsDirty = true;
  }

  private refreshPodCIDRs(): void {
    const set = new Set(this.extraPodCIDRs);
    for (const n of this.nodes.values())
      for (const c of n.podCIDRs) {
        const p = canonicalPrefix(c);
        if (p) set.add(p);
      }
    this.ipcache.setPodCIDRs([...set].sort());
  }

  private isLocal(pod: Pod): boolean {
    if (pod.hostNetwork || pod.phase === 'Succeeded' || pod.phase === 'Failed') return false;
    if (this.nodeName === undefined) return true;
    return pod.nodeName === this.nodeName && pod.ips.length > 0;
  }

  private setPod(key: string, pod: Pod | undefined): void {
    const old = this.pods.get(key);
    if (!pod && !old) return; // deleting what was never seen
    const managed = pod !== undefined && !pod.hostNetwork && pod.phase !== 'Succeeded' && pod.phase !== 'Failed';
    let identity: Identity | undefined;
    if (managed) {
      const r = this.identities.acquire(pod.namespace, pod.labels, this.nsLabels(pod.namespace));
      identity = r.identity;
      if (r.live) this.selectors.identityLive(identity);
    }
    const rec: PodRecord | undefined = pod
      ? {
          pod,
          ...(identity ? { identity } : {}),
          local: this.isLocal(pod),
          ipCIDRs: managed ? pod.ips.map((ip) => hostCIDR(ip)!).filter(Boolean) : [],
        }
      : undefined;
    // Named ports: register the new before unregistering the old, so unchanged ones do not flap.
    if (rec?.identity) this.registerNamedPorts(rec, +1);
    if (old?.identity) this.registerNamedPorts(old, -1);
    if (old?.identity && this.identities.release(old.identity.id)) this.selectors.identityDead(old.identity);
    for (const c of old?.ipCIDRs ?? []) this.ipcache.unclaim(c, 'pod', key);
    for (const c of rec?.ipCIDRs ?? []) this.ipcache.claim(c, 'pod', key, rec!.identity!.id);

    const ns = pod?.namespace ?? old!.pod.namespace;
    if (rec) {
      this.pods.set(key, rec);
      setIndex(this.podsByNamespace, ns, key, true);
    } else {
      this.pods.delete(key);
      setIndex(this.podsByNamespace, ns, key, false);
    }
    setIndex(this.localByNamespace, ns, key, rec?.local === true);
    if (old?.local || rec?.local) this.dirtyEndpoints.add(key);
  }

  private registerNamedPorts(rec: PodRecord, delta: 1 | -1): void {
    const id = rec.identity!.id;
    for (const p of rec.pod.ports) {
      if (!p.name) continue;
      const nk = namedKey(p.name, p.protocol);
      let byId = this.namedPorts.get(nk);
      if (!byId) this.namedPorts.set(nk, (byId = new Map()));
      let counts = byId.get(id);
      if (!counts) byId.set(id, (counts = new Map()));
      const n = (counts.get(p.containerPort) ?? 0) + delta;
      if (n <= 0) {
        counts.delete(p.containerPort);
        if (counts.size === 0) byId.delete(id);
        if (byId.size === 0) this.namedPorts.delete(nk);
      } else counts.set(p.containerPort, n);
      if (n === 0 || (n === 1 && delta === 1))
        for (const pk of this.namedEgressPolicies.get(nk) ?? []) this.dirtyPolicies.add(pk);
    }
  }

  // ------------------------------------------------------------ policies

  private setPolicy(key: string, np: NetworkPolicy | undefined): void {
    const old = this.policies.get(key);
    if (!np && !old) return;
    let rec: PolicyRecord | undefined;
    if (!np) {
      this.cidrBudget.release(key);
      this.overBudget.delete(key);
    }
    if (np) {
      const compiled = this.admitPrefixes(compilePolicy(np));
      const selectorKeys: string[] = [];
      const cidrIds: number[] = [];
      const namedEgress = new Set<string>();
      for (const rule of compiled.rules) {
        if (rule.peers !== 'any') {
          for (const peer of rule.peers) {
            if (peer.kind === 'cidr') {
              for (const p of [peer.cidr, ...peer.except]) {
                if (p.bits === 0) continue; // 0.0.0.0/0 and ::/0 are world-ipv4 and world-ipv6
                const cidr = formatPrefix(p);
                const r = this.cidrIdentities.acquire(cidr);
                cidrIds.push(r.id);
                if (r.live) {
                  this.ipcache.claim(cidr, 'cidr', 'policy', r.id);
                  this.selectors.cidrLive(r.id, p);
                }
              }
            }
            this.selectors.acquire(peer, key);
            selectorKeys.push(peer.key);
          }
        }
        if (rule.direction === 'egress' && rule.ports !== 'any') {
          for (const port of rule.ports) if (port.kind === 'named') namedEgress.add(namedKey(port.name, port.protocol));
        }
      }
      for (const nk of namedEgress) setIndex(this.namedEgressPolicies, nk, key, true);
      const rulesBySelector = new Map<string, { rule: number; times: number }[]>();
      compiled.rules.forEach((rule, i) => {
        if (!rule.valid || rule.peers === 'any') return;
        const counts = new Map<string, number>();
        for (const p of rule.peers) counts.set(p.key, (counts.get(p.key) ?? 0) + 1);
        for (const [k, times] of counts) {
          let l = rulesBySelector.get(k);
          if (!l) rulesBySelector.set(k, (l = []));
          l.push({ rule: i, times });
        }
      });
      rec = {
        compiled,
        selects: new Set(),
        selectorKeys,
        cidrIds,
        namedEgress: [...namedEgress],
        refs: compiled.rules.map((r) => this.ruleRef(compiled.key, r.direction, r.index)),
        ports: compiled.rules.map((r) =>
          r.ports !== 'any' && r.ports.some((p) => p.kind === 'named') ? undefined : this.rulePorts(r, undefined),
        ),
        rulesBySelector,
      };
      for (const ek of this.localByNamespace.get(np.namespace) ?? []) {
        const pr = this.pods.get(ek)!;
        if (selectorMatches(compiled.podSelector, pr.identity!.podLabels)) rec.selects.add(ek);
      }
      for (const ek of rec.selects) this.dirtyEndpoints.add(ek);
    }
    if (old) {
      for (const ek of old.selects) this.dirtyEndpoints.add(ek);
      for (const sk of old.selectorKeys) if (!rec?.selectorKeys.includes(sk)) this.selectors.release(sk, key);
      for (const id of old.cidrIds) {
        if (!this.cidrIdentities.release(id)) continue;
        this.ipcache.unclaim(this.cidrIdentities.cidrOf(id)!, 'cidr', 'policy');
        this.selectors.cidrDead(id);
      }
      for (const nk of old.namedEgress)
        if (!rec?.namedEgress.includes(nk)) setIndex(this.namedEgressPolicies, nk, key, false);
    }
    const ns = np?.namespace ?? old!.compiled.namespace;
    if (rec) {
      this.policies.set(key, rec);
      setIndex(this.policiesByNamespace, ns, key, true);
    } else {
      this.policies.delete(key);
      setIndex(this.policiesByNamespace, ns, key, false);
      // Its endpoints are recomputed in this flush, so nothing refers to its rules any more.
      for (const r of old!.refs) {
        this.ruleRefs.delete(`${r.policy}|${r.direction}|${r.rule}`);
        this.singleRefs.delete(r);
      }
    }
  }

  /**
   * A policy whose CIDR prefixes do not fit the node's ipcache budget is refused as a whole: it
   * keeps its isolation, takes no prefix and allows nothing, and says why.
   */
  private admitPrefixes(c: CompiledPolicy): CompiledPolicy {
    const prefixes: string[] = [];
    for (const rule of c.rules)
      if (rule.peers !== 'any')
        for (const peer of rule.peers)
          if (peer.kind === 'cidr')
            for (const p of [peer.cidr, ...peer.except]) if (p.bits > 0) prefixes.push(formatPrefix(p));
    const a = this.cidrBudget.admit(c.key, c.namespace, prefixes);
    if (a.ok) {
      this.overBudget.delete(c.key);
      return c;
    }
    this.overBudget.add(c.key);
    return {
      ...c,
      rules: c.rules.map((r) => ({ ...r, peers: [], ports: [], valid: false })),
      errors: [...c.errors, { policy: c.key, field: 'spec', message: a.message }],
    };
  }

  // ----------------------------------------------------------- compiling

  private flush(): DesiredDiff {
    if (this.podCIDRsDirty) {
      this.podCIDRsDirty = false;
      this.refreshPodCIDRs();
    }
    if (this.cidrBudget.takeFreed())
      for (const k of [...this.overBudget].sort()) this.setPolicy(k, this.policies.get(k)?.compiled.source);
    this.identities.gc();
    this.cidrIdentities.gc();
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
    const ip = this.ipcache.flush();
    diff.ipcacheUpserted = ip.upserted;
    diff.ipcacheRemoved = ip.removed;
    return diff;
  }

  /**
   * A selector gained or lost identities: add or withdraw exactly the entries those
   * identities produce in the rules using the selector, on endpoints not recomputed whole.
   */
  /** `touched` collects, per endpoint, the keys of entries changed (repeats allowed). */
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
            const ports = pol.ports[i] ?? this.rulePorts(rule, this.pods.get(ek));
            for (const id of d.added)
              for (const p of ports) keys.push(contribute(rec.entries, rule.direction, id, p, ref, times));
            for (const id of d.removed)
              for (const p of ports) keys.push(contribute(rec.entries, rule.direction, id, p, ref, -times));
          }
        }
      }
    }
  }

  private ruleRef(policy: string, direction: Direction, rule: number): RuleRef {
    const k = `${policy}|${direction}|${rule}`;
    let r = this.ruleRefs.get(k);
    if (!r) {
      r = Object.freeze({ policy, direction, rule });
      this.ruleRefs.set(k, r);
      this.singleRefs.set(r, Object.freeze([r]));
    }
    return r;
  }

  /** The rules an entry comes from, sorted; shared frozen arrays for the common single rule. */
  private refsOf(acc: EntryAcc): readonly RuleRef[] {
    if (!acc.more || acc.more.size === 0) return acc.ref ? this.singleRefs.get(acc.ref)! : [];
    const all = [...acc.more.keys()];
    if (acc.ref) all.push(acc.ref);
    return Object.freeze(all.sort(compareRefs));
  }

  /** Ports of a rule for one endpoint; egress named ports are resolved per peer elsewhere. */
  private rulePorts(rule: CompiledRule, rec: PodRecord | undefined): PortSpec[] {
    if (rule.ports === 'any') return [{ protocol: 'ANY', port: 0, endPort: 0 }];
    const out: PortSpec[] = [];
    for (const port of rule.ports) {
      if (port.kind === 'all') out.push({ protocol: port.protocol, port: 0, endPort: 0 });
      else if (port.kind === 'number') out.push({ protocol: port.protocol, port: port.port, endPort: port.endPort });
      else if (rule.direction === 'ingress') {
        // Named ports of an ingress rule resolve against this (the destination) pod.
        for (const cp of rec?.pod.ports ?? [])
          if (cp.name === port.name && cp.protocol === port.protocol)
            out.push({ protocol: port.protocol, port: cp.containerPort, endPort: cp.containerPort });
      }
    }
    return out;
  }

  private recompute(key: string, diff: DesiredDiff): void {
    const rec = this.pods.get(key);
    const old = this.endpoints.get(key);
    if (!rec || !rec.local) {
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
    for (const pk of this.policiesByNamespace.get(rec.pod.namespace) ?? []) {
      const pol = this.policies.get(pk)!;
      if (!selectorMatches(pol.compiled.podSelector, identity.podLabels)) {
        pol.selects.delete(key);
        continue;
      }
      pol.selects.add(key);
      ingressIsolated ||= pol.compiled.isolatesIngress;
      egressIsolated ||= pol.compiled.isolatesEgress;
      this.addRuleEntries(pol, rec, entries);
    }
    const header: Omit<EndpointState, 'entries'> = {
      key,
      namespace: rec.pod.namespace,
      name: rec.pod.name,
      ips: [...rec.pod.ips],
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
    if (headerChanged) diff.endpointsChanged.push(this.endpointState(key)!);
    if (added.length > 0) diff.entriesAdded.set(key, added.sort(compareEntries));
    if (removed.length > 0) diff.entriesRemoved.set(key, removed.sort(compareEntries));
  }

  private addRuleEntries(pol: PolicyRecord, rec: PodRecord, out: EntryMap): void {
    const rules = pol.compiled.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (!rule.valid) continue;
      const ref = pol.refs[i]!;
      const ports = pol.ports[i] ?? this.rulePorts(rule, rec);
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

  /** The current state of one endpoint, entries sorted. */
  private endpointState(key: string): EndpointState | undefined {
    const rec = this.endpoints.get(key);
    if (!rec) return undefined;
    const entries: PolicyEntry[] = [];
    for (const acc of rec.entries.values()) if (acc.published) entries.push(materialize(acc, acc.published));
    return { ...rec.header, ips: [...rec.header.ips], entries: entries.sort(compareEntries) };
  }

  // ------------------------------------------------------------- outputs

  /** The whole desired state as it stands. */
  snapshot(): DesiredState {
    const endpoints = new Map<string, EndpointState>();
    for (const k of [...this.endpoints.keys()].sort()) endpoints.set(k, this.endpointState(k)!);
    return { endpoints, ipcache: this.ipcache.entries() };
  }

  /** Errors of every policy, each naming the policy and the field. */
  errors(): PolicyProblem[] {
    return [...this.policies.values()].flatMap((p) => p.compiled.errors);
  }

  /** Warnings: rules ignored by policyTypes, ipBlocks that cover the pod network. */
  warnings(): PolicyProblem[] {
    const out: PolicyProblem[] = [];
    const podCIDRs = this.ipcache.getPodCIDRs();
    for (const pr of [...this.policies.values()].sort((a, b) => cmp(a.compiled.key, b.compiled.key))) {
      out.push(...pr.compiled.warnings);
      const np = pr.compiled.source;
      const sides = [
        { spec: 'spec.ingress', field: 'from', rules: np.ingress.map((r) => r.from) },
        { spec: 'spec.egress', field: 'to', rules: np.egress.map((r) => r.to) },
      ];
      for (const side of sides) {
        side.rules.forEach((peers, ri) =>
          peers.forEach((peer, pi) => {
            if (!peer.ipBlock) return;
            const p = parsePrefix(peer.ipBlock.cidr);
            if (typeof p === 'string') return;
            const field = `${side.spec}[${ri}].${side.field}[${pi}].ipBlock.cidr`;
            const covered = podCIDRs.filter((pc) => prefixesOverlap(pc, p)).map(formatPrefix);
            const coveredPods = covered.length > 0 ? [] : this.podsInside(p);
            if (covered.length > 0 || coveredPods.length > 0) {
              const what =
                covered.length > 0
                  ? `the pod network ${covered.join(', ')}`
                  : `pod IPs (${coveredPods.slice(0, 3).join(', ')}${coveredPods.length > 3 ? ', ...' : ''})`;
              out.push({
                policy: pr.compiled.key,
                field,
                message: `${peer.ipBlock.cidr} covers ${what}, but ipBlock does not select pods here: pod traffic is matched by pod identity only. Use podSelector or namespaceSelector to allow pods.`,
              });
            }
          }),
        );
      }
    }
    return out;
  }

  private podsInside(p: Prefix): string[] {
    const out: string[] = [];
    for (const [k, r] of this.pods) {
      if (!r.identity) continue;
      for (const ip of r.pod.ips) {
        const h = parsePrefix(ip);
        if (typeof h !== 'string' && prefixContains(p, h)) out.push(k);
      }
    }
    return out.sort();
  }

  // ----------------------------------------------------- read access (explain)

  getPod(key: string): { pod: Pod; identity?: Identity } | undefined {
    const r = this.pods.get(key);
    return r ? { pod: r.pod, ...(r.identity ? { identity: r.identity } : {}) } : undefined;
  }
  listPods(): Pod[] {
    return [...this.pods.values()].map((r) => r.pod);
  }
  policiesInNamespace(ns: string): CompiledPolicy[] {
    return [...(this.policiesByNamespace.get(ns) ?? [])].sort().map((k) => this.policies.get(k)!.compiled);
  }
  listPolicies(): CompiledPolicy[] {
    return [...this.policies.values()].map((p) => p.compiled);
  }
  getEndpoint(key: string): EndpointState | undefined {
    return this.endpointState(key);
  }
  identity(id: number): Identity | undefined {
    return this.identities.get(id);
  }
  /** Longest-prefix lookup in the published ipcache. */
  resolveIP(ip: string): number | undefined {
    return this.ipcache.lookup(ip);
  }
  get stats(): {
    pods: number;
    endpoints: number;
    policies: number;
    identities: number;
    selectors: number;
    entries: number;
    ipcache: number;
  } {
    let entries = 0;
    for (const e of this.endpoints.values()) entries += e.entries.size;
    return {
      pods: this.pods.size,
      endpoints: this.endpoints.size,
      policies: this.policies.size,
      identities: this.identities.allocated,
      selectors: this.selectors.size,
      entries,
      ipcache: this.ipcache.entries().size,
    };
  }
}
