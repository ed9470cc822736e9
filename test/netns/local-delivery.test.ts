/**
 * Local delivery (bpf/lib/forward.h): pods in network namespaces routed by a "node" namespace,
 * weir's programs on the node-side veths. A packet from_pod passes that is addressed to another
 * pod of the node goes straight to that pod's veth: the node's netfilter forward hook never sees
 * it, the receiving pod gets it with the TTL the stack would have left (one less), the receiving
 * pod's to_pod still judges it, and a packet whose TTL runs out is still answered by the node's
 * stack. Without weir, the same packets take the node's forward path. Needs root.
 *
 * @requires root
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { Datapath } from '../../agent/datapath/datapath.js';
import { withLibbpfLog } from '../../maps/libbpf.js';
import { CtFlag } from '../../maps/abi.js';
import { decodeCt4Key, decodeCtValue } from '../../maps/codecs/conntrack.js';
import { SyncDriver } from '../kernel/sync-driver.js';
import { endpoint, entry, state } from '../kernel/fixture.js';
import { createTopology, type Pod, type Topology } from '../bench/sidebyside/topology.js';

const PREFIX = `wld${process.pid % 100000}`;
const PIN_ROOT = `/sys/fs/bpf/${PREFIX}`;
const PORT = 8080;
const PEER = resolve('test/netns/peer.mjs');
const ID = { a: 3101, b: 3102, c: 3103 } as const;
const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });
const inNs = (ns: string, ...args: string[]): string => sh('ip', 'netns', 'exec', ns, ...args);

let topo: Topology;
let dp: Datapath | undefined;
let server: ChildProcess | undefined;
const key = (p: Pod) => `default/${p.name}`;
const netns = () => `/var/run/netns/${topo.node}`;

function connect(from: Pod, to: Pod, ms = 2000): string {
  return inNs(from.netns, process.execPath, PEER, 'tcp', to.ip, String(PORT), String(ms)).trim();
}

/** Packets counted by the node's forward hook and by the target pod's input hook (with TTL 63). */
function setCounters(): void {
  inNs(
    topo.node,
    'nft',
    `add table inet wldcount; add chain inet wldcount forwarded { type filter hook forward priority 0; }; ` +
      `add rule inet wldcount forwarded ip daddr ${topo.pod('b').ip} tcp dport ${PORT} counter`,
  );
  inNs(
    topo.pod('b').netns,
    'nft',
    `add table inet wldcount; add chain inet wldcount delivered { type filter hook input priority 0; }; ` +
      `add rule inet wldcount delivered ip saddr ${topo.pod('a').ip} ip ttl 63 counter; ` +
      `add rule inet wldcount delivered ip saddr ${topo.pod('a').ip} counter`,
  );
  inNs(
    topo.pod('a').netns,
    'nft',
    `add table inet wldcount; add chain inet wldcount delivered { type filter hook input priority 0; }; ` +
      `add rule inet wldcount delivered ip saddr ${topo.pod('a').gateway} icmp type time-exceeded counter`,
  );
}

const packets = (ns: string): number[] =>
  [...inNs(ns, 'nft', 'list table inet wldcount').matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));

/** The counters' packets during `f` (anonymous rule counters cannot be reset with this nft). */
function counted(f: () => void): { forwarded: number; ttl63: number; received: number; timeExceeded: number } {
  const read = () => [...packets(topo.node), ...packets(topo.pod('b').netns), ...packets(topo.pod('a').netns)];
  const before = read();
  f();
  const d = read().map((x, i) => x - (before[i] ?? 0));
  return { forwarded: d[0]!, ttl63: d[1]!, received: d[2]!, timeExceeded: d[3]! };
}

/** Conntrack flags of the entries from `src` to `dst` (IPv4, any ports and direction). */
function ctFlags(src: string, dst: string): number[] {
  const out: number[] = [];
  for (const [k, v] of dp!.map('conntrack4').entries()) {
    const key = decodeCt4Key(k);
    if (key.srcAddr === src && key.dstAddr === dst) out.push(decodeCtValue(v).flags);
  }
  return out;
}

/** Datagrams from `from` to `to:port` from one socket (one flow), 20 ms apart. */
function sendUdp(from: Pod, to: string, port: number, n: number): void {
  const js =
    "const s = require('node:dgram').createSocket('udp4'); let i = 0; " +
    `const go = () => s.send('x', ${port}, '${to}', () => (++i < ${n} ? setTimeout(go, 20) : s.close())); go();`;
  inNs(from.netns, process.execPath, '-e', js);
}

/** One UDP datagram from `from` to `to` with IP TTL 1. */
function sendTtl1(from: Pod, to: Pod): void {
  const js =
    "const s = require('node:dgram').createSocket('udp4'); " +
    `s.bind(() => { s.setTTL(1); s.send('x', 9090, '${to.ip}', () => setTimeout(() => process.exit(0), 300)); });`;
  inNs(from.netns, process.execPath, '-e', js);
}

function attach(on: boolean): void {
  withLibbpfLog(() =>
    topo.pods.forEach((p) =>
      on
        ? dp!.attach({ ifindex: p.hostIfindex, netns: netns() })
        : dp!.detach({ ifindex: p.hostIfindex, netns: netns() }),
    ),
  );
}

beforeAll(async () => {
  topo = await createTopology({ prefix: PREFIX, octet: 244, pods: ['a', 'b', 'c'] });
  rmSync(PIN_ROOT, { recursive: true, force: true });
  server = spawn('ip', ['netns', 'exec', topo.pod('b').netns, process.execPath, PEER, 'serve', String(PORT), '9090'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((res, rej) => {
    server!.stdout?.once('data', () => res());
    server!.once('exit', (code) => rej(new Error(`server exited ${code}`)));
  });
  dp = Datapath.open({ pinRoot: PIN_ROOT });
  const ifindex = new Map(topo.pods.map((p) => [key(p), p.hostIfindex]));
  const syncer = new SyncDriver(dp.syncerMaps(), (k) => ifindex.get(k));
  syncer.setNodeAddresses(topo.pods.map((p) => p.gateway));
  const [a, b, c] = [topo.pod('a'), topo.pod('b'), topo.pod('c')];
  const st = syncer.resyncTo(
    state(
      [
        endpoint(key(a), [a.ip], ID.a),
        endpoint(key(b), [b.ip], ID.b, {
          ingressIsolated: true,
          entries: [entry({ direction: 'ingress', remoteIdentity: ID.a, protocol: 'TCP', port: PORT, endPort: PORT })],
        }),
        endpoint(key(c), [c.ip], ID.c),
      ],
      topo.pods.map((p) => [`${p.ip}/32`, ID[p.name as keyof typeof ID]]),
    ),
  );
  expect(st.errors).toEqual([]);
  setCounters();
}, 60_000);

afterAll(async () => {
  if (server?.pid && server.exitCode === null) process.kill(server.pid, 'SIGKILL');
  dp?.close();
  rmSync(PIN_ROOT, { recursive: true, force: true });
  await topo?.destroy();
});

describe('local delivery between pods of one node', () => {
  it('without weir, a connection between two pods takes the node forward path (the counters see it)', () => {
    const n = counted(() => expect(connect(topo.pod('a'), topo.pod('b'))).toBe('ok hello'));
    expect(n.forwarded).toBeGreaterThan(2);
    expect(n.received).toBe(n.forwarded);
    expect(n.ttl63).toBe(n.received);
  });

  it("with weir, the allowed connection arrives with the stack's TTL and skips the node's forward hook", () => {
    attach(true);
    // the first packets may go through the stack while the node resolves the pod's neighbour entry
    expect(connect(topo.pod('a'), topo.pod('b'))).toBe('ok hello');
    const n = counted(() => expect(connect(topo.pod('a'), topo.pod('b'))).toBe('ok hello'));
    expect(n.received).toBeGreaterThan(2);
    expect(n.ttl63).toBe(n.received);
    expect(n.forwarded).toBe(0);
  });

  it("the target's to_pod still judges what is delivered: a pod its policy does not allow is refused", () => {
    expect(connect(topo.pod('c'), topo.pod('b'), 700)).toBe('timeout');
    const denied = dp!.counters().filter((r) => r.verdictName === 'DROPPED' && r.reasonName === 'POLICY_DENIED');
    expect(denied.reduce((n, r) => n + Number(r.packets), 0)).toBeGreaterThan(0);
  });

  it('a connection to the node itself is marked not local after one lookup; one to a local pod is not marked', () => {
    const a = topo.pod('a');
    sendUdp(a, topo.pod('b').gateway, 9999, 3);
    const toNode = ctFlags(a.ip, topo.pod('b').gateway);
    expect(toNode.length).toBeGreaterThan(0);
    expect(toNode.every((f) => (f & CtFlag.NOT_LOCAL) !== 0)).toBe(true);
    const toPod = ctFlags(a.ip, topo.pod('b').ip);
    expect(toPod.length).toBeGreaterThan(0);
    expect(toPod.some((f) => (f & CtFlag.NOT_LOCAL) !== 0)).toBe(false);
  });

  it('a packet whose TTL runs out is left to the node, which answers it (ICMP time exceeded)', () => {
    const n = counted(() => sendTtl1(topo.pod('a'), topo.pod('b')));
    expect(n.timeExceeded).toBe(1);
    expect(n.received).toBe(0);
  });
});
