/** The bench's rule set as weir's desired state (agent/desired.ts): what the compiler would produce for it. */
import type { DesiredDiff, DesiredState, EndpointState, IpcacheEntry, PolicyEntry } from '../../../agent/desired.js';
import type { PeerRule, RuleSet } from './rules.js';
import type { Pod } from './topology.js';

export const BENCH_NAMESPACE = 'bench';

export function endpointKey(pod: Pod): string {
  return `${BENCH_NAMESPACE}/${pod.name}`;
}

function entriesOf(r: PeerRule): PolicyEntry[] {
  return r.ports.map((port) => ({
    direction: 'ingress',
    remoteIdentity: r.peerIdentity,
    protocol: r.protocol,
    port,
    endPort: port,
    derivedFrom: [{ policy: `${BENCH_NAMESPACE}/${r.policy}`, direction: 'ingress', rule: r.index }],
  }));
}

/**
 * Every pod is an endpoint with its own identity (the client's is the rule set's client
 * identity); the target is isolated for ingress with one entry per rule and port; every
 * generated peer is an ipcache /32 with its identity.
 */
export function desiredState(set: RuleSet, pods: Pod[], target: Pod): DesiredState {
  const endpoints = new Map<string, EndpointState>();
  const ipcache = new Map<string, IpcacheEntry>();
  pods.forEach((pod, i) => {
    const identity = pod.ip === set.spec.client.ip ? set.spec.client.identity : set.spec.client.identity + 1 + i;
    const isTarget = pod.name === target.name;
    endpoints.set(endpointKey(pod), {
      key: endpointKey(pod),
      namespace: BENCH_NAMESPACE,
      name: pod.name,
      ips: [pod.ip],
      identity,
      ingressIsolated: isTarget,
      egressIsolated: false,
      entries: isTarget ? set.rules.flatMap(entriesOf) : [],
    });
    ipcache.set(`${pod.ip}/32`, { cidr: `${pod.ip}/32`, identity });
  });
  for (const r of set.rules) {
    if (!ipcache.has(`${r.peerIp}/32`))
      ipcache.set(`${r.peerIp}/32`, { cidr: `${r.peerIp}/32`, identity: r.peerIdentity });
  }
  return { endpoints, ipcache };
}

/** The diff from one rule set to another that differs in one rule (rules.changeOneRule). */
export function ruleChangeDiff(before: RuleSet, after: RuleSet, changed: number, target: Pod): DesiredDiff {
  const key = endpointKey(target);
  const was = before.rules[changed];
  const now = after.rules[changed];
  if (!was || !now) throw new Error(`rule ${changed} is not in the rule set`);
  return {
    endpointsChanged: [],
    endpointsRemoved: [],
    entriesRemoved: new Map([[key, entriesOf(was).filter((e) => !now.ports.includes(e.port))]]),
    entriesAdded: new Map([[key, entriesOf(now).filter((e) => !was.ports.includes(e.port))]]),
    ipcacheUpserted: [],
    ipcacheRemoved: [],
  };
}
