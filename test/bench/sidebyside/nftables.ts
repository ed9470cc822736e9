/**
 * The strongest non-eBPF peer the bench compares against: the bench's NetworkPolicy rules
 * compiled to nftables as a careful nftables design would write them — conntrack first, then ONE
 * verdict-map lookup per new connection, keyed by (peer address, protocol, port), whatever the
 * number of rules:
 *
 *   table inet weir_bench_np
 *     map to_b  { type ipv4_addr . inet_proto . inet_service : verdict; elements = { peer . tcp . port : accept, … } }
 *     chain forward (hook forward): ct state established,related accept; ct state invalid drop;
 *                                   oifname TARGET_IF goto to_target
 *     chain to_target: ip saddr . meta l4proto . th dport vmap @to_b; drop
 *
 * Everything lives in the bench's node namespace, in a table of its own.
 */
import { performance } from 'node:perf_hooks';
import { runIn } from './exec.js';
import type { Pod } from './topology.js';
import { changeOneRule, type RuleSet } from './rules.js';
import type { Dataplane } from './dataplane.js';
import type { Topology } from './topology.js';

const TABLE = 'weir_bench_np';
const MAP = 'to_target';

function elements(set: RuleSet, policy?: string): string[] {
  return set.rules
    .filter((r) => policy === undefined || r.policy === policy)
    .flatMap((r) => r.ports.map((p) => `${r.peerIp} . ${r.protocol.toLowerCase()} . ${p} : accept`));
}

/** The whole table, as one `nft -f` input (the table is created fresh). */
export function renderTable(set: RuleSet, target: Pod): string {
  const els = elements(set);
  return [
    `table inet ${TABLE} {`,
    `  map ${MAP} {`,
    '    type ipv4_addr . inet_proto . inet_service : verdict',
    ...(els.length ? [`    elements = { ${els.join(',\n      ')} }`] : []),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    ct state established,related accept',
    '    ct state invalid drop',
    `    oifname "${target.hostIf}" goto to_target`,
    '  }',
    '  chain to_target {',
    `    ip saddr . meta l4proto . th dport vmap @${MAP}`,
    '    drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The elements that came and went when one policy changed: one `nft -f` transaction. */
export function renderPolicyUpdate(before: RuleSet, after: RuleSet, policy: string): string {
  const old = new Set(elements(before, policy));
  const now = new Set(elements(after, policy));
  const gone = [...old].filter((e) => !now.has(e)).map((e) => e.replace(/ : accept$/, ''));
  const added = [...now].filter((e) => !old.has(e));
  const L: string[] = [];
  if (gone.length) L.push(`delete element inet ${TABLE} ${MAP} { ${gone.join(', ')} }`);
  if (added.length) L.push(`add element inet ${TABLE} ${MAP} { ${added.join(', ')} }`);
  return `${L.join('\n')}\n`;
}

async function nft(netns: string, input: string): Promise<number> {
  const t0 = performance.now();
  await runIn(netns, 'nft', ['-f', '-'], { input, timeoutMs: 120_000 });
  return performance.now() - t0;
}

async function clear(netns: string): Promise<void> {
  const tables = (await runIn(netns, 'nft', ['list', 'tables'], { timeoutMs: 30_000 })).stdout;
  if (new RegExp(`^table inet ${TABLE}$`, 'm').test(tables))
    await runIn(netns, 'nft', ['delete', 'table', 'inet', TABLE], { timeoutMs: 30_000 });
}

export function nftablesDataplane(opts: { topo: Topology; targetPod: string }): Dataplane {
  const { topo } = opts;
  const target = topo.pod(opts.targetPod);
  let current: RuleSet | undefined;
  return {
    mode: 'nftables',
    async enable(set) {
      await clear(topo.node);
      current = set;
      return nft(topo.node, renderTable(set, target));
    },
    async changeOne() {
      if (!current) throw new Error('changeOne() before enable()');
      const { set, changed } = changeOneRule(current);
      const ms = await nft(topo.node, renderPolicyUpdate(current, set, set.rules[changed]!.policy));
      current = set;
      return ms;
    },
    async disable() {
      current = undefined;
      await clear(topo.node);
    },
    close: () => clear(topo.node),
  };
}
