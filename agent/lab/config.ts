/**
 * Settings of one lab: names, address ranges and where its files live. Defaults are the
 * product's (`make demo`); every field can be set by a flag or an environment variable so that
 * tests run their own lab beside it.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatIP, parseIP } from '../ipcache/cidr.js';

export interface LabConfig {
  /** Prefix of every network namespace and host-side veth the lab makes (`weir-`). */
  prefix: string;
  /** IPv4 pod range, e.g. 10.88.0.0/16. */
  cidr4: string;
  /** IPv6 pod range, e.g. fd00:88::/64. */
  cidr6: string;
  /** IPv4 Service range (ClusterIPs), outside the pod ranges, e.g. 10.96.0.0/16. */
  svcCidr4: string;
  /** IPv6 Service range, e.g. fd00:96::/112. */
  svcCidr6: string;
  /** bpffs directory for the lab agent's pinned programs and maps. */
  pinRoot: string;
  /** Runtime files: state.json, control socket, per-pod sockets, logs. */
  runDir: string;
  /** Node name the lab's pods are scheduled on. */
  nodeName: string;
}

export const LAB_DEFAULTS: LabConfig = {
  prefix: 'weir-',
  cidr4: '10.88.0.0/16',
  cidr6: 'fd00:88::/64',
  svcCidr4: '10.96.0.0/16',
  svcCidr6: 'fd00:96::/112',
  pinRoot: '/sys/fs/bpf/weir/lab',
  runDir: '/run/weir/lab',
  nodeName: 'lab',
};

/** Environment variables that override the defaults (flags override both). */
export const LAB_ENV: Record<keyof LabConfig, string> = {
  prefix: 'WEIR_LAB_PREFIX',
  cidr4: 'WEIR_LAB_CIDR4',
  cidr6: 'WEIR_LAB_CIDR6',
  svcCidr4: 'WEIR_LAB_SVC_CIDR4',
  svcCidr6: 'WEIR_LAB_SVC_CIDR6',
  pinRoot: 'WEIR_LAB_PIN_ROOT',
  runDir: 'WEIR_LAB_RUN_DIR',
  nodeName: 'WEIR_LAB_NODE',
};

/** Gateway the pods route through: an address on every host-side veth. */
export const LAB_GATEWAY4 = '169.254.1.1';
export const LAB_GATEWAY6 = 'fe80::1';
/** Linux limit on interface names (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

export function resolveLabConfig(flags: Partial<LabConfig> = {}, env: NodeJS.ProcessEnv = process.env): LabConfig {
  const out = { ...LAB_DEFAULTS };
  for (const key of Object.keys(LAB_DEFAULTS) as (keyof LabConfig)[]) {
    const fromEnv = env[LAB_ENV[key]];
    const fromFlag = flags[key];
    if (fromFlag !== undefined && fromFlag !== '') out[key] = fromFlag;
    else if (fromEnv !== undefined && fromEnv !== '') out[key] = fromEnv;
  }
  validateLabConfig(out);
  return out;
}

export function validateLabConfig(c: LabConfig): void {
  if (!/^[a-z0-9][a-z0-9-]{0,7}$/.test(c.prefix)) {
    throw new Error(
      `lab prefix ${JSON.stringify(c.prefix)} must be 1-8 lowercase letters, digits or '-' (interface names are limited to ${IFNAME_MAX} characters)`,
    );
  }
  const pods = [parseCidr(c.cidr4, 4), parseCidr(c.cidr6, 6)];
  const svcs = [
    parseCidr(c.svcCidr4, 4, 'Service range', '10.96.0.0/16'),
    parseCidr(c.svcCidr6, 6, 'Service range', 'fd00:96::/112'),
  ];
  for (const [i, s] of svcs.entries()) {
    const p = pods[i] as ParsedCidr;
    if (overlaps(s, p))
      throw new Error(
        `Service range ${i === 0 ? c.svcCidr4 : c.svcCidr6} overlaps the pod range ${i === 0 ? c.cidr4 : c.cidr6}: choose a Service range outside the pod ranges`,
      );
  }
  if (!c.pinRoot.startsWith('/'))
    throw new Error(`pin root ${c.pinRoot} must be an absolute path under a bpffs mount, e.g. /sys/fs/bpf/weir/lab`);
  if (!c.runDir.startsWith('/')) throw new Error(`run dir ${c.runDir} must be an absolute path, e.g. /run/weir/lab`);
}

export interface ParsedCidr {
  family: 4 | 6;
  /** Network address as a bigint. */
  base: bigint;
  bits: number;
  /** Number of addresses in the range. */
  size: bigint;
}

function overlaps(a: ParsedCidr, b: ParsedCidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** True when the address (canonical or not) lies in the range. */
export function cidrContains(c: ParsedCidr, ip: string): boolean {
  const p = parseIP(ip);
  if (!p || p.family !== c.family) return false;
  return p.addr >= c.base && p.addr < c.base + c.size;
}

/** The n-th Service address of a range (n from 0; the network address is skipped). */
export function serviceAddress(c: ParsedCidr, n: number): string | undefined {
  const offset = BigInt(n) + 1n;
  if (offset >= c.size - (c.family === 4 ? 1n : 0n)) return undefined;
  return formatIP(c.family, c.base + offset);
}

export function parseCidr(
  cidr: string,
  family: 4 | 6,
  what = 'pod range',
  example = family === 4 ? '10.88.0.0/16' : 'fd00:88::/64',
): ParsedCidr {
  const [addr, len] = cidr.split('/');
  const bits = Number(len);
  const max = family === 4 ? 32 : 128;
  const ok = family === 4 ? isIPv4(addr ?? '') : isIPv6(addr ?? '');
  if (!ok || !Number.isInteger(bits) || bits < 8 || bits > max - 4) {
    throw new Error(
      `${what} ${JSON.stringify(cidr)} is not an IPv${family} CIDR between /8 and /${max - 4}; write it like ${example}`,
    );
  }
  const value = (parseIP(addr as string) as { addr: bigint }).addr;
  const hostBits = BigInt(max - bits);
  const base = (value >> hostBits) << hostBits;
  return { family, base, bits, size: 1n << hostBits };
}

/** The n-th pod address of a range (n from 0; the network address and the first host are skipped). */
export function podAddress(c: ParsedCidr, n: number): string {
  const offset = BigInt(n) + 2n;
  if (offset >= c.size - 1n) throw new Error(`pod range /${c.bits} is full: use a larger --cidr${c.family}`);
  return formatIP(c.family, c.base + offset);
}
