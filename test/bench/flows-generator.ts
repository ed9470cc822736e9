/**
 * Child process of the flows bench: the "datapath under load". Loads the datapath object
 * adopting the bench's pinned maps (as a restarted agent would), then runs the real
 * to_pod program through BPF_PROG_TEST_RUN on denied TCP SYNs at a paced rate; every
 * run puts one record into the shared ring buffer. Prints one JSON line per second:
 * packets run and the kernel's time for them, so the bench can show that the agent and
 * its clients never slow the datapath down (`{"packets":N,"kernelNs":T}`). Runs until SIGTERM.
 *
 *   node flows-generator.js PIN_ROOT IFINDEX RATE FRAME_HEX:SHARE...
 */
import { Datapath } from '../../agent/datapath/datapath.js';
import { testRun } from '../../maps/test-run.js';

const [pinRoot, ifindexArg, rateArg, ...frameArgs] = process.argv.slice(2);
if (!pinRoot || !ifindexArg || !rateArg || frameArgs.length === 0) {
  process.stderr.write('usage: flows-generator PIN_ROOT IFINDEX RATE FRAME_HEX:SHARE...\n');
  process.exit(2);
}
const ifindex = Number(ifindexArg);
const rate = Number(rateArg);
const frames = frameArgs.map((a) => {
  const [hex, share] = a.split(':');
  return { frame: Buffer.from(hex!, 'hex'), share: Number(share) };
});
const MAX_BATCH = 2000;

const dp = Datapath.open({ pinRoot });
const prog = dp.program('toPod');
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

let window = { packets: 0, kernelNs: 0 };
const report = setInterval(() => {
  process.stdout.write(`${JSON.stringify(window)}\n`);
  window = { packets: 0, kernelNs: 0 };
}, 1000);

async function loop(): Promise<void> {
  const t0 = process.hrtime.bigint();
  let sent = 0;
  while (!stopping) {
    const due = Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * rate) - sent;
    if (due <= 0) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    const n = Math.min(due, MAX_BATCH);
    for (const f of frames) {
      const repeat = Math.max(1, Math.round(n * f.share));
      const r = testRun(prog, f.frame, { ifindex, repeat });
      sent += repeat;
      window.packets += repeat;
      window.kernelNs += r.durationNs * repeat;
    }
    await new Promise((r) => setImmediate(r));
  }
  clearInterval(report);
  dp.close();
  process.exit(0);
}

void loop();
