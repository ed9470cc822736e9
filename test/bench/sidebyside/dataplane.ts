/**
 * The ways the bench forwards traffic between its pods. Each one programs the same rule
 * set (rules.ts), enforces it on the node namespace's pod interfaces, and removes every trace
 * again so that the next mode runs on a clean node.
 */
import * as calico from './calico-iptables.js';
import type { RuleSet } from './rules.js';
import { changeOneRule } from './rules.js';
import type { Topology } from './topology.js';

export type Mode = 'none' | 'weir' | 'iptables' | 'nftables';

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
