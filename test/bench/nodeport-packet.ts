/**
 * `make bench` suite "nodeport": what NodePort costs per packet on the node's external interface
 * (BPF_PROG_TEST_RUN of from_node and to_node): the node's own traffic passing, an established
 * connection given to a backend on this node (client kept as source) and one given to a backend on
 * another node (masqueraded, externalTrafficPolicy Cluster), each way.
 *
 * As in "svcpacket", a translating program rewrites its packet in place, so every figure is one
 * run per packet (repeat 1, a fresh copy each time), the programs alternated packet by packet,
 * medians over the rounds, net of the empty program measured the same way in the same rounds.
 * Needs root.
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
const NODE = '10.217.0.1';
const CLIENT = '10.218.0.9';
const LOCAL = '10.217.1.2'; // a backend pod on this node
const REMOTE = '10.217.2.2'; // a backend pod on another node
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
  add(30080, LOCAL, false);
  add(30090, REMOTE, true);
  return { endpoints: new Map(), ipcache: new Map(), services };
}

const ci = (x: Interval): string => `${x.estimate.toFixed(0)} [${x.lo.toFixed(0)}, ${x.hi.toFixed(0)}]`;
const pkt = (src: string, dst: string, sport: number, dport: number, flags = TCP_ACK) =>
  ipv4(src, dst, Protocol.TCP, tcp(sport, dport, flags));

export async function run(): Promise<BenchSection> {
  try {
    execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' });
  } catch {
    /* not left over */
  }
  execFileSync('ip', ['link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
  const closers: Array<() => void> = [() => execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' })];
  try {
    const ifindex = Number(readFileSync(`/sys/class/net/${LINK}/ifindex`, 'utf8').trim());
    closers.push(() => rmSync(PIN_ROOT, { recursive: true, force: true }));
    const dp = Datapath.open({ pinRoot: PIN_ROOT });
    closers.push(() => dp.close());
    const reader = dp.onFlowEvents(() => undefined, { pollIntervalMs: 2 });
    closers.push(() => reader.close());
    const driver = new SyncDriver(dp.syncerMaps(), () => undefined);
    driver.setNodeAddresses([NODE]);
    const st = driver.resyncTo(desired());
    if (st.errors.length) throw new Error(st.errors.join('; '));
    const noop = dp.programs.get('noop');
    if (noop === undefined) throw new Error('program noop missing from the object');
    const from = dp.program('fromNode');
    const to = dp.program('toNode');
    // open both connections; the masqueraded one's port is the source to_node gives its packet
    testRun(from, pkt(CLIENT, NODE, 40000, 30080, TCP_SYN), { ifindex });
    const fwd = testRun(from, pkt(CLIENT, NODE, 41000, 30090, TCP_SYN), { ifindex });
    const out = testRun(to, fwd.dataOut, { ifindex }).dataOut;
    const natPort = out.readUInt16BE(14 + 20);
    if (out.readUInt32BE(14 + 12) !== 0x0ad90001 || natPort < 61000)
      throw new Error('the remote backend connection was not masqueraded');
    const paths: Array<[string, number, Buffer]> = [
      ['empty program', noop, pkt(CLIENT, NODE, 42000, 22)],
      ["from_node, the node's own traffic (no NodePort)", from, pkt(CLIENT, NODE, 42000, 22)],
      ['from_node, NodePort, backend on this node', from, pkt(CLIENT, NODE, 40000, 30080)],
      ['from_node, NodePort, backend on another node (masqueraded)', from, pkt(CLIENT, NODE, 41000, 30090)],
      ["from_node, a masqueraded connection's reply", from, pkt(REMOTE, NODE, 8080, natPort)],
      ["to_node, the node's own traffic", to, pkt(NODE, CLIENT, 22, 42000)],
      ['to_node, reply of a backend on this node', to, pkt(LOCAL, CLIENT, 8080, 40000)],
      ['to_node, masqueraded packet to its backend', to, pkt(CLIENT, REMOTE, 41000, 8080)],
      ['to_node, reply of a backend on another node', to, pkt(REMOTE, CLIENT, 8080, 41000)],
    ];
    const xs: number[][] = paths.map(() => []);
    for (let i = 0; i < ROUNDS; i++)
      for (const [j, [, fd, p]] of paths.entries()) xs[j]!.push(testRun(fd, p, { ifindex }).durationNs);
    const net = xs.map((x) =>
      bootstrap(
        x.map((v, i) => v - xs[0]![i]!),
        median,
      ),
    );
    const rows = paths.slice(1).map(([what], j) => `| ${what} | ${ci(net[j + 1]!)} |`);
    const d = (a: number, b: number) => (net[a]!.estimate - net[b]!.estimate).toFixed(0);
    const markdown = [
      `One run per packet (BPF_PROG_TEST_RUN repeat 1: a translated packet is rewritten in place), the nine programs alternated packet by packet for ${ROUNDS.toLocaleString()} rounds; ns net of the empty program in the same round, median [bootstrap 95% interval]. Compare figures within this table only.`,
      '',
      '| path | ns per packet, net of the empty program |',
      '|---|---:|',
      ...rows,
      '',
      `Masquerading a connection given to a backend on another node adds ${d(3, 2)} ns on \`from_node\` to an established packet (the two \`weir_nat\` lookups that check its port is still its own) over one given to a backend on this node; its packet's source rewrite on \`to_node\` costs ${net[7]!.estimate.toFixed(0)} ns, and its reply's destination rewrite on \`from_node\` ${net[4]!.estimate.toFixed(0)} ns. The node's own traffic pays ${net[1]!.estimate.toFixed(0)} ns on \`from_node\` (parse and one ipcache lookup) and ${net[5]!.estimate.toFixed(0)} ns on \`to_node\` (parse, the \`weir_lb_rev\` lookup and the \`weir_nat\` lookup, both missing).`,
    ].join('\n');
    return { title: 'NodePort: per packet on the external interface (BPF_PROG_TEST_RUN)', markdown };
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
