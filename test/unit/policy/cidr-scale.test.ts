/**
 * CIDR selectors at scale: a policy of 16,000 ipBlocks (nested prefixes, except-lists, both
 * families) compiles to exactly the entries an independent reference gives. The reference finds,
 * for every prefix the policy names, the ipBlocks containing it by masking the prefix to every
 * shorter length and looking the result up by text — no trie, no pairwise containment test.
 * Then a churn of policies against the selector cache, checked against pairwise containment.
 */
import { formatPrefix, parsePrefix } from '../../../agent/ipcache/cidr.js';
import type { Prefix } from '../../../agent/ipcache/cidr.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { SelectorCache } from '../../../agent/policy/selector-cache.js';
import type { CidrPeer } from '../../../agent/policy/compiled.js';
import { namespaceObj, np, podObj } from './model.js';
import { Rng } from './random.js';

const PORTS = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007];

function pfx(s: string): Prefix {
  const p = parsePrefix(s);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

/** A random prefix outside the test pod network (10.244/16, fd00:10:244::/56), often nested in a few shared /8s. */
function randomPrefix(r: Rng): string {
  if (r.chance(0.15)) {
    const groups = Array.from({ length: 4 }, () => r.int(0x10000).toString(16));
    return formatPrefix(pfx(`2001:db8:${groups.join(':')}::/${32 + r.int(97)}`));
  }
  const a = r.pick([20, 21, 172, 198]);
  return formatPrefix(pfx(`${a}.${r.int(256)}.${r.int(256)}.${r.int(256)}/${8 + r.int(25)}`));
}

function width(p: Prefix): number {
  return p.family === 4 ? 32 : 128;
}

/** Every prefix of the same family containing p (p included), as canonical text. */
function ancestorsByMasking(p: Prefix): string[] {
  const w = BigInt(width(p));
  const out: string[] = [];
  for (let b = 0; b <= p.bits; b++) {
    const m = ((1n << w) - 1n) ^ ((1n << (w - BigInt(b))) - 1n);
    out.push(formatPrefix({ family: p.family, addr: p.addr & m, bits: b }));
  }
  return out;
}

describe('CIDR selectors at scale', () => {
  it('a 16,000-ipBlock policy compiles to the entries of an independent reference', () => {
    const r = new Rng(11);
    type Block = { cidr: string; except: string[] };
    const rules: Block[][] = PORTS.map(() => []);
    for (let i = 0; i < 16_000; i++) {
      const cidr = randomPrefix(r);
      const p = pfx(cidr);
      const except: string[] = [];
      if (p.bits < width(p) - 4 && r.chance(0.2)) {
        for (let k = 0; k < 1 + r.int(3); k++) {
          const extra = p.bits + 1 + r.int(Math.min(12, width(p) - p.bits));
          const host = p.addr | (BigInt(r.int(1 << 30)) & ((1n << BigInt(width(p) - p.bits)) - 1n));
          except.push(
            formatPrefix(
              pfx(`${formatPrefix({ family: p.family, addr: host, bits: width(p) }).split('/')[0]}/${extra}`),
            ),
          );
        }
      }
      rules[i % PORTS.length]!.push({ cidr, except });
    }
    const policy = np('x', 'big', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: rules.map((blocks, i) => ({
        to: blocks.map((b) => ({ ipBlock: b.except.length ? b : { cidr: b.cidr } })),
        ports: [{ protocol: 'TCP', port: PORTS[i] }],
      })),
    });
    const engine = new PolicyEngine({ nodeName: 'node-1', clusterPodCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'] });
    engine.upsertAll([namespaceObj('x'), podObj('x', 'a'), policy]);
    expect(engine.errors()).toEqual([]);
    const state = engine.snapshot();
    const cidrOf = new Map([...state.ipcache.values()].map((e) => [e.identity, e.cidr]));
    const got = new Map<number, Set<string>>(PORTS.map((p) => [p, new Set()]));
    for (const e of state.endpoints.get('x/a')!.entries)
      got.get(e.port)!.add(cidrOf.get(e.remoteIdentity) ?? `id ${e.remoteIdentity}`);

    // Reference: every named prefix (cidrs and excepts), matched through its masked ancestors.
    const named = new Set<string>();
    for (const blocks of rules) for (const b of blocks) for (const c of [b.cidr, ...b.except]) named.add(c);
    const want = new Map<number, Set<string>>(PORTS.map((p) => [p, new Set()]));
    const ancestors = new Map([...named].map((q) => [q, ancestorsByMasking(pfx(q))]));
    rules.forEach((blocks, i) => {
      const byCidr = new Map<string, Set<string>[]>();
      for (const b of blocks) {
        const l = byCidr.get(b.cidr) ?? [];
        l.push(new Set(b.except));
        byCidr.set(b.cidr, l);
      }
      for (const q of named) {
        const anc = ancestors.get(q)!;
        const ok = anc.some((a) => byCidr.get(a)?.some((ex) => !anc.some((x) => ex.has(x))));
        if (ok) want.get(PORTS[i]!)!.add(q);
      }
    });
    let total = 0;
    for (const p of PORTS) {
      expect([...got.get(p)!].sort()).toEqual([...want.get(p)!].sort());
      total += want.get(p)!.size;
    }
    // The reference is not trivially small or trivially everything.
    expect(total).toBeGreaterThan(16_000);
    expect(total).toBeLessThan(named.size * PORTS.length);
  });

  it('the selector cache agrees with pairwise containment through churn', () => {
    const r = new Rng(5);
    const cache = new SelectorCache();
    const live = new Map<number, Prefix>();
    const peers = new Map<string, CidrPeer>();
    const contains = (o: Prefix, i: Prefix): boolean =>
      o.family === i.family &&
      o.bits <= i.bits &&
      i.addr >> BigInt(width(o) - o.bits) === o.addr >> BigInt(width(o) - o.bits);
    let nextId = 1 << 24;
    for (let step = 0; step < 3000; step++) {
      const op = r.int(4);
      if (op === 0 || live.size < 5) {
        const p = pfx(randomPrefix(r));
        const id = ++nextId;
        live.set(id, p);
        cache.cidrLive(id, p);
      } else if (op === 1) {
        const id = [...live.keys()][r.int(live.size)]!;
        live.delete(id);
        cache.cidrDead(id);
      } else if (op === 2 || peers.size < 3) {
        const cidr = pfx(randomPrefix(r));
        const except = [...live.values()].filter((x) => contains(cidr, x) && x.bits > cidr.bits).slice(0, 2);
        const key = `cidr:${formatPrefix(cidr)} except ${except.map(formatPrefix).join(',')}`;
        const peer: CidrPeer = { kind: 'cidr', key, cidr, except };
        peers.set(key, peer);
        cache.acquire(peer, 'p');
      } else {
        const key = [...peers.keys()][r.int(peers.size)]!;
        peers.delete(key);
        cache.release(key, 'p');
      }
    }
    let matched = 0;
    for (const [key, peer] of peers) {
      const want = [...live]
        .filter(([, p]) => contains(peer.cidr, p) && !peer.except.some((e) => contains(e, p)))
        .map(([id]) => id)
        .sort();
      expect([...cache.get(key)!.ids].sort()).toEqual(want);
      matched += want.length;
    }
    expect(matched).toBeGreaterThan(0);
  });
});
