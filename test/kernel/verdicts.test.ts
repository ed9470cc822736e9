/**
 * Every verdict path of from_pod/to_pod through BPF_PROG_TEST_RUN, with maps
 * written by the Syncer: the verdict, the flow event and the counters.
 * Needs root (CI runs it as root).
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, TC_ACT_SHOT, endpoint, entry, state } from './fixture.js';
import { ipv4, ipv6, tcp, udp, sctp, icmp, ipOf, arp, eth, TCP_SYN, TCP_ACK } from './packets.js';
import { inspectDatapath } from '../../agent/datapath/inspect.js';
import { decodeEndpoint, encodeEndpointKey } from '../../maps/codecs/endpoint.js';
import { Direction, Verdict, Match, DropReason, FlowFlag, Identity, Protocol } from '../../maps/abi.js';

const A = 'ns/a';
const B = 'ns/b';
const C = 'ns/c';
const IP = {
  a: '10.210.1.1',
  b: '10.210.1.2',
  c: '10.210.1.3',
  d: '10.210.1.4',
  world: '10.210.9.9',
  node: '10.210.0.1',
  cidr: '10.210.8.7',
};
const IP6 = { a: 'fd00:210::1', b: 'fd00:210::2', world: 'fd00:210:9::9' };
const ID = { a: 1000, b: 1001, c: 1002, d: 1003, cidr: (Identity.LOCAL_SCOPE | 5) >>> 0 };
const { INGRESS, EGRESS } = Direction;
const { FORWARDED, DROPPED } = Verdict;

const aState = endpoint(A, [IP.a, IP6.a], ID.a, {
  ingressIsolated: true,
  entries: [
    entry({ direction: 'ingress', remoteIdentity: ID.b, protocol: 'TCP', port: 80, endPort: 80 }),
    entry({ direction: 'ingress', remoteIdentity: ID.b, protocol: 'UDP', port: 0, endPort: 0 }),
    entry({ direction: 'ingress', remoteIdentity: 0, protocol: 'TCP', port: 443, endPort: 443 }),
    entry({ direction: 'ingress', remoteIdentity: ID.c, protocol: 'TCP', port: 8000, endPort: 8100 }),
    entry({ direction: 'ingress', remoteIdentity: ID.d, protocol: 'ANY', port: 0, endPort: 0 }),
    entry({ direction: 'ingress', remoteIdentity: 0, protocol: 'SCTP', port: 9000, endPort: 9000 }),
  ],
});
const bState = endpoint(B, [IP.b, IP6.b], ID.b, {
  ingressIsolated: true,
  egressIsolated: true,
  entries: [entry({ direction: 'egress', remoteIdentity: ID.a, protocol: 'TCP', port: 80, endPort: 80 })],
});
const cState = endpoint(C, ['10.210.1.5'], 1005, { egressIsolated: true });
const desired = state(
  [aState, bState, cState],
  [
    [`${IP.a}/32`, ID.a],
    [`${IP.b}/32`, ID.b],
    [`${IP.c}/32`, ID.c],
    [`${IP.d}/32`, ID.d],
    [`${IP6.a}/128`, ID.a],
    [`${IP6.b}/128`, ID.b],
    ['10.210.8.0/24', ID.cidr],
  ],
);

let fx: KernelFixture;

beforeAll(() => {
  fx = KernelFixture.create('k', [A, B, C]);
  fx.rec.setNodeAddresses([IP.node]);
  const st = fx.rec.resyncTo(desired);
  expect(st.errors).toEqual([]);
});
afterAll(() => fx?.close());
beforeEach(async () => {
  await fx.takeEvents();
});

/** Runs one packet and checks verdict, counter delta and (optionally) the single event. */
async function expectVerdict(
  prog: 'fromPod' | 'toPod',
  ep: string,
  pkt: Buffer,
  want: { ret: number; verdict: number; reason: number; event?: Partial<Record<string, unknown>> | null },
): Promise<void> {
  const dir = prog === 'toPod' ? INGRESS : EGRESS;
  const before = fx.counter(dir, want.verdict, want.reason);
  expect(fx.run(prog, ep, pkt)).toBe(want.ret);
  expect(fx.counter(dir, want.verdict, want.reason) - before).toBe(1n);
  const evs = await fx.takeEvents();
  if (want.event === null) expect(evs).toEqual([]);
  else if (want.event) {
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      direction: dir,
      verdict: want.verdict,
      ifindex: fx.ifindex.get(ep),
      len: pkt.length,
      ...want.event,
    });
  }
}

describe('new connections: allow by the most specific matching entry', () => {
  it('exact identity + port: L3_L4, one NEW event, then ESTABLISHED without events', async () => {
    const syn = ipv4(IP.b, IP.a, Protocol.TCP, tcp(40000, 80, TCP_SYN));
    await expectVerdict('toPod', A, syn, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: {
        match: Match.L3_L4,
        dropReason: 0,
        srcIdentity: ID.b,
        dstIdentity: ID.a,
        srcAddr: IP.b,
        dstAddr: IP.a,
        srcPort: 40000,
        dstPort: 80,
        protocol: 6,
        family: 4,
        flags: FlowFlag.NEW,
        tcpFlags: TCP_SYN,
      },
    });
    const ack = ipv4(IP.b, IP.a, Protocol.TCP, tcp(40000, 80, TCP_ACK));
    await expectVerdict('toPod', A, ack, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
  });

  it("a flow's time is the clock (CLOCK_MONOTONIC) of its packet, to within a tick of the coarse clock", async () => {
    const before = process.hrtime.bigint();
    expect(fx.run('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(40010, 80, TCP_SYN)))).toBe(TC_ACT_OK);
    const after = process.hrtime.bigint();
    const evs = await fx.takeEvents();
    expect(evs).toHaveLength(1);
    // the datapath stamps its conntrack clock (jiffies); the reader adds the offset clock_sample
    // measured: the monotonic clock as of the last tick (at most 10 ms ago at CONFIG_HZ >= 100)
    expect(evs[0]!.tsNs).toBeLessThanOrEqual(after);
    expect(evs[0]!.tsNs).toBeGreaterThan(before - 10_000_000n);
  });

  it('identity + protocol, every port (protocol-only rule): L3_ONLY', async () => {
    await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.UDP, udp(5000, 5353)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_ONLY,
      event: { match: Match.L3_ONLY, dstPort: 5353 },
    });
  });

  it('any identity + port: L4_ONLY, remote resolved to world', async () => {
    await expectVerdict('toPod', A, ipv4(IP.world, IP.a, Protocol.TCP, tcp(40001, 443)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L4_ONLY,
      event: { match: Match.L4_ONLY, srcIdentity: Identity.WORLD },
    });
  });

  it('port range (endPort): inside allowed, one past the end denied', async () => {
    await expectVerdict('toPod', A, ipv4(IP.c, IP.a, Protocol.TCP, tcp(40002, 8050)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: { match: Match.L3_L4, srcIdentity: ID.c },
    });
    await expectVerdict('toPod', A, ipv4(IP.c, IP.a, Protocol.TCP, tcp(40002, 8101)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { dropReason: DropReason.POLICY_DENIED, match: Match.NONE, flags: FlowFlag.NEW },
    });
  });

  it('identity with any protocol lets ICMP echo through; its reply passes by conntrack', async () => {
    await expectVerdict('toPod', A, ipv4(IP.d, IP.a, Protocol.ICMP, icmp(8, 0, 0x1234)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_ONLY,
      event: { match: Match.L3_ONLY, srcPort: 8, dstPort: 0 },
    });
    await expectVerdict('fromPod', A, ipv4(IP.a, IP.d, Protocol.ICMP, icmp(0, 0, 0x1234)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
  });

  it('SCTP by port: allowed on 9000, denied on 9001', async () => {
    await expectVerdict('toPod', A, ipv4(IP.world, IP.a, Protocol.SCTP, sctp(5000, 9000)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L4_ONLY,
      event: { protocol: Protocol.SCTP, dstPort: 9000 },
    });
    await expectVerdict('toPod', A, ipv4(IP.world, IP.a, Protocol.SCTP, sctp(5000, 9001)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { protocol: Protocol.SCTP },
    });
  });

  it('denied: no rule matches; a CIDR address resolves to its node-local identity', async () => {
    await expectVerdict('toPod', A, ipv4(IP.cidr, IP.a, Protocol.TCP, tcp(40003, 22)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { dropReason: DropReason.POLICY_DENIED, srcIdentity: ID.cidr, dstPort: 22 },
    });
  });

  it('not isolated in a direction: NOT_ISOLATED', async () => {
    await expectVerdict('fromPod', A, ipv4(IP.a, IP.world, Protocol.UDP, udp(6000, 53)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.NOT_ISOLATED,
      event: { match: Match.NOT_ISOLATED, dstIdentity: Identity.WORLD },
    });
  });

  it('IPv6: allowed by identity + port, denied on another port', async () => {
    await expectVerdict('toPod', A, ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(41000, 80)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: { family: 6, srcAddr: IP6.b, dstAddr: IP6.a, srcIdentity: ID.b },
    });
    await expectVerdict('toPod', A, ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(41000, 81), { hopByHop: true }), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { family: 6, dstPort: 81 },
    });
  });
});

/** IPv6 -> AH (24 bytes: next header TCP, payload length 4) -> TCP. */
function ipv6Ah(src: string, dst: string, l4: Buffer): Buffer {
  const plain = ipv6(src, dst, Protocol.TCP, l4);
  const ah = Buffer.alloc(24);
  ah[0] = Protocol.TCP;
  ah[1] = 4; // (4 + 2) * 4 = 24 bytes; sized as a TCP-typed header would be 40
  ah.writeUInt32BE(0x1234, 4); // SPI
  ah.writeUInt32BE(1, 8); // sequence
  const ip6 = Buffer.from(plain.subarray(0, 54));
  ip6[20] = 51; // next header: AH
  ip6.writeUInt16BE(24 + l4.length, 18);
  return Buffer.concat([ip6, ah, l4]);
}

describe('IPv6 extension headers: each sized by its own type', () => {
  it('IPv6 -> AH -> TCP is judged by its real port: 22 denied even when the bytes 16 further look like port 80', async () => {
    // TCP to port 22 whose bytes 16 further read as a TCP header to port 80 (checksum 42000,
    // urgent pointer 80, a data offset of 5 in the payload), where a parser that sized AH as a
    // TCP-typed header (40 bytes instead of 24) would look
    const payload = Buffer.alloc(16);
    payload[8] = 5 << 4;
    const l4 = tcp(42000, 22, TCP_SYN, payload);
    l4.writeUInt16BE(42000, 16);
    l4.writeUInt16BE(80, 18);
    const pkt = ipv6Ah(IP6.b, IP6.a, l4);
    await expectVerdict('toPod', A, pkt, {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { srcPort: 42000, dstPort: 22, protocol: Protocol.TCP },
    });
    // and the same through AH to port 80 is allowed by the port-80 rule
    await expectVerdict('toPod', A, ipv6Ah(IP6.b, IP6.a, tcp(42001, 80, TCP_SYN)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: { dstPort: 80, protocol: Protocol.TCP },
    });
  });
});

describe('stateful: replies, related ICMP errors, revocation', () => {
  const syn = ipv4(IP.b, IP.a, Protocol.TCP, tcp(42000, 80, TCP_SYN));
  const synAck = ipv4(IP.a, IP.b, Protocol.TCP, tcp(80, 42000, TCP_SYN | TCP_ACK));

  it('a connection allowed by B egress gets its replies into B though B ingress allows nothing', async () => {
    await expectVerdict('fromPod', B, syn, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: { direction: EGRESS },
    });
    await expectVerdict('toPod', B, synAck, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
    // the same packet as a new connection into B is denied
    await expectVerdict('toPod', B, ipv4(IP.a, IP.b, Protocol.TCP, tcp(80, 42999, TCP_SYN)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: {},
    });
  });

  it('a client port below its server port: forward packets and replies still pass as ESTABLISHED (either lookup order)', async () => {
    // C (10.210.1.3) from port 7000 to A's 8050: each forward packet comes from the lower port
    await expectVerdict('toPod', A, ipv4(IP.c, IP.a, Protocol.TCP, tcp(7000, 8050, TCP_SYN)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: { flags: FlowFlag.NEW },
    });
    for (let i = 0; i < 2; i++) {
      await expectVerdict('fromPod', A, ipv4(IP.a, IP.c, Protocol.TCP, tcp(8050, 7000, TCP_SYN | TCP_ACK)), {
        ret: TC_ACT_OK,
        verdict: FORWARDED,
        reason: Match.ESTABLISHED,
        event: null,
      });
      await expectVerdict('toPod', A, ipv4(IP.c, IP.a, Protocol.TCP, tcp(7000, 8050, TCP_ACK)), {
        ret: TC_ACT_OK,
        verdict: FORWARDED,
        reason: Match.ESTABLISHED,
        event: null,
      });
    }
    // and from a port C has no connection on, the same ACK is judged as a packet (allowed, no entry)
    await expectVerdict('toPod', A, ipv4(IP.c, IP.a, Protocol.TCP, tcp(7001, 8050, TCP_ACK)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: null,
    });
  });

  it("another pod sending with the connection's addresses is dropped as INVALID_SOURCE, counted, and the connection is untouched", async () => {
    const spoof = ipv4(IP.b, IP.a, Protocol.TCP, tcp(42000, 80, TCP_ACK));
    const cId = decodeEndpoint(fx.dp.syncerMaps().endpoints.lookup(encodeEndpointKey(fx.ifindex.get(C)!))!).endpointId;
    // the event carries the packet's own addresses and the endpoint of the interface that sent it
    await expectVerdict('fromPod', C, spoof, {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.INVALID_SOURCE,
      event: { srcAddr: IP.b, dstAddr: IP.a, dstPort: 80, endpointId: cId, srcIdentity: 1005, dstIdentity: ID.a },
    });
    await expectVerdict('fromPod', B, spoof, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
  });

  it('source validation: own addresses pass, any other is INVALID_SOURCE; IPv6 ND from link-local and :: passes', async () => {
    // A (not egress-isolated) with its own IPv4 and IPv6 source
    await expectVerdict('fromPod', A, ipv4(IP.a, IP.world, Protocol.UDP, udp(5000, 53)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.NOT_ISOLATED,
    });
    await expectVerdict('fromPod', A, ipv6(IP6.a, IP6.world, Protocol.UDP, udp(5000, 53)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.NOT_ISOLATED,
    });
    for (const pkt of [
      ipv4('10.210.1.99', IP.world, Protocol.UDP, udp(5000, 53)),
      ipv6('fd00:210::99', IP6.world, Protocol.UDP, udp(5000, 53)),
      ipv4(IP.a, IP.world, Protocol.ICMP, icmp(8, 0, 7)).fill(0, 26, 27), // 0.x.x.x source
      ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(1, 80, TCP_SYN)),
      // neighbour discovery from another pod's global address is validated like anything else
      ipv6(IP6.b, 'ff02::1:ff00:1', Protocol.ICMPV6, icmp(135, 0, 0)),
    ]) {
      await expectVerdict('fromPod', A, pkt, {
        ret: TC_ACT_SHOT,
        verdict: DROPPED,
        reason: DropReason.INVALID_SOURCE,
        event: {},
      });
    }
    // C has no IPv6 address: every IPv6 packet it sends is refused
    await expectVerdict('fromPod', C, ipv6(IP6.a, IP6.world, Protocol.UDP, udp(5000, 53)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.INVALID_SOURCE,
    });
    // ND and MLD from link-local or the unspecified address, and ARP, pass
    for (const pkt of [
      ipv6('fe80::1234', 'ff02::1:ff00:1', Protocol.ICMPV6, icmp(135, 0, 0)),
      ipv6('::', 'ff02::1:ff00:1', Protocol.ICMPV6, icmp(135, 0, 0)),
      ipv6('fe80::1234', 'ff02::16', Protocol.ICMPV6, icmp(143, 0, 0)),
      arp(),
    ]) {
      await expectVerdict('fromPod', A, pkt, { ret: TC_ACT_OK, verdict: FORWARDED, reason: Match.ALWAYS, event: null });
    }
    // but link-local is no licence for other traffic
    await expectVerdict('fromPod', A, ipv6('fe80::1234', IP6.b, Protocol.TCP, tcp(1, 80, TCP_SYN)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.INVALID_SOURCE,
    });
  });

  it("a copy of the connection's packet on another endpoint (a flooding bridge) leaves the connection alone", async () => {
    const fwd = ipv4(IP.b, IP.a, Protocol.TCP, tcp(40000, 80, TCP_ACK));
    // C is not isolated for ingress: the copy passes there as C's own (non-opening) packet
    await expectVerdict('toPod', C, fwd, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.NOT_ISOLATED,
      event: null,
    });
    await expectVerdict('toPod', A, fwd, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
  });

  it('only a SYN opens a TCP connection: a pod answering with no connection opens none for its peer', async () => {
    // A egress is not isolated: its stray ACK passes, judged, and opens nothing
    await expectVerdict('fromPod', A, ipv4(IP.a, IP.world, Protocol.TCP, tcp(80, 47000, TCP_ACK)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.NOT_ISOLATED,
      event: null,
    });
    // so the world's packet to A:80 is not a reply: A's ingress allows only B on port 80
    await expectVerdict('toPod', A, ipv4(IP.world, IP.a, Protocol.TCP, tcp(47000, 80, TCP_ACK)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { srcIdentity: Identity.WORLD },
    });
    // an allowed ACK with no connection passes each time by policy, never as ESTABLISHED
    const ack = ipv4(IP.b, IP.a, Protocol.TCP, tcp(47001, 80, TCP_ACK));
    await expectVerdict('toPod', A, ack, { ret: TC_ACT_OK, verdict: FORWARDED, reason: Match.L3_L4, event: null });
    await expectVerdict('toPod', A, ack, { ret: TC_ACT_OK, verdict: FORWARDED, reason: Match.L3_L4, event: null });
  });

  it('an ICMP error quoting the connection passes as RELATED; one quoting nothing known is denied', async () => {
    const quoted = ipOf(syn).subarray(0, 28);
    await expectVerdict('toPod', B, ipv4(IP.a, IP.b, Protocol.ICMP, icmp(3, 3, 0, quoted)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.RELATED,
      event: null,
    });
    const unknown = ipOf(ipv4(IP.b, IP.a, Protocol.TCP, tcp(42001, 80))).subarray(0, 28);
    await expectVerdict('toPod', B, ipv4(IP.a, IP.b, Protocol.ICMP, icmp(3, 3, 0, unknown)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { protocol: Protocol.ICMP, srcPort: 3, dstPort: 3 },
    });
    const quoted6 = ipOf(ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(41000, 80))).subarray(0, 48);
    fx.run('fromPod', B, ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(41000, 80))); // denied: B egress has no IPv6 rule for port 80? it has (identity a)
    await fx.takeEvents();
    await expectVerdict('toPod', B, ipv6(IP6.a, IP6.b, Protocol.ICMPV6, icmp(1, 4, 0, quoted6)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.RELATED,
      event: null,
    });
  });

  it('removing the allow entry cuts the established connection on its next packet (POLICY_REVOKED), both ways', async () => {
    const fwd = ipv4(IP.world, IP.a, Protocol.TCP, tcp(43000, 443, TCP_ACK));
    await expectVerdict('toPod', A, ipv4(IP.world, IP.a, Protocol.TCP, tcp(43000, 443, TCP_SYN)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L4_ONLY,
    });
    await expectVerdict('toPod', A, fwd, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
    const e443 = aState.entries[2];
    const st = fx.rec.syncDiff({
      endpointsChanged: [],
      endpointsRemoved: [],
      ipcacheUpserted: [],
      ipcacheRemoved: [],
      entriesAdded: new Map(),
      entriesRemoved: new Map([[A, [e443]]]),
    });
    expect(st.errors).toEqual([]);
    await expectVerdict('toPod', A, fwd, {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_REVOKED,
      event: { dropReason: DropReason.POLICY_REVOKED, dstPort: 443 },
    });
    await expectVerdict('fromPod', A, ipv4(IP.a, IP.world, Protocol.TCP, tcp(443, 43000, TCP_ACK)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_REVOKED,
      event: { flags: FlowFlag.REPLY },
    });
    // allowed again: the connection is restamped and flows
    fx.rec.syncDiff({
      endpointsChanged: [],
      endpointsRemoved: [],
      ipcacheUpserted: [],
      ipcacheRemoved: [],
      entriesAdded: new Map([[A, [e443]]]),
      entriesRemoved: new Map(),
    });
    await expectVerdict('toPod', A, fwd, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L4_ONLY,
      event: { flags: FlowFlag.NEW },
    });
    await expectVerdict('toPod', A, fwd, {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
  });
});

describe('conntrack maps: IPv4 under the compact key, IPv6 under the full one', () => {
  it("each family's connection lands in its own map, and both are listed with their addresses", async () => {
    const before4 = [...fx.dp.map('conntrack4').keys()].length;
    const before6 = [...fx.dp.map('conntrack').keys()].length;
    await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(42100, 80, TCP_SYN)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
    });
    expect([...fx.dp.map('conntrack4').keys()].length - before4).toBe(1);
    await expectVerdict('toPod', A, ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(42101, 80, TCP_SYN)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
    });
    expect([...fx.dp.map('conntrack').keys()].length - before6).toBe(1);
    // the next packets of both find their entries
    await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(42100, 80, TCP_ACK)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
    await expectVerdict('toPod', A, ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(42101, 80, TCP_ACK)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
    const view = inspectDatapath(fx.pinRoot, { connections: 10_000 });
    const srcs = view.connections.map((c) => `${c.direction} ${c.src} > ${c.dst} ${c.protocol}`);
    expect(srcs).toEqual(
      expect.arrayContaining([
        `ingress ${IP.b}:42100 > ${IP.a}:80 TCP`,
        `ingress [${IP6.b}]:42101 > [${IP6.a}]:80 TCP`,
      ]),
    );
  });
});

describe("fragments: later fragments take the first fragment's ports", () => {
  it('IPv4: first fragment allowed, later fragment follows it; an unknown later fragment is FRAG_UNKNOWN', async () => {
    await expectVerdict(
      'toPod',
      A,
      ipv4(IP.b, IP.a, Protocol.UDP, udp(5001, 5353, Buffer.alloc(64)), { id: 77, moreFragments: true }),
      {
        ret: TC_ACT_OK,
        verdict: FORWARDED,
        reason: Match.L3_ONLY,
        event: { flags: FlowFlag.NEW | FlowFlag.FRAGMENT },
      },
    );
    await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.UDP, Buffer.alloc(40), { id: 77, fragOffset: 9 }), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ESTABLISHED,
      event: null,
    });
    await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.UDP, Buffer.alloc(40), { id: 78, fragOffset: 9 }), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.FRAG_UNKNOWN,
      event: { dropReason: DropReason.FRAG_UNKNOWN, flags: FlowFlag.FRAGMENT },
    });
  });

  it('IPv6: a denied first fragment keeps its later fragments denied by policy', async () => {
    const f = (offset: number, more: boolean, l4: Buffer) =>
      ipv6(IP6.world, IP6.a, Protocol.TCP, l4, { frag: { offset, more, id: 99 } });
    await expectVerdict('toPod', A, f(0, true, tcp(44000, 22)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
    });
    await expectVerdict('toPod', A, f(3, false, Buffer.alloc(24)), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason: DropReason.POLICY_DENIED,
      event: { dstPort: 22, srcPort: 44000 },
    });
  });
});

describe('host traffic, always-allowed and unenforced packets', () => {
  it('the node reaches its pods (switch on by default), not once switched off', async () => {
    await expectVerdict('toPod', A, ipv4(IP.node, IP.a, Protocol.TCP, tcp(45000, 10250)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.HOST,
      event: { match: Match.HOST, srcIdentity: Identity.HOST },
    });
    fx.dp.configure({ hostAllow: false });
    try {
      await expectVerdict('toPod', A, ipv4(IP.node, IP.a, Protocol.TCP, tcp(45001, 10250)), {
        ret: TC_ACT_SHOT,
        verdict: DROPPED,
        reason: DropReason.POLICY_DENIED,
        event: { srcIdentity: Identity.HOST },
      });
    } finally {
      fx.dp.configure({ hostAllow: true });
    }
  });

  it('allowed flows switched off: an allowed new connection is counted without an event, a denied one keeps its event', async () => {
    fx.dp.configure({ hostAllow: true, allowedFlows: false });
    try {
      await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(40100, 80, TCP_SYN)), {
        ret: TC_ACT_OK,
        verdict: FORWARDED,
        reason: Match.L3_L4,
        event: null,
      });
      await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(40100, 80, TCP_ACK)), {
        ret: TC_ACT_OK,
        verdict: FORWARDED,
        reason: Match.ESTABLISHED,
        event: null,
      });
      await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(40101, 81, TCP_SYN)), {
        ret: TC_ACT_SHOT,
        verdict: DROPPED,
        reason: DropReason.POLICY_DENIED,
        event: { srcPort: 40101, dstPort: 81, flags: FlowFlag.NEW },
      });
    } finally {
      fx.dp.configure({ hostAllow: true });
    }
    await expectVerdict('toPod', A, ipv4(IP.b, IP.a, Protocol.TCP, tcp(40102, 80, TCP_SYN)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.L3_L4,
      event: { srcPort: 40102, dstPort: 80, flags: FlowFlag.NEW },
    });
  });

  it('neighbour discovery and ARP always pass, without events', async () => {
    await expectVerdict('toPod', A, ipv6(IP6.world, IP6.a, Protocol.ICMPV6, icmp(135, 0, 0)), {
      ret: TC_ACT_OK,
      verdict: FORWARDED,
      reason: Match.ALWAYS,
      event: null,
    });
    await expectVerdict('toPod', A, arp(), { ret: TC_ACT_OK, verdict: FORWARDED, reason: Match.ALWAYS, event: null });
  });

  it('an interface weir is attached to but holds no record for drops every packet with NO_ENDPOINT', async () => {
    const lo = 1; // weir never writes a record for loopback
    const before = fx.counter(Direction.INGRESS, Verdict.DROPPED, DropReason.NO_ENDPOINT);
    const { testRun } = await import('../../maps/test-run.js');
    const packets = [ipv4(IP.world, IP.a, Protocol.TCP, tcp(1, 22)), ipv4(IP.world, IP.a, Protocol.UDP, udp(1, 53))];
    for (const p of packets) expect(testRun(fx.dp.program('toPod'), p, { ifindex: lo }).retval).toBe(TC_ACT_SHOT);
    // ARP and neighbour discovery pass, as on every endpoint (the host must find the pod to reach it at all)
    expect(testRun(fx.dp.program('toPod'), arp(), { ifindex: lo }).retval).toBe(TC_ACT_OK);
    expect(fx.counter(Direction.INGRESS, Verdict.DROPPED, DropReason.NO_ENDPOINT) - before).toBe(2n);
    const events = await fx.takeEvents();
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ ifindex: lo, endpointId: 0, dropReason: DropReason.NO_ENDPOINT, dstPort: 22 });
  });
});

describe('truncated and malformed packets are dropped with their own reason', () => {
  const cases: Array<[string, () => Buffer, number]> = [
    // (BPF_PROG_TEST_RUN itself refuses frames shorter than Ethernet + a whole IP header)
    [
      'IPv4 total length shorter than its IHL',
      () => ipv4(IP.b, IP.a, Protocol.TCP, Buffer.alloc(0), { ihl: 15, totLen: 20 }),
      DropReason.MALFORMED,
    ],
    [
      'IPv4 options beyond the packet',
      () => {
        const p = ipv4(IP.b, IP.a, Protocol.TCP, Buffer.alloc(4), { ihl: 15, totLen: 60 });
        return p;
      },
      DropReason.TRUNCATED,
    ],
    ['TCP header cut', () => ipv4(IP.b, IP.a, Protocol.TCP, tcp(46000, 80).subarray(0, 10)), DropReason.TRUNCATED],
    [
      'IPv4 total length beyond the packet',
      () => ipv4(IP.b, IP.a, Protocol.TCP, tcp(46000, 80), { totLen: 400 }),
      DropReason.TRUNCATED,
    ],
    ['IPv4 IHL below 5', () => ipv4(IP.b, IP.a, Protocol.TCP, tcp(46000, 80), { ihl: 3 }), DropReason.MALFORMED],
    ['IPv4 version 5', () => ipv4(IP.b, IP.a, Protocol.TCP, tcp(46000, 80), { version: 5 }), DropReason.MALFORMED],
    ['UDP header cut', () => ipv4(IP.b, IP.a, Protocol.UDP, Buffer.alloc(4)), DropReason.TRUNCATED],
    [
      'IPv6 extension header cut',
      () => {
        const p = ipv6(IP6.b, IP6.a, Protocol.TCP, Buffer.alloc(0), { hopByHop: true });
        return p.subarray(0, p.length - 4);
      },
      DropReason.TRUNCATED,
    ],
    [
      'IPv6 payload length beyond the packet',
      () => ipv6(IP6.b, IP6.a, Protocol.TCP, tcp(1, 80), { payloadLen: 900 }),
      DropReason.TRUNCATED,
    ],
    [
      'ICMP error whose quote is cut',
      () => ipv4(IP.a, IP.b, Protocol.ICMP, icmp(3, 1, 0, Buffer.from([0x45, 0, 0]))),
      DropReason.TRUNCATED,
    ],
    ['not IP, not ARP (LLDP)', () => eth(0x88cc, Buffer.alloc(40)), DropReason.UNSUPPORTED_L3],
  ];
  it.each(cases)('%s', async (_name, make, reason) => {
    await expectVerdict('toPod', A, make(), {
      ret: TC_ACT_SHOT,
      verdict: DROPPED,
      reason,
      event: { dropReason: reason },
    });
  });
});

describe('per-family world identities', () => {
  it('an IPv6 packet to an outside address is denied when only world-ipv4 is allowed', async () => {
    const toWorld4 = entry({
      direction: 'egress',
      remoteIdentity: Identity.WORLD_IPV4,
      protocol: 'ANY',
      port: 0,
      endPort: 0,
    });
    const noWorld = {
      endpointsChanged: [],
      endpointsRemoved: [],
      ipcacheUpserted: [],
      ipcacheRemoved: [],
      entriesAdded: new Map(),
      entriesRemoved: new Map(),
    };
    const st = fx.rec.syncDiff({
      ...noWorld,
      ipcacheUpserted: [
        { cidr: '0.0.0.0/0', identity: Identity.WORLD_IPV4 },
        { cidr: '::/0', identity: Identity.WORLD_IPV6 },
      ],
      entriesAdded: new Map([[B, [toWorld4]]]),
    });
    try {
      expect(st.errors).toEqual([]);
      await expectVerdict('fromPod', B, ipv4(IP.b, IP.world, Protocol.TCP, tcp(44000, 8080, TCP_SYN)), {
        ret: TC_ACT_OK,
        verdict: FORWARDED,
        reason: Match.L3_ONLY,
        event: { dstIdentity: Identity.WORLD_IPV4, family: 4 },
      });
      await expectVerdict('fromPod', B, ipv6(IP6.b, IP6.world, Protocol.TCP, tcp(44001, 8080, TCP_SYN)), {
        ret: TC_ACT_SHOT,
        verdict: DROPPED,
        reason: DropReason.POLICY_DENIED,
        event: { dropReason: DropReason.POLICY_DENIED, dstIdentity: Identity.WORLD_IPV6, family: 6 },
      });
    } finally {
      expect(
        fx.rec.syncDiff({
          ...noWorld,
          ipcacheRemoved: ['0.0.0.0/0', '::/0'],
          entriesRemoved: new Map([[B, [toWorld4]]]),
        }).errors,
      ).toEqual([]);
    }
  });
});

describe("the reader's in-place decoding (runs last: every record this file's packets made)", () => {
  it('decodes every real record of this file as the per-record decoder does', () => {
    expect(fx.decodeMismatches).toEqual([]);
    expect(fx.decodedRecords).toBeGreaterThan(20);
  });
});
