/**
 * `weir policy explain`: why a connection from one pod to another is allowed or denied,
 * in both directions of enforcement. It evaluates the policies' rules directly against
 * the two pods (selectors over identities, ports against the destination pod), an
 * independent path from the compiled entries; a differential test keeps both in step.
 */
import { ReservedIdentity, isWorldIdentity, worldIdentity } from '../desired.js';
import type { Direction, L4Protocol } from '../desired.js';
import { isCidrIdentity } from '../identity/allocator.js';
import { canonicalIP, formatPrefix, hostPrefix, prefixContains } from '../ipcache/cidr.js';
import type { Prefix } from '../ipcache/cidr.js';
import { POD_CIDR_IDENTITY } from '../ipcache/ipcache.js';
import type { Identity } from '../identity/allocator.js';
import type { Pod } from '../store/types.js';
import type { CidrPeer, CompiledPeer, CompiledPolicy, CompiledPort, CompiledRule } from './compiled.js';
import { formatProblem } from './compiled.js';
import type { PolicyReader } from './reader.js';
import { selectorMatches, selectorMisses, selectorText } from './selector.js';

export interface ExplainQuery {
  /** "namespace/name" of a pod, or an IP address (a pod's address means that pod). */
  from: string;
  to: string;
  port: number;
  protocol: L4Protocol;
}

export interface RuleVerdict {
  policy: string;
  direction: Direction;
  rule: number;
  matched: boolean;
  peerMatched: boolean;
  portMatched: boolean;
  /** Why it matched or missed, in words: "peer matches: ...", "port misses: ...", or why the rule is invalid. */
  reasons: string[];
}

export interface DirectionExplanation {
  direction: Direction;
  /** The pod whose policies decide this direction (the sender for egress, the receiver for ingress). */
  pod: string;
  /** False for hostNetwork pods: weir does not enforce them. */
  enforced: boolean;
  isolated: boolean;
  /** Policies selecting the pod with this direction in their policyTypes. */
  policies: string[];
  allowed: boolean;
  /** Rules that allow the connection. */
  allowedBy: RuleVerdict[];
  /** When denied: the rules that came closest (fewest misses first) and why they missed. */
  closest: RuleVerdict[];
  summary: string;
}

export interface Explanation {
  from: string;
  to: string;
  port: number;
  protocol: L4Protocol;
  allowed: boolean;
  egress: DirectionExplanation;
  ingress: DirectionExplanation;
}

export class ExplainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExplainError';
  }
}

/** One end of the connection: a pod, or an address that is not a pod's. */
interface Side {
  key: string;
  pod?: Pod;
  identity?: Identity;
  /** Set for an address that is not a pod's: what the ipcache resolves it to. */
  address?: { ip: string; prefix: Prefix; resolved: number };
}

function describeIdentity(id: number): string {
  switch (id) {
    case ReservedIdentity.host:
      return 'this node (host identity)';
    case ReservedIdentity.remoteNode:
      return 'a node (remote-node identity)';
    case POD_CIDR_IDENTITY:
      return 'the pod network, but no known pod';
    case ReservedIdentity.world:
      return 'an address the ipcache does not know (world identity)';
    case ReservedIdentity.worldIPv4:
      return 'outside every IPv4 prefix the policies name (world-ipv4 identity)';
    case ReservedIdentity.worldIPv6:
      return 'outside every IPv6 prefix the policies name (world-ipv6 identity)';
    default:
      return isCidrIdentity(id) ? 'a prefix named by a policy (CIDR identity)' : `identity ${id}`;
  }
}

function side(engine: PolicyReader, key: string, role: string): Side {
  const ip = canonicalIP(key);
  if (ip !== undefined) {
    const owner = engine
      .listPods()
      .find((p) => !p.hostNetwork && p.phase !== 'Succeeded' && p.phase !== 'Failed' && p.ips.includes(ip));
    if (owner) return side(engine, `${owner.namespace}/${owner.name}`, role);
    return {
      key: ip,
      address: { ip, prefix: hostPrefix(ip)!, resolved: engine.resolveIP(ip) ?? ReservedIdentity.world },
    };
  }
  if (!/^[^/]+\/[^/]+$/.test(key))
    throw new ExplainError(`--${role} "${key}" must be NAMESPACE/POD (e.g. x/a) or an IP address`);
  const p = engine.getPod(key);
  if (!p) {
    const known = engine
      .listPods()
      .map((q) => `${q.namespace}/${q.name}`)
      .sort();
    throw new ExplainError(
      `no pod ${key} in the manifests${known.length ? ` (pods: ${known.slice(0, 12).join(', ')}${known.length > 12 ? ', ...' : ''})` : ''}; add its Pod manifest with -f`,
    );
  }
  if (p.pod.phase === 'Succeeded' || p.pod.phase === 'Failed')
    throw new ExplainError(`pod ${key} has finished (phase ${p.pod.phase}): it has no network to explain`);
  return { key, pod: p.pod, ...(p.identity ? { identity: p.identity } : {}) };
}

/** An ipBlock against an address that is not a pod's, as the datapath's ipcache decides it. */
function cidrVerdict(peer: CidrPeer, addr: NonNullable<Side['address']>): { ok: boolean; why: string } {
  const block = peer.key.slice(5);
  const r = addr.resolved;
  if (isWorldIdentity(r)) {
    // Each family has its own world identity: only the /0 of that family selects it.
    if (peer.cidr.bits === 0 && r === worldIdentity(peer.cidr.family))
      return { ok: true, why: `${addr.ip} is ${describeIdentity(r)}, which ipBlock ${block} allows` };
    return { ok: false, why: `${addr.ip} is not inside ipBlock ${block}` };
  }
  if (!isCidrIdentity(r)) return { ok: false, why: `${addr.ip} is ${describeIdentity(r)}: ipBlock never matches it` };
  if (!prefixContains(peer.cidr, addr.prefix)) return { ok: false, why: `${addr.ip} is not inside ipBlock ${block}` };
  const ex = peer.except.find((e) => prefixContains(e, addr.prefix));
  if (ex)
    return { ok: false, why: `${addr.ip} is inside ${formatPrefix(peer.cidr)} but excepted by ${formatPrefix(ex)}` };
  return { ok: true, why: `${addr.ip} is inside ipBlock ${block}` };
}

function peerVerdict(peer: CompiledPeer, remote: Side, policyNs: string): { ok: boolean; why: string } {
  if (remote.address) {
    if (peer.kind === 'cidr') return cidrVerdict(peer, remote.address);
    return {
      ok: false,
      why: `${remote.key} is not a pod (it resolves to ${describeIdentity(remote.address.resolved)}), so pod and namespace selectors do not match it`,
    };
  }
  if (peer.kind === 'cidr')
    return { ok: false, why: `ipBlock ${peer.key.slice(5)} never matches pod traffic (pods are matched by identity)` };
  const id = remote.identity;
  if (!id) return { ok: false, why: `${remote.key} uses the host network, so pod selectors do not match it` };
  if (peer.namespace !== undefined && id.namespace !== peer.namespace)
    return {
      ok: false,
      why: `podSelector ${selectorText(peer.podSelector)} only selects pods in namespace ${policyNs}, and ${remote.key} is in ${id.namespace}`,
    };
  if (peer.namespaceSelector && !selectorMatches(peer.namespaceSelector, id.nsLabels))
    return {
      ok: false,
      why: `namespace ${id.namespace} ${selectorMisses(peer.namespaceSelector, id.nsLabels).join('; ')} (namespaceSelector ${selectorText(peer.namespaceSelector)})`,
    };
  if (!selectorMatches(peer.podSelector, id.podLabels))
    return {
      ok: false,
      why: `${remote.key} ${selectorMisses(peer.podSelector, id.podLabels).join('; ')} (podSelector ${selectorText(peer.podSelector)})`,
    };
  const where = peer.namespaceSelector
    ? `namespaceSelector ${selectorText(peer.namespaceSelector)}`
    : `namespace ${policyNs}`;
  return { ok: true, why: `${remote.key} matches ${where} and podSelector ${selectorText(peer.podSelector)}` };
}

function portText(p: CompiledPort): string {
  if (p.kind === 'all') return `every ${p.protocol} port`;
  if (p.kind === 'named') return `${p.protocol} port "${p.name}"`;
  return p.endPort > p.port ? `${p.protocol} ${p.port}-${p.endPort}` : `${p.protocol} ${p.port}`;
}

function portVerdict(port: CompiledPort, q: ExplainQuery, dest: Side): { ok: boolean; why: string } {
  if (port.protocol !== q.protocol) return { ok: false, why: `${portText(port)}: protocol is not ${q.protocol}` };
  if (port.kind === 'all') return { ok: true, why: portText(port) };
  if (port.kind === 'number') {
    const ok = q.port >= port.port && q.port <= port.endPort;
    return { ok, why: ok ? portText(port) : `${portText(port)} does not include ${q.port}` };
  }
  if (!dest.pod)
    return { ok: false, why: `${portText(port)}: ${dest.key} is not a pod; named ports resolve against pods only` };
  if (!dest.identity)
    return {
      ok: false,
      why: `${portText(port)}: ${dest.key} uses the host network, whose named ports are not resolved (it has the node's identity)`,
    };
  const resolved = dest.pod.ports
    .filter((cp) => cp.name === port.name && cp.protocol === port.protocol)
    .map((cp) => cp.containerPort);
  if (resolved.length === 0)
    return {
      ok: false,
      why: `${portText(port)}: ${dest.key} has no ${port.protocol} container port named "${port.name}"`,
    };
  const ok = resolved.includes(q.port);
  return { ok, why: `${portText(port)} is ${resolved.join(', ')} on ${dest.key}${ok ? '' : `, not ${q.port}`}` };
}

function ruleVerdict(pol: CompiledPolicy, rule: CompiledRule, remote: Side, dest: Side, q: ExplainQuery): RuleVerdict {
  const base = { policy: pol.key, direction: rule.direction, rule: rule.index };
  if (!rule.valid) {
    const prefix = `spec.${rule.direction}[${rule.index}]`;
    const own = pol.errors.filter((e) => e.field.startsWith(prefix));
    const errs = (own.length > 0 ? own : pol.errors).map(formatProblem);
    return {
      ...base,
      matched: false,
      peerMatched: false,
      portMatched: false,
      reasons: [`rule is invalid and allows nothing: ${errs.join('; ')}`],
    };
  }
  const reasons: string[] = [];
  let peerMatched = false;
  if (rule.peers === 'any') {
    peerMatched = true;
    reasons.push(`peer matches: ${rule.direction === 'ingress' ? 'from' : 'to'} is empty (every peer)`);
  } else {
    const vs = rule.peers.map((p) => peerVerdict(p, remote, pol.namespace));
    const hit = vs.find((v) => v.ok);
    peerMatched = hit !== undefined;
    if (hit) reasons.push(`peer matches: ${hit.why}`);
    else reasons.push(...(vs.length ? vs.map((v) => `peer misses: ${v.why}`) : ['peer misses: no valid peer']));
  }
  let portMatched = false;
  if (rule.ports === 'any') {
    portMatched = true;
    reasons.push('port matches: ports is empty (every port and protocol)');
  } else {
    const vs = rule.ports.map((p) => portVerdict(p, q, dest));
    const hit = vs.find((v) => v.ok);
    portMatched = hit !== undefined;
    if (hit) reasons.push(`port matches: ${hit.why}`);
    else reasons.push(...vs.map((v) => `port misses: ${v.why}`));
  }
  return { ...base, matched: peerMatched && portMatched, peerMatched, portMatched, reasons };
}

function explainDirection(
  engine: PolicyReader,
  direction: Direction,
  subject: Side,
  remote: Side,
  dest: Side,
  q: ExplainQuery,
): DirectionExplanation {
  const Dir = direction === 'ingress' ? 'Ingress' : 'Egress';
  if (!subject.pod) {
    return {
      direction,
      pod: subject.key,
      enforced: false,
      isolated: false,
      policies: [],
      allowed: true,
      allowedBy: [],
      closest: [],
      summary: `${subject.key} is not a pod: no policy is enforced there`,
    };
  }
  if (!subject.identity) {
    return {
      direction,
      pod: subject.key,
      enforced: false,
      isolated: false,
      policies: [],
      allowed: true,
      allowedBy: [],
      closest: [],
      summary: `${subject.key} uses the host network: weir does not enforce it`,
    };
  }
  const selecting = engine
    .policiesInNamespace(subject.pod.namespace)
    .filter(
      (p) =>
        (direction === 'ingress' ? p.isolatesIngress : p.isolatesEgress) &&
        selectorMatches(p.podSelector, subject.identity!.podLabels),
    );
  const policies = selecting.map((p) => p.key);
  if (selecting.length === 0) {
    return {
      direction,
      pod: subject.key,
      enforced: true,
      isolated: false,
      policies,
      allowed: true,
      allowedBy: [],
      closest: [],
      summary: `${subject.key} is not isolated for ${direction}: no policy with ${Dir} in policyTypes selects it`,
    };
  }
  const verdicts = selecting.flatMap((p) =>
    p.rules.filter((r) => r.direction === direction).map((r) => ruleVerdict(p, r, remote, dest, q)),
  );
  const allowedBy = verdicts.filter((v) => v.matched);
  const misses = (v: RuleVerdict): number => (v.peerMatched ? 0 : 1) + (v.portMatched ? 0 : 1);
  const closest = allowedBy.length > 0 ? [] : [...verdicts].sort((a, b) => misses(a) - misses(b)).slice(0, 5);
  const allowed = allowedBy.length > 0;
  const via = allowedBy.map((v) => `${v.policy} ${direction}[${v.rule}]`).join(', ');
  const summary = allowed
    ? `${subject.key} is isolated for ${direction} by ${policies.join(', ')}; allowed by ${via}`
    : `${subject.key} is isolated for ${direction} by ${policies.join(', ')} and ${verdicts.length === 0 ? `no policy has an ${direction} rule` : `none of the ${verdicts.length} ${direction} rule(s) of ${policies.length === 1 ? 'that policy' : 'those policies'} matches`}`;
  return {
    direction,
    pod: subject.key,
    enforced: true,
    isolated: true,
    policies,
    allowed,
    allowedBy,
    closest,
    summary,
  };
}

/** Explains one connection attempt from q.from to q.to on q.protocol/q.port. */
export function explain(engine: PolicyReader, q: ExplainQuery): Explanation {
  if (!Number.isInteger(q.port) || q.port < 1 || q.port > 65535)
    throw new ExplainError(`--port ${q.port} is out of range (1-65535)`);
  const from = side(engine, q.from, 'from');
  const to = side(engine, q.to, 'to');
  if (from.address && to.address)
    throw new ExplainError(`neither ${q.from} nor ${q.to} is a pod: weir enforces policy at pods only`);
  if (from.key === to.key) {
    // A pod reaching its own address stays on its loopback: no veth, no enforcement.
    const self = (direction: Direction): DirectionExplanation => ({
      direction,
      pod: from.key,
      enforced: false,
      isolated: false,
      policies: [],
      allowed: true,
      allowedBy: [],
      closest: [],
      summary: `traffic of ${from.key} to itself stays inside the pod and is never enforced`,
    });
    return {
      from: q.from,
      to: q.to,
      port: q.port,
      protocol: q.protocol,
      allowed: true,
      egress: self('egress'),
      ingress: self('ingress'),
    };
  }
  const egress = explainDirection(engine, 'egress', from, to, to, q);
  const ingress = explainDirection(engine, 'ingress', to, from, to, q);
  return {
    from: q.from,
    to: q.to,
    port: q.port,
    protocol: q.protocol,
    allowed: egress.allowed && ingress.allowed,
    egress,
    ingress,
  };
}

/** Text for people: one verdict line, then each direction and its reasons. */
export function formatExplanation(e: Explanation): string {
  const lines = [`${e.from} -> ${e.to} ${e.protocol}/${e.port}: ${e.allowed ? 'ALLOWED' : 'DENIED'}`];
  for (const d of [e.egress, e.ingress]) {
    lines.push(`  ${d.direction} (enforced at ${d.pod}): ${d.allowed ? 'allowed' : 'denied'} - ${d.summary}`);
    for (const v of d.allowedBy)
      lines.push(`    allowed by ${v.policy} ${v.direction}[${v.rule}]: ${v.reasons.join('; ')}`);
    for (const v of d.closest)
      lines.push(`    closest: ${v.policy} ${v.direction}[${v.rule}]: ${v.reasons.join('; ')}`);
  }
  return lines.join('\n');
}
