/**
 * Finds the host-side veth of a local pod from its IP, in the network namespace the agent runs in.
 * Works for CNIs that give each pod a veth:
 * - routed veths (ptp, Calico-style `cali*`): the route to the pod IP leaves through the veth itself;
 * - bridge (bridge CNI, `cni0`): the route leaves through the bridge; the pod's MAC (neighbour table,
 *   resolved on demand) is looked up in the bridge's forwarding database to find the veth port.
 * Anything else (the route leaves through a physical device, a tunnel, or nowhere) is not a local pod
 * interface. Uses iproute2's JSON output (`ip -j`, `bridge -j`).
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PodInterface {
  ifindex: number;
  name: string;
  /** How it was found. */
  via: 'route' | 'bridge';
}

interface LinkInfo {
  ifindex: number;
  ifname: string;
  address?: string;
  linkinfo?: { info_kind?: string };
}

async function ipJson<T>(args: string[], cmd = 'ip'): Promise<T | undefined> {
  try {
    const { stdout } = await run(cmd, ['-j', ...args], { timeout: 5000 });
    return stdout.trim() ? (JSON.parse(stdout) as T) : undefined;
  } catch {
    return undefined;
  }
}

async function link(dev: string): Promise<LinkInfo | undefined> {
  const l = await ipJson<LinkInfo[]>(['-d', 'link', 'show', 'dev', dev]);
  return l?.[0];
}

async function neighbourMac(ip: string, dev: string): Promise<string | undefined> {
  const read = async (): Promise<string | undefined> => {
    const n = await ipJson<Array<{ lladdr?: string; state?: string[] }>>(['neigh', 'show', 'to', ip, 'dev', dev]);
    const e = n?.find(
      (x) => x.lladdr && !(x.state ?? []).includes('FAILED') && !(x.state ?? []).includes('INCOMPLETE'),
    );
    return e?.lladdr;
  };
  const known = await read();
  if (known) return known;
  // Make the kernel resolve it: one datagram to the discard port (nothing listens there).
  await new Promise<void>((resolve) => {
    const s = createSocket(isIP(ip) === 6 ? 'udp6' : 'udp4');
    s.on('error', () => {
      s.close();
      resolve();
    });
    s.send(Buffer.alloc(0), 9, ip, () => {
      s.close();
      resolve();
    });
  });
  for (let i = 0; i < 20; i++) {
    const mac = await read();
    if (mac) return mac;
    await new Promise((r) => setTimeout(r, 25));
  }
  return undefined;
}

async function bridgePort(bridge: string, mac: string): Promise<string | undefined> {
  const fdb = await ipJson<Array<{ mac: string; ifname?: string; dev?: string; flags?: string[]; state?: string }>>(
    ['fdb', 'show', 'br', bridge],
    'bridge',
  );
  const e = fdb?.find(
    (x) => x.mac.toLowerCase() === mac.toLowerCase() && !(x.flags ?? []).includes('self') && x.state !== 'permanent',
  );
  return e?.ifname ?? e?.dev;
}

interface RouteInfo {
  dst?: string;
  dev?: string;
  type?: string;
}

/** The host-side veth of the pod with this IP, or undefined when it is not a local pod behind a veth. */
export async function findPodInterface(ip: string): Promise<PodInterface | undefined> {
  if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
  const routes = await ipJson<RouteInfo[]>(['route', 'get', ip]);
  return fromRoute(ip, routes?.[0], link);
}

/**
 * `findPodInterface` for many pods at once (a first sync finds a node's hundred pods): every route
 * in one `ip -batch` and every link in one dump, so two processes instead of two per pod; a pod
 * behind a bridge is then looked up on its own.
 */
export async function findPodInterfaces(ips: string[]): Promise<Map<string, PodInterface | undefined>> {
  const out = new Map<string, PodInterface | undefined>();
  if (ips.length === 0) return out;
  for (const ip of ips) if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
  // One JSON array per line, each naming its dst; a route that fails prints nothing (-force goes on).
  const routes = new Map<string, RouteInfo>();
  try {
    const { stdout } = await runWithInput(
      'ip',
      ['-j', '-force', '-batch', '-'],
      ips.map((ip) => `route get ${ip}`).join('\n'),
    );
    for (const line of stdout.split('\n')) {
      if (!line.trim()) continue;
      for (const r of JSON.parse(line) as RouteInfo[]) if (r.dst) routes.set(canonicalAddress(r.dst), r);
    }
  } catch {
    // each pod is looked up on its own below
  }
  const links = new Map<string, LinkInfo>();
  for (const l of (await ipJson<LinkInfo[]>(['-d', 'link', 'show'])) ?? []) links.set(l.ifname, l);
  const linkOf = async (dev: string): Promise<LinkInfo | undefined> => links.get(dev) ?? link(dev);
  await Promise.all(
    ips.map(async (ip) => {
      const r = routes.get(canonicalAddress(ip));
      out.set(ip, r ? await fromRoute(ip, r, linkOf) : await findPodInterface(ip));
    }),
  );
  return out;
}

function canonicalAddress(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip;
}

function runWithInput(cmd: string, args: string[], input: string): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    // `ip -force -batch` exits non-zero when any line failed; the others' output is still good.
    const child = execFile(cmd, args, { timeout: 5000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      err && !stdout ? reject(err) : resolve({ stdout }),
    );
    child.stdin?.end(input);
  });
}

async function fromRoute(
  ip: string,
  route: RouteInfo | undefined,
  linkOf: (dev: string) => Promise<LinkInfo | undefined>,
): Promise<PodInterface | undefined> {
  const dev = route?.dev;
  if (!dev || route?.type === 'local') return undefined;
  const l = await linkOf(dev);
  if (!l) return undefined;
  const kind = l.linkinfo?.info_kind;
  if (kind === 'veth') return { ifindex: l.ifindex, name: l.ifname, via: 'route' };
  if (kind !== 'bridge') return undefined;
  const mac = await neighbourMac(ip, dev);
  if (!mac) return undefined;
  const port = await bridgePort(dev, mac);
  if (!port) return undefined;
  const p = await link(port);
  if (p?.linkinfo?.info_kind !== 'veth') return undefined;
  return { ifindex: p.ifindex, name: p.ifname, via: 'bridge' };
}
