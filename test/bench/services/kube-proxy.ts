/**
 * kube-proxy's two Linux modes, written as kube-proxy writes them, for the services bench:
 *
 * - iptables: nat PREROUTING/OUTPUT -> KUBE-SERVICES, one rule per Service port matching
 *   (VIP, protocol, port) and jumping to its KUBE-SVC-* chain; that chain picks an endpoint with
 *   `-m statistic --mode random --probability 1/k` rules, each jumping to a KUBE-SEP-* chain that
 *   DNATs to the endpoint. A new connection walks KUBE-SERVICES rule by rule; established ones are
 *   translated by conntrack and never see the chains.
 * - nftables: table ip kube-proxy, a `service-ips` verdict map keyed by (VIP, protocol, port)
 *   jumping to a per-Service-port chain that picks an endpoint with `numgen random mod k vmap`,
 *   and per-endpoint chains that DNAT: one map lookup per new connection.
 *
 * Both mark for masquerade as kube-proxy does (traffic from outside the cluster CIDR, and a pod
 * reaching itself); chain names are kube-proxy's (a prefix and 16 characters of base32 over a
 * SHA-256 of the Service port's name and protocol). Everything lives in the bench's node namespace.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { runIn } from '../sidebyside/exec.js';
import type { BenchFrontend, Catalog } from './catalog.js';

/** The cluster CIDR kube-proxy is told (--cluster-cidr): traffic from elsewhere is masqueraded. */
export const CLUSTER_CIDR = '10.0.0.0/8';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** kube-proxy's chain-name hash: 16 base32 characters of SHA-256 over the name and protocol. */
export function chainHash(name: string, protocol: string): string {
  return base32(
    createHash('sha256')
      .update(name + protocol.toLowerCase())
      .digest(),
  ).slice(0, 16);
}

function sepName(f: BenchFrontend, i: number): string {
  const b = f.backends[i]!;
  return `KUBE-SEP-${chainHash(`${f.name}:${b.ip}:${b.port}`, f.protocol)}`;
}

/** The nat table as one iptables-restore input. */
export function renderIptables(c: Catalog): string {
  const chains = [':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-POSTROUTING - [0:0]'];
  const rules = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  for (const f of c.frontends) {
    const svc = `KUBE-SVC-${chainHash(f.name, f.protocol)}`;
    const p = f.protocol.toLowerCase();
    chains.push(`:${svc} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -d ${f.vip}/32 -p ${p} -m comment --comment "${f.name} cluster IP" -m ${p} --dport ${f.port} -j ${svc}`,
      `-A ${svc} ! -s ${CLUSTER_CIDR} -d ${f.vip}/32 -p ${p} -m comment --comment "${f.name} cluster IP" -m ${p} --dport ${f.port} -j KUBE-MARK-MASQ`,
    );
    const k = f.backends.length;
    f.backends.forEach((b, i) => {
      const sep = sepName(f, i);
      chains.push(`:${sep} - [0:0]`);
      const comment = `-m comment --comment "${f.name} -> ${b.ip}:${b.port}"`;
      const left = k - i;
      rules.push(
        left > 1
          ? `-A ${svc} ${comment} -m statistic --mode random --probability ${(1 / left).toFixed(11)} -j ${sep}`
          : `-A ${svc} ${comment} -j ${sep}`,
        `-A ${sep} -s ${b.ip}/32 -m comment --comment "${f.name}" -j KUBE-MARK-MASQ`,
        `-A ${sep} -p ${p} -m comment --comment "${f.name}" -m ${p} -j DNAT --to-destination ${b.ip}:${b.port}`,
      );
    });
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  chains.push(':KUBE-NODEPORTS - [0:0]');
  return ['*nat', ...chains, ...rules, 'COMMIT', ''].join('\n');
}

const NFT_TABLE = 'kube-proxy';

/** The table as one `nft -f` input, as kube-proxy's nftables mode writes it. */
export function renderNftables(c: Catalog): string {
  const L = [
    `table ip ${NFT_TABLE} {`,
    '  chain mark-for-masquerade {',
    '    mark set mark or 0x4000',
    '  }',
    '  chain masquerading {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    mark and 0x4000 == 0 return',
    '    mark set mark xor 0x4000',
    '    masquerade fully-random',
    '  }',
  ];
  const elements: string[] = [];
  for (const f of c.frontends) {
    const h = chainHash(f.name, f.protocol);
    const p = f.protocol.toLowerCase();
    const svc = `service-${h}`;
    const eps = f.backends.map((_, i) => `endpoint-${sepName(f, i).slice('KUBE-SEP-'.length)}`);
    elements.push(`${f.vip} . ${p} . ${f.port} : goto ${svc}`);
    f.backends.forEach((b, i) => {
      L.push(
        `  chain ${eps[i]} {`,
        `    ip saddr ${b.ip} jump mark-for-masquerade`,
        `    meta l4proto ${p} dnat to ${b.ip}:${b.port}`,
        '  }',
      );
    });
    L.push(
      `  chain ${svc} {`,
      `    ip daddr ${f.vip} ${p} dport ${f.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`,
      eps.length > 1
        ? `    numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${e}`).join(', ')} }`
        : `    goto ${eps[0]}`,
      '  }',
    );
  }
  L.push(
    '  map service-ips {',
    '    type ipv4_addr . inet_proto . inet_service : verdict',
    ...(elements.length ? [`    elements = { ${elements.join(',\n      ')} }`] : []),
    '  }',
    '  chain services {',
    '    ip daddr . meta l4proto . th dport vmap @service-ips',
    '  }',
    '  chain nat-prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    jump services',
    '  }',
    '  chain nat-output {',
    '    type nat hook output priority -100; policy accept;',
    '    jump services',
    '  }',
    '}',
    '',
  );
  return L.join('\n');
}

/** Number of rules (-A lines) in an iptables-restore input. */
export function countIptablesRules(input: string): number {
  return input.split('\n').filter((l) => l.startsWith('-A ')).length;
}

export async function loadIptables(netns: string, c: Catalog): Promise<number> {
  const t0 = performance.now();
  await runIn(netns, 'iptables-nft-restore', [], { input: renderIptables(c), timeoutMs: 300_000 });
  return performance.now() - t0;
}

export async function clearIptables(netns: string): Promise<void> {
  const tables = (await runIn(netns, 'nft', ['list', 'tables'], { timeoutMs: 30_000 })).stdout;
  if (/^table ip nat$/m.test(tables))
    await runIn(netns, 'nft', ['delete', 'table', 'ip', 'nat'], { timeoutMs: 60_000 });
}

export async function loadNftables(netns: string, c: Catalog): Promise<number> {
  const t0 = performance.now();
  await runIn(netns, 'nft', ['-f', '-'], { input: renderNftables(c), timeoutMs: 300_000 });
  return performance.now() - t0;
}

export async function clearNftables(netns: string): Promise<void> {
  const tables = (await runIn(netns, 'nft', ['list', 'tables'], { timeoutMs: 30_000 })).stdout;
  if (new RegExp(`^table ip ${NFT_TABLE}$`, 'm').test(tables))
    await runIn(netns, 'nft', ['delete', 'table', 'ip', NFT_TABLE], { timeoutMs: 60_000 });
}
