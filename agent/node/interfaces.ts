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

/** The host-side veth of the pod with this IP, or undefined when it is not a local pod behind a veth. */
export async function findPodInterface(ip: string): Promise<PodInterface | undefined> {
  if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
  const routes = await ipJson<Array<{ dev?: string; type?: string }>>(['route', 'get', ip]);
  const dev = routes?.[0]?.dev;
  if (!dev || routes?.[0]?.type === 'local') return undefined;
  const l = await link(dev);
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
