/**
 * Worker thread of the flows bench: the "datapath under load". Runs the real to_pod
 * program through BPF_PROG_TEST_RUN on denied TCP SYNs at a paced rate; every run
 * emits one flow event into the real ring buffer. Reports how many it ran and how
 * long the kernel took per packet, so the bench can show the agent and its clients
 * never slow the datapath down.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { testRun } from '../../maps/test-run.js';

export interface GeneratorInput {
  progFd: number;
  ifindex: number;
  /** Packets, each with its share of the rate (shares sum to 1). */
  packets: Array<{ frame: Uint8Array; share: number }>;
  ratePerSec: number;
}

export interface GeneratorPhase {
  name: string;
  packets: number;
  seconds: number;
  /** Kernel-measured ns per program run (BPF_PROG_TEST_RUN duration). */
  kernelNsPerPacket: number;
}

const input = workerData as GeneratorInput;
const frames = input.packets.map((p) => ({ frame: Buffer.from(p.frame), share: p.share }));
const MAX_BATCH = 2000;

let phase = { name: 'warmup', packets: 0, start: process.hrtime.bigint(), kernelNs: 0 };
let stopping = false;
const done: GeneratorPhase[] = [];

function endPhase(): void {
  const seconds = Number(process.hrtime.bigint() - phase.start) / 1e9;
  done.push({ name: phase.name, packets: phase.packets, seconds, kernelNsPerPacket: phase.packets ? phase.kernelNs / phase.packets : 0 });
}

parentPort!.on('message', (m: { phase?: string; stop?: boolean }) => {
  if (m.phase !== undefined) {
    endPhase();
    phase = { name: m.phase, packets: 0, start: process.hrtime.bigint(), kernelNs: 0 };
  }
  if (m.stop) stopping = true;
});

async function loop(): Promise<void> {
  const t0 = process.hrtime.bigint();
  let sent = 0;
  while (!stopping) {
    const due = Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * input.ratePerSec) - sent;
    if (due <= 0) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    const n = Math.min(due, MAX_BATCH);
    for (const f of frames) {
      const repeat = Math.max(1, Math.round(n * f.share));
      const r = testRun(input.progFd, f.frame, { ifindex: input.ifindex, repeat });
      sent += repeat;
      phase.packets += repeat;
      phase.kernelNs += r.durationNs * repeat;
    }
    // let the message port deliver phase changes
    await new Promise((r) => setImmediate(r));
  }
  endPhase();
  parentPort!.postMessage(done);
}

void loop();
