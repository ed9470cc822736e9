/** BPF_PROG_TEST_RUN: run a program on a crafted packet in the kernel. */
import { fn, check } from './libbpf.js';

export interface TestRunResult {
  /** The program's return code (tc: 0 TC_ACT_OK, 2 TC_ACT_SHOT). */
  retval: number;
  /** Average ns per repetition, measured by the kernel. */
  durationNs: number;
  /** The packet after the program (it may have been pulled, never rewritten by weir). */
  dataOut: Buffer;
}

/** struct __sk_buff is 192 bytes; ifindex lives at offset 40 (see linux/bpf.h). */
const SKB_CTX_SIZE = 192;
const SKB_IFINDEX_OFF = 40;

export interface TestRunOptions {
  repeat?: number;
  /** skb->ifindex as the program sees it; must be an existing interface (kernel rule). */
  ifindex?: number;
}

export function testRun(progFd: number, packet: Buffer, opts: TestRunOptions = {}): TestRunResult {
  const out = Buffer.alloc(packet.length + 256);
  let ctx: Buffer | null = null;
  if (opts.ifindex !== undefined) {
    ctx = Buffer.alloc(SKB_CTX_SIZE);
    ctx.writeUInt32LE(opts.ifindex, SKB_IFINDEX_OFF);
  }
  const o = {
    sz: 80,
    data_in: packet,
    data_out: out,
    data_size_in: packet.length,
    data_size_out: out.length,
    ctx_in: ctx,
    ctx_out: null,
    ctx_size_in: ctx ? ctx.length : 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: opts.repeat ?? 1,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  };
  check(fn.test_run(progFd, o) as number, `BPF_PROG_TEST_RUN on program fd ${progFd}`);
  return { retval: o.retval, durationNs: o.duration, dataOut: out.subarray(0, o.data_size_out) };
}
