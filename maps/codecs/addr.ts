/** IP address <-> the 16-byte network-order form the datapath uses (IPv4 in the first 4 bytes). */
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export function familyOf(ip: string): Family {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new Error(`"${ip}" is not an IPv4 or IPv6 address`);
}

/** Writes `ip` into 16 bytes at `off` (zero-filled). */
export function writeAddr(buf: Buffer, off: number, ip: string): Family {
  buf.fill(0, off, off + 16);
  const fam = familyOf(ip);
  if (fam === 4) {
    ip.split('.').forEach((p, i) => buf.writeUInt8(Number(p), off + i));
    return 4;
  }
  const groups = expandIPv6(ip);
  groups.forEach((g, i) => buf.writeUInt16BE(g, off + i * 2));
  return 6;
}

export function readAddr(buf: Buffer, off: number, family: number): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(off + i * 2).toString(16));
  return compressIPv6(g);
}

function expandIPv6(ip: string): number[] {
  let s = ip;
  const tail: number[] = [];
  const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const p = v4[1].split('.').map(Number);
    tail.push((p[0] << 8) | p[1], (p[2] << 8) | p[3]);
    s = s.slice(0, -v4[1].length) + (s.endsWith('::' + v4[1]) ? '' : '0');
    if (s.endsWith(':0')) s = s.slice(0, -2);
  }
  const [head, rest] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head
    ? head
        .split(':')
        .filter((x) => x.length)
        .map((x) => parseInt(x, 16))
    : [];
  const r = rest !== undefined && rest.length ? rest.split(':').map((x) => parseInt(x, 16)) : [];
  const want = 8 - tail.length;
  const fill = rest !== undefined ? want - h.length - r.length : 0;
  const out = [...h, ...new Array<number>(Math.max(0, fill)).fill(0), ...r, ...tail];
  if (out.length !== 8) throw new Error(`"${ip}" is not a valid IPv6 address`);
  return out;
}

function compressIPv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parses "10.0.0.0/8" or "fd00::/64"; throws naming the bad part. */
export function parseCidr(cidr: string): { addr: string; prefix: number; family: Family } {
  const [addr, p] = cidr.split('/');
  const family = familyOf(addr);
  const max = family === 4 ? 32 : 128;
  const prefix = p === undefined ? max : Number(p);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new Error(`CIDR "${cidr}": prefix length must be an integer 0..${max}`);
  }
  return { addr, prefix, family };
}
