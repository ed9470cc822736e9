/**
 * A Flow's protobuf bytes, written straight into one reused buffer: the bytes protobufjs's
 * generated encoder writes (fields in number order, a field written whenever the object has it,
 * zeros included), at a fraction of its cost. The parts flows share (the endpoints, the interface,
 * the event type, TCP flags: frozen objects the flow builder and the enricher reuse) are encoded
 * once by protobufjs and their bytes kept beside them; what varies per flow (time, addresses,
 * ports, UUID) is written here. Flows a relay decoded are plain objects too and take the same
 * path; anything else (protobufjs's own message objects, a value protobufjs writes in a form this
 * writer does not: a negative or fractional number) goes to protobufjs whole.
 * test/flows/flow-wire.test.ts holds both to the same bytes.
 */
import type protobuf from 'protobufjs/light.js';
import type { Flow } from './types.js';

type Encodable = protobuf.Type;

/** The message types a Flow refers to, from the flow API's schema (proto.ts). */
export interface FlowTypes {
  Flow: Encodable;
  Endpoint: Encodable;
  CiliumEventType: Encodable;
  Service: Encodable;
  NetworkInterface: Encodable;
  TCPFlags: Encodable;
  BoolValue: Encodable;
}

/**
 * Only plain objects take the fast path: on them a field is set exactly when it is not null or
 * undefined (nothing is inherited), which is protobufjs's rule (own and not null).
 */
const isPlain = (o: unknown): o is object =>
  typeof o === 'object' && o !== null && Object.getPrototypeOf(o) === Object.prototype;

/** A growable byte buffer with protobuf's varint, string and length-delimited writes. */
class ByteWriter {
  buf = Buffer.allocUnsafe(4096);
  pos = 0;

  reset(): void {
    this.pos = 0;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A non-negative integer below 2^53 as a varint. */
  varint(v: number): void {
    this.ensure(8);
    const b = this.buf;
    let p = this.pos;
    while (v > 0x7fffffff) {
      b[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n === s.length ? 'latin1' : 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Starts a length-delimited field's body; `end(start)` writes its length in front of it. */
  begin(): number {
    this.ensure(1);
    return this.pos++;
  }

  end(start: number): void {
    const len = this.pos - start - 1;
    if (len < 0x80) {
      this.buf[start] = len;
      return;
    }
    let extra = 0;
    for (let v = len; v >= 0x80; v = Math.floor(v / 0x80)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    this.pos += extra;
    const save = this.pos;
    this.pos = start;
    this.varint(len);
    this.pos = save;
  }
}

/** A value protobufjs writes as a plain varint: an int32, uint32 or enum in [0, 2^31), where their forms agree. */
const small = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 0x80000000;
/** An int64 (Timestamp.seconds) protobufjs writes as a plain varint: an integer in [0, 2^53). */
const plain = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

class NotFast extends Error {}
const NOT_FAST = new NotFast();

/** True for a plain object; otherwise leaves the fast path (protobufjs encodes the flow). */
function plainOr(o: unknown): true {
  if (!isPlain(o)) throw NOT_FAST;
  return true;
}

export class FlowWireEncoder {
  private readonly w = new ByteWriter();
  /** Bytes of the shared (frozen) parts: a part is encoded once however many flows carry it. */
  private readonly parts = new WeakMap<object, Uint8Array>();
  private readonly strings = new Map<string, Uint8Array>();

  constructor(private readonly types: FlowTypes) {}

  /** The Flow message's bytes (a fresh copy the caller owns). */
  encode(f: Flow): Uint8Array {
    if (!isPlain(f)) return this.types.Flow.encode(f).finish();
    const w = this.w;
    w.reset();
    try {
      this.flow(f);
    } catch (e) {
      if (e !== NOT_FAST) throw e;
      return this.types.Flow.encode(f).finish();
    }
    return Buffer.from(w.buf.subarray(0, w.pos));
  }

  /**
   * GetFlowsResponse bytes for a flow: the flow (1), node_name (1000) and the flow's time (1001),
   * as protobufjs writes them around the flow's encoding; undefined where only protobufjs can.
   */
  response(f: Flow, nodeName: string): Buffer | undefined {
    if (!isPlain(f) || !isPlain(f.time) || !plain(f.time.seconds) || !small(f.time.nanos)) return undefined;
    const w = this.w;
    w.reset();
    w.varint((1 << 3) | 2);
    const s = w.begin();
    try {
      this.flow(f);
    } catch (e) {
      if (e !== NOT_FAST) throw e;
      return undefined;
    }
    w.end(s);
    if (nodeName) this.cachedStr((1000 << 3) | 2, nodeName);
    w.varint((1001 << 3) | 2);
    const t = w.begin();
    w.varint(8);
    w.varint(f.time.seconds);
    w.varint(16);
    w.varint(f.time.nanos);
    w.end(t);
    return Buffer.from(w.buf.subarray(0, w.pos));
  }

  private uint(tag: number, v: unknown): void {
    if (!small(v)) throw NOT_FAST;
    this.w.varint(tag);
    this.w.varint(v);
  }

  private bool(tag: number, v: unknown): void {
    this.w.varint(tag);
    this.w.varint(v ? 1 : 0);
  }

  private str(tag: number, v: unknown): void {
    if (typeof v !== 'string') throw NOT_FAST;
    this.w.varint(tag);
    this.w.string(v);
  }

  /** A string seen on many flows (node name, summary): its encoding kept. */
  private cachedStr(tag: number, v: unknown): void {
    if (typeof v !== 'string') throw NOT_FAST;
    let b = this.strings.get(v);
    if (b === undefined) {
      if (this.strings.size >= 4096) this.strings.clear();
      b = Buffer.from(v, 'utf8');
      this.strings.set(v, b);
    }
    this.w.varint(tag);
    this.w.bytes(b);
  }

  /** A sub-message: its cached bytes if it is a shared (frozen) part, else protobufjs's encoding. */
  private part(tag: number, type: Encodable, v: object): void {
    let b = this.parts.get(v);
    if (b === undefined) {
      b = type.encode(v).finish();
      if (Object.isFrozen(v)) this.parts.set(v, b);
    }
    this.w.varint(tag);
    this.w.bytes(b);
  }

  /** TCP, UDP, SCTP (source_port, destination_port) or ICMP (type, code): two uint32 and TCP's flags. */
  private ports(tag: number, a: unknown, b: unknown, flags?: object): void {
    const w = this.w;
    w.varint(tag);
    const s = w.begin();
    if (a != null) this.uint(8, a);
    if (b != null) this.uint(16, b);
    if (flags != null) this.part(26, this.types.TCPFlags, flags);
    w.end(s);
  }

  private flow(f: Flow): void {
    const w = this.w;
    const t = this.types;
    if (f.time != null && plainOr(f.time)) {
      w.varint((1 << 3) | 2);
      const s = w.begin();
      if (f.time.seconds != null) {
        if (!plain(f.time.seconds)) throw NOT_FAST;
        w.varint(8);
        w.varint(f.time.seconds);
      }
      if (f.time.nanos != null) this.uint(16, f.time.nanos);
      w.end(s);
    }
    if (f.verdict != null) this.uint(2 << 3, f.verdict);
    if (f.drop_reason != null) this.uint(3 << 3, f.drop_reason);
    if (f.IP != null && plainOr(f.IP)) {
      const ip = f.IP;
      w.varint((5 << 3) | 2);
      const s = w.begin();
      if (ip.source != null) this.str((1 << 3) | 2, ip.source);
      if (ip.destination != null) this.str((2 << 3) | 2, ip.destination);
      if (ip.ipVersion != null) this.uint(3 << 3, ip.ipVersion);
      const encrypted = (ip as { encrypted?: boolean }).encrypted;
      if (encrypted != null) this.bool(4 << 3, encrypted);
      w.end(s);
    }
    if (f.l4 != null && plainOr(f.l4)) {
      const l4 = f.l4;
      w.varint((6 << 3) | 2);
      const s = w.begin();
      const { TCP, UDP, ICMPv4, ICMPv6, SCTP } = l4;
      if (TCP != null && plainOr(TCP)) this.ports((1 << 3) | 2, TCP.source_port, TCP.destination_port, TCP.flags);
      if (UDP != null && plainOr(UDP)) this.ports((2 << 3) | 2, UDP.source_port, UDP.destination_port);
      if (ICMPv4 != null && plainOr(ICMPv4)) this.ports((3 << 3) | 2, ICMPv4.type, ICMPv4.code);
      if (ICMPv6 != null && plainOr(ICMPv6)) this.ports((4 << 3) | 2, ICMPv6.type, ICMPv6.code);
      if (SCTP != null && plainOr(SCTP)) this.ports((5 << 3) | 2, SCTP.source_port, SCTP.destination_port);
      w.end(s);
    }
    if (f.source != null) this.part((8 << 3) | 2, t.Endpoint, f.source);
    if (f.destination != null) this.part((9 << 3) | 2, t.Endpoint, f.destination);
    if (f.Type != null) this.uint(10 << 3, f.Type);
    if (f.node_name != null) this.cachedStr((11 << 3) | 2, f.node_name);
    if (f.reply != null) this.bool(16 << 3, f.reply);
    if (f.event_type != null) this.part((19 << 3) | 2, t.CiliumEventType, f.event_type);
    if (f.destination_service != null) this.part((21 << 3) | 2, t.Service, f.destination_service!);
    if (f.traffic_direction != null) this.uint(22 << 3, f.traffic_direction);
    if (f.policy_match_type != null) this.uint(23 << 3, f.policy_match_type);
    if (f.drop_reason_desc != null) this.uint(25 << 3, f.drop_reason_desc);
    if (f.is_reply != null) this.part((26 << 3) | 2, t.BoolValue, f.is_reply);
    if (f.interface != null) this.part((28 << 3) | 2, t.NetworkInterface, f.interface);
    if (f.uuid != null) this.str((34 << 3) | 2, f.uuid);
    if (f.policy_match != null) this.uint(1000 << 3, f.policy_match);
    if (f.length != null) this.uint(1001 << 3, f.length);
    if (f.destination_service_ip != null) this.str((1002 << 3) | 2, f.destination_service_ip);
    if (f.destination_service_port != null) this.uint(1003 << 3, f.destination_service_port);
    if (f.Summary != null) this.cachedStr((100000 << 3) | 2, f.Summary);
  }
}
