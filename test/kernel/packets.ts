/** Crafted packets for BPF_PROG_TEST_RUN: Ethernet + IPv4/IPv6 + TCP/UDP/SCTP/ICMP. Checksums are not computed. */
import { writeAddr } from '../../maps/codecs/addr.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export function eth(etherType: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  Buffer.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]).copy(h);
  h.writeUInt16BE(etherType, 12);
  return Buffer.concat([h, payload]);
}

export function tcp(sport: number, dport: number, flags = TCP_SYN, payload = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(1, 4);
  h[12] = 5 << 4;
  h[13] = flags;
  h.writeUInt16BE(65535, 14);
  return Buffer.concat([h, payload]);
}

export function udp(sport: number, dport: number, payload = Buffer.alloc(8)): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

export function sctp(sport: number, dport: number): Buffer {
  const h = Buffer.alloc(12 + 20); // common header + an INIT-sized chunk
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h[12] = 1; // INIT
  h.writeUInt16BE(20, 14);
  return h;
}

export function icmp(type: number, code: number, idOrUnused: number, rest: Uint8Array = Buffer.alloc(8)): Buffer {
  const h = Buffer.alloc(8);
  h[0] = type;
  h[1] = code;
  h.writeUInt16BE(idOrUnused, 4);
  h.writeUInt16BE(1, 6);
  return Buffer.concat([h, rest]);
}

export interface Ip4Opts {
  id?: number;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  moreFragments?: boolean;
  ihl?: number;
  totLen?: number;
  version?: number;
}

export function ipv4(src: string, dst: string, proto: number, l4: Buffer, o: Ip4Opts = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = ((o.version ?? 4) << 4) | (o.ihl ?? 5);
  h.writeUInt16BE(o.totLen ?? 20 + l4.length, 2);
  h.writeUInt16BE(o.id ?? 1, 4);
  h.writeUInt16BE(((o.moreFragments ? 1 : 0) << 13) | (o.fragOffset ?? 0), 6);
  h[8] = 64;
  h[9] = proto;
  const a = Buffer.alloc(16);
  writeAddr(a, 0, src);
  a.copy(h, 12, 0, 4);
  writeAddr(a, 0, dst);
  a.copy(h, 16, 0, 4);
  return eth(0x0800, Buffer.concat([h, l4]));
}

export interface Ip6Opts {
  /** Insert a fragment header. */
  frag?: { offset: number; more: boolean; id: number };
  /** Insert a hop-by-hop header first. */
  hopByHop?: boolean;
  payloadLen?: number;
}

export function ipv6(src: string, dst: string, proto: number, l4: Buffer, o: Ip6Opts = {}): Buffer {
  const exts: Buffer[] = [];
  const chain: number[] = [];
  if (o.hopByHop) chain.push(0);
  if (o.frag) chain.push(44);
  chain.push(proto);
  let i = 0;
  if (o.hopByHop) {
    const hb = Buffer.alloc(8);
    hb[0] = chain[++i];
    hb[2] = 1; // PadN
    hb[3] = 4;
    exts.push(hb);
  }
  if (o.frag) {
    const f = Buffer.alloc(8);
    f[0] = chain[++i];
    f.writeUInt16BE((o.frag.offset << 3) | (o.frag.more ? 1 : 0), 2);
    f.writeUInt32BE(o.frag.id, 4);
    exts.push(f);
  }
  const payload = Buffer.concat([...exts, l4]);
  const h = Buffer.alloc(40);
  h[0] = 6 << 4;
  h.writeUInt16BE(o.payloadLen ?? payload.length, 4);
  h[6] = chain[0];
  h[7] = 64;
  writeAddr(h, 8, src);
  writeAddr(h, 24, dst);
  return eth(0x86dd, Buffer.concat([h, payload]));
}

/** The IP packet inside an Ethernet frame (for quoting in ICMP errors). */
export const ipOf = (frame: Buffer): Buffer => Buffer.from(frame.subarray(14));

export const arp = (): Buffer => eth(0x0806, Buffer.alloc(28, 1));
