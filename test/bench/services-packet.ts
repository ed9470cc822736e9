/**
 * `make bench` suite "svcpacket": what a Service translation costs per packet in the datapath
 * (BPF_PROG_TEST_RUN), with 10 and with 10,000 frontends (two backends each) in the maps.
 *
 * A translating program rewrites its packet, and BPF_PROG_TEST_RUN's repetitions run on the same
 * skb, so after the first repetition the packet would no longer be addressed to the Service:
 * every figure here is one run per packet (repeat 1, a fresh copy each time), the programs
 * alternated packet by packet, medians over the runs; each path is reported net of the empty
 * program measured the same way in the same rounds. Needs root.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import type { BenchSection } from './run.js';
import { Datapath } from '../../agent/datapath/datapath.js';
import { SyncDriver } from '../kernel/sync-driver.js';
import { frontendKey, type DesiredState, type EndpointState, type ServiceFrontend } from '../../agent/desired.js';
import { testRun } from '../../maps/test-run.js';
import { ipv4, tcp, TCP_SYN, TCP_ACK } from '../kernel/packets.js';
import { Protocol } from '../../maps/abi.js';
import { bootstrap, median, type Interval } from './sidebyside/stats.js';

const LINK = 'wdpsvcb0';
const PIN_ROOT = `/sys/fs/bpf/wdp-svcbench-${process.pid}`;
const CLIENT = '10.212.0.1';
const BACKEND = '10.212.0.2';
const VIP = '10.97.0.1';
const ROUNDS = Number(process.env.WEIR_BENCH_QUICK ? 3001 : 20001);

function desired(frontends: number): DesiredState {
  const ep = (key: string, ip: string, identity: number): EndpointState => ({
    key,
    namespace: 'bench',
    name: key.split('/')[1]!,
    ips: [ip],
    identity,
    ingressIsolated: false,
    egressIsolated: false,
    entries: [],
  });
  const services = new Map<string, ServiceFrontend>();
  const add = (address: string, backends: string[]) => {
    const f: ServiceFrontend = {
      service: `bench/s${services.size}`,
      scope: 'clusterIP',
      address,
      port: 80,
      protocol: 'TCP',
      portName: '',
      affinityTimeoutSeconds: 0,
      backends: backends.map((ip) => ({ ip, port: 8080, ready: true, serving: true, terminating: false })),
      externalLocal: false,
    };
    services.set(frontendKey(f), f);
  };
  add(VIP, [BACKEND]);
  for (let i = 1; i < frontends; i++)
    add(`10.98.${i >> 8}.${i & 255}`, [`10.213.${i >> 8}.${i & 255}`, `10.214.${i >> 8}.${i & 255}`]);
  return {
    endpoints: new Map([ep('bench/client', CLIENT, 6000)].map((e) => [e.key, e])),
    ipcache: new Map(
      [
        [`${CLIENT}/32`, 6000],
        [`${BACKEND}/32`, 6001],
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
  const closers: Array<() => void> = [() => execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' })];
  try {
    const ifindex = Number(readFileSync(`/sys/class/net/${LINK}/ifindex`, 'utf8').trim());
    const sizes = [10, 10_000];
    const rows: string[] = [];
    const nets: Record<string, Interval[]> = {};
    for (const n of sizes) {
      const pinRoot = `${PIN_ROOT}-${n}`;
      closers.push(() => rmSync(pinRoot, { recursive: true, force: true }));
      const dp = Datapath.open({ pinRoot });
      closers.push(() => dp.close());
      const reader = dp.onFlowEvents(() => undefined, { pollIntervalMs: 2 });
      closers.push(() => reader.close());
      const st = new SyncDriver(dp.syncerMaps(), () => ifindex).resyncTo(desired(n));
      if (st.errors.length) throw new Error(st.errors.join('; '));
      const noop = dp.programs.get('noop');
      if (noop === undefined) throw new Error('program noop missing from the object');
      const from = dp.program('fromPod');
      const to = dp.program('toPod');
      // open both connections: one straight to the backend pod, one through the Service
      testRun(from, ipv4(CLIENT, BACKEND, Protocol.TCP, tcp(41000, 8080, TCP_SYN)), { ifindex });
      testRun(from, ipv4(CLIENT, VIP, Protocol.TCP, tcp(42000, 80, TCP_SYN)), { ifindex });
      const paths: Array<[string, number, Buffer]> = [
        ['empty program', noop, ipv4(CLIENT, BACKEND, Protocol.TCP, tcp(41000, 8080, TCP_ACK))],
        ['from_pod, established, to a pod', from, ipv4(CLIENT, BACKEND, Protocol.TCP, tcp(41000, 8080, TCP_ACK))],
        [
          'from_pod, established, to a Service (translated)',
          from,
          ipv4(CLIENT, VIP, Protocol.TCP, tcp(42000, 80, TCP_ACK)),
        ],
        ['to_pod, reply from a pod', to, ipv4(BACKEND, CLIENT, Protocol.TCP, tcp(8080, 41000, TCP_ACK))],
        [
          'to_pod, reply through a Service (translated back)',
          to,
          ipv4(BACKEND, CLIENT, Protocol.TCP, tcp(8080, 42000, TCP_ACK)),
        ],
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
      nets[n] = net;
      rows.push(...paths.slice(1).map(([what], j) => `| ${n.toLocaleString()} | ${what} | ${ci(net[j + 1]!)} |`));
    }
    const diff = (n: number, a: number, b: number) => (nets[n]![a]!.estimate - nets[n]![b]!.estimate).toFixed(0);
    const markdown = [
      `One run per packet (BPF_PROG_TEST_RUN repeat 1: a translated packet is rewritten in place, so repetitions would not be translated), the five programs alternated packet by packet for ${ROUNDS.toLocaleString()} rounds; ns net of the empty program in the same round, median [bootstrap 95% interval]. A single run includes timer and cache effects the repeated measurements of the "datapath" suite average away, so compare figures within this table only.`,
      '',
      '| frontends | path | ns per packet, net of the empty program |',
      '|---:|---|---:|',
      ...rows,
      '',
      `Translation adds ${diff(10, 2, 1)} ns (10 frontends) and ${diff(10_000, 2, 1)} ns (10,000 frontends) to an established packet on \`from_pod\`, and the reverse translation ${diff(10, 4, 3)} / ${diff(10_000, 4, 3)} ns on \`to_pod\`: on \`from_pod\` a conntrack miss with the packet as sent (conntrack is looked up first, so a packet to a pod reads no Services map), the full path's call, one frontend hash lookup, one per-connection LRU lookup and the rewrite with incremental checksums; on \`to_pod\` one LRU lookup and the rewrite, only for a reply whose conntrack entry marks its connection as translated (a reply from a pod pays nothing for Services); the lookups are exact-match hashes, so the number of frontends does not enter.`,
    ].join('\n');
    return { title: 'Services: translation per packet (BPF_PROG_TEST_RUN)', markdown };
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
