/**
 * The ways the bench forwards traffic between its pods. Each one programs the same rule
 * set (rules.ts), enforces it on the node namespace's pod interfaces, and removes every trace
 * again so that the next mode runs on a clean node.
 */
import type { ProgramTime } from '../bpf-stats.js';
import * as calico from './calico-iptables.js';
import type { RuleSet } from './rules.js';
import { changeOneRule } from './rules.js';
import type { Topology } from './topology.js';

/**
 * none: plain forwarding. empty: an empty tc program (returns TC_ACT_OK) on the hooks weir uses,
 * the floor any tc dataplane pays. weir: the datapath with its default, a flow event per allowed
 * new connection, read by the bench process. weir-noflows: the same with allowed flows off.
 */
export type Mode = 'none' | 'empty' | 'weir' | 'weir-noflows' | 'iptables' | 'nftables';

export interface Dataplane {
  mode: Mode;
  /** Programs the rule set and starts enforcing it; resolves to the programming time, ms. */
  enable(set: RuleSet): Promise<number>;
  /** Changes one rule of the enabled set (rules.changeOneRule); resolves to the time, ms. */
  changeOne(): Promise<number>;
  /** Stops enforcing and removes everything enable() added. */
  disable(): Promise<void>;
  /** Releases what the dataplane holds for the whole run. */
  close(): Promise<void>;
  /** BPF dataplanes: the cumulative run time of their programs (counted only with bpf_stats on). */
  programTime?(): Promise<ProgramTime>;
  /** weir: flow events the bench process has read and decoded so far. */
  eventsRead?(): number;
}

/** No filtering: plain forwarding in the node namespace. */
export function noneDataplane(): Dataplane {
  return {
    mode: 'none',
    enable: () => Promise.resolve(0),
    changeOne: () => Promise.resolve(0),
    disable: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

export interface IptablesOptions {
  topo: Topology;
  targetPod: string;
  backend: calico.IptablesBackend;
}

/** Calico-style iptables chains and ipsets loaded with ipset restore and iptables-restore into the node namespace. */
export function iptablesDataplane(opts: IptablesOptions): Dataplane {
  const { topo, backend } = opts;
  const target = {
    pods: topo.pods,
    target: topo.pod(opts.targetPod),
    ifaceWildcard: `${topo.prefix}-+`,
  };
  let current: RuleSet | undefined;
  return {
    mode: 'iptables',
    async enable(set) {
      await calico.clear(topo.node, backend);
      current = set;
      const sets = await calico.restoreIpsets(topo.node, set);
      return sets + (await calico.restore(topo.node, calico.renderRuleset(set, target), backend));
    },
    async changeOne() {
      if (!current) throw new Error('changeOne() before enable()');
      const { set, changed } = changeOneRule(current);
      const policy = set.rules[changed]!.policy;
      const input = calico.renderPolicyUpdate(set, policy);
      const ms = await calico.restore(topo.node, input, backend, true);
      current = set;
      return ms;
    },
    async disable() {
      current = undefined;
      await calico.clear(topo.node, backend);
    },
    close: () => calico.clear(topo.node, backend),
  };
}
