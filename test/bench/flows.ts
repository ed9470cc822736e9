/**
 * `make bench` suite "flows": the agent's flow pipeline under 100,000 flow events per
 * second from the real datapath, for 90 s.
 *
 * A generator process runs the real to_pod program (BPF_PROG_TEST_RUN) on denied TCP SYNs
 * at a paced 100k/s; each run puts one record into the real (pinned) ring buffer. The
 * agent side runs in this process and is what the daemon runs: ring-buffer addon, decode,
 * enrichment, the flow ring, the gRPC flow API on a unix socket, the metrics. A client
 * process follows `--port 8080` (10% of the flows). Phases alternate (A B A B A B): in B a
 * real `weir observe --follow` runs whose output nobody reads, so it stalls. Alternating
 * phases spread the machine's other load over both sides of the comparison. Needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Datapath } from '../../agent/datapath/datapath.js';
import { SyncDriver } from '../kernel/sync-driver.js';
import { startObservability, type Observability } from '../../agent/observability.js';
import { writeAddr } from '../../maps/codecs/addr.js';
import type { BenchSection } from './run.js';
import { flowsMicro, type MicroRow } from './flows-micro.js';
import { settleMemory } from '../../agent/node/memory.js';

const RATE = 100_000;
const WARMUP_S = 3;
const ROUNDS = 3;
const ALONE_S = 10;
const STALLED_S = 20;
const LINK = 'wobb0';
const POD_IP = '10.230.90.2';
const CLIENT_IP = '10.230.90.1';
const POD_ID = 4100;
const CLIENT_ID = 4101;

/** Ethernet + IPv4 + TCP SYN, no checksums (the program does not check them). */
export function synFrame(src: string, dst: string, sport: number, dport: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 20);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40, 16);
  f[22] = 64;
  f[23] = 6;
  const a = Buffer.alloc(16);
  writeAddr(a, 0, src);
  a.copy(f, 26, 0, 4);
  writeAddr(a, 0, dst);
  a.copy(f, 30, 0, 4);
  f.writeUInt16BE(sport, 34);
  f.writeUInt16BE(dport, 36);
  f[46] = 5 << 4;
  f[47] = 0x02;
  f.writeUInt16BE(65535, 48);
  return f;
}

/** A child process printing one JSON object per line; keeps the running sum of each numeric field. */
function spawnReporter<T extends Record<string, number>>(
  args: string[],
  sum: boolean,
  command = process.execPath,
): { child: ChildProcess; totals: () => T } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let totals = {} as T;
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (!l.trim()) continue;
      const v = JSON.parse(l) as T;
      if (!sum) totals = v;
      else {
        const t = { ...totals } as Record<string, number>;
        for (const [k, x] of Object.entries(v)) t[k] = (t[k] ?? 0) + x;
        totals = t as T;
      }
    }
  });
  return { child, totals: () => totals };
}

/** A full GC, to measure what the agent really holds (live heap) rather than garbage not yet collected. */
function liveHeap(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const kRate = (n: number) => `${(n / 1000).toFixed(1)}k/s`;

interface Phase {
  stalled: boolean;
  seconds: number;
  generated: number;
  kernelNs: number;
  seen: number;
  lostRing: number;
  fastReceived: number;
  fastExpected: number;
  fastToldLost: number;
  clientDropped: number;
  cpuUs: number;
  rssMax: number;
  /** Heap after a full GC at the end of the phase. */
  liveHeap: number;
  load: number;
}

export async function run(): Promise<BenchSection> {
  if (process.getuid?.() !== 0) throw new Error('the flows bench loads BPF programs: run make bench as root');
  // The pipeline runs in the bench process: what the suites before this one left in it (the
  // control-plane suite's clusters) is given back first, so the RSS column is this suite's.
  settleMemory();
  const dir = mkdtempSync(join(tmpdir(), 'wob-bench-'));
  const socket = join(dir, 'observer.sock');
  const pinRoot = `/sys/fs/bpf/wob-bench-${process.pid}`;
  const netns = `wob-bench-${process.pid}`;
  const children: ChildProcess[] = [];
  let dp: Datapath | undefined;
  let obs: Observability | undefined;
  try {
    // The generator's interface lives in a network namespace of the bench's own, where nothing
    // else on the machine creates or removes interfaces.
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
    const ifindex = Number(
      /^(\d+):/.exec(execFileSync('ip', ['-n', netns, '-o', 'link', 'show', LINK], { encoding: 'utf8' }))![1],
    );
    dp = Datapath.open({ pinRoot });
    const rec = new SyncDriver(dp.syncerMaps(), (key) => (key === 'bench/sink' ? ifindex : undefined));
    const st = rec.resyncTo({
      endpoints: new Map([
        [
          'bench/sink',
          {
            key: 'bench/sink',
            namespace: 'bench',
            name: 'sink',
            ips: [POD_IP],
            identity: POD_ID,
            ingressIsolated: true,
            egressIsolated: false,
            entries: [],
          },
        ],
      ]),
      ipcache: new Map([
        [`${POD_IP}/32`, { cidr: `${POD_IP}/32`, identity: POD_ID }],
        [`${CLIENT_IP}/32`, { cidr: `${CLIENT_IP}/32`, identity: CLIENT_ID }],
      ]),
    });
    if (st.errors.length) throw new Error(`reconcile failed: ${JSON.stringify(st.errors)}`);

    const d = dp;
    const pods: Record<string, { namespace: string; name: string; labels: Record<string, string> }> = {
      [POD_IP]: { namespace: 'bench', name: 'sink', labels: { app: 'sink' } },
      [CLIENT_IP]: { namespace: 'bench', name: 'source', labels: { app: 'source' } },
    };
    obs = await startObservability({
      nodeName: 'bench',
      context: { podByIp: (ip) => pods[ip], identityLabels: () => undefined, generation: () => 0 },
      events: (cb) => d.onFlowEvents(cb),
      datapath: { readCounters: () => d.counters(), lostEvents: () => d.lostEvents() },
      socketPath: socket,
      metricsPort: null,
      lostPollMs: 250,
    });
    const observer = obs.observer;
    let port8080 = 0; // what the fast client's filter selects, counted where the flows are made
    observer.onFlow((f) => {
      if (f.l4.TCP?.destination_port === 8080) port8080++;
    });

    const fast = spawnReporter<{ flows: number; lost: number }>(
      ['dist/test/bench/flows-client.js', socket, '8080'],
      false,
    );
    children.push(fast.child);
    while (observer.status().connectedClients < 1) await sleep(20);

    const frames = [
      `${synFrame(CLIENT_IP, POD_IP, 40000, 9000).toString('hex')}:0.9`,
      `${synFrame(CLIENT_IP, POD_IP, 40001, 8080).toString('hex')}:0.1`,
    ];
    // nsenter --net (not ip netns exec, which hides bpffs): the program sees the namespace's interface
    const gen = spawnReporter<{ packets: number; kernelNs: number }>(
      [
        `--net=/var/run/netns/${netns}`,
        process.execPath,
        'dist/test/bench/flows-generator.js',
        pinRoot,
        String(ifindex),
        String(RATE),
        ...frames,
      ],
      true,
      'nsenter',
    );
    children.push(gen.child);

    const phases: Phase[] = [];
    const measure = async (stalled: boolean, seconds: number): Promise<void> => {
      const s0 = observer.status();
      const p0 = port8080;
      const f0 = fast.totals();
      const g0 = gen.totals();
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      let rssMax = 0;
      for (let i = 0; i < seconds; i++) {
        await sleep(1000);
        rssMax = Math.max(rssMax, process.memoryUsage().rss);
      }
      const cpu = process.cpuUsage(c0);
      const live = liveHeap();
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const s1 = observer.status();
      const f1 = fast.totals();
      const seen = s1.seenFlows - s0.seenFlows;
      const g1 = gen.totals();
      const generated = (g1.packets ?? 0) - (g0.packets ?? 0);
      phases.push({
        stalled,
        seconds: secs,
        generated,
        kernelNs: generated ? ((g1.kernelNs ?? 0) - (g0.kernelNs ?? 0)) / generated : 0,
        seen,
        lostRing: s1.lostEvents - s0.lostEvents,
        fastReceived: (f1.flows ?? 0) - (f0.flows ?? 0),
        fastExpected: port8080 - p0,
        fastToldLost: (f1.lost ?? 0) - (f0.lost ?? 0),
        clientDropped: s1.clientDroppedFlows - s0.clientDroppedFlows,
        cpuUs: cpu.user + cpu.system,
        rssMax,
        liveHeap: live,
        load: loadavg()[0]!,
      });
    };

    await sleep(WARMUP_S * 1000);
    for (let r = 0; r < ROUNDS; r++) {
      await measure(false, ALONE_S);
      const slow = spawn(
        process.execPath,
        ['dist/agent/cli/main.js', 'observe', '--server', socket, '--follow', '--color', 'never'],
        {
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      children.push(slow);
      slow.stdout!.pause(); // nobody reads its output: it blocks writing it and stops reading flows
      while (observer.status().connectedClients < 2) await sleep(10);
      await measure(true, STALLED_S);
      slow.kill('SIGKILL');
      while (observer.status().connectedClients > 1) await sleep(10);
    }
    gen.child.kill('SIGTERM');
    while (gen.child.exitCode === null && gen.child.signalCode === null) await sleep(10);
    const micro = flowsMicro((ip) => pods[ip], CLIENT_IP, POD_IP);
    return {
      title: 'Flows: 100k events/s from the datapath, with and without a stalled client',
      markdown: report(phases, obs, micro),
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) c.kill('SIGKILL');
    await obs?.close();
    dp?.close();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    try {
      execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
}

function sum(ps: Phase[]): Phase {
  const s = ps.reduce(
    (a, p) => ({
      ...a,
      seconds: a.seconds + p.seconds,
      generated: a.generated + p.generated,
      kernelNs: a.kernelNs + p.kernelNs * p.generated,
      seen: a.seen + p.seen,
      lostRing: a.lostRing + p.lostRing,
      fastReceived: a.fastReceived + p.fastReceived,
      fastExpected: a.fastExpected + p.fastExpected,
      fastToldLost: a.fastToldLost + p.fastToldLost,
      clientDropped: a.clientDropped + p.clientDropped,
      cpuUs: a.cpuUs + p.cpuUs,
      rssMax: Math.max(a.rssMax, p.rssMax),
      liveHeap: Math.max(a.liveHeap, p.liveHeap),
      load: a.load + p.load / ps.length,
    }),
    {
      stalled: ps[0]!.stalled,
      seconds: 0,
      generated: 0,
      kernelNs: 0,
      seen: 0,
      lostRing: 0,
      fastReceived: 0,
      fastExpected: 0,
      fastToldLost: 0,
      clientDropped: 0,
      cpuUs: 0,
      rssMax: 0,
      liveHeap: 0,
      load: 0,
    },
  );
  s.kernelNs = s.generated ? s.kernelNs / s.generated : 0;
  return s;
}

function report(phases: Phase[], obs: Observability, micro: MicroRow[]): string {
  const row = (label: string, p: Phase) =>
    `| ${label} | ${p.seconds.toFixed(0)} | ${p.load.toFixed(1)} | ${kRate(p.generated / p.seconds)} | ${p.kernelNs.toFixed(0)} | ${kRate(p.seen / p.seconds)} | ` +
    `${p.lostRing} | ${(p.cpuUs / p.seen).toFixed(2)} | ${((100 * p.fastReceived) / Math.max(1, p.fastExpected)).toFixed(1)}% | ${p.fastToldLost} | ${p.clientDropped} | ${mib(p.rssMax)} | ${mib(p.liveHeap)} |`;
  const a = sum(phases.filter((p) => !p.stalled));
  const b = sum(phases.filter((p) => p.stalled));
  const total = sum(phases.map((p) => ({ ...p, stalled: false })));
  const st = obs.observer.status();
  return [
    `Offered load ${kRate(RATE)}: denied TCP SYNs through the real \`to_pod\` program (BPF_PROG_TEST_RUN in a separate process), each emitting one ring-buffer record.`,
    'The agent (ring-buffer addon, decode, enrichment, flow ring, gRPC flow API on a unix socket) runs in the bench process; its CPU time per event is measured with `process.cpuUsage()`.',
    "A client process follows `--port 8080` (10% of the flows; it reports once a second, so a phase's share is exact to about a second of flows). Phases alternate: without, then with a `weir observe --follow` whose stdout nobody reads (it stalls).",
    "The machine's other work shares its two cores; the load average column shows how much.",
    '',
    '| phase | s | load avg | datapath rate | kernel ns/packet | agent processed | lost in ring buffer | agent CPU µs/event | fast client got (of its flows) | fast client told lost | dropped for slow clients | agent RSS max MiB | live heap MiB |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...phases.map((p, i) => row(`${Math.floor(i / 2) + 1}${p.stalled ? 'B stalled client' : 'A'}`, p)),
    row('all A', a),
    row('all B', b),
    row('whole run', total),
    '',
    `Ratios B/A (stalled client present vs absent, same run): datapath rate ${(b.generated / b.seconds / (a.generated / a.seconds)).toFixed(3)}, ` +
      `kernel ns/packet ${(b.kernelNs / Math.max(1, a.kernelNs)).toFixed(3)}, agent CPU per event ${(b.cpuUs / b.seen / (a.cpuUs / a.seen)).toFixed(3)}, ` +
      `fast client share received ${(b.fastReceived / Math.max(1, b.fastExpected) / (a.fastReceived / Math.max(1, a.fastExpected))).toFixed(3)}.`,
    `Whole run: ${total.seconds.toFixed(0)} s at ${kRate(total.generated / total.seconds)} offered, ${kRate(total.seen / total.seconds)} processed, ` +
      `${total.lostRing} records lost in the ring buffer and counted (${((100 * total.lostRing) / Math.max(1, total.generated)).toFixed(2)}%).`,
    `Memory is bounded by construction: the flow ring holds ${st.maxFlows} flows, each client queue at most 4096 and 256 messages in flight; agent RSS peaked at ${mib(total.rssMax)} MiB; the live heap after a full GC at the end of each phase: ${phases.map((p) => mib(p.liveHeap)).join(', ')} MiB.`,
    'What a stalled client cannot take is dropped for it alone and counted (`weir_lost_events_total{source="flow_client_queue"}`, and a LostEvent to that client); records the kernel could not queue are counted in `weir_lost_events_total{source="datapath_ring_buffer"}` and announced to every following client.',
    '',
    "Two pieces of the pipeline beside the way they were done before, after the phases, in the same process (records like the phases' own, 400 to a kernel tick as at 100k/s and 250 Hz; A and B alternating over 7 rounds, CPU time, medians):",
    '',
    '| per event | before | ns | now | ns | now / before |',
    '|---|---|---|---|---|---|',
    ...micro.map(
      (m) =>
        `| ${m.what} | ${m.before} | ${m.beforeNs.toFixed(0)} | ${m.after} | ${m.afterNs.toFixed(0)} | ${(m.afterNs / m.beforeNs).toFixed(2)} |`,
    ),
  ].join('\n');
}
