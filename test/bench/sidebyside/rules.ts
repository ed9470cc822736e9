/**
 * One policy set, two renderings. The bench's N rules are generated once as plain data; the
 * iptables dataplane (calico-iptables.ts) and weir (weir-state.ts) are both rendered from it, so
 * the three modes enforce the same thing: the target pod is isolated for ingress and accepts
 * exactly the listed peers on the listed ports.
 */

export interface PeerRule {
  /** NetworkPolicy name the rule belongs to. */
  policy: string;
  /** Index of the rule in the policy's spec.ingress. */
  index: number;
  /** The peer pod's address (a /32) and its numeric identity. */
  peerIp: string;
  peerIdentity: number;
  protocol: 'TCP' | 'UDP';
  ports: number[];
}

export interface RuleSetSpec {
  /** Total number of rules, the bench's allow rule for the client pod included. */
  rules: number;
  /** Rules per NetworkPolicy (Calico writes one chain per policy). */
  rulesPerPolicy: number;
  /** Second octet of the bench's 10.X.0.0/16; peers that never send come from 10.X.128.0/17. */
  octet: number;
  /** The pod allowed to reach the target, and its identity. */
  client: { ip: string; identity: number };
  /** Ports the bench's traffic uses (latency, throughput, connection rate). */
  benchPorts: number[];
}

export interface RuleSet {
  spec: RuleSetSpec;
  rules: PeerRule[];
  policies: string[];
}

/** First identity of the peers that only exist in the rules. */
export const PEER_IDENTITY_BASE = 10_000;
const MAX_PEERS = 32_768;

export function policyName(i: number): string {
  return `bench-${String(i).padStart(5, '0')}`;
}

/** The address of generated peer `i` in 10.X.128.0/17. */
export function peerIp(octet: number, i: number): string {
  return `10.${octet}.${128 + (i >> 8)}.${i & 255}`;
}

/**
 * Builds N rules: N-1 allowing generated peers one port each, and, last of the last policy
 * (the worst place for a linear rule scan, no different for a hash lookup), the rule that
 * allows the client pod on the bench's ports.
 */
export function buildRuleSet(spec: RuleSetSpec): RuleSet {
  if (spec.rules < 1) throw new Error(`the bench needs at least 1 rule (got ${spec.rules})`);
  if (spec.rules > MAX_PEERS)
    throw new Error(`at most ${MAX_PEERS} rules fit the bench's peer range (got ${spec.rules})`);
  const rules: PeerRule[] = [];
  for (let i = 0; i < spec.rules - 1; i++) {
    rules.push({
      policy: policyName(Math.floor(i / spec.rulesPerPolicy)),
      index: i % spec.rulesPerPolicy,
      peerIp: peerIp(spec.octet, i),
      peerIdentity: PEER_IDENTITY_BASE + i,
      protocol: 'TCP',
      ports: [1024 + (i % 4000)],
    });
  }
  const last = spec.rules - 1;
  rules.push({
    policy: policyName(Math.floor(last / spec.rulesPerPolicy)),
    index: last % spec.rulesPerPolicy,
    peerIp: spec.client.ip,
    peerIdentity: spec.client.identity,
    protocol: 'TCP',
    ports: [...spec.benchPorts],
  });
  const policies = [...new Set(rules.map((r) => r.policy))];
  return { spec, rules, policies };
}

/**
 * The same rule set with one rule changed, as a user editing one policy does: the middle
 * generated rule moves to the next port (with a single rule, the client's rule gains a port).
 */
export function changeOneRule(set: RuleSet): { set: RuleSet; changed: number } {
  const n = set.rules.length;
  const changed = n >= 2 ? Math.floor((n - 1) / 2) : 0;
  const rules = set.rules.map((r, i) => {
    if (i !== changed) return r;
    const first = r.ports[0] ?? 1024;
    return n >= 2 ? { ...r, ports: [first + 1] } : { ...r, ports: [...r.ports, 1] };
  });
  return { set: { ...set, rules }, changed };
}
