/**
 * `make bench` suite "nodeport": what `from_node` / `to_node` cost per packet on a node's external
 * interface (BPF_PROG_TEST_RUN), where the node agent attaches them whenever Services are on. Every
 * packet of that interface runs them: the node's own traffic and forwarded pod traffic pass
 * untouched, NodePort connections are translated — given to a backend on this node with the
 * client kept as source, or to a backend on another node and masqueraded (externalTrafficPolicy
 * Cluster). Measured like the "svcpacket" suite: one run per packet (repeat 1, a fresh copy each
 * time: a translated packet is rewritten in place), the paths alternated packet by packet, medians
 * net of the empty program in the same rounds. Needs root.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import type { BenchSection } from './run.js';
import { Datapath } from '../../agent/datapath/datapath.js';
import { SyncDriver } from '../kernel/sync-driver.js';
import { frontendKey, type DesiredState, type ServiceFrontend } from '../../agent/desired.js';
import { testRun } from '../../maps/test-run.js';
import { ipv4, tcp, TCP_SYN, TCP_ACK } from '../kernel/packets.js';
import { Protocol } from '../../maps/abi.js';
import { bootstrap, median, type Interval } from './sidebyside/stats.js';

const LINK = 'wdpnpb0';
const PIN_ROOT = `/sys/fs/bpf/wdp-npbench-${process.pid}`;
const NODE = '10.215.0.1';
const OTHER_NODE = '10.215.0.2';
const CLIENT = '10.215.0.50';
const BACKEND = '10.216.0.2'; // a backend pod on this node
const REMOTE = '10.216.1.2'; // a backend pod on the other node
const NODE_PORT = 30080;
const NODE_PORT_REMOTE = 30090;
const ROUNDS = Number(process.env.WEIR_BENCH_QUICK ? 3001 : 20001);

function desired(): DesiredState {
  const services = new Map<string, ServiceFrontend>();
  const add = (port: number, ip: string, remote: boolean) => {
    const f: ServiceFrontend = {
      service: `bench/np${port}`,
      scope: 'nodePort',
      address: '0.0.0.0',
      port,
      protocol: 'TCP',
      portName: '',
      affinityTimeoutSeconds: 0,
      backends: [{ ip, port: 8080, ready: true, serving: true, terminating: false, ...(remote ? { remote } : {}) }],
      externalLocal: false,
    };
    services.set(frontendKey(f), f);
  };
  add(NODE_PORT, BACKEND, false);
  add(NODE_PORT_REMOTE, REMOTE, true);
  return {
    endpoints: new Map(),
    ipcache: new Map(
      [
        [`${NODE}/32`, 1], // this node: identity host
        [`${OTHER_NODE}/32`, 6],
        [`${BACKEND}/32`, 6001],
        [`${REMOTE}/32`, 6001],
      ].map(([cidr, identity]) => [cidr as string, { cidr: cidr as string, identity: identity as number }]),
    ),
    services,
  };
}

const ci = (x: Interval): string => `${x.estimate.toFixed(0)} [${x.lo.toFixed(0)}, ${x.hi.toFixed(0)}]`;

export async function run(): Promise<BenchSection> {
  try {
    execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' });
  } catch {
    /* not left over */
  }
  execFileSync('ip', ['link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
  const closers: Array<() => void> = [
    () => execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' }),
    () => rmSync(PIN_ROOT, { recursive: true, force: true }),
  ];
  try {
    const ifindex = Number(readFileSync(`/sys/class/net/${LINK}/ifindex`, 'utf8').trim());
    const dp = Datapath.open({ pinRoot: PIN_ROOT });
    closers.push(() => dp.close());
    const reader = dp.onFlowEvents(() => undefined, { pollIntervalMs: 2 });
    closers.push(() => reader.close());
    const st = new SyncDriver(dp.syncerMaps(), () => ifindex).resyncTo(desired());
    if (st.errors.length) throw new Error(st.errors.join('; '));
    const noop = dp.programs.get('noop');
    if (noop === undefined) throw new Error('program noop missing from the object');
    const from = dp.program('fromNode');
    const to = dp.program('toNode');
    const ack = (src: string, dst: string, sport: number, dport: number, flags = TCP_ACK) =>
      ipv4(src, dst, Protocol.TCP, tcp(sport, dport, flags));
    // open the NodePort connections: a SYN chooses the backend; the masqueraded one's port is the
    // source to_node gives its packet
    testRun(from, ack(CLIENT, NODE, 42000, NODE_PORT, TCP_SYN), { ifindex });
    const fwd = testRun(from, ack(CLIENT, NODE, 44000, NODE_PORT_REMOTE, TCP_SYN), { ifindex });
    const out = testRun(to, fwd.dataOut, { ifindex }).dataOut;
    const natPort = out.readUInt16BE(14 + 20);
    if (out.readUInt32BE(14 + 12) !== 0x0ad70001 || natPort < 61000)
      throw new Error('the connection to the backend on the other node was not masqueraded');
    const paths: Array<[string, number, Buffer]> = [
      ['empty program', noop, ack(CLIENT, NODE, 42001, 22)],
      ["from_node, the node's own traffic (to the node, not a NodePort)", from, ack(CLIENT, NODE, 42001, 22)],
      ['from_node, forwarded traffic (to a pod on this node)', from, ack(OTHER_NODE, BACKEND, 43000, 8080)],
      ['from_node, NodePort connection, established (translated)', from, ack(CLIENT, NODE, 42000, NODE_PORT)],
      [
        'from_node, NodePort connection to a backend on another node, established (translated, masqueraded)',
        from,
        ack(CLIENT, NODE, 44000, NODE_PORT_REMOTE),
      ],
      ["from_node, a masqueraded connection's reply (to the client)", from, ack(REMOTE, NODE, 8080, natPort)],
      ["to_node, the node's own traffic", to, ack(NODE, CLIENT, 22, 42001)],
      ['to_node, NodePort reply (translated back)', to, ack(BACKEND, CLIENT, 8080, 42000)],
      [
        'to_node, masqueraded packet to its backend (source: node, allocated port)',
        to,
        ack(CLIENT, REMOTE, 44000, 8080),
      ],
      ["to_node, a masqueraded connection's reply (translated back)", to, ack(REMOTE, CLIENT, 8080, 44000)],
    ];
    const xs: number[][] = paths.map(() => []);
    for (let i = 0; i < ROUNDS; i++)
      for (const [j, [, fd, pkt]] of paths.entries()) xs[j]!.push(testRun(fd, pkt, { ifindex }).durationNs);
    const net = xs.map((x) =>
      bootstrap(
        x.map((v, i) => v - xs[0]![i]!),
        median,
      ),
    );
    const ns = (j: number) => net[j]!.estimate.toFixed(0);
    const rows = paths.slice(1).map(([what], j) => `| ${what} | ${ci(net[j + 1]!)} |`);
    const markdown = [
      `The node agent attaches \`from_node\` / \`to_node\` to the node's external interfaces whenever Services are on, so every packet there runs them. One run per packet (BPF_PROG_TEST_RUN repeat 1), the ${paths.length} programs alternated packet by packet for ${ROUNDS.toLocaleString()} rounds; ns net of the empty program in the same round, median [bootstrap 95% interval]. Single runs include timer and cache effects, so compare within this table and with the "svcpacket" table only.`,
      '',
      '| path | ns per packet, net of the empty program |',
      '|---|---:|',
      ...rows,
      '',
      `What traffic that is not a NodePort pays: on ingress the parse, the ipcache lookup of the destination and, for a node address, the NodePort lookups that find nothing (${ns(1)} ns; ${ns(2)} ns for forwarded traffic, whose destination is no node address); on egress the parse and the lookups that find no NodePort reply and no masqueraded connection (${ns(6)} ns).`,
      '',
      `Masquerade (a backend on another node): an established packet costs ${(net[4]!.estimate - net[3]!.estimate).toFixed(0)} ns more on \`from_node\` than one given to a backend on this node (two \`weir_nat\` lookups: its port still its own), then ${ns(8)} ns on \`to_node\` for its source rewrite; the reply costs ${ns(5)} ns on \`from_node\` (destination back to the client) and ${ns(9)} ns on \`to_node\`, as a local backend's reply does (${ns(7)} ns).`,
    ].join('\n');
    return { title: "NodePort: from_node / to_node per packet on the node's interface (BPF_PROG_TEST_RUN)", markdown };
  } finally {
    for (const c of closers.reverse()) {
      try {
        c();
      } catch {
        /* already gone */
      }
    }
  }
}
