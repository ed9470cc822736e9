/**
 * Differential check of weir's packet parser (bpf/lib/parse.h) against an independent
 * dissector: test/kernel/parser-reference.py generates packets with scapy and says what scapy
 * finds in each; every packet is run through the parser alone (bpf/weir_test_parse.c) with
 * BPF_PROG_TEST_RUN and the two answers are compared field by field. Needs root.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadObject } from '../../maps/object.js';
import { defaultObjectPath } from '../../agent/datapath/datapath.js';
import { testRun } from '../../maps/test-run.js';

interface RefTuple {
  family: number;
  saddr: string;
  daddr: string;
  proto: number;
  sport: number;
  dport: number;
}

/** What the reference (scapy) says about one packet. */
export interface RefResult {
  reason: 'NONE' | 'TRUNCATED' | 'MALFORMED' | 'UNSUPPORTED_L3';
  /** Refused only because the chain is longer than weir walks. */
  limit?: boolean;
  kind?: 'normal' | 'always' | 'icmp_error';
  frag?: 'none' | 'first' | 'later';
  frag_id?: number;
  tcp_flags?: number;
  icmp?: [number, number];
  t?: RefTuple;
  inner?: RefTuple;
}

const REASONS: Record<number, RefResult['reason']> = { 0: 'NONE', 3: 'TRUNCATED', 4: 'MALFORMED', 6: 'UNSUPPORTED_L3' };
const KINDS = ['normal', 'always', 'icmp_error'] as const;
const FRAGS = ['none', 'first', 'later'] as const;

/** struct weir_parse_result of bpf/weir_test_parse.c. */
function decode(b: Buffer): RefResult & { rawReason: number } {
  const tuple = (o: number): RefTuple => {
    const family = b[o + 37];
    const n = family === 4 ? 4 : 16;
    return {
      family,
      saddr: b.subarray(o, o + n).toString('hex'),
      daddr: b.subarray(o + 16, o + 16 + n).toString('hex'),
      sport: b.readUInt16LE(o + 32),
      dport: b.readUInt16LE(o + 34),
      proto: b[o + 36],
    };
  };
  const rawReason = b.readUInt32LE(0);
  return {
    rawReason,
    reason: REASONS[rawReason] ?? (`CODE_${rawReason}` as RefResult['reason']),
    kind: KINDS[b[4]],
    frag: FRAGS[b[5]],
    tcp_flags: b[6],
    frag_id: b.readUInt32LE(8),
    icmp: [b.readUInt16LE(12), b.readUInt16LE(14)],
    t: tuple(16),
    inner: tuple(56),
  };
}

/** The differences between weir's answer and the reference's (empty: they agree). */
function differences(ref: RefResult, got: RefResult): string[] {
  if (ref.reason !== got.reason) return [`reason: reference ${ref.reason}, weir ${got.reason}`];
  if (ref.reason !== 'NONE') return [];
  const d: string[] = [];
  const canon = (v: unknown): string =>
    JSON.stringify(v, (_k, x: unknown) =>
      x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x,
    );
  const cmp = (what: string, a: unknown, b: unknown): void => {
    if (canon(a) !== canon(b)) d.push(`${what}: reference ${canon(a)}, weir ${canon(b)}`);
  };
  cmp('kind', ref.kind, got.kind);
  if (!ref.t) return d; // ARP: no tuple
  cmp('tuple', ref.t, got.t);
  cmp('frag', ref.frag, got.frag);
  if (ref.frag !== 'none') cmp('frag_id', ref.frag_id, got.frag_id);
  if (ref.t.proto === 6 && ref.frag !== 'later') cmp('tcp_flags', ref.tcp_flags, got.tcp_flags);
  if ((ref.t.proto === 1 || ref.t.proto === 58) && ref.frag !== 'later') cmp('icmp', ref.icmp, got.icmp);
  if (ref.kind === 'icmp_error') cmp('inner', ref.inner, got.inner);
  return d;
}

export interface DiffReport {
  packets: number;
  mismatches: Array<{ hex: string; diffs: string[] }>;
  /** Packets weir refused (any drop reason). */
  refused: number;
  /** Of those, refused only for weir's walk limit (the reference dissects them). */
  refusedForLimit: number;
  byReason: Record<string, number>;
  /** Packets the reference finds whole (not truncated or malformed). */
  whole: number;
  /** Packets with IPv6 AH in their chain, and those that were whole. */
  withAh: number;
  seconds: { generate: number; kernel: number };
}

/** Generates `count` packets with scapy (seeded) and compares weir's parser with the reference. */
export function runParserDiff(count: number, seed: number): DiffReport {
  const dir = mkdtempSync(join(tmpdir(), 'weir-parser-'));
  try {
    const file = join(dir, 'packets.jsonl');
    const t0 = Date.now();
    execFileSync(
      '/usr/bin/python3',
      [join(process.cwd(), 'test/kernel/parser-reference.py'), String(count), String(seed), file],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    const t1 = Date.now();
    const obj = loadObject(defaultObjectPath().replace(/weir\.o$/, 'weir_test_parse.o'));
    const report: DiffReport = {
      packets: 0,
      mismatches: [],
      refused: 0,
      refusedForLimit: 0,
      byReason: {},
      whole: 0,
      withAh: 0,
      seconds: { generate: 0, kernel: 0 },
    };
    try {
      const prog = obj.program('parse');
      const result = obj.map('parse_result');
      const zero = Buffer.alloc(4);
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line) continue;
        const { hex, expect } = JSON.parse(line) as { hex: string; expect: RefResult };
        const frame = Buffer.from(hex, 'hex');
        testRun(prog, frame);
        const got = decode(result.lookup(zero) as Buffer);
        report.packets++;
        report.byReason[got.reason] = (report.byReason[got.reason] ?? 0) + 1;
        if (got.rawReason !== 0) report.refused++;
        if (got.rawReason !== 0 && expect.limit) report.refusedForLimit++;
        if (expect.reason === 'NONE' || expect.limit) report.whole++;
        if (hasAh(frame)) report.withAh++;
        const diffs = differences(expect, got);
        if (diffs.length) report.mismatches.push({ hex, diffs });
      }
    } finally {
      obj.close();
    }
    report.seconds = { generate: (t1 - t0) / 1000, kernel: (Date.now() - t1) / 1000 };
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether an IPv6 frame's header chain names AH (51) before the upper layer (as a statistic only). */
function hasAh(frame: Buffer): boolean {
  if (frame.length < 54 || frame.readUInt16BE(12) !== 0x86dd) return false;
  let nh = frame[20];
  let off = 54;
  for (let i = 0; i < 8 && off + 2 <= frame.length; i++) {
    if (nh === 51) return true;
    if (![0, 43, 60, 44].includes(nh)) return false;
    const len = nh === 44 ? 8 : (frame[off + 1] + 1) * 8;
    nh = frame[off];
    off += len;
  }
  return false;
}
