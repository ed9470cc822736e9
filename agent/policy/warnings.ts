/**
 * Policy warnings, one job of the policy compiler: what a policy's author should know although
 * the policy compiles — rules its policyTypes ignore (from compiled.ts), and ipBlocks that cover
 * the pod network or pod IPs, which select no pods here (pods are matched by identity only).
 */
import { formatPrefix, parsePrefix, prefixContains, prefixesOverlap } from '../ipcache/cidr.js';
import type { Prefix } from '../ipcache/cidr.js';
import type { Pod } from '../store/types.js';
import type { CompiledPolicy, PolicyProblem } from './compiled.js';
import { cmp } from './entries.js';

export interface WarningInputs {
  policies: Iterable<CompiledPolicy>;
  podCIDRs: Prefix[];
  /** Managed pods (those with an identity), by key. */
  pods: Iterable<[string, Pod]>;
}

export function policyWarnings(inputs: WarningInputs): PolicyProblem[] {
  const out: PolicyProblem[] = [];
  const { podCIDRs } = inputs;
  let podIPs: Array<[string, Prefix]> | undefined;
  const podsInside = (p: Prefix): string[] => {
    podIPs ??= [...inputs.pods].flatMap(([k, pod]) =>
      pod.ips.map((ip) => [k, parsePrefix(ip)] as const).filter((x): x is [string, Prefix] => typeof x[1] !== 'string'),
    );
    const keys = podIPs.filter(([, h]) => prefixContains(p, h)).map(([k]) => k);
    return keys.sort();
  };
  for (const compiled of [...inputs.policies].sort((a, b) => cmp(a.key, b.key))) {
    const np = compiled.source;
    out.push(...compiled.warnings);
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
          const coveredPods = covered.length > 0 ? [] : podsInside(p);
          if (covered.length > 0 || coveredPods.length > 0) {
            const what =
              covered.length > 0
                ? `the pod network ${covered.join(', ')}`
                : `pod IPs (${coveredPods.slice(0, 3).join(', ')}${coveredPods.length > 3 ? ', ...' : ''})`;
            out.push({
              policy: compiled.key,
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
