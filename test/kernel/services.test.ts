/**
 * Services in the datapath through BPF_PROG_TEST_RUN, with maps written by the Syncer: a pod's
 * packet to a frontend is translated to a backend on from_pod before policy (judged against the
 * backend's identity and port), the backend's reply is translated back on the client's to_pod,
 * ClientIP affinity, hairpin, the no-backend drop, SCTP, a ClusterIP inside an ipBlock, and
 * NodePort on the node's external interface, with the masquerade of connections given to a
 * backend on another node under externalTrafficPolicy Cluster.
 * Every output packet is parsed and its IPv4 header and TCP/UDP checksums are recomputed from
 * scratch here (RFC 1071 over the pseudo-header and segment), independently of the kernel's
 * incremental updates. Needs root (CI runs it as root).
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, TC_ACT_SHOT, endpoint, entry } from './fixture.js';
import { icmp, ipOf, ipv4, ipv6, tcp, udp, sctp, TCP_SYN, TCP_ACK, TCP_FIN } from './packets.js';
import { readAddr } from '../../maps/codecs/addr.js';
import { testRun } from '../../maps/test-run.js';
import {
  Direction,
  Verdict,
  DropReason,
  FlowFlag,
  Identity,
  Match,
  Protocol,
  HAIRPIN_ADDRESS,
  NatFlag,
  NatPort,
} from '../../maps/abi.js';
import { decodeNatEntry, encodeNatEntry } from '../../maps/codecs/service.js';
import { frontendKey, type DesiredState, type ServiceFrontend } from '../../agent/desired.js';

const TC_ACT_REDIRECT = 7;

const CLIENT = 'ns/client';
const CLIENT2 = 'ns/client2';
const B1 = 'ns/b1';
const B2 = 'ns/b2';
const OTHER = 'ns/other';
const NP = 'ns/np';
const EXT = 'node/ext'; // the node's external interface (no endpoint)
const IP = {
  client: '10.211.1.1',
  client2: '10.211.1.5',
  b1: '10.211.1.2',
  b2: '10.211.1.3',
  other: '10.211.1.4',
  vipWeb: '10.96.77.10',
  vipDns: '10.96.77.53',
  vipOther: '10.96.77.20',
  vipEmpty: '10.96.77.30',
  vipAff: '10.96.77.40',
  vipSelf: '10.96.77.50',
  vipSctp: '10.96.77.60',
  inBlock: '10.96.99.99',
  node: '10.211.0.1',
  np: '10.211.1.6',
  outside: '10.215.0.9',
  outsider: '10.216.0.9',
  outside2: '10.215.0.10',
  remote: '10.212.2.2', // a backend pod on another node
};
const IP6 = {
  client: 'fd00:211::1',
  b1: 'fd00:211::2',
  b2: 'fd00:211::3',
  vipWeb: 'fd00:96::10',
  node: 'fd00:211::a',
  remote: 'fd00:212:2::2',
  outside: 'fd00:215::9',
  outside2: 'fd00:215::10',
};
const ID = {
  client: 2000,
  backend: 2001,
  other: 2002,
  np: 2003,
  cidr: (Identity.LOCAL_SCOPE | 9) >>> 0,
  outside: (Identity.LOCAL_SCOPE | 10) >>> 0,
};

const be = (ip: string, port: number) => ({ ip, port, ready: true, serving: true, terminating: false });
const fe = (
  service: string,
  address: string,
  port: number,
  protocol: ServiceFrontend['protocol'],
  backends: ReturnType<typeof be>[],
  affinityTimeoutSeconds = 0,
): ServiceFrontend => ({
  service,
  scope: 'clusterIP',
  address,
  port,
  protocol,
  portName: '',
  affinityTimeoutSeconds,
  backends,
  externalLocal: false,
});

const remoteBe = (ip: string, port: number) => ({ ...be(ip, port), nodeName: 'node-1', remote: true });
function nodePort(
  service: string,
  address: string,
  port: number,
  protocol: ServiceFrontend['protocol'],
  backends: ReturnType<typeof be>[],
): ServiceFrontend {
  return { ...fe(service, address, port, protocol, backends), scope: 'nodePort' };
}

const FRONTENDS = [
  fe('ns/web', IP.vipWeb, 80, 'TCP', [be(IP.b1, 8080), be(IP.b2, 8080)]),
  fe('ns/dns', IP.vipDns, 53, 'UDP', [be(IP.b1, 5353), be(IP.b2, 5353)]),
  fe('ns/web', IP6.vipWeb, 80, 'TCP', [be(IP6.b1, 8080), be(IP6.b2, 8080)]),
  fe('ns/web', IP6.vipWeb, 53, 'UDP', [be(IP6.b1, 5353), be(IP6.b2, 5353)]),
  fe('ns/other', IP.vipOther, 80, 'TCP', [be(IP.other, 8080)]),
  fe('ns/empty', IP.vipEmpty, 80, 'TCP', []),
  fe('ns/aff', IP.vipAff, 80, 'TCP', [be(IP.b1, 8080), be(IP.b2, 8080), be(IP.other, 8080)], 1),
  fe('ns/self', IP.vipSelf, 9000, 'TCP', [be(IP.client, 9000)]),
  fe('ns/sctp', IP.vipSctp, 7000, 'SCTP', [be(IP.b1, 7001)]),
  fe('ns/sctp', IP.vipSctp, 7100, 'SCTP', [be(IP.b1, 7100)]),
  { ...fe('ns/np', '0.0.0.0', 30080, 'TCP', [be(IP.np, 8080)]), scope: 'nodePort' as const, externalLocal: true },
  // externalTrafficPolicy Cluster: backends on another node (masqueraded) and on this one (not)
  nodePort('ns/far', '0.0.0.0', 30090, 'TCP', [remoteBe(IP.remote, 8080)]),
  nodePort('ns/far', '0.0.0.0', 30053, 'UDP', [remoteBe(IP.remote, 5353)]),
  nodePort('ns/far', '::', 30090, 'TCP', [remoteBe(IP6.remote, 8080)]),
  nodePort('ns/far', '::', 30053, 'UDP', [remoteBe(IP6.remote, 5353)]),
  nodePort('ns/near', '0.0.0.0', 30091, 'TCP', [be(IP.np, 8080)]),
  nodePort('ns/far', '0.0.0.0', 30132, 'SCTP', [remoteBe(IP.remote, 30132)]),
  // Local with a backend flagged remote (the compiler never makes one): the datapath still keeps the source
  { ...nodePort('ns/farlocal', '0.0.0.0', 30092, 'TCP', [remoteBe(IP.remote, 8080)]), externalLocal: true },
];

const egress = (remoteIdentity: number, protocol: 'TCP' | 'UDP' | 'SCTP', port: number) =>
  entry({ direction: 'egress', remoteIdentity, protocol, port, endPort: port });

/** The client: default-deny egress and ingress; egress to tier=backend on 8080/TCP, 5353/UDP, 7000-7100/SCTP, to itself on 9000, and an ipBlock over the Service range on 80. */
const clientState = endpoint(CLIENT, [IP.client, IP6.client], ID.client, {
  ingressIsolated: true,
  egressIsolated: true,
  entries: [
    egress(ID.backend, 'TCP', 8080),
    egress(ID.backend, 'UDP', 5353),
    entry({ direction: 'egress', remoteIdentity: ID.backend, protocol: 'SCTP', port: 7000, endPort: 7100 }),
    egress(ID.client, 'TCP', 9000),
    egress(ID.cidr, 'TCP', 80),
    egress(ID.cidr, 'TCP', 8080),
  ],
});
const client2State = endpoint(CLIENT2, [IP.client2], ID.client);
const desired: DesiredState = {
  endpoints: new Map(
    [
      clientState,
      client2State,
      endpoint(B1, [IP.b1, IP6.b1], ID.backend),
      endpoint(B2, [IP.b2, IP6.b2], ID.backend),
      endpoint(OTHER, [IP.other], ID.other),
      // the NodePort's backend admits only clients of 10.215.0.0/24 (an ipBlock)
      endpoint(NP, [IP.np], ID.np, {
        ingressIsolated: true,
        entries: [
          entry({ direction: 'ingress', remoteIdentity: ID.outside, protocol: 'TCP', port: 8080, endPort: 8080 }),
        ],
      }),
    ].map((e) => [e.key, e]),
  ),
  ipcache: new Map(
    (
      [
        [`${IP.client}/32`, ID.client],
        [`${IP.client2}/32`, ID.client],
        [`${IP.b1}/32`, ID.backend],
        [`${IP.b2}/32`, ID.backend],
        [`${IP.other}/32`, ID.other],
        [`${IP.np}/32`, ID.np],
        [`${IP.remote}/32`, ID.backend],
        [`${IP6.remote}/128`, ID.backend],
        ['10.215.0.0/24', ID.outside],
        [`${IP6.client}/128`, ID.client],
        [`${IP6.b1}/128`, ID.backend],
        [`${IP6.b2}/128`, ID.backend],
        ['10.96.0.0/16', ID.cidr], // an ipBlock covering the Service range
      ] as Array<[string, number]>
    ).map(([cidr, identity]) => [cidr, { cidr, identity }]),
  ),
  services: new Map(FRONTENDS.map((f) => [frontendKey(f), f])),
};

// ---- an independent checksum routine (RFC 1071) and packet reader ----

function onesSum(bufs: Buffer[]): number {
  let sum = 0;
  for (const b of bufs) {
    for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
    if (b.length % 2) sum += b[b.length - 1] << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
const fold = (bufs: Buffer[]): number => ~onesSum(bufs) & 0xffff;

interface Parsed {
  family: 4 | 6;
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  l4csum: number;
  /** Header checksum valid (IPv4), always true for IPv6. */
  ipOk: boolean;
  /** L4 checksum valid over the pseudo-header (TCP, UDP with a checksum); SCTP: not checked here. */
  l4Ok: boolean;
}

function l4Offsets(frame: Buffer): { family: 4 | 6; l3: number; l4: number; proto: number; len: number } {
  if (frame.readUInt16BE(12) === 0x0800) {
    const ihl = (frame[14] & 0xf) * 4;
    return { family: 4, l3: 14, l4: 14 + ihl, proto: frame[23], len: frame.readUInt16BE(16) - ihl };
  }
  return { family: 6, l3: 14, l4: 54, proto: frame[20], len: frame.readUInt16BE(18) };
}

function pseudo(frame: Buffer, o: ReturnType<typeof l4Offsets>): Buffer {
  if (o.family === 4) {
    const p = Buffer.alloc(12);
    frame.copy(p, 0, 26, 34);
    p[9] = o.proto;
    p.writeUInt16BE(o.len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  frame.copy(p, 0, 22, 54);
  p.writeUInt32BE(o.len, 32);
  p[39] = o.proto;
  return p;
}

const csumOff = (proto: number): number => (proto === Protocol.TCP ? 16 : 6);

/** Fills in correct checksums (IPv4 header, TCP/UDP) so that the datapath's incremental updates can be verified. */
function withChecksums(frame: Buffer, o: { zeroUdp?: boolean } = {}): Buffer {
  const f = Buffer.from(frame);
  const l = l4Offsets(f);
  if (l.family === 4) {
    f.writeUInt16BE(0, 24);
    f.writeUInt16BE(fold([f.subarray(14, l.l4)]), 24);
  }
  if (l.proto === Protocol.TCP || l.proto === Protocol.UDP) {
    const off = l.l4 + csumOff(l.proto);
    f.writeUInt16BE(0, off);
    if (!(o.zeroUdp && l.proto === Protocol.UDP)) {
      let c = fold([pseudo(f, l), f.subarray(l.l4, l.l4 + l.len)]);
      if (c === 0 && l.proto === Protocol.UDP) c = 0xffff;
      f.writeUInt16BE(c, off);
    }
  }
  return f;
}

function parse(frame: Buffer): Parsed {
  const l = l4Offsets(frame);
  const src = readAddr(frame, l.family === 4 ? 26 : 22, l.family);
  const dst = readAddr(frame, l.family === 4 ? 30 : 38, l.family);
  const ipOk = l.family === 6 || onesSum([frame.subarray(14, l.l4)]) === 0xffff;
  let l4csum = 0;
  let l4Ok = true;
  if (l.proto === Protocol.TCP || l.proto === Protocol.UDP) {
    l4csum = frame.readUInt16BE(l.l4 + csumOff(l.proto));
    if (!(l.proto === Protocol.UDP && l.family === 4 && l4csum === 0))
      l4Ok = onesSum([pseudo(frame, l), frame.subarray(l.l4, l.l4 + l.len)]) === 0xffff;
  }
  return {
    family: l.family,
    src,
    dst,
    proto: l.proto,
    sport: frame.readUInt16BE(l.l4),
    dport: frame.readUInt16BE(l.l4 + 2),
    l4csum,
    ipOk,
    l4Ok,
  };
}

let fx: KernelFixture;

/** Runs one packet (checksums filled in first); returns the verdict code and the packet as it left. */
function run(
  prog: 'fromPod' | 'toPod' | 'fromNode' | 'toNode',
  ep: string,
  frame: Buffer,
): { ret: number; out: Parsed; raw: Buffer } {
  const ifindex = fx.ifindex.get(ep);
  if (ifindex === undefined) throw new Error(ep);
  const r = testRun(fx.dp.program(prog), frame, { ifindex });
  return { ret: r.retval, out: parse(r.dataOut), raw: r.dataOut };
}

const tcp4 = (src: string, dst: string, sport: number, dport: number, flags = TCP_SYN) =>
  withChecksums(ipv4(src, dst, Protocol.TCP, tcp(sport, dport, flags, Buffer.from('hello'))));
const udp4 = (src: string, dst: string, sport: number, dport: number, _flags?: number) =>
  withChecksums(ipv4(src, dst, Protocol.UDP, udp(sport, dport, Buffer.from('query!'))));
const udp4NoChecksum = (src: string, dst: string, sport: number, dport: number) =>
  withChecksums(ipv4(src, dst, Protocol.UDP, udp(sport, dport, Buffer.from('query!'))), { zeroUdp: true });
const udp6 = (src: string, dst: string, sport: number, dport: number, _flags?: number) =>
  withChecksums(ipv6(src, dst, Protocol.UDP, udp(sport, dport, Buffer.from('query6'))));
const tcp6 = (src: string, dst: string, sport: number, dport: number, flags = TCP_SYN) =>
  withChecksums(ipv6(src, dst, Protocol.TCP, tcp(sport, dport, flags, Buffer.from('hello6'))));

beforeAll(() => {
  fx = KernelFixture.create('s', [CLIENT, CLIENT2, B1, B2, OTHER, NP, EXT]);
  fx.rec.setNodeAddresses([IP.node, IP6.node]);
  const st = fx.rec.resyncTo(desired);
  expect(st.errors).toEqual([]);
});
afterAll(() => fx?.close());
beforeEach(async () => {
  await fx.takeEvents();
});

describe('ClusterIP translation before policy, and back', () => {
  it.each([
    ['TCP over IPv4', tcp4, IP.client, IP.vipWeb, 80, [IP.b1, IP.b2], 8080],
    ['UDP over IPv4', udp4, IP.client, IP.vipDns, 53, [IP.b1, IP.b2], 5353],
    ['TCP over IPv6', tcp6, IP6.client, IP6.vipWeb, 80, [IP6.b1, IP6.b2], 8080],
    ['UDP over IPv6', udp6, IP6.client, IP6.vipWeb, 53, [IP6.b1, IP6.b2], 5353],
  ] as const)(
    '%s: the client reaches a backend; its reply comes back from the VIP, checksums correct',
    async (_n, mk, client, vip, vport, backends, bport) => {
      const before = fx.dp.serviceCounters();
      const sport = 40000 + Math.floor(Math.random() * 1000);
      const first = run('fromPod', CLIENT, mk(client, vip, sport, vport));
      expect(first.ret).toBe(TC_ACT_OK);
      expect(backends).toContain(first.out.dst);
      expect(first.out).toMatchObject({ src: client, dport: bport, sport, ipOk: true, l4Ok: true });
      const evs = await fx.takeEvents();
      expect(evs).toHaveLength(1);
      expect(evs[0]).toMatchObject({
        direction: Direction.EGRESS,
        verdict: Verdict.FORWARDED,
        match: Match.L3_L4, // the rule naming tier=backend and the backend's port, not the VIP's
        dstIdentity: ID.backend,
        dstAddr: first.out.dst,
        dstPort: bport,
        service: { addr: vip, port: vport },
      });
      expect(evs[0].flags & FlowFlag.SERVICE).toBeTruthy();

      // the connection keeps its backend
      const again = run('fromPod', CLIENT, mk(client, vip, sport, vport, TCP_ACK));
      expect(again.ret).toBe(TC_ACT_OK);
      expect(again.out).toMatchObject({ dst: first.out.dst, dport: bport, ipOk: true, l4Ok: true });

      // the backend's reply, as it reaches the client: translated back to the VIP
      const reply = run('toPod', CLIENT, mk(first.out.dst, client, bport, sport, TCP_SYN | TCP_ACK));
      expect(reply.ret).toBe(TC_ACT_OK);
      expect(reply.out).toMatchObject({ src: vip, sport: vport, dst: client, dport: sport, ipOk: true, l4Ok: true });

      const after = fx.dp.serviceCounters();
      expect(after.NEW - before.NEW).toBe(1n);
      expect(after.FORWARD - before.FORWARD).toBe(2n);
      expect(after.REVERSE - before.REVERSE).toBe(1n);
    },
  );

  it('UDP over IPv4 without a checksum keeps none (0 stays 0)', () => {
    const r = run('fromPod', CLIENT, udp4NoChecksum(IP.client, IP.vipDns, 41999, 53));
    expect(r.ret).toBe(TC_ACT_OK);
    expect(r.out).toMatchObject({ dport: 5353, l4csum: 0, ipOk: true });
  });

  it('a reply that does not belong to a translated connection keeps its source', () => {
    // direct pod-to-pod traffic: the client connects to b1 itself
    expect(run('fromPod', CLIENT, tcp4(IP.client, IP.b1, 42001, 8080)).ret).toBe(TC_ACT_OK);
    const reply = run('toPod', CLIENT, tcp4(IP.b1, IP.client, 8080, 42001, TCP_SYN | TCP_ACK));
    expect(reply.ret).toBe(TC_ACT_OK);
    expect(reply.out).toMatchObject({ src: IP.b1, sport: 8080, ipOk: true, l4Ok: true });
  });

  it('a direct connection on the ports a translated one used before is answered by the backend itself, not the VIP', () => {
    // through the Service first, closed by the client...
    const syn = run('fromPod', CLIENT, tcp4(IP.client, IP.vipWeb, 42101, 80));
    expect(syn.ret).toBe(TC_ACT_OK);
    const backend = syn.out.dst;
    const back = run('toPod', CLIENT, tcp4(backend, IP.client, 8080, 42101, TCP_SYN | TCP_ACK));
    expect(back.out).toMatchObject({ src: IP.vipWeb, sport: 80 });
    expect(run('fromPod', CLIENT, tcp4(IP.client, IP.vipWeb, 42101, 80, TCP_FIN | TCP_ACK)).ret).toBe(TC_ACT_OK);
    // ...then the same client port straight to that backend: the same tuple once translated
    const direct = run('fromPod', CLIENT, tcp4(IP.client, backend, 42101, 8080));
    expect(direct.ret).toBe(TC_ACT_OK);
    expect(direct.out).toMatchObject({ dst: backend, dport: 8080 });
    const reply = run('toPod', CLIENT, tcp4(backend, IP.client, 8080, 42101, TCP_SYN | TCP_ACK));
    expect(reply.ret).toBe(TC_ACT_OK);
    expect(reply.out).toMatchObject({ src: backend, sport: 8080, ipOk: true, l4Ok: true });
    // and through the Service again from that port: answered from the VIP once more
    expect(run('fromPod', CLIENT, tcp4(IP.client, backend, 42101, 8080, TCP_FIN | TCP_ACK)).ret).toBe(TC_ACT_OK);
    const again = run('fromPod', CLIENT, tcp4(IP.client, IP.vipWeb, 42101, 80));
    const reply2 = run('toPod', CLIENT, tcp4(again.out.dst, IP.client, 8080, 42101, TCP_SYN | TCP_ACK));
    expect(reply2.out).toMatchObject({ src: IP.vipWeb, sport: 80, ipOk: true, l4Ok: true });
  });

  it.each([
    ['IPv4', tcp4, IP.client, IP.vipWeb, [IP.b1, IP.b2]],
    ['IPv6', tcp6, IP6.client, IP6.vipWeb, [IP6.b1, IP6.b2]],
  ] as const)(
    '%s: a client port used again for new connections: each gets its own backend, keeps it, and is answered from the VIP',
    (_n, mk, client, vip, backends) => {
      const sport = 48000 + (client === IP.client ? 0 : 1);
      const before = fx.dp.serviceCounters();
      const seen = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const syn = run('fromPod', CLIENT, mk(client, vip, sport, 80));
        expect(syn.ret).toBe(TC_ACT_OK);
        expect(backends).toContain(syn.out.dst);
        expect(syn.out).toMatchObject({ dport: 8080, ipOk: true, l4Ok: true });
        seen.add(syn.out.dst);
        // the connection's next packet goes where its SYN went, not where an earlier one of the port did
        const ack = run('fromPod', CLIENT, mk(client, vip, sport, 80, TCP_ACK));
        expect(ack.out).toMatchObject({ dst: syn.out.dst, dport: 8080, ipOk: true, l4Ok: true });
        const reply = run('toPod', CLIENT, mk(syn.out.dst, client, 8080, sport, TCP_SYN | TCP_ACK));
        expect(reply.ret).toBe(TC_ACT_OK);
        expect(reply.out).toMatchObject({ src: vip, sport: 80, dst: client, dport: sport, ipOk: true, l4Ok: true });
      }
      expect([...seen].sort()).toEqual([...backends].sort()); // a new choice each time, not the first one kept
      expect(fx.dp.serviceCounters().NEW - before.NEW).toBe(40n);
    },
  );

  it('a connection open to an address before a Service takes it as its VIP keeps flowing to that address; a new one is translated', () => {
    // opened to a literal address of the Service range (the ipBlock rule admits it), no Service there yet
    expect(run('fromPod', CLIENT, tcp4(IP.client, IP.inBlock, 44101, 80)).ret).toBe(TC_ACT_OK);
    const late = fe('ns/late', IP.inBlock, 80, 'TCP', [be(IP.b1, 8080)]);
    expect(
      fx.rec.resyncTo({ ...desired, services: new Map([...(desired.services ?? []), [frontendKey(late), late]]) })
        .errors,
    ).toEqual([]);
    try {
      // its next packets, both ways, keep the address they were judged for
      const ack = run('fromPod', CLIENT, tcp4(IP.client, IP.inBlock, 44101, 80, TCP_ACK));
      expect(ack.ret).toBe(TC_ACT_OK);
      expect(ack.out).toMatchObject({ dst: IP.inBlock, dport: 80, ipOk: true, l4Ok: true });
      const reply = run('toPod', CLIENT, tcp4(IP.inBlock, IP.client, 80, 44101, TCP_ACK));
      expect(reply.ret).toBe(TC_ACT_OK);
      expect(reply.out).toMatchObject({ src: IP.inBlock, sport: 80, ipOk: true, l4Ok: true });
      // a new connection to it is the Service's: translated to its backend, and answered from the VIP
      const syn = run('fromPod', CLIENT, tcp4(IP.client, IP.inBlock, 44102, 80));
      expect(syn.ret).toBe(TC_ACT_OK);
      expect(syn.out).toMatchObject({ dst: IP.b1, dport: 8080, ipOk: true, l4Ok: true });
      const ack2 = run('fromPod', CLIENT, tcp4(IP.client, IP.inBlock, 44102, 80, TCP_ACK));
      expect(ack2.out).toMatchObject({ dst: IP.b1, dport: 8080, ipOk: true, l4Ok: true });
      const back = run('toPod', CLIENT, tcp4(IP.b1, IP.client, 8080, 44102, TCP_SYN | TCP_ACK));
      expect(back.ret).toBe(TC_ACT_OK);
      expect(back.out).toMatchObject({ src: IP.inBlock, sport: 80, ipOk: true, l4Ok: true });
    } finally {
      expect(fx.rec.resyncTo(desired).errors).toEqual([]);
    }
  });

  it('every backend is chosen over many connections, and only the frontend’s backends', () => {
    const seen = new Set<string>();
    for (let p = 43000; p < 43040; p++) seen.add(run('fromPod', CLIENT, tcp4(IP.client, IP.vipWeb, p, 80)).out.dst);
    expect([...seen].sort()).toEqual([IP.b1, IP.b2].sort());
  });
});

// ---- ICMP errors (independent builder and reader: RFC 792 / RFC 4443 checksums) ----

/** An ICMP error from `src` to `dst` quoting `quote` (an IP packet), every checksum filled in. */
function icmpError(family: 4 | 6, src: string, dst: string, type: number, code: number, quote: Buffer): Buffer {
  const f =
    family === 4
      ? ipv4(src, dst, Protocol.ICMP, icmp(type, code, 0, quote))
      : ipv6(src, dst, Protocol.ICMPV6, icmp(type, code, 0, quote));
  const l = l4Offsets(f);
  if (family === 4) {
    f.writeUInt16BE(0, 24);
    f.writeUInt16BE(fold([f.subarray(14, l.l4)]), 24);
  }
  f.writeUInt16BE(0, l.l4 + 2);
  const msg = f.subarray(l.l4, l.l4 + l.len);
  f.writeUInt16BE(fold(family === 4 ? [msg] : [pseudo(f, l), msg]), l.l4 + 2);
  return f;
}

/** An ICMP error as it left: its addresses, whether each of its checksums holds, and the header it quotes. */
function readIcmpError(frame: Buffer) {
  const l = l4Offsets(frame);
  const msg = frame.subarray(l.l4, l.l4 + l.len);
  return {
    src: readAddr(frame, l.family === 4 ? 26 : 22, l.family),
    dst: readAddr(frame, l.family === 4 ? 30 : 38, l.family),
    ipOk: l.family === 6 || onesSum([frame.subarray(14, l.l4)]) === 0xffff,
    icmpOk: onesSum(l.family === 4 ? [msg] : [pseudo(frame, l), msg]) === 0xffff,
    quote: Buffer.from(msg.subarray(8)),
  };
}

describe('ICMP errors about a connection sent to a Service', () => {
  it.each([
    ['UDP over IPv4, port unreachable from the backend itself', udp4, 4, IP.client, IP.vipDns, 53, 3, 3, 'backend', 0],
    [
      'TCP over IPv4, fragmentation needed from a router on the way (8 bytes of TCP quoted)',
      tcp4,
      4,
      IP.client,
      IP.vipWeb,
      80,
      3,
      4,
      IP.node,
      28,
    ],
    [
      'UDP over IPv6, port unreachable from the backend itself',
      udp6,
      6,
      IP6.client,
      IP6.vipWeb,
      53,
      1,
      4,
      'backend',
      0,
    ],
    ['TCP over IPv6, packet too big from a router on the way', tcp6, 6, IP6.client, IP6.vipWeb, 80, 2, 0, IP6.node, 0],
  ] as const)(
    '%s: the client gets it about the VIP, the quote exactly as it sent it, every checksum correct',
    (_n, mk, family, client, vip, vport, type, code, from, quoteLen) => {
      const sport = 45000 + Math.floor(Math.random() * 1000);
      const sent = mk(client, vip, sport, vport);
      const out = run('fromPod', CLIENT, sent);
      expect(out.ret).toBe(TC_ACT_OK);
      const backend = out.out.dst;
      expect(backend).not.toBe(vip);
      const asReceived = ipOf(out.raw);
      const quote = quoteLen ? asReceived.subarray(0, quoteLen) : asReceived;
      const sender = from === 'backend' ? backend : from;
      const before = fx.dp.serviceCounters();
      const r = testRun(fx.dp.program('toPod'), icmpError(family, sender, client, type, code, quote), {
        ifindex: fx.ifindex.get(CLIENT)!,
      });
      expect(r.retval).toBe(TC_ACT_OK);
      const e = readIcmpError(r.dataOut);
      expect(e).toMatchObject({ src: from === 'backend' ? vip : from, dst: client, ipOk: true, icmpOk: true });
      // the quoted header is the client's own packet again: addresses, ports and its checksums
      const original = ipOf(sent);
      expect(e.quote.toString('hex')).toBe(original.subarray(0, quote.length).toString('hex'));
      expect(fx.dp.serviceCounters().REVERSE - before.REVERSE).toBe(1n);
    },
  );

  it('an ICMP error about a connection made to a pod directly is left as it is', () => {
    const sent = udp4(IP.client, IP.b1, 45999, 5353);
    expect(run('fromPod', CLIENT, sent).ret).toBe(TC_ACT_OK);
    const err = icmpError(4, IP.b1, IP.client, 3, 3, ipOf(sent));
    const r = testRun(fx.dp.program('toPod'), err, { ifindex: fx.ifindex.get(CLIENT)! });
    expect(r.retval).toBe(TC_ACT_OK);
    expect(r.dataOut.toString('hex')).toBe(err.toString('hex'));
  });

  it('an ICMP error quoting a translated tuple the client never sent is judged as unrelated, never translated', () => {
    // a backend forging an error about a connection that does not exist: no conntrack entry, no rewrite
    const forged = icmpError(4, IP.b1, IP.client, 3, 3, ipOf(udp4(IP.client, IP.b1, 45998, 5353)));
    const r = testRun(fx.dp.program('toPod'), forged, { ifindex: fx.ifindex.get(CLIENT)! });
    expect(r.dataOut.subarray(26, 30)).toEqual(forged.subarray(26, 30)); // its source stays the backend's
    expect(readIcmpError(r.dataOut).quote.toString('hex')).toBe(readIcmpError(forged).quote.toString('hex'));
  });
});

describe('fragments of a datagram sent to a Service', () => {
  /** The IPv4 header checksum filled in (a later fragment has no L4 header to checksum). */
  const withIpChecksum = (frame: Buffer): Buffer => {
    const f = Buffer.from(frame);
    if (f.readUInt16BE(12) === 0x0800) {
      f.writeUInt16BE(0, 24);
      f.writeUInt16BE(fold([f.subarray(14, 14 + (f[14] & 0xf) * 4)]), 24);
    }
    return f;
  };
  const tail = Buffer.alloc(64, 0x5a); // the datagram's later bytes

  it.each([
    ['IPv4', 4, IP.client, IP.vipDns, [IP.b1, IP.b2]],
    ['IPv6', 6, IP6.client, IP6.vipWeb, [IP6.b1, IP6.b2]],
  ] as const)(
    '%s: the later fragment follows its first one to the same backend, only its address rewritten',
    (_n, family, client, vip, backends) => {
      const id = 0x4000 + Math.floor(Math.random() * 0x1000);
      const first =
        family === 4
          ? withChecksums(
              ipv4(client, vip, Protocol.UDP, udp(46001, 53, Buffer.alloc(64, 1)), { id, moreFragments: true }),
            )
          : withChecksums(
              ipv6(client, vip, Protocol.UDP, udp(46001, 53, Buffer.alloc(64, 1)), {
                frag: { offset: 0, more: true, id },
              }),
            );
      const later =
        family === 4
          ? withIpChecksum(ipv4(client, vip, Protocol.UDP, tail, { id, fragOffset: 9 }))
          : ipv6(client, vip, Protocol.UDP, tail, { frag: { offset: 9, more: false, id } });
      const a = run('fromPod', CLIENT, first);
      expect(a.ret).toBe(TC_ACT_OK);
      expect(backends).toContain(a.out.dst);
      // (the IPv6 one carries a fragment header before its UDP header: ports read past it)
      if (family === 4) expect(a.out).toMatchObject({ dport: 5353, ipOk: true, l4Ok: true });
      else expect(a.raw.readUInt16BE(14 + 40 + 8 + 2)).toBe(5353);
      const before = fx.dp.serviceCounters();
      const r = testRun(fx.dp.program('fromPod'), later, { ifindex: fx.ifindex.get(CLIENT)! });
      expect(r.retval).toBe(TC_ACT_OK);
      const out = r.dataOut;
      expect(readAddr(out, family === 4 ? 30 : 38, family)).toBe(a.out.dst); // the first fragment's backend
      expect(readAddr(out, family === 4 ? 26 : 22, family)).toBe(client);
      if (family === 4) expect(onesSum([out.subarray(14, 34)])).toBe(0xffff); // header checksum still holds
      // nothing but the destination address changed: the payload is the datagram's, untouched
      expect(out.subarray(out.length - tail.length).toString('hex')).toBe(tail.toString('hex'));
      expect(fx.dp.serviceCounters().FORWARD - before.FORWARD).toBe(1n);
    },
  );

  it('a later fragment to a frontend whose first fragment was never seen is dropped, never translated', async () => {
    const orphan = withIpChecksum(ipv4(IP.client, IP.vipDns, Protocol.UDP, tail, { id: 0x3999, fragOffset: 9 }));
    const r = testRun(fx.dp.program('fromPod'), orphan, { ifindex: fx.ifindex.get(CLIENT)! });
    expect(r.retval).toBe(TC_ACT_SHOT);
    expect(r.dataOut.subarray(30, 34)).toEqual(orphan.subarray(30, 34));
    const evs = await fx.takeEvents();
    expect(evs.map((e) => e.dropReason)).toContain(DropReason.FRAG_UNKNOWN);
  });
});

describe('egress policy judges the backend', () => {
  it('a rule allowing tier=backend lets the VIP through; a Service whose backend is another identity is refused', async () => {
    const ok = run('fromPod', CLIENT, tcp4(IP.client, IP.vipWeb, 44001, 80));
    expect(ok.ret).toBe(TC_ACT_OK);
    await fx.takeEvents();
    const denied = run('fromPod', CLIENT, tcp4(IP.client, IP.vipOther, 44002, 80));
    expect(denied.ret).toBe(TC_ACT_SHOT);
    const evs = await fx.takeEvents();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      verdict: Verdict.DROPPED,
      dropReason: DropReason.POLICY_DENIED,
      dstIdentity: ID.other,
      dstAddr: IP.other,
      dstPort: 8080,
      service: { addr: IP.vipOther, port: 80 },
    });
  });

  it('an ipBlock covering the ClusterIP never matches it: the translated packet is judged as the backend', () => {
    // the ipBlock rule admits TCP 80 and 8080 to 10.96.0.0/16: an address of that range that is no Service passes...
    expect(run('fromPod', CLIENT, tcp4(IP.client, IP.inBlock, 44003, 80)).ret).toBe(TC_ACT_OK);
    // ...but a Service in it is translated first: its backend (identity other) is what egress policy sees
    expect(run('fromPod', CLIENT, tcp4(IP.client, IP.vipOther, 44004, 80)).ret).toBe(TC_ACT_SHOT);
  });
});

describe('no backend', () => {
  it('a frontend with no backend drops with NO_SERVICE_BACKEND and a flow event, never untranslated', async () => {
    const before = fx.dp.serviceCounters();
    const r = run('fromPod', CLIENT, tcp4(IP.client, IP.vipEmpty, 45001, 80));
    expect(r.ret).toBe(TC_ACT_SHOT);
    const evs = await fx.takeEvents();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      verdict: Verdict.DROPPED,
      dropReason: DropReason.NO_SERVICE_BACKEND,
      dstAddr: IP.vipEmpty,
      dstPort: 80,
      service: { addr: IP.vipEmpty, port: 80 },
    });
    expect(fx.counter(Direction.EGRESS, Verdict.DROPPED, DropReason.NO_SERVICE_BACKEND)).toBeGreaterThan(0n);
    expect(fx.dp.serviceCounters().NO_BACKEND - before.NO_BACKEND).toBe(1n);
  });
});

describe('ClientIP affinity', () => {
  it('the same client gets the same backend; another client its own; after the timeout the choice is made again', async () => {
    const pick = (ep: string, src: string, port: number) => run('fromPod', ep, tcp4(src, IP.vipAff, port, 80)).out.dst;
    const first = pick(CLIENT, IP.client, 46000);
    for (let p = 46001; p < 46020; p++) expect(pick(CLIENT, IP.client, p)).toBe(first);
    const other = pick(CLIENT2, IP.client2, 46100);
    for (let p = 46101; p < 46110; p++) expect(pick(CLIENT2, IP.client2, p)).toBe(other);
    // timeout 1 s: once it has run out since the last choice, a new random choice is made
    const seen = new Set([first]);
    for (let i = 0; i < 10 && seen.size < 2; i++) {
      await new Promise((r) => setTimeout(r, 1300));
      seen.add(pick(CLIENT, IP.client, 46200 + i));
    }
    expect(seen.size).toBeGreaterThan(1);
  }, 30_000);
});

describe('hairpin', () => {
  it('a pod reaching its own Service gets its connection from the hairpin address, admitted by its ingress; the answer comes back from the VIP', async () => {
    const hp = HAIRPIN_ADDRESS[4];
    const syn = tcp4(IP.client, IP.vipSelf, 47001, 9000);
    const out = run('fromPod', CLIENT, syn);
    expect(out.ret).toBe(TC_ACT_REDIRECT); // back into the pod
    // addressed to the pod's own MAC from the host side's, or the pod would discard it as another host's
    expect(out.raw.subarray(0, 6)).toEqual(syn.subarray(6, 12));
    expect(out.raw.subarray(6, 12)).toEqual(syn.subarray(0, 6));
    expect(out.out).toMatchObject({ src: hp, sport: 47001, dst: IP.client, dport: 9000, ipOk: true, l4Ok: true });
    // the pod's ingress is isolated with no rule for itself: the hairpin connection is admitted anyway
    const inn = testRun(fx.dp.program('toPod'), out.raw, { ifindex: fx.ifindex.get(CLIENT) });
    expect(inn.retval).toBe(TC_ACT_OK);
    // a forged packet from the hairpin address that belongs to no such connection is not
    expect(run('toPod', CLIENT, tcp4(hp, IP.client, 47002, 9000)).ret).toBe(TC_ACT_SHOT);
    // the pod answers the hairpin address: sent back into it, to its own address...
    const ans = run('fromPod', CLIENT, tcp4(IP.client, hp, 9000, 47001, TCP_SYN | TCP_ACK));
    expect(ans.ret).toBe(TC_ACT_REDIRECT);
    expect(ans.out).toMatchObject({
      src: IP.client,
      sport: 9000,
      dst: IP.client,
      dport: 47001,
      ipOk: true,
      l4Ok: true,
    });
    // ...and on its way in it becomes the VIP's answer
    const back = testRun(fx.dp.program('toPod'), ans.raw, { ifindex: fx.ifindex.get(CLIENT) });
    expect(back.retval).toBe(TC_ACT_OK);
    expect(parse(back.dataOut)).toMatchObject({
      src: IP.vipSelf,
      sport: 9000,
      dst: IP.client,
      dport: 47001,
      ipOk: true,
      l4Ok: true,
    });
    expect(fx.dp.serviceCounters().HAIRPIN).toBeGreaterThan(0n);
  });
});

describe('SCTP', () => {
  it('to the same port: the address is translated; to another port: refused with its own reason', async () => {
    const same = run('fromPod', CLIENT, withChecksums(ipv4(IP.client, IP.vipSctp, Protocol.SCTP, sctp(5000, 7100))));
    expect(same.ret).toBe(TC_ACT_OK);
    expect(same.out).toMatchObject({ dst: IP.b1, dport: 7100, ipOk: true });
    await fx.takeEvents();
    const moved = run('fromPod', CLIENT, withChecksums(ipv4(IP.client, IP.vipSctp, Protocol.SCTP, sctp(5001, 7000))));
    expect(moved.ret).toBe(TC_ACT_SHOT);
    const evs = await fx.takeEvents();
    expect(evs[0]).toMatchObject({
      dropReason: DropReason.SERVICE_UNSUPPORTED,
      service: { addr: IP.vipSctp, port: 7000 },
    });
  });
});

describe("NodePort (programs of the node's external interface)", () => {
  it('a client outside reaches the backend through the node address, its source kept; the reply leaves from the NodePort', () => {
    const inn = run('fromNode', EXT, tcp4(IP.outside, IP.node, 50001, 30080));
    expect(inn.ret).toBe(TC_ACT_OK);
    expect(inn.out).toMatchObject({ src: IP.outside, sport: 50001, dst: IP.np, dport: 8080, ipOk: true, l4Ok: true });
    // the backend's ingress policy admits the client by its own address
    expect(testRun(fx.dp.program('toPod'), inn.raw, { ifindex: fx.ifindex.get(NP) }).retval).toBe(TC_ACT_OK);
    const reply = run('fromPod', NP, tcp4(IP.np, IP.outside, 8080, 50001, TCP_SYN | TCP_ACK));
    expect(reply.ret).toBe(TC_ACT_OK);
    const out = run('toNode', EXT, tcp4(IP.np, IP.outside, 8080, 50001, TCP_SYN | TCP_ACK));
    expect(out.ret).toBe(TC_ACT_OK);
    expect(out.out).toMatchObject({
      src: IP.node,
      sport: 30080,
      dst: IP.outside,
      dport: 50001,
      ipOk: true,
      l4Ok: true,
    });
  });

  it('an ingress policy that admits only another client refuses it, judged by its own address (never as host)', async () => {
    const inn = run('fromNode', EXT, tcp4(IP.outsider, IP.node, 50002, 30080));
    expect(inn.out).toMatchObject({ src: IP.outsider, dst: IP.np, dport: 8080 });
    await fx.takeEvents();
    expect(testRun(fx.dp.program('toPod'), inn.raw, { ifindex: fx.ifindex.get(NP) }).retval).toBe(TC_ACT_SHOT);
    const evs = await fx.takeEvents();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ dropReason: DropReason.POLICY_DENIED, srcAddr: IP.outsider, dstAddr: IP.np });
    expect(evs[0].srcIdentity).not.toBe(Identity.HOST);
  });

  it('other traffic of the node passes untouched: another port, another address', () => {
    const port = run('fromNode', EXT, tcp4(IP.outside, IP.node, 50003, 30081));
    expect(port).toMatchObject({ ret: TC_ACT_OK, out: { dst: IP.node, dport: 30081 } });
    const addr = run('fromNode', EXT, tcp4(IP.outside, IP.inBlock, 50004, 30080));
    expect(addr).toMatchObject({ ret: TC_ACT_OK, out: { dst: IP.inBlock, dport: 30080 } });
  });
});

describe('NodePort, externalTrafficPolicy Cluster, backend on another node: masqueraded', () => {
  const inRange = (p: number) => p >= NatPort.MIN && p <= NatPort.MAX;
  const natEntries = () => [...fx.dp.map('nat').entries()].map(([k, v]) => decodeNatEntry(k, v));
  /** One packet through the node as the kernel passes it: from_node (ingress), then to_node (egress). */
  const through = (frame: Buffer) => {
    const inn = run('fromNode', EXT, frame);
    if (inn.ret !== TC_ACT_OK) return { ret: inn.ret, mid: inn.out, out: inn.out };
    const out = run('toNode', EXT, inn.raw);
    return { ret: out.ret, mid: inn.out, out: out.out };
  };

  it.each([
    ['TCP over IPv4', tcp4, IP.outside, IP.outside2, IP.node, IP.remote, 30090, 8080],
    ['UDP over IPv4', udp4, IP.outside, IP.outside2, IP.node, IP.remote, 30053, 5353],
    ['TCP over IPv6', tcp6, IP6.outside, IP6.outside2, IP6.node, IP6.remote, 30090, 8080],
    ['UDP over IPv6', udp6, IP6.outside, IP6.outside2, IP6.node, IP6.remote, 30053, 5353],
  ] as const)(
    '%s: the backend gets the node address and an allocated port as source; its reply leaves as node:NodePort; the port is kept per connection, another client gets another',
    (_n, mk, client, client2, node, remote, nodePortNo, bport) => {
      const before = fx.dp.serviceCounters();
      const cport = 51000 + Math.floor(Math.random() * 1000);
      const first = through(mk(client, node, cport, nodePortNo));
      expect(first.ret).toBe(TC_ACT_OK);
      // ingress: only the destination is translated (a source of the node's own would be a martian there)
      expect(first.mid).toMatchObject({ src: client, sport: cport, dst: remote, dport: bport, ipOk: true, l4Ok: true });
      // egress: leaves the node from the address the client used and a port of the masquerade range
      expect(first.out).toMatchObject({ src: node, dst: remote, dport: bport, ipOk: true, l4Ok: true });
      const natPort = first.out.sport;
      expect(inRange(natPort)).toBe(true);

      // the backend's reply, back at the node's external interface, addressed to that port
      const reply = through(mk(remote, node, bport, natPort, TCP_SYN | TCP_ACK));
      expect(reply.ret).toBe(TC_ACT_OK);
      expect(reply.mid).toMatchObject({ src: remote, sport: bport, dst: client, dport: cport, ipOk: true, l4Ok: true });
      expect(reply.out).toMatchObject({
        src: node,
        sport: nodePortNo,
        dst: client,
        dport: cport,
        ipOk: true,
        l4Ok: true,
      });

      // the connection's next packet keeps its port
      const again = through(mk(client, node, cport, nodePortNo, TCP_ACK));
      expect(again.out).toMatchObject({ src: node, sport: natPort, dst: remote, dport: bport, ipOk: true, l4Ok: true });

      // another client (same port number, even) gets a port of its own
      const other = through(mk(client2, node, cport, nodePortNo));
      expect(other.out).toMatchObject({ src: node, dst: remote, dport: bport, ipOk: true, l4Ok: true });
      expect(inRange(other.out.sport)).toBe(true);
      expect(other.out.sport).not.toBe(natPort);
      const otherReply = through(mk(remote, node, bport, other.out.sport, TCP_SYN | TCP_ACK));
      expect(otherReply.out).toMatchObject({ src: node, sport: nodePortNo, dst: client2, dport: cport, l4Ok: true });

      const after = fx.dp.serviceCounters();
      expect(after.SNAT_NEW - before.SNAT_NEW).toBe(2n);
      expect(after.SNAT_FULL - before.SNAT_FULL).toBe(0n);
      // both halves of the first connection, on the external interface
      const mine = natEntries().filter((e) => (e.a === client && e.aPort === cport) || e.port === cport);
      expect(mine).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ a: client, b: remote, addr: node, port: natPort, flags: NatFlag.FORWARD }),
          expect.objectContaining({ a: remote, b: node, bPort: natPort, addr: client, flags: NatFlag.REVERSE }),
        ]),
      );
    },
  );

  it('a backend on this node keeps the client as source (Cluster), and so does Local, whatever the backend', () => {
    const before = fx.dp.serviceCounters();
    const near = through(tcp4(IP.outside, IP.node, 52001, 30091));
    expect(near).toMatchObject({ ret: TC_ACT_OK, out: { src: IP.outside, sport: 52001, dst: IP.np, dport: 8080 } });
    const local = through(tcp4(IP.outside, IP.node, 52002, 30092));
    expect(local).toMatchObject({
      ret: TC_ACT_OK,
      out: { src: IP.outside, sport: 52002, dst: IP.remote, dport: 8080 },
    });
    expect(fx.dp.serviceCounters().SNAT_NEW - before.SNAT_NEW).toBe(0n);
    expect(natEntries().filter((e) => e.a === IP.outside && (e.aPort === 52001 || e.aPort === 52002))).toEqual([]);
  });

  it('a packet to the node at a masquerade port that belongs to no connection passes untouched, never into a pod', () => {
    const first = through(tcp4(IP.outside, IP.node, 52101, 30090));
    const natPort = first.out.sport;
    expect(inRange(natPort)).toBe(true);
    // the allocated port, but from another source than the backend: untouched
    const forged = through(tcp4(IP.outsider, IP.node, 8080, natPort, TCP_SYN | TCP_ACK));
    expect(forged).toMatchObject({
      ret: TC_ACT_OK,
      out: { src: IP.outsider, sport: 8080, dst: IP.node, dport: natPort },
    });
    // from the backend's address but its other port: untouched
    const port = through(tcp4(IP.remote, IP.node, 8081, natPort, TCP_SYN | TCP_ACK));
    expect(port).toMatchObject({ ret: TC_ACT_OK, out: { src: IP.remote, dst: IP.node, dport: natPort } });
    // a port of the range nobody was given
    const free = NatPort.MIN + ((natPort - NatPort.MIN + 1) % (NatPort.MAX - NatPort.MIN + 1));
    const none = through(tcp4(IP.remote, IP.node, 8080, free, TCP_SYN | TCP_ACK));
    expect(none).toMatchObject({ ret: TC_ACT_OK, out: { src: IP.remote, dst: IP.node, dport: free } });
    // the same reply on another interface than the one that received the connection: untouched
    const elsewhere = testRun(fx.dp.program('fromNode'), tcp4(IP.remote, IP.node, 8080, natPort, TCP_ACK), {
      ifindex: fx.ifindex.get(OTHER),
    });
    expect(parse(elsewhere.dataOut)).toMatchObject({ src: IP.remote, dst: IP.node, dport: natPort });
  });

  it('SCTP to a backend on another node is refused with SERVICE_UNSUPPORTED and a flow event (its port cannot be masqueraded)', async () => {
    await fx.takeEvents();
    const r = run('fromNode', EXT, withChecksums(ipv4(IP.outside, IP.node, Protocol.SCTP, sctp(5000, 30132))));
    expect(r.ret).toBe(TC_ACT_SHOT);
    const evs = await fx.takeEvents();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      dropReason: DropReason.SERVICE_UNSUPPORTED,
      srcAddr: IP.outside,
      service: { addr: IP.node, port: 30132 },
    });
  });

  it("a connection whose reverse half was evicted gets a new port; the old port's replies then pass untouched", () => {
    const nat = fx.dp.map('nat');
    const first = through(tcp4(IP.outside, IP.node, 52301, 30090));
    const oldPort = first.out.sport;
    expect(inRange(oldPort)).toBe(true);
    // the LRU evicts the reverse half (injected: the kernel evicts only under pressure)
    const [rk] = encodeNatEntry({
      a: IP.remote,
      aPort: 8080,
      b: IP.node,
      bPort: oldPort,
      protocol: Protocol.TCP,
      ifindex: fx.ifindex.get(EXT)!,
      addr: IP.outside,
      port: 52301,
      flags: NatFlag.REVERSE,
    });
    expect(nat.delete(rk)).toBeTruthy();
    const next = through(tcp4(IP.outside, IP.node, 52301, 30090, TCP_ACK));
    expect(next.out).toMatchObject({ src: IP.node, dst: IP.remote, dport: 8080, ipOk: true, l4Ok: true });
    expect(next.out.sport).not.toBe(oldPort);
    const reply = through(tcp4(IP.remote, IP.node, 8080, next.out.sport, TCP_ACK));
    expect(reply.out).toMatchObject({ src: IP.node, sport: 30090, dst: IP.outside, dport: 52301, l4Ok: true });
    const stale = through(tcp4(IP.remote, IP.node, 8080, oldPort, TCP_ACK));
    expect(stale.out).toMatchObject({ src: IP.remote, dst: IP.node, dport: oldPort });
  });

  it('every port of the range taken for the backend: the new connection is dropped with NO_MAPPING_FOR_NAT_MASQUERADE and a flow event, never sent on', async () => {
    const nat = fx.dp.map('nat');
    const ifindex = fx.ifindex.get(EXT)!;
    // occupy every port of the masquerade range towards this backend, as 4,536 live connections would
    const filler = [];
    for (let p = NatPort.MIN; p <= NatPort.MAX; p++)
      filler.push(
        encodeNatEntry({
          a: IP.remote,
          aPort: 8080,
          b: IP.node,
          bPort: p,
          protocol: Protocol.TCP,
          ifindex,
          addr: '10.215.1.1',
          port: p,
          flags: NatFlag.REVERSE,
        }),
      );
    nat.updateBatch(filler);
    try {
      await fx.takeEvents();
      const before = fx.dp.serviceCounters();
      const r = run('fromNode', EXT, tcp4(IP.outside, IP.node, 52201, 30090));
      expect(r.ret).toBe(TC_ACT_SHOT);
      const evs = await fx.takeEvents();
      expect(evs).toHaveLength(1);
      expect(evs[0]).toMatchObject({
        direction: Direction.INGRESS,
        verdict: Verdict.DROPPED,
        dropReason: DropReason.NAT_NO_PORT,
        srcAddr: IP.outside,
        service: { addr: IP.node, port: 30090 },
      });
      expect(fx.counter(Direction.INGRESS, Verdict.DROPPED, DropReason.NAT_NO_PORT)).toBeGreaterThan(0n);
      expect(fx.dp.serviceCounters().SNAT_FULL - before.SNAT_FULL).toBe(1n);
      // nothing of the refused connection is left to translate its packets later
      expect(natEntries().filter((e) => e.a === IP.outside && e.aPort === 52201)).toEqual([]);
      // IPv6 towards its own backend is unaffected
      expect(through(tcp6(IP6.outside, IP6.node, 52201, 30090)).out.src).toBe(IP6.node);
    } finally {
      nat.deleteBatch(filler.map(([k]) => k));
    }
    // a port free again: the next connection is masqueraded
    const ok = through(tcp4(IP.outside, IP.node, 52202, 30090));
    expect(ok).toMatchObject({ ret: TC_ACT_OK, out: { src: IP.node, dst: IP.remote } });
  });
});

describe("the reader's in-place decoding (runs last: every record this file's packets made)", () => {
  it('decodes every real record of this file as the per-record decoder does', () => {
    expect(fx.decodeMismatches).toEqual([]);
    expect(fx.decodedRecords).toBeGreaterThan(20);
  });
});
