/**
 * IPv4/IPv6 addresses and prefixes as bigints: parse, canonicalise, compare.
 * node:net validates the text; the arithmetic is a few shifts, kept here so the compiler
 * stays synchronous and allocation-light on its hot path.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** Network address (host bits zero). */
  addr: bigint;
  bits: number;
}

const WIDTH: Record<Family, number> = { 4: 32, 6: 128 };

/** A dotted quad (validated by the caller) as a number, then one bigint: no array, no bigint per octet. */
function v4ToBig(s: string): bigint {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      n = n * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 0x30);
  }
  return BigInt(n * 256 + octet);
}

function v6ToBig(s: string): bigint {
  let text = s;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail ("::ffff:1.2.3.4") becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v = v4ToBig(tail);
    text = `${text.slice(0, lastColon + 1)}${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Parses an address; undefined when it is not one. */
export function parseIP(s: string): { family: Family; addr: bigint } | undefined {
  const t = s.trim();
  if (isIPv4(t)) return { family: 4, addr: v4ToBig(t) };
  if (isIPv6(t)) return { family: 6, addr: v6ToBig(t) };
  return undefined;
}

export function formatIP(family: Family, addr: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((sh) => ((addr >> sh) & 0xffn).toString()).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Canonical text of an address ("fd00::1", "10.0.0.5"), or undefined. */
export function canonicalIP(s: string): string | undefined {
  // node:net's IPv4 form has no leading zeros and octets of at most 255: it is its own canonical text
  const t = s.trim();
  if (isIPv4(t)) return t;
  const p = parseIP(t);
  return p ? formatIP(p.family, p.addr) : undefined;
}

function mask(family: Family, bits: number): bigint {
  const w = WIDTH[family];
  return ((1n << BigInt(w)) - 1n) ^ ((1n << BigInt(w - bits)) - 1n);
}

/**
 * Parses "addr/bits" (a bare address is a host prefix). Host bits are cleared, as the
 * kernel's LPM does. Returns a message describing the problem instead of throwing.
 */
export function parsePrefix(s: string): Prefix | string {
  const slash = s.indexOf('/');
  const ipText = slash >= 0 ? s.slice(0, slash) : s;
  const ip = parseIP(ipText);
  if (!ip) return `"${s}" is not a valid CIDR (expected e.g. 10.0.0.0/8 or fd00::/64)`;
  const w = WIDTH[ip.family];
  let bits = w;
  if (slash >= 0) {
    const b = s.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(b) || Number(b) > w)
      return `"${s}" has an invalid prefix length (0-${w} for IPv${ip.family})`;
    bits = Number(b);
  }
  return { family: ip.family, addr: ip.addr & mask(ip.family, bits), bits };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIP(p.family, p.addr)}/${p.bits}`;
}

/** Canonical "addr/bits" or undefined when invalid. */
export function canonicalPrefix(s: string): string | undefined {
  const p = parsePrefix(s);
  return typeof p === 'string' ? undefined : formatPrefix(p);
}

/** True when `outer` contains `inner` (equal prefixes contain each other). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    outer.bits <= inner.bits &&
    (inner.addr & mask(outer.family, outer.bits)) === outer.addr
  );
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

export function hostPrefix(ip: string): Prefix | undefined {
  const p = parseIP(ip);
  return p ? { family: p.family, addr: p.addr, bits: WIDTH[p.family] } : undefined;
}

export function hostCIDR(ip: string): string | undefined {
  const p = hostPrefix(ip);
  return p ? formatPrefix(p) : undefined;
}

/** The prefix of all addresses of a family: "0.0.0.0/0" or "::/0". */
export function worldPrefix(family: Family): Prefix {
  return { family, addr: 0n, bits: 0 };
}
