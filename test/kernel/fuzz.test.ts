/**
 * Fuzz: 100,000+ random, mutated and truncated packets through both programs.
 * Nothing crashes, every verdict is pass or drop, and every packet is counted
 * exactly once: forwarded under a match kind, dropped under a drop reason.
 * Needs root (CI runs it as root).
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, TC_ACT_SHOT, endpoint, entry, state } from './fixture.js';
import { ipv4, ipv6, tcp, udp, sctp, icmp, ipOf, arp, TCP_SYN, TCP_ACK } from './packets.js';
import { Protocol, Verdict, DropReason, Match } from '../../maps/abi.js';
import { testRun } from '../../maps/test-run.js';

const PACKETS_PER_PROGRAM = 50_000;
const A = 'fz/a';
const B = 'fz/b';

/** Deterministic PRNG so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

let fx: KernelFixture;
beforeAll(() => {
  fx = KernelFixture.create('f', [A, B]);
  fx.rec.applyFull(
    state(
      [
        endpoint(A, ['10.210.3.1', 'fd00:210:3::1'], 4001, {
          ingressIsolated: true,
          egressIsolated: true,
          entries: [
            entry({ direction: 'ingress', remoteIdentity: 4002, protocol: 'TCP', port: 80, endPort: 80 }),
            entry({ direction: 'ingress', remoteIdentity: 0, protocol: 'UDP', port: 1000, endPort: 2000 }),
            entry({ direction: 'egress', remoteIdentity: 4002, protocol: 'ANY', port: 0, endPort: 0 }),
          ],
        }),
        endpoint(B, ['10.210.3.2', 'fd00:210:3::2'], 4002),
      ],
      [
        ['10.210.3.1/32', 4001],
        ['10.210.3.2/32', 4002],
        ['fd00:210:3::1/128', 4001],
        ['fd00:210:3::2/128', 4002],
        ['10.210.0.0/16', 5000],
      ],
    ),
  );
});
afterAll(() => fx?.close());

function seeds(r: () => number): Buffer[] {
  const port = () => Math.floor(r() * 65536);
  const a4 = () => `10.210.3.${1 + Math.floor(r() * 4)}`;
  const a6 = () => `fd00:210:3::${1 + Math.floor(r() * 4)}`;
  const l4 = (p: number) =>
    p === Protocol.TCP
      ? tcp(port(), r() < 0.5 ? 80 : port(), r() < 0.5 ? TCP_SYN : TCP_ACK)
      : p === Protocol.UDP
        ? udp(port(), 1000 + Math.floor(r() * 1200))
        : p === Protocol.SCTP
          ? sctp(port(), port())
          : p === Protocol.ICMP || p === Protocol.ICMPV6
            ? icmp(
                Math.floor(r() * 256),
                Math.floor(r() * 4),
                port(),
                ipOf(ipv4(a4(), a4(), Protocol.TCP, tcp(port(), 80))).subarray(0, 28),
              )
            : Buffer.alloc(Math.floor(r() * 32));
  const protos = [Protocol.TCP, Protocol.UDP, Protocol.SCTP, Protocol.ICMP, Protocol.ICMPV6, 47, 0, 43, 44, 60];
  const p = protos[Math.floor(r() * protos.length)];
  return [
    ipv4(a4(), a4(), p, l4(p), {
      id: port(),
      moreFragments: r() < 0.1,
      fragOffset: r() < 0.1 ? Math.floor(r() * 100) : 0,
    }),
    ipv6(a6(), a6(), p, l4(p), {
      hopByHop: r() < 0.2,
      frag: r() < 0.1 ? { offset: Math.floor(r() * 50), more: r() < 0.5, id: port() } : undefined,
    }),
    arp(),
  ];
}

/** A packet the kernel accepts for a test run (Ethernet + a whole IP header for IP ethertypes). */
function mutate(r: () => number): Buffer {
  const choice = r();
  if (choice < 0.1) {
    // pure noise, with an IP ethertype half of the time
    const b = Buffer.alloc(54 + Math.floor(r() * 150));
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
    if (r() < 0.5) b.writeUInt16BE(r() < 0.5 ? 0x0800 : 0x86dd, 12);
    return b;
  }
  const all = seeds(r);
  let b = Buffer.from(all[Math.floor(r() * all.length)]);
  if (choice < 0.55) {
    const flips = 1 + Math.floor(r() * 6);
    for (let i = 0; i < flips; i++) b[14 + Math.floor(r() * (b.length - 14))] = Math.floor(r() * 256);
  }
  if (r() < 0.4) {
    const min = b.readUInt16BE(12) === 0x86dd ? 54 : b.readUInt16BE(12) === 0x0800 ? 34 : 14;
    b = b.subarray(0, min + Math.floor(r() * Math.max(1, b.length - min)));
  }
  return b;
}

describe('fuzz', () => {
  it(`${2 * PACKETS_PER_PROGRAM} random and truncated packets: pass or drop with a reason, each counted once`, async () => {
    const r = rng(0x5eed);
    const totalBefore = fx.dp.counters().reduce((s, c) => s + c.packets, 0n);
    const byRet = new Map<number, number>();
    let sent = 0;
    for (const prog of ['fromPod', 'toPod'] as const) {
      const fd = fx.dp.program(prog);
      const ifindex = fx.ifindex.get(A);
      for (let i = 0; i < PACKETS_PER_PROGRAM; i++) {
        const pkt = mutate(r);
        const ret = testRun(fd, pkt, { ifindex }).retval;
        byRet.set(ret, (byRet.get(ret) ?? 0) + 1);
        sent++;
        if (i % 5000 === 0) await fx.takeEvents(); // keep the ring buffer drained
      }
    }
    expect([...byRet.keys()].every((k) => k === TC_ACT_OK || k === TC_ACT_SHOT)).toBe(true);
    const rows = fx.dp.counters();
    const total = rows.reduce((s, c) => s + c.packets, 0n) - totalBefore;
    expect(total).toBe(BigInt(sent));
    const dropped = rows.filter((c) => c.verdict === Verdict.DROPPED);
    expect(dropped.every((c) => c.reason !== DropReason.NONE && !c.reasonName.startsWith('UNKNOWN'))).toBe(true);
    expect(dropped.reduce((s, c) => s + c.packets, 0n)).toBe(BigInt(byRet.get(TC_ACT_SHOT) ?? 0));
    const forwarded = rows.filter((c) => c.verdict === Verdict.FORWARDED);
    expect(forwarded.every((c) => c.reason !== Match.NONE && !c.reasonName.startsWith('UNKNOWN'))).toBe(true);
    // the mix really exercised both outcomes and several drop reasons
    expect(byRet.get(TC_ACT_OK) ?? 0).toBeGreaterThan(1000);
    expect(new Set(dropped.map((c) => c.reason)).size).toBeGreaterThanOrEqual(4);
    const evs = await fx.takeEvents();
    expect(evs.every((e) => (e.verdict === Verdict.DROPPED) === (e.dropReason !== DropReason.NONE))).toBe(true);
  }, 120000);
});
