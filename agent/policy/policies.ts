/**
 * The policy table, one job of the policy compiler: each NetworkPolicy compiled once into the
 * record endpoint compilation reads (its rules' refs and ports, which selectors it uses and how
 * often per rule), its prefixes admitted by the node's CIDR budget as a whole or not at all, and
 * its references on selectors and CIDR identities taken and given back.
 *
 * Which endpoints a policy selects is endpoint compilation's business (endpoints.ts); the
 * NetworkPolicy objects themselves stay in the Store.
 */
import type { Direction, L4Protocol, RuleRef } from '../desired.js';
import { formatPrefix } from '../ipcache/cidr.js';
import { CidrBudget, type CidrBudgetOptions } from '../ipcache/budget.js';
import type { ContainerPort, NetworkPolicy } from '../store/types.js';
import { compilePolicy } from './compiled.js';
import type { CompiledPolicy, CompiledRule } from './compiled.js';
import type { PortSpec } from './entries.js';
import type { IdentityIndex } from './identities.js';
import { setIndex } from './multimap.js';
import type { SelectorCache } from './selector-cache.js';

export interface PolicyRecord {
  compiled: CompiledPolicy;
  /** Keys of the local endpoints it selects (kept by endpoint compilation). */
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

export function namedKey(name: string, protocol: L4Protocol): string {
  return `${name}/${protocol}`;
}

/** Ports of a rule for one endpoint (its container ports); egress named ports are resolved per peer elsewhere. */
export function rulePorts(rule: CompiledRule, podPorts: readonly ContainerPort[] | undefined): PortSpec[] {
  if (rule.ports === 'any') return [{ protocol: 'ANY', port: 0, endPort: 0 }];
  const out: PortSpec[] = [];
  for (const port of rule.ports) {
    if (port.kind === 'all') out.push({ protocol: port.protocol, port: 0, endPort: 0 });
    else if (port.kind === 'number') out.push({ protocol: port.protocol, port: port.port, endPort: port.endPort });
    else if (rule.direction === 'ingress') {
      // Named ports of an ingress rule resolve against this (the destination) pod.
      for (const cp of podPorts ?? [])
        if (cp.name === port.name && cp.protocol === port.protocol)
          out.push({ protocol: port.protocol, port: cp.containerPort, endPort: cp.containerPort });
    }
  }
  return out;
}

export class PolicyTable {
  private readonly records = new Map<string, PolicyRecord>();
  private readonly byNamespace = new Map<string, Set<string>>();
  private readonly budget: CidrBudget;
  /** Policies refused by the CIDR budget: tried again when room is given back. */
  private readonly overBudget = new Set<string>();
  /** "name/PROTO" -> the policies with an egress rule naming that port. */
  private readonly namedEgressPolicies = new Map<string, Set<string>>();
  /** One frozen RuleRef object per rule, so contributions can be keyed by it. */
  private readonly ruleRefs = new Map<string, RuleRef>();
  private readonly singleRefs = new Map<RuleRef, readonly RuleRef[]>();

  constructor(
    private readonly ids: IdentityIndex,
    private readonly selectors: SelectorCache,
    budget?: CidrBudgetOptions,
  ) {
    this.budget = new CidrBudget(budget);
  }

  get(key: string): PolicyRecord | undefined {
    return this.records.get(key);
  }

  values(): IterableIterator<PolicyRecord> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  /** Keys of the policies of a namespace. */
  inNamespace(ns: string): ReadonlySet<string> {
    return this.byNamespace.get(ns) ?? new Set();
  }

  /** Policies whose egress rules name this port ("name/PROTO"). */
  namingEgressPort(nk: string): ReadonlySet<string> {
    return this.namedEgressPolicies.get(nk) ?? new Set();
  }

  /** The single-rule refs array of a rule ref (shared, frozen). */
  single(ref: RuleRef): readonly RuleRef[] {
    return this.singleRefs.get(ref)!;
  }

  /**
   * Policies refused by the budget, when a deletion gave room back since the last call: the
   * caller sets them again (in key order), so they are admitted if they fit now.
   */
  takeRetries(): string[] {
    return this.budget.takeFreed() ? [...this.overBudget].sort() : [];
  }

  /**
   * Compiles a policy (or removes it) and takes its references. Returns the record it replaced
   * and the new one; the caller recomputes the endpoints either selects.
   */
  set(key: string, np: NetworkPolicy | undefined): { old?: PolicyRecord; rec?: PolicyRecord } {
    const old = this.records.get(key);
    if (!np && !old) return {};
    let rec: PolicyRecord | undefined;
    if (!np) {
      this.budget.release(key);
      this.overBudget.delete(key);
    } else rec = this.compile(key, np);
    if (old) {
      for (const sk of old.selectorKeys) if (!rec?.selectorKeys.includes(sk)) this.selectors.release(sk, key);
      for (const id of old.cidrIds) this.ids.releaseCidr(id);
      for (const nk of old.namedEgress)
        if (!rec?.namedEgress.includes(nk)) setIndex(this.namedEgressPolicies, nk, key, false);
    }
    const ns = np?.namespace ?? old!.compiled.namespace;
    if (rec) {
      this.records.set(key, rec);
      setIndex(this.byNamespace, ns, key, true);
    } else {
      this.records.delete(key);
      setIndex(this.byNamespace, ns, key, false);
      // Its endpoints are recomputed in this flush, so nothing refers to its rules any more.
      for (const r of old!.refs) {
        this.ruleRefs.delete(`${r.policy}|${r.direction}|${r.rule}`);
        this.singleRefs.delete(r);
      }
    }
    return { ...(old ? { old } : {}), ...(rec ? { rec } : {}) };
  }

  private compile(key: string, np: NetworkPolicy): PolicyRecord {
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
              cidrIds.push(this.ids.acquireCidr(p));
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
    return {
      compiled,
      selects: new Set(),
      selectorKeys,
      cidrIds,
      namedEgress: [...namedEgress],
      refs: compiled.rules.map((r) => this.ruleRef(compiled.key, r.direction, r.index)),
      ports: compiled.rules.map((r) =>
        r.ports !== 'any' && r.ports.some((p) => p.kind === 'named') ? undefined : rulePorts(r, undefined),
      ),
      rulesBySelector,
    };
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
    const a = this.budget.admit(c.key, c.namespace, prefixes);
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
}
