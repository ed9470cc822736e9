/**
 * `make bench` suite "flows": the agent's flow pipeline under 100,000 flow events per
 * second from the real datapath for a minute.
 *
 * A worker thread runs the real to_pod program (BPF_PROG_TEST_RUN) on denied TCP SYNs at
 * a paced 100k/s; each run puts one record into the real ring buffer. The agent side is
 * what the daemon runs: the ring-buffer addon, decode, enrichment, the flow ring, the
 * gRPC flow API on a unix socket and /metrics counters. Two client processes follow:
 * a `--port 8080` client (10% of the flows) that keeps up, and, in the second phase, a
 * real `weir observe --follow` whose output nobody reads. The phases run side by side
 * in one run so the effect of the slow client is a ratio. Needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Datapath } from '../../agent/datapath/datapath.js';
import { Reconciler } from '../../agent/datapath/reconciler.js';
import { startObservability, type Observability } from '../../agent/observability.js';
import { writeAddr } from '../../maps/codecs/addr.js';
import type { BenchSection } from './run.js';
import type { GeneratorInput, GeneratorPhase } from './flows-generator.js';

const RATE = 100_000;
const WARMUP_S = 3;
const ALONE_S = 15;
const WITH_SLOW_S = 60;
const LINK = 'wobbench0';
const POD_IP = '10.230.90.2';
const CLIENT_IP = '10.230.90.1';
const POD_ID = 4100;
const CLIENT_ID = 4101;

/** Ethernet + IPv4 + TCP SYN, no checksums (the program does not check them). */
function synFrame(src: string, dst: string, sport: number, dport: number): Buffer {
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

interface ClientStats {
  flows: number;
  lost: number;
}

function spawnClient(args: string[]): { child: ChildProcess; last: () => ClientStats } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let last: ClientStats = { flows: 0, lost: 0 };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l.trim()) last = JSON.parse(l) as ClientStats;
  });
  return { child, last: () => last };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const k = (n: number) => `${(n / 1000).toFixed(1)}k`;

interface PhaseFigures {
  name: string;
  seconds: number;
  generated: number;
  kernelNsPerPacket: number;
  seen: number;
  lostRing: number;
  fastReceived: number;
  fastExpected: number;
  fastLost: number;
  slowDropped: number;
  rssMin: number;
  rssMax: number;
  heapMax: number;
  /** RSS every 10 s of the phase. */
  rssTrail: number[];
  load: number;
}

export async function run(): Promise<BenchSection> {
  if (process.getuid?.() !== 0) throw new Error('the flows bench loads BPF programs: run make bench as root');
  const dir = mkdtempSync(join(tmpdir(), 'wob-bench-'));
  const socket = join(dir, 'observer.sock');
  const pinRoot = `/sys/fs/bpf/wob-bench-${process.pid}`;
  const children: ChildProcess[] = [];
  let dp: Datapath | undefined;
  let obs: Observability | undefined;
  let worker: Worker | undefined;
  try {
    try {
      execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' });
    } catch {
      /* not left over */
    }
    execFileSync('ip', ['link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
    const ifindex = Number(readFileSync(`/sys/class/net/${LINK}/ifindex`, 'utf8').trim());
    dp = Datapath.open({ pinRoot });
    const rec = new Reconciler(dp.reconcilerMaps(), (key) => (key === 'bench/sink' ? ifindex : undefined));
    const st = rec.applyFull({
      endpoints: new Map([
        [
          'bench/sink',
          { key: 'bench/sink', namespace: 'bench', name: 'sink', ips: [POD_IP], identity: POD_ID, ingressIsolated: true, egressIsolated: false, entries: [] },
        ],
      ]),
      ipcache: new Map([
        [`${POD_IP}/32`, { cidr: `${POD_IP}/32`, identity: POD_ID }],
        [`${CLIENT_IP}/32`, { cidr: `${CLIENT_IP}/32`, identity: CLIENT_ID }],
      ]),
    });
    if (st.errors.length) throw new Error(`reconcile failed: ${JSON.stringify(st.errors)}`);

    const d = dp;
    obs = await startObservability({
      nodeName: 'bench',
      context: {
        podByIp: (ip) =>
          ip === POD_IP ? { namespace: 'bench', name: 'sink', labels: { app: 'sink' } } : ip === CLIENT_IP ? { namespace: 'bench', name: 'source', labels: { app: 'source' } } : undefined,
        identityLabels: () => undefined,
        generation: () => 0,
      },
      events: (cb) => d.onFlowEvents(cb),
      datapath: { readCounters: () => d.counters(), lostEvents: () => d.lostEvents() },
      socketPath: socket,
      metricsPort: null,
      lostPollMs: 250,
    });
    const observer = obs.observer;

    const fast = spawnClient(['dist/test/bench/flows-client.js', socket, '8080']);
    children.push(fast.child);
    while (observer.status().connectedClients < 1) await sleep(20);

    const input: GeneratorInput = {
      progFd: dp.program('toPod'),
      ifindex,
      packets: [
        { frame: synFrame(CLIENT_IP, POD_IP, 40000, 9000), share: 0.9 },
        { frame: synFrame(CLIENT_IP, POD_IP, 40001, 8080), share: 0.1 },
      ],
      ratePerSec: RATE,
    };
    worker = new Worker(new URL('./flows-generator.js', import.meta.url), { workerData: input });
    const genDone = new Promise<GeneratorPhase[]>((resolve, reject) => {
      worker!.once('message', (m: GeneratorPhase[]) => resolve(m));
      worker!.once('error', reject);
    });

    const phases: PhaseFigures[] = [];
    const measure = async (name: string, seconds: number, expectedShare: number): Promise<void> => {
      worker!.postMessage({ phase: name });
      const s0 = observer.status();
      const f0 = fast.last();
      let rssMin = Infinity;
      let rssMax = 0;
      let heapMax = 0;
      const rssTrail: number[] = [];
      for (let i = 0; i < seconds; i++) {
        await sleep(1000);
        const m = process.memoryUsage();
        rssMin = Math.min(rssMin, m.rss);
        rssMax = Math.max(rssMax, m.rss);
        heapMax = Math.max(heapMax, m.heapUsed);
        if (i % 10 === 9) rssTrail.push(m.rss);
      }
      const load = loadavg()[0]!;
      await sleep(1100); // the clients print once a second
      const s1 = observer.status();
      const f1 = fast.last();
      const seen = s1.seenFlows - s0.seenFlows;
      phases.push({
        name,
        seconds,
        generated: 0,
        kernelNsPerPacket: 0,
        seen,
        lostRing: s1.lostEvents - s0.lostEvents,
        fastReceived: f1.flows - f0.flows,
        fastExpected: Math.round(seen * expectedShare),
        fastLost: f1.lost - f0.lost,
        slowDropped: s1.clientDroppedFlows - s0.clientDroppedFlows,
        rssMin,
        rssMax,
        heapMax,
        rssTrail,
        load,
      });
    };

    await sleep(WARMUP_S * 1000);
    await measure('one client keeping up', ALONE_S, 0.1);
    const slow = spawn(process.execPath, ['dist/agent/cli/main.js', 'observe', '--server', socket, '--follow', '--color', 'never'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(slow);
    slow.stdout!.pause(); // nobody reads its output: it blocks on stdout and stops reading flows
    while (observer.status().connectedClients < 2) await sleep(20);
    await measure('plus a stalled weir observe', WITH_SLOW_S, 0.1);
    worker.postMessage({ stop: true });
    const gen = await genDone;
    for (const p of phases) {
      const g = gen.find((x) => x.name === p.name);
      if (g) {
        p.generated = g.packets;
        p.kernelNsPerPacket = g.kernelNsPerPacket;
        p.seconds = g.seconds;
      }
    }
    return { title: 'Flows: 100k events/s from the datapath, a fast and a stalled client', markdown: report(phases, obs) };
  } finally {
    await worker?.terminate();
    for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    await obs?.close();
    dp?.close();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    try {
      execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
}

function report(phases: PhaseFigures[], obs: Observability): string {
  const [a, b] = phases as [PhaseFigures, PhaseFigures];
  const rate = (p: PhaseFigures, n: number) => n / p.seconds;
  const row = (p: PhaseFigures) =>
    `| ${p.name} | ${p.seconds.toFixed(0)} | ${k(rate(p, p.generated))}/s | ${p.kernelNsPerPacket.toFixed(0)} | ${k(rate(p, p.seen))}/s | ${p.lostRing} | ` +
    `${k(rate(p, p.fastReceived))}/s (${((100 * p.fastReceived) / Math.max(1, p.fastExpected)).toFixed(1)}% of its flows) | ${p.fastLost} | ${p.slowDropped} | ${mib(p.rssMin)}–${mib(p.rssMax)} | ${mib(p.heapMax)} |`;
  const st = obs.observer.status();
  return [
    `Offered load: ${k(RATE)} flow events/s (denied TCP SYNs through the real \`to_pod\` program via BPF_PROG_TEST_RUN in a worker thread, each emitting one ring-buffer record).`,
    'The agent side is what the daemon runs (ring-buffer addon, decode, enrichment, flow ring, gRPC flow API on a unix socket).',
    'The fast client follows `--port 8080` (10% of flows) in its own process; the stalled one is `weir observe --follow` whose stdout is never read.',
    '',
    `Load average on the machine during the phases (other work shares its cores): ${phases.map((p) => p.load.toFixed(1)).join(', ')}.`,
    '',
    '| phase | s | datapath rate | kernel ns/packet | agent processed | lost in ring buffer | fast client received | fast client told lost | dropped for stalled client | agent RSS MiB | heap MiB |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    row(a),
    row(b),
    '',
    `Ratios, stalled client present vs absent: datapath rate ${(rate(b, b.generated) / rate(a, a.generated)).toFixed(3)}, kernel ns/packet ${(b.kernelNsPerPacket / Math.max(1, a.kernelNsPerPacket)).toFixed(3)}, ` +
      `agent processed ${(rate(b, b.seen) / rate(a, a.seen)).toFixed(3)}, fast client received ${(rate(b, b.fastReceived) / Math.max(1, rate(a, a.fastReceived))).toFixed(3)}.`,
    `Memory stays bounded: the flow ring holds ${st.maxFlows} flows and each client queue at most 4096; agent RSS every 10 s of the ${b.seconds.toFixed(0)} s phase with the stalled client: ${b.rssTrail.map(mib).join(', ')} MiB.`,
    'Every flow the stalled client could not take was dropped for it alone and counted (`weir_lost_events_total{source="flow_client_queue"}`); records the kernel could not queue are counted in `weir_lost_events_total{source="datapath_ring_buffer"}`.',
  ].join('\n');
}
