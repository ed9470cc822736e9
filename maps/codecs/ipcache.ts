/** ipcache: exact addresses (HASH weir_ipcache_key) and prefixes (LPM weir_ipcache_lpm_key) -> identity. */
import { layout } from './layout.js';
import { parseCidr, writeAddr, readAddr } from './addr.js';
import { IPCACHE_LPM_PREFIX_BASE } from '../abi.js';

export const ipcacheKeyLayout = layout('weir_ipcache_key', [
  { name: 'family', type: 'u32' },
  { name: 'addr', type: { bytes: 16 } },
] as const);
export const ipcacheLpmKeyLayout = layout('weir_ipcache_lpm_key', [
  { name: 'prefixlen', type: 'u32' },
  { name: 'family', type: 'u32' },
  { name: 'addr', type: { bytes: 16 } },
] as const);
export const ipcacheValueLayout = layout('weir_ipcache_value', [
  { name: 'identity', type: 'u32' },
  { name: 'flags', type: 'u32' },
] as const);

/** True when the CIDR is a single address (/32 or /128): it goes to the exact hash. */
export function isExactCidr(cidr: string): boolean {
  const { prefix, family } = parseCidr(cidr);
  return prefix === (family === 4 ? 32 : 128);
}

export function encodeIpcacheKey(addr: string): Buffer {
  const b = Buffer.alloc(ipcacheKeyLayout.size);
  const fam = writeAddr(b, ipcacheKeyLayout.offsets.addr, addr);
  b.writeUInt32LE(fam, ipcacheKeyLayout.offsets.family);
  return b;
}

export function decodeIpcacheKey(b: Buffer): string {
  const fam = b.readUInt32LE(ipcacheKeyLayout.offsets.family);
  return `${readAddr(b, ipcacheKeyLayout.offsets.addr, fam)}/${fam === 4 ? 32 : 128}`;
}

export function encodeIpcacheLpmKey(cidr: string): Buffer {
  const { addr, prefix } = parseCidr(cidr);
  const b = Buffer.alloc(ipcacheLpmKeyLayout.size);
  const o = ipcacheLpmKeyLayout.offsets;
  const fam = writeAddr(b, o.addr, addr);
  // zero host bits so equal prefixes have equal keys
  for (let bit = prefix; bit < 128; bit++) b[o.addr + (bit >> 3)] &= ~(0x80 >> (bit & 7)) & 0xff;
  b.writeUInt32LE(IPCACHE_LPM_PREFIX_BASE + prefix, o.prefixlen);
  b.writeUInt32BE(fam, o.family);
  return b;
}

export function decodeIpcacheLpmKey(b: Buffer): string {
  const o = ipcacheLpmKeyLayout.offsets;
  const fam = b.readUInt32BE(o.family);
  return `${readAddr(b, o.addr, fam)}/${b.readUInt32LE(o.prefixlen) - IPCACHE_LPM_PREFIX_BASE}`;
}

export function encodeIpcacheValue(identity: number): Buffer {
  const b = Buffer.alloc(ipcacheValueLayout.size);
  b.writeUInt32LE(identity >>> 0, ipcacheValueLayout.offsets.identity);
  return b;
}
export const decodeIpcacheValue = (b: Buffer): number => b.readUInt32LE(ipcacheValueLayout.offsets.identity);
