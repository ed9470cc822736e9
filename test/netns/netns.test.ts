/**
 * Real pods: three network namespaces on a bridge inside a fourth ("node")
 * namespace, the programs attached from TypeScript to the node-side veths
 * inside that namespace, map entries written by the Reconciler. Real TCP and
 * UDP connections are allowed, dropped, answered and cut as the entries say.
 * Needs root (CI runs it as root).
 *
 * @requires root
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { Datapath } from '../../agent/datapath/datapath.js';
import { Reconciler } from '../../agent/datapath/reconciler.js';
import { tcQuery } from '../../maps/tc.js';
import type { FlowEvent } from '../../maps/codecs/flow-event.js';
import type { RingBufferReader } from '../../maps/ringbuf.js';
import { DropReason, Verdict } from '../../maps/abi.js';
import { endpoint, entry, state } from '../kernel/fixture.js';

/** Namespaces carry the pid, so two runs of this file at once (two checkouts) never share or delete each other's. */
const NODE_NS = `wdp-nh-${process.pid}`;
const podNs = (p: string) => `wdp-n${p}-${process.pid}`;
const PODS = { a: { n: 1, id: 3001 }, b: { n: 2, id: 3002 }, c: { n: 3, id: 3003 } } as const;
type Pod = keyof typeof PODS;
const v4 = (p: Pod) => `10.210.2.${PODS[p].n}`;
const v6 = (p: Pod) => `fd00:210:2::${PODS[p].n}`;
const key = (p: Pod) => `default/${p}`;
const PEER = resolve('test/netns/peer.mjs');
const PIN_ROOT = `/sys/fs/bpf/wdp-netns-${process.pid}`;
/** Allowed probes return when answered; the long limit only matters on a loaded machine. */
const ALLOWED_MS = 4000;

const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });
const inPod = (p: Pod | 'h', ...args: string[]) => sh('ip', 'netns', 'exec', p === 'h' ? NODE_NS : podNs(p), ...args);
const children: ChildProcess[] = [];

function probe(from: Pod, proto: 'tcp' | 'udp', host: string, port: number, ms = 700): string {
  // a denied probe waits `ms`; an allowed one returns as soon as it is answered
  return inPod(from, process.execPath, PEER, proto, host, String(port), String(ms)).trim();
}

function cleanup(): void {
  for (const c of children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
  for (const ns of [NODE_NS, podNs('a'), podNs('b'), podNs('c')]) {
    try {
      sh('ip', 'netns', 'del', ns);
    } catch {
      /* not there */
    }
  }
  rmSync(PIN_ROOT, { recursive: true, force: true });
}

let dp: Datapath;
let rec: Reconciler;
let reader: RingBufferReader;
const events: FlowEvent[] = [];
const ifindex = new Map<string, number>();
const target = (p: Pod) => ({ ifindex: ifindex.get(key(p)) ?? 0, netns: `/var/run/netns/${NODE_NS}` });

const allowBtoA = [
  entry({ direction: 'ingress', remoteIdentity: PODS.b.id, protocol: 'TCP', port: 8080, endPort: 8080 }),
  entry({ direction: 'ingress', remoteIdentity: PODS.b.id, protocol: 'UDP', port: 9090, endPort: 9090 }),
];

beforeAll(async () => {
  cleanup();
  sh('ip', 'netns', 'add', NODE_NS);
  inPod('h', 'ip', 'link', 'add', 'wdpbr', 'type', 'bridge');
  inPod('h', 'ip', 'link', 'set', 'wdpbr', 'up');
  for (const p of Object.keys(PODS) as Pod[]) {
    sh('ip', 'netns', 'add', podNs(p));
    inPod('h', 'ip', 'link', 'add', `wdp${p}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs(p));
    inPod('h', 'ip', 'link', 'set', `wdp${p}`, 'master', 'wdpbr', 'up');
    inPod(p, 'ip', 'addr', 'add', `${v4(p)}/24`, 'dev', 'eth0');
    inPod(p, 'ip', 'addr', 'add', `${v6(p)}/64`, 'dev', 'eth0', 'nodad');
    inPod(p, 'ip', 'link', 'set', 'eth0', 'up');
    inPod(p, 'ip', 'link', 'set', 'lo', 'up');
    const link = JSON.parse(inPod('h', 'ip', '-j', 'link', 'show', `wdp${p}`)) as Array<{ ifindex: number }>;
    ifindex.set(key(p), link[0].ifindex);
  }
  // echo servers in every pod
  for (const p of Object.keys(PODS) as Pod[]) {
    const c = spawn('ip', ['netns', 'exec', podNs(p), process.execPath, PEER, 'serve', '8080', '9090'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(c);
    await new Promise<void>((res, rej) => {
      c.stdout?.once('data', () => res());
      c.once('exit', (code) => rej(new Error(`server in ${p} exited ${code}`)));
    });
  }
  dp = Datapath.open({ pinRoot: PIN_ROOT });
  rec = new Reconciler(dp.reconcilerMaps(), (k) => ifindex.get(k));
  const ipc: Array<[string, number]> = [];
  for (const p of Object.keys(PODS) as Pod[]) ipc.push([`${v4(p)}/32`, PODS[p].id], [`${v6(p)}/128`, PODS[p].id]);
  const st = rec.applyFull(
    state(
      [
        endpoint(key('a'), [v4('a'), v6('a')], PODS.a.id, { ingressIsolated: true, entries: allowBtoA }),
        endpoint(key('b'), [v4('b'), v6('b')], PODS.b.id, { ingressIsolated: true }),
        endpoint(key('c'), [v4('c'), v6('c')], PODS.c.id),
      ],
      ipc,
    ),
  );
  expect(st.errors).toEqual([]);
  for (const p of Object.keys(PODS) as Pod[]) dp.attach(target(p));
  reader = dp.onFlowEvents((e) => events.push(...e));
}, 60000);

afterAll(() => {
  reader?.close();
  dp?.close();
  cleanup();
});

describe('real connections between pods in network namespaces', () => {
  it('programs are attached on both hooks of every node-side veth (inside the node namespace)', () => {
    for (const p of Object.keys(PODS) as Pod[]) {
      expect(tcQuery(target(p), 'ingress')).toBeGreaterThan(0);
      expect(tcQuery(target(p), 'egress')).toBeGreaterThan(0);
    }
  });

  it('TCP b -> a:8080 is allowed and answered, though b accepts no new ingress connections', () => {
    expect(probe('b', 'tcp', v4('a'), 8080, ALLOWED_MS)).toBe('ok hello');
  });

  it('TCP c -> a:8080 is dropped (no entry for c) and reported as POLICY_DENIED', async () => {
    events.splice(0);
    expect(probe('c', 'tcp', v4('a'), 8080)).toBe('timeout');
    await new Promise((r) => setTimeout(r, 50));
    expect(
      events.some(
        (e) =>
          e.srcAddr === v4('c') &&
          e.dstPort === 8080 &&
          e.verdict === Verdict.DROPPED &&
          e.dropReason === DropReason.POLICY_DENIED,
      ),
    ).toBe(true);
  });

  it('UDP b -> a:9090 gets its reply; UDP c -> a:9090 does not', () => {
    expect(probe('b', 'udp', v4('a'), 9090, ALLOWED_MS)).toBe('ok hello');
    expect(probe('c', 'udp', v4('a'), 9090)).toBe('timeout');
  });

  it('TCP a -> b:8080 is dropped: b is isolated for ingress with no entries', () => {
    expect(probe('a', 'tcp', v4('b'), 8080)).toBe('timeout');
  });

  it('IPv6: b -> a allowed, c -> a dropped (neighbour discovery passes)', () => {
    expect(probe('b', 'tcp', v6('a'), 8080, ALLOWED_MS)).toBe('ok hello');
    expect(probe('c', 'tcp', v6('a'), 8080)).toBe('timeout');
  });

  it('an established connection is cut on its next packet once its allow entry is removed, and works again when re-added', async () => {
    const c = spawn('ip', ['netns', 'exec', podNs('b'), process.execPath, PEER, 'hold', v4('a'), '8080'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    children.push(c);
    const lines: string[] = [];
    c.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const waitFor = async (line: string, ms: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (lines.includes(line)) return true;
        await new Promise((r) => setTimeout(r, 20));
      }
      return false;
    };
    try {
      expect(await waitFor('connected', 3000)).toBe(true);
      c.stdin?.write('one\n');
      expect(await waitFor('echo one', 2000)).toBe(true);
      events.splice(0);
      const diff = (added: typeof allowBtoA, removed: typeof allowBtoA) => ({
        endpointsChanged: [],
        endpointsRemoved: [],
        ipcacheUpserted: [],
        ipcacheRemoved: [],
        entriesAdded: new Map([[key('a'), added]]),
        entriesRemoved: new Map([[key('a'), removed]]),
      });
      expect(rec.applyDiff(diff([], [allowBtoA[0]])).errors).toEqual([]);
      c.stdin?.write('two\n');
      expect(await waitFor('echo two', 1000)).toBe(false);
      expect(events.some((e) => e.dropReason === DropReason.POLICY_REVOKED && e.dstPort === 8080)).toBe(true);
      // the retransmission gets through once the entry is back
      expect(rec.applyDiff(diff([allowBtoA[0]], [])).errors).toEqual([]);
      expect(await waitFor('echo two', 5000)).toBe(true);
    } finally {
      if (c.pid) process.kill(c.pid, 'SIGKILL');
    }
  }, 20000);

  it('detach stops enforcement: c -> a connects', () => {
    dp.detach(target('a'));
    expect(tcQuery(target('a'), 'egress')).toBeUndefined();
    expect(probe('c', 'tcp', v4('a'), 8080, ALLOWED_MS)).toBe('ok hello');
  });
});
