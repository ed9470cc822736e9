/**
 * Part of the `flows` suite: two per-event pieces of the agent's flow pipeline, each beside the
 * way it was done before, in this process, alternating A and B over rounds (CPU time of each run,
 * median over rounds):
 *
 * - a ring-buffer batch's records to FlowEvents: a view per record and the per-record decoder as
 *   it was (splitBatch + a copy of the old decodeFlowEvent, kept here) vs in place (decodeFlowEvents: no view, IPv4 strings kept, one
 *   time conversion per tick);
 * - a followed flow to its GetFlowsResponse bytes: protobufjs's generated Flow encoder and writer vs
 *   the flow writer (agent/flows/flow-wire.ts; the same bytes, test/flows/flow-wire.test.ts).
 */
import { decodeFlowEvents, flowEventLayout, FLOW_EVENT_SIZE, type FlowEvent } from '../../maps/codecs/flow-event.js';
import { readAddr, writeAddr } from '../../maps/codecs/addr.js';
import { splitBatch } from '../../maps/ringbuf.js';
import { buildFlow, flowUuid } from '../../agent/flows/flow.js';
import { Enricher, type FlowContext } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { encodeFlowResponse } from '../../agent/flows/proto.js';
import { protobufjsResponse } from '../flows/protobufjs-reference.js';

const BATCH = 2000;
const ROUNDS = 7;
/** Events per tick at 100k/s and CONFIG_HZ=250. */
const PER_TICK = 400;

/** A batch as the addon hands it over: denied TCP SYNs like the suite's, 10% to port 8080. */
function batch(src: string, dst: string): [Buffer, Buffer] {
  const o = flowEventLayout.offsets;
  const data = Buffer.alloc(BATCH * FLOW_EVENT_SIZE);
  const ends = Buffer.alloc(BATCH * 4);
  for (let i = 0; i < BATCH; i++) {
    const b = data.subarray(i * FLOW_EVENT_SIZE, (i + 1) * FLOW_EVENT_SIZE);
    b.writeBigUInt64LE(4_295_000_000n + BigInt(Math.floor(i / PER_TICK)), o.ts_jiffies);
    b.writeUInt32LE(7, o.ifindex);
    b.writeUInt32LE(12, o.endpoint_id);
    b.writeUInt32LE(4101, o.src_identity);
    b.writeUInt32LE(4100, o.dst_identity);
    writeAddr(b, o.src_addr, src);
    writeAddr(b, o.dst_addr, dst);
    b.writeUInt16LE(40000 + (i % 20000), o.src_port);
    b.writeUInt16LE(i % 10 === 0 ? 8080 : 9000, o.dst_port);
    b[o.family] = 4;
    b[o.protocol] = 6;
    b[o.verdict] = 1;
    b[o.drop_reason] = 1;
    b[o.tcp_flags] = 0x02;
    b.writeUInt32LE(54, o.len);
    ends.writeUInt32LE((i + 1) * FLOW_EVENT_SIZE, i * 4);
  }
  return [data, ends];
}

/** The per-record decoder as the reader ran it before (a BigInt time and two formatted addresses per record). */
function decodeAsBefore(buf: Buffer, toMonoNs: (jiffies: bigint) => bigint): FlowEvent {
  const o = flowEventLayout.offsets;
  const family = buf.readUInt8(o.family) === 6 ? 6 : 4;
  const flags = buf.readUInt8(o.flags);
  const ev: FlowEvent = {
    tsNs: toMonoNs(buf.readBigUInt64LE(o.ts_jiffies)),
    ifindex: buf.readUInt32LE(o.ifindex),
    endpointId: buf.readUInt32LE(o.endpoint_id),
    srcIdentity: buf.readUInt32LE(o.src_identity),
    dstIdentity: buf.readUInt32LE(o.dst_identity),
    srcAddr: readAddr(buf, o.src_addr, family),
    dstAddr: readAddr(buf, o.dst_addr, family),
    srcPort: buf.readUInt16LE(o.src_port),
    dstPort: buf.readUInt16LE(o.dst_port),
    family,
    protocol: buf.readUInt8(o.protocol),
    direction: buf.readUInt8(o.direction),
    verdict: buf.readUInt8(o.verdict),
    match: buf.readUInt8(o.match),
    dropReason: buf.readUInt8(o.drop_reason),
    tcpFlags: buf.readUInt8(o.tcp_flags),
    flags,
    len: buf.readUInt32LE(o.len),
  };
  if (flags & (1 << 3)) ev.service = { addr: readAddr(buf, o.orig_addr, family), port: buf.readUInt16LE(o.orig_port) };
  return ev;
}

const cpuNs = (fn: () => void): number => {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) * 1000;
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export interface MicroRow {
  what: string;
  before: string;
  after: string;
  unit: string;
  beforeNs: number;
  afterNs: number;
}

/** A, B, A, B ... over rounds; per item ns of CPU, medians. */
function sideBySide(items: number, repeat: number, a: () => void, b: () => void): [number, number] {
  const ra: number[] = [];
  const rb: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const first = r % 2 === 0 ? a : b;
    const second = r % 2 === 0 ? b : a;
    const t1 = cpuNs(() => {
      for (let i = 0; i < repeat; i++) first();
    });
    const t2 = cpuNs(() => {
      for (let i = 0; i < repeat; i++) second();
    });
    (r % 2 === 0 ? ra : rb).push(t1 / (items * repeat));
    (r % 2 === 0 ? rb : ra).push(t2 / (items * repeat));
  }
  return [median(ra), median(rb)];
}

export function flowsMicro(pods: FlowContext['podByIp'], src: string, dst: string): MicroRow[] {
  const [data, ends] = batch(src, dst);
  const toMonoNs = (j: bigint) => j * 4_000_000n;
  let sink = 0;
  const [decodeNsBefore, decodeNsAfter] = sideBySide(
    BATCH,
    50,
    () => {
      sink += splitBatch(data, ends, BATCH).map((b) => decodeAsBefore(b, toMonoNs)).length;
    },
    () => {
      sink += decodeFlowEvents(data, ends, BATCH, toMonoNs).length;
    },
  );

  const ctx: FlowContext = { podByIp: pods, identityLabels: () => undefined, generation: () => 0 };
  const o = { clock: new MonotonicClock(), enricher: new Enricher(ctx), nodeName: 'bench' };
  const events = decodeFlowEvents(data, ends, BATCH, toMonoNs);
  // fresh flows every run: a flow's response is encoded once and then kept on it
  const fresh = () => events.map((e) => buildFlow(e, o));
  const [encBefore, encAfter] = sideBySide(
    BATCH,
    5,
    () => {
      for (const f of fresh()) {
        flowUuid(f); // the uuid was made as the flow was encoded
        sink += protobufjsResponse(f, 'bench').length;
      }
    },
    () => {
      for (const f of fresh()) sink += encodeFlowResponse(f, 'bench').length;
    },
  );
  const [build] = sideBySide(
    BATCH,
    5,
    () => {
      sink += fresh().length;
    },
    () => {
      sink += fresh().length;
    },
  );
  if (sink === 0) throw new Error('nothing measured');
  return [
    {
      what: `a ${BATCH}-record batch to FlowEvents, per record`,
      before: 'a view per record + the per-record decoder as it was',
      after: 'decodeFlowEvents in place',
      unit: 'ns',
      beforeNs: decodeNsBefore,
      afterNs: decodeNsAfter,
    },
    {
      what: "a followed flow's GetFlowsResponse bytes (building the flow, " + `${Math.round(build)} ns, subtracted)`,
      before: 'protobufjs Flow encoder + writer',
      after: 'flow writer (flow-wire.ts)',
      unit: 'ns',
      beforeNs: encBefore - build,
      afterNs: encAfter - build,
    },
  ];
}
