/**
 * The iptables dataplane the bench compares against: the chains a Calico-style iptables
 * dataplane writes for the bench's policies, with an ipset per peer selector as Calico writes them
 * (`-m set --match-set cali40s:… src`; every rule of the bench names its own peer, so each set
 * holds one address and each rule still costs one match per new connection).
 *
 *   FORWARD -> cali-FORWARD -> cali-from-wl-dispatch -> cali-fw-IF  (pod egress: profile allows)
 *                           -> cali-to-wl-dispatch   -> cali-tw-IF  (pod ingress: policies in order)
 *   cali-tw-IF: established/related accepted by conntrack first, invalid dropped, then one jump
 *   per policy chain cali-pi-POLICY (one mark-and-return pair per rule), then "no policy passed"
 *   drop. Accept is the 0x10000 mark, checked back in FORWARD, as Calico does.
 *
 * Everything lives in the bench's node namespace; the host's own rules are never touched.
 */
import { performance } from 'node:perf_hooks';
import { run, runIn } from './exec.js';
import type { Pod } from './topology.js';
import type { PeerRule, RuleSet } from './rules.js';

const MARK_ACCEPT = '0x10000/0x10000';
const MARK_PASS = '0x20000';
const PROFILE_CHAIN = 'cali-pro-kns.bench';
const PROFILE_IN_CHAIN = 'cali-pri-kns.bench';

export type IptablesBackend = 'nft' | 'legacy';

export interface CalicoTarget {
  /** Every pod of the node (each gets its from/to workload chains). */
  pods: Pod[];
  /** The pod the rule set isolates for ingress. */
  target: Pod;
  /** Interface wildcard Calico would write as cali+. */
  ifaceWildcard: string;
}

/** Calico names a policy chain cali-pi-_<hash>; iptables limits chain names to 28 characters. */
export function policyChain(policy: string): string {
  return `cali-pi-_${policy}`.slice(0, 28);
}

function comment(text: string): string {
  return `-m comment --comment "cali:${text}"`;
}

/** The ipset of a rule's peer selector (ipset names are at most 31 characters). */
export function ipsetName(r: PeerRule): string {
  return `cali40s:${r.policy}-${r.index}`.slice(0, 31);
}

/** Every selector's ipset, as one `ipset restore` input. */
export function renderIpsets(set: RuleSet): string {
  return `${set.rules
    .flatMap((r) => [
      `create ${ipsetName(r)} hash:ip family inet hashsize 1024 maxelem 1048576`,
      `add ${ipsetName(r)} ${r.peerIp}`,
    ])
    .join('\n')}\n`;
}

/** Loads ipsets into the namespace; resolves to the wall time of ipset restore, ms. */
export async function restoreIpsets(netns: string, set: RuleSet): Promise<number> {
  const t0 = performance.now();
  await runIn(netns, 'ipset', ['restore'], { input: renderIpsets(set), timeoutMs: 120_000 });
  return performance.now() - t0;
}

function ruleLines(chain: string, r: PeerRule): string[] {
  const proto = r.protocol.toLowerCase();
  return [
    `-A ${chain} -p ${proto} -m set --match-set ${ipsetName(r)} src -m multiport --dports ${r.ports.join(',')} ${comment(`${r.policy}-${r.index}`)} -j MARK --set-xmark ${MARK_ACCEPT}`,
    `-A ${chain} -m mark --mark ${MARK_ACCEPT} ${comment(`${r.policy}-${r.index}-ret`)} -j RETURN`,
  ];
}

function policyChainLines(set: RuleSet, policy: string): string[] {
  const chain = policyChain(policy);
  return set.rules.filter((r) => r.policy === policy).flatMap((r) => ruleLines(chain, r));
}

function workloadChain(dir: 'fw' | 'tw', pod: Pod): string {
  return `cali-${dir}-${pod.hostIf}`;
}

/** The whole filter table, as one iptables-restore input. */
export function renderRuleset(set: RuleSet, t: CalicoTarget): string {
  const chains: string[] = [
    'cali-FORWARD',
    'cali-from-wl-dispatch',
    'cali-to-wl-dispatch',
    PROFILE_CHAIN,
    PROFILE_IN_CHAIN,
  ];
  for (const p of t.pods) chains.push(workloadChain('fw', p), workloadChain('tw', p));
  for (const pol of set.policies) chains.push(policyChain(pol));
  const L: string[] = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (const c of chains) L.push(`:${c} - [0:0]`);
  L.push(`-A FORWARD ${comment('forward')} -j cali-FORWARD`);
  L.push(`-A FORWARD -m mark --mark ${MARK_ACCEPT} ${comment('policy-accepted')} -j ACCEPT`);
  L.push(`-A cali-FORWARD ${comment('clear-marks')} -j MARK --set-xmark 0x0/0xe0000`);
  L.push(`-A cali-FORWARD -i ${t.ifaceWildcard} ${comment('from-wl')} -j cali-from-wl-dispatch`);
  L.push(`-A cali-FORWARD -o ${t.ifaceWildcard} ${comment('to-wl')} -j cali-to-wl-dispatch`);
  for (const p of t.pods)
    L.push(`-A cali-from-wl-dispatch -i ${p.hostIf} ${comment(`fw-${p.name}`)} -g ${workloadChain('fw', p)}`);
  L.push(`-A cali-from-wl-dispatch ${comment('unknown-interface')} -j DROP`);
  for (const p of t.pods)
    L.push(`-A cali-to-wl-dispatch -o ${p.hostIf} ${comment(`tw-${p.name}`)} -g ${workloadChain('tw', p)}`);
  L.push(`-A cali-to-wl-dispatch ${comment('unknown-interface')} -j DROP`);
  for (const c of [PROFILE_CHAIN, PROFILE_IN_CHAIN]) {
    L.push(`-A ${c} ${comment('profile-allow')} -j MARK --set-xmark ${MARK_ACCEPT}`);
  }
  for (const p of t.pods) {
    for (const dir of ['fw', 'tw'] as const) {
      const c = workloadChain(dir, p);
      L.push(`-A ${c} -m conntrack --ctstate RELATED,ESTABLISHED ${comment('ct-established')} -j ACCEPT`);
      L.push(`-A ${c} -m conntrack --ctstate INVALID ${comment('ct-invalid')} -j DROP`);
      L.push(`-A ${c} ${comment('clear-accept')} -j MARK --set-xmark 0x0/0x10000`);
      if (dir === 'tw' && p.name === t.target.name) {
        L.push(`-A ${c} ${comment('start-of-policies')} -j MARK --set-xmark 0x0/${MARK_PASS}`);
        for (const pol of set.policies) {
          L.push(`-A ${c} -m mark --mark 0x0/${MARK_PASS} ${comment(`jump-${pol}`)} -j ${policyChain(pol)}`);
          L.push(`-A ${c} -m mark --mark ${MARK_ACCEPT} ${comment(`ret-${pol}`)} -j RETURN`);
        }
        L.push(`-A ${c} -m mark --mark 0x0/${MARK_PASS} ${comment('no-policy-passed')} -j DROP`);
      } else {
        L.push(`-A ${c} ${comment('profile')} -j ${dir === 'fw' ? PROFILE_CHAIN : PROFILE_IN_CHAIN}`);
        L.push(`-A ${c} -m mark --mark ${MARK_ACCEPT} ${comment('profile-ret')} -j RETURN`);
        L.push(`-A ${c} ${comment('no-profile-matched')} -j DROP`);
      }
    }
  }
  for (const pol of set.policies) L.push(...policyChainLines(set, pol));
  L.push('COMMIT', '');
  return L.join('\n');
}

/** What Calico writes when one policy changes: that policy's chain, rewritten in place. */
export function renderPolicyUpdate(set: RuleSet, policy: string): string {
  return ['*filter', `:${policyChain(policy)} - [0:0]`, ...policyChainLines(set, policy), 'COMMIT', ''].join('\n');
}

/** Number of iptables rules (-A lines) in a restore input. */
export function countRules(restoreInput: string): number {
  return restoreInput.split('\n').filter((l) => l.startsWith('-A ')).length;
}

function restoreCmd(backend: IptablesBackend): string {
  return backend === 'nft' ? 'iptables-nft-restore' : 'iptables-legacy-restore';
}

/** Loads a restore input into the namespace; resolves to the wall time of iptables-restore, ms. */
export async function restore(
  netns: string,
  input: string,
  backend: IptablesBackend,
  noflush = false,
): Promise<number> {
  const t0 = performance.now();
  await runIn(netns, restoreCmd(backend), noflush ? ['--noflush'] : [], { input, timeoutMs: 120_000 });
  return performance.now() - t0;
}

/**
 * Removes every rule and chain the bench loaded, and with nft the table itself, so that no
 * netfilter hook and no conntrack stays behind for the other modes.
 */
export async function clear(netns: string, backend: IptablesBackend): Promise<void> {
  if (backend === 'nft') {
    const tables = (await runIn(netns, 'nft', ['list', 'tables'], { timeoutMs: 30_000 })).stdout;
    if (/^table ip filter$/m.test(tables))
      await runIn(netns, 'nft', ['delete', 'table', 'ip', 'filter'], { timeoutMs: 30_000 });
  } else {
    await restore(netns, '*filter\nCOMMIT\n', 'legacy');
  }
  // the sets, once no rule refers to them (ipsets are per network namespace: only the bench's)
  await runIn(netns, 'ipset', ['destroy'], { timeoutMs: 60_000 });
}

/** Checks that the tools exist before a long run starts. */
export async function checkTools(backend: IptablesBackend): Promise<void> {
  const tools = [restoreCmd(backend), 'ipset', ...(backend === 'nft' ? ['nft'] : [])];
  for (const t of tools) {
    await run('sh', ['-c', `command -v ${t}`]).catch(() => {
      throw new Error(`${t} is missing: install the Debian packages iptables, ipset and nftables (make deps)`);
    });
  }
}
