/**
 * FlowEvent (the datapath's record) -> Flow (the flow API's message).
 */
import { randomUUID } from 'node:crypto';
import { ABI, IPPROTO, type FlowEvent } from './event.js';
import type { MonotonicClock } from './clock.js';
import type { Enricher } from './enrich.js';
import { dropReasonProto, EVENT_TYPE } from './names.js';
import { FlowType, IPVersion, TrafficDirection, Verdict, type Flow, type Layer4, type TCPFlags } from './types.js';

const TCP_FLAG_BITS: ReadonlyArray<[keyof TCPFlags, number]> = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ECE', 0x40],
  ['CWR', 0x80],
];

const ICMP4_TYPES: Readonly<Record<number, string>> = {
  0: 'EchoReply',
  3: 'DestinationUnreachable',
  5: 'Redirect',
  8: 'EchoRequest',
  11: 'TimeExceeded',
};
const ICMP6_TYPES: Readonly<Record<number, string>> = {
  1: 'DestinationUnreachable',
  2: 'PacketTooBig',
  3: 'TimeExceeded',
  128: 'EchoRequest',
  129: 'EchoReply',
  133: 'RouterSolicitation',
  134: 'RouterAdvertisement',
  135: 'NeighborSolicitation',
  136: 'NeighborAdvertisement',
};

/*
 * Parts that repeat from flow to flow are built once and shared (flows are never mutated
 * after they are built, except for the UUID given on first use): fewer objects per flow
 * means less garbage at 100k flows per second.
 */
const TCP_FLAGS: TCPFlags[] = [];
const TCP_SUMMARY: string[] = [];
const REPLY = { true: Object.freeze({ value: true }), false: Object.freeze({ value: false }) };
const EVENT_TYPES = new Map<number, { type: number; sub_type: number }>();

export function tcpFlags(bits: number): TCPFlags {
  const b = bits & 0xff;
  let f = TCP_FLAGS[b];
  if (f === undefined) {
    const o: TCPFlags = {};
    for (const [name, bit] of TCP_FLAG_BITS) if (b & bit) o[name] = true;
    f = TCP_FLAGS[b] = Object.freeze(o);
  }
  return f;
}

function tcpSummary(bits: number): string {
  const b = bits & 0xff;
  let s = TCP_SUMMARY[b];
  if (s === undefined) {
    const names: string[] = [];
    for (const [name, bit] of TCP_FLAG_BITS) if (b & bit) names.push(name);
    s = TCP_SUMMARY[b] = `TCP Flags: ${names.join(', ')}`;
  }
  return s;
}

function eventType(dropped: boolean, dropProto: number): { type: number; sub_type: number } {
  const key = dropped ? dropProto + 1 : 0;
  let e = EVENT_TYPES.get(key);
  if (e === undefined) {
    e = Object.freeze(
      dropped ? { type: EVENT_TYPE.drop, sub_type: dropProto } : { type: EVENT_TYPE.policyVerdict, sub_type: 0 },
    );
    EVENT_TYPES.set(key, e);
  }
  return e;
}

function layer4(ev: FlowEvent): Layer4 {
  switch (ev.protocol) {
    case IPPROTO.TCP:
      return { TCP: { source_port: ev.srcPort, destination_port: ev.dstPort, flags: tcpFlags(ev.tcpFlags) } };
    case IPPROTO.UDP:
      return { UDP: { source_port: ev.srcPort, destination_port: ev.dstPort } };
    case IPPROTO.SCTP:
      return { SCTP: { source_port: ev.srcPort, destination_port: ev.dstPort } };
    case IPPROTO.ICMP:
      return { ICMPv4: { type: ev.srcPort, code: ev.dstPort } };
    case IPPROTO.ICMPV6:
      return { ICMPv6: { type: ev.srcPort, code: ev.dstPort } };
    default:
      return {};
  }
}

/** The flow's Summary; the common ones (TCP flags, UDP, SCTP) are shared strings. */
function summary(ev: FlowEvent): string {
  switch (ev.protocol) {
    case IPPROTO.TCP:
      return tcpSummary(ev.tcpFlags);
    case IPPROTO.UDP:
      return 'UDP';
    case IPPROTO.SCTP:
      return 'SCTP';
    case IPPROTO.ICMP:
      return `ICMPv4 ${ICMP4_TYPES[ev.srcPort] ?? `type ${ev.srcPort}`}`;
    case IPPROTO.ICMPV6:
      return `ICMPv6 ${ICMP6_TYPES[ev.srcPort] ?? `type ${ev.srcPort}`}`;
    default:
      return `IP protocol ${ev.protocol}`;
  }
}

export interface FlowBuilderOptions {
  clock: MonotonicClock;
  enricher: Enricher;
  nodeName: string;
}

/** The flow's UUID, created the first time anyone asks (Hubble gives every flow one). */
export function flowUuid(f: Flow): string {
  if (f.uuid === '') f.uuid = randomUUID();
  return f.uuid;
}

/** WEIR_DROP_INVALID_SOURCE (bpf/weir_abi.h). */
const INVALID_SOURCE = 9;

export function buildFlow(ev: FlowEvent, o: FlowBuilderOptions): Flow {
  const dropped = ev.verdict === ABI.verdictDropped;
  const egress = ev.direction === ABI.dirEgress;
  const reply = (ev.flags & ABI.flagReply) !== 0;
  const dropProto = dropped ? dropReasonProto(ev.dropReason) : 0;
  const flow: Flow = {
    time: o.clock.timestamp(ev.tsNs),
    uuid: '', // given on first use (flowUuid), not to every flow that nobody reads
    verdict: dropped ? Verdict.DROPPED : Verdict.FORWARDED,
    drop_reason: dropProto,
    IP: { source: ev.srcAddr, destination: ev.dstAddr, ipVersion: ev.family === 6 ? IPVersion.IPv6 : IPVersion.IPv4 },
    l4: layer4(ev),
    // The local endpoint is the sender on egress and the receiver on ingress. A forged source
    // address is not looked up: the sender is the pod on the sending interface.
    source:
      ev.dropReason === INVALID_SOURCE
        ? o.enricher.sender(ev.ifindex, ev.srcIdentity, ev.endpointId)
        : o.enricher.endpoint(ev.srcAddr, ev.srcIdentity, egress ? ev.endpointId : 0),
    destination: o.enricher.endpoint(ev.dstAddr, ev.dstIdentity, egress ? 0 : ev.endpointId),
    Type: FlowType.L3_L4,
    node_name: o.nodeName,
    reply,
    event_type: eventType(dropped, dropProto),
    traffic_direction: egress ? TrafficDirection.EGRESS : TrafficDirection.INGRESS,
    policy_match_type: ev.match,
    drop_reason_desc: dropProto,
    is_reply: reply ? REPLY.true : REPLY.false,
    interface: o.enricher.iface(ev.ifindex),
    Summary: summary(ev),
    policy_match: ev.match,
    length: ev.len,
  };
  if (ev.service) {
    const svc = o.enricher.service(ev.service.addr, ev.service.port, ev.protocol);
    if (svc) flow.destination_service = svc;
    flow.destination_service_ip = ev.service.addr;
    flow.destination_service_port = ev.service.port;
  }
  return flow;
}
