/**
 * The TypeScript codecs and constants equal bpf/weir_abi.h as the C compiler
 * sees it: a small C program prints sizeof/offsetof and every #define we mirror.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ALL_LAYOUTS } from '../../maps/codecs/index.js';
import * as abi from '../../maps/abi.js';
import { decodeFlowEvent, flowEventLayout } from '../../maps/codecs/flow-event.js';
import { rangeBlocks } from '../../maps/codecs/policy.js';
import { decodeConfig, encodeConfig } from '../../maps/codecs/config.js';

const CONSTANTS: Array<[string, number]> = [
  ...Object.entries(abi.Identity).map(([k, v]): [string, number] => [`WEIR_ID_${k}`, v]),
  ...Object.entries(abi.Direction).map(([k, v]): [string, number] => [`WEIR_DIR_${k}`, v]),
  ...Object.entries(abi.Verdict).map(([k, v]): [string, number] => [`WEIR_VERDICT_${k}`, v]),
  ...Object.entries(abi.Match).map(([k, v]): [string, number] => [`WEIR_MATCH_${k}`, v]),
  ...Object.entries(abi.DropReason).map(([k, v]): [string, number] => [`WEIR_DROP_${k}`, v]),
  ...Object.entries(abi.FlowFlag).map(([k, v]): [string, number] => [`WEIR_FLOW_F_${k}`, v]),
  ...Object.entries(abi.Family).map(([k, v]): [string, number] => [`WEIR_FAMILY_${k}`, v]),
  ...Object.entries(abi.EndpointFlag).map(([k, v]): [string, number] => [`WEIR_EP_F_${k}`, v]),
  ...Object.entries(abi.Kind).map(([k, v]): [string, number] => [`WEIR_KIND_${k}`, v]),
  ...Object.entries(abi.PolicyFlag).map(([k, v]): [string, number] => [`WEIR_POLICY_F_${k}`, v]),
  ...Object.entries(abi.CtFlag).map(([k, v]): [string, number] => [`WEIR_CT_F_${k}`, v]),
  ...Object.entries(abi.ConfigFlag).map(([k, v]): [string, number] => [`WEIR_CFG_F_${k}`, v]),
  ...Object.entries(abi.Limits).map(([k, v]): [string, number] => [`WEIR_${k}`, v]),
  ...Object.entries(abi.SvcScope).map(([k, v]): [string, number] => [`WEIR_SVC_SCOPE_${k}`, v]),
  ...Object.entries(abi.SvcFlag).map(([k, v]): [string, number] => [`WEIR_SVC_F_${k}`, v]),
  ...Object.entries(abi.LbFlag).map(([k, v]): [string, number] => [`WEIR_LB_F_${k}`, v]),
  ...Object.entries(abi.LbCounter).map(([k, v]): [string, number] => [`WEIR_LB_CNT_${k}`, v]),
  ...Object.entries(abi.SvcBackendFlag).map(([k, v]): [string, number] => [`WEIR_SVC_BE_F_${k}`, v]),
  ...Object.entries(abi.NatFlag).map(([k, v]): [string, number] => [`WEIR_NAT_F_${k}`, v]),
  ...Object.entries(abi.NatPort).map(([k, v]): [string, number] => [`WEIR_NAT_PORT_${k}`, v]),
  ['WEIR_LB_CNT_MAX', abi.LB_COUNTER_MAX],
  ['WEIR_MATCH_MAX', abi.MATCH_MAX],
  ['WEIR_DROP_MAX', abi.DROP_MAX],
  ['WEIR_COUNTER_ENTRIES', abi.COUNTER_ENTRIES],
  ['WEIR_IPCACHE_LPM_PREFIX_BASE', abi.IPCACHE_LPM_PREFIX_BASE],
  ['WEIR_POLICY_RANGE_PREFIX_BASE', abi.POLICY_RANGE_PREFIX_BASE],
  ['WEIR_EP_KINDS_SHIFT(0)', abi.epKindsShift(0)],
  ['WEIR_EP_KINDS_SHIFT(1)', abi.epKindsShift(1)],
  ['WEIR_COUNTER_INDEX(1, 1, 7)', abi.counterIndex(1, 1, 7)],
  ['WEIR_COUNTER_INDEX(0, 0, 9)', abi.counterIndex(0, 0, 9)],
];

function cProgram(): string {
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "weir_abi.h"', 'int main(void) {'];
  for (const l of ALL_LAYOUTS) {
    lines.push(`printf("sizeof ${l.cName}\\t%zu\\n", sizeof(struct ${l.cName}));`);
    for (const f of Object.keys(l.offsets)) {
      lines.push(`printf("offsetof ${l.cName}.${f}\\t%zu\\n", offsetof(struct ${l.cName}, ${f}));`);
    }
  }
  for (const [name] of CONSTANTS) lines.push(`printf("const ${name}\\t%llu\\n", (unsigned long long)(${name}));`);
  lines.push('return 0; }');
  return lines.join('\n');
}

describe('ABI: codecs and constants equal bpf/weir_abi.h', () => {
  let facts: Map<string, number>;
  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), 'wdp-abi-'));
    try {
      writeFileSync(join(dir, 'abi.c'), cProgram());
      execFileSync('cc', ['-I', resolve('bpf'), '-o', join(dir, 'abi'), join(dir, 'abi.c')]);
      const out = execFileSync(join(dir, 'abi'), { encoding: 'utf8' });
      facts = new Map(
        out
          .trim()
          .split('\n')
          .map((l) => {
            const [k, v] = l.split('\t');
            return [k, Number(v)];
          }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(ALL_LAYOUTS.map((l) => [l.cName, l] as const))('struct %s: size and every offset', (_name, l) => {
    expect(l.size).toBe(facts.get(`sizeof ${l.cName}`));
    for (const [f, off] of Object.entries(l.offsets)) {
      expect([f, off]).toEqual([f, facts.get(`offsetof ${l.cName}.${f}`)]);
    }
  });

  it('every mirrored constant has the header value', () => {
    const wrong = CONSTANTS.filter(([name, v]) => facts.get(`const ${name}`) !== v >>> 0);
    expect(wrong).toEqual([]);
  });

  it('decodes a flow event written field by field', () => {
    const o = flowEventLayout.offsets;
    const b = Buffer.alloc(flowEventLayout.size);
    b.writeBigUInt64LE(123456789n, o.ts_jiffies);
    b.writeUInt32LE(7, o.ifindex);
    b.writeUInt32LE(3, o.endpoint_id);
    b.writeUInt32LE(256, o.src_identity);
    b.writeUInt32LE(2, o.dst_identity);
    Buffer.from([0xfd, 0, 2, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]).copy(b, o.src_addr);
    Buffer.from([0xfd, 0, 2, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6]).copy(b, o.dst_addr);
    b.writeUInt16LE(40000, o.src_port);
    b.writeUInt16LE(80, o.dst_port);
    b.writeUInt8(6, o.family);
    b.writeUInt8(6, o.protocol);
    b.writeUInt8(1, o.direction);
    b.writeUInt8(1, o.verdict);
    b.writeUInt8(0, o.match);
    b.writeUInt8(1, o.drop_reason);
    b.writeUInt8(0x02, o.tcp_flags);
    b.writeUInt8(2, o.flags);
    b.writeUInt32LE(74, o.len);
    expect(decodeFlowEvent(b)).toEqual({
      tsNs: 123456789n,
      ifindex: 7,
      endpointId: 3,
      srcIdentity: 256,
      dstIdentity: 2,
      srcAddr: 'fd00:210::5',
      dstAddr: 'fd00:210::6',
      srcPort: 40000,
      dstPort: 80,
      family: 6,
      protocol: 6,
      direction: 1,
      verdict: 1,
      match: 0,
      dropReason: 1,
      tcpFlags: 2,
      flags: 2,
      len: 74,
    });
    expect(abi.dropReasonName(1)).toBe('POLICY_DENIED');
    expect(() => decodeFlowEvent(b.subarray(0, 10))).toThrow(/rebuild/);
  });

  it('config switches: allowed flows and local delivery on unless switched off, and an unset config reads as the defaults', () => {
    const flags = (b: Buffer) => b.readUInt32LE(0);
    expect(flags(encodeConfig({ hostAllow: true }))).toBe((abi.ConfigFlag.SET | abi.ConfigFlag.HOST_ALLOW) >>> 0);
    expect(flags(encodeConfig({ hostAllow: false, allowedFlows: false }))).toBe(
      (abi.ConfigFlag.SET | abi.ConfigFlag.NO_ALLOWED_FLOWS) >>> 0,
    );
    expect(flags(encodeConfig({ hostAllow: false, localDelivery: false }))).toBe(
      (abi.ConfigFlag.SET | abi.ConfigFlag.NO_LOCAL_DELIVERY) >>> 0,
    );
    expect(decodeConfig(encodeConfig({ hostAllow: true, allowedFlows: false }))).toEqual({
      hostAllow: true,
      allowedFlows: false,
      localDelivery: true,
    });
    expect(decodeConfig(encodeConfig({ hostAllow: true, localDelivery: false }))).toEqual({
      hostAllow: true,
      allowedFlows: true,
      localDelivery: false,
    });
    expect(decodeConfig(encodeConfig({ hostAllow: false }))).toEqual({
      hostAllow: false,
      allowedFlows: true,
      localDelivery: true,
    });
    expect(decodeConfig(Buffer.alloc(8))).toEqual({ hostAllow: true, allowedFlows: true, localDelivery: true });
  });

  it('port ranges split into the fewest aligned prefix blocks', () => {
    expect(rangeBlocks(80, 80)).toEqual([{ port: 80, portBits: 16 }]);
    expect(rangeBlocks(0, 65535)).toEqual([{ port: 0, portBits: 0 }]);
    expect(rangeBlocks(1000, 1003)).toEqual([{ port: 1000, portBits: 14 }]);
    const blocks = rangeBlocks(8000, 8100);
    const covered = new Set<number>();
    for (const b of blocks) for (let p = b.port; p < b.port + 2 ** (16 - b.portBits); p++) covered.add(p);
    expect([...covered].sort((a, c) => a - c)).toEqual(Array.from({ length: 101 }, (_, i) => 8000 + i));
    expect(() => rangeBlocks(90, 80)).toThrow(/port <= endPort/);
  });
});
