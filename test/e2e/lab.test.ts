/**
 * `weir lab` itself, as a user drives it: up, get, apply and delete of pods and policies,
 * probes, down (twice), and recovery from a crashed run. Needs root (network namespaces,
 * BPF); CI runs it as root.
 *
 * @requires root
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { testLab, type ProbeJson } from './lab-harness.js';

const lab = testLab('m');
const PREFIX = lab.prefix;
const BLOCK = lab.cidr4.replace(/\.0\/24$/, '.');

const namespace = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels },
});
const pod = (ns: string, name: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, labels },
  spec: {
    containers: [
      {
        name: 'app',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP' },
          { name: 'dns', containerPort: 53, protocol: 'UDP' },
        ],
      },
    ],
  },
});
const cluster = [
  namespace('shop', { team: 'shop' }),
  namespace('ops'),
  pod('shop', 'web', { app: 'web' }),
  pod('shop', 'db', { app: 'db' }),
  pod('ops', 'probe', { app: 'probe' }),
];

interface PodJson {
  namespace: string;
  name: string;
  ip: string;
  labels: Record<string, string>;
  identity?: number;
}

function leftovers(): string[] {
  const netns = existsSync('/var/run/netns') ? readdirSync('/var/run/netns').filter((n) => n.startsWith(PREFIX)) : [];
  const links = readdirSync('/sys/class/net').filter((n) => n.startsWith(PREFIX));
  const routes = execFileSync('ip', ['route', 'show', 'type', 'blackhole'])
    .toString()
    .split('\n')
    .filter((l) => l.includes(lab.cidr4));
  const procs = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(lab.runDir);
      } catch {
        return false;
      }
    });
  return [
    ...netns.map((n) => `netns ${n}`),
    ...links.map((l) => `link ${l}`),
    ...routes.map((r) => `route ${r}`),
    ...procs.map((p) => `process ${p}`),
    ...(existsSync(`/sys/fs/bpf/${PREFIX}`) ? [`pins /sys/fs/bpf/${PREFIX}`] : []),
  ];
}

async function probe(port: string, protocol = 'TCP', extra: string[] = []): Promise<ProbeJson> {
  return JSON.parse(
    (
      await lab.weir([
        'lab',
        'probe',
        '--port',
        port,
        '--protocol',
        protocol,
        '--timeout',
        '800',
        '-o',
        'json',
        ...extra,
      ])
    ).stdout,
  ) as ProbeJson;
}

const FORWARDING = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];
const forwarding = (): string[] => FORWARDING.map((f) => readFileSync(f, 'utf8').trim());
let forwardingBefore: string[] = [];

beforeAll(() => {
  if (process.getuid?.() !== 0)
    throw new Error('weir lab creates network namespaces and loads BPF programs: run the tests as root');
  forwardingBefore = forwarding();
});

afterAll(async () => {
  await lab.cleanup();
}, 60_000);

describe('weir lab', () => {
  test('up creates one network namespace per pod with addresses from the pod range', async () => {
    const up = await lab.weir(['lab', 'up', '--cluster', lab.manifest(cluster)]);
    expect(up.stdout).toMatch(/pod\/shop\/web created/);
    expect(up.stdout).toMatch(/lab up in \d+ ms: 3 pods/);
    const pods = JSON.parse((await lab.weir(['lab', 'get', 'pods', '-o', 'json'])).stdout) as PodJson[];
    expect(pods.map((p) => `${p.namespace}/${p.name}`).sort()).toEqual(['ops/probe', 'shop/db', 'shop/web']);
    for (const p of pods) {
      expect(p.ip.startsWith(BLOCK)).toBe(true);
      expect(typeof p.identity).toBe('number');
    }
    expect(pods.find((p) => p.name === 'web')?.labels).toEqual({ app: 'web' });
    expect(
      readdirSync('/var/run/netns')
        .filter((n) => n.startsWith(PREFIX))
        .sort(),
    ).toEqual([`${PREFIX}ops-probe`, `${PREFIX}shop-db`, `${PREFIX}shop-web`]);
  }, 60_000);

  test('probe reaches every declared port by name, and finds nothing where nothing listens', async () => {
    const http = await probe('http');
    expect(http.results).toHaveLength(9);
    expect(http.results.every((r) => r.connected)).toBe(true);
    const dns = await probe('dns', 'UDP', ['--family', '6']);
    expect(dns.results.every((r) => r.connected)).toBe(true);
    const closed = await probe('9999');
    expect(closed.results.some((r) => r.connected)).toBe(false);
  }, 30_000);

  test('apply of a policy returns once enforced, and get shows it with the pods it selects', async () => {
    const deny = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: 'shop', name: 'db-from-web' },
      spec: {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 'http' }] }],
      },
    };
    const out = await lab.weir(['lab', 'apply', '-f', lab.manifest([deny])]);
    expect(out.stdout).toMatch(/networkpolicy\/shop\/db-from-web created/);
    expect(out.stdout).toMatch(/realized in the datapath in [\d.]+ ms/);
    const r = await probe('http', 'TCP', ['--to', 'shop/db']);
    expect(Object.fromEntries(r.results.map((x) => [x.from, x.connected]))).toEqual({
      'ops/probe': false,
      'shop/db': true,
      'shop/web': true,
    });
    const policies = JSON.parse((await lab.weir(['lab', 'get', 'policies', '-o', 'json'])).stdout) as {
      name: string;
      selects: string[];
    }[];
    expect(policies).toEqual([expect.objectContaining({ name: 'db-from-web', selects: ['shop/db'] })]);
    const again = await lab.weir(['lab', 'apply', '-f', lab.manifest([deny])]);
    expect(again.stdout).toMatch(/networkpolicy\/shop\/db-from-web unchanged/);
  }, 30_000);

  test('apply and delete of a pod create and remove its namespace', async () => {
    const extra = pod('ops', 'late', { app: 'web' });
    await lab.weir(['lab', 'apply', '-f', lab.manifest([extra])]);
    const r = await probe('http', 'TCP', ['--from', 'ops/late', '--to', 'shop/db']);
    expect(r.results).toEqual([{ from: 'ops/late', to: 'shop/db', connected: false }]);
    const del = await lab.weir(['lab', 'delete', '-f', lab.manifest([extra])]);
    expect(del.stdout).toMatch(/pod\/ops\/late deleted/);
    expect(existsSync(`/var/run/netns/${PREFIX}ops-late`)).toBe(false);
    const pods = JSON.parse((await lab.weir(['lab', 'get', 'pods', '-o', 'json'])).stdout) as PodJson[];
    expect(pods).toHaveLength(3);
  }, 30_000);

  test('apply warns when an ipBlock covers pod IPs, and the pods it names stay unreachable through it', async () => {
    const cidr = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: 'ops', name: 'from-pod-range' },
      spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: lab.cidr4 } }] }] },
    };
    const out = await lab.weir(['lab', 'apply', '-f', lab.manifest([cidr])]);
    expect(out.stderr).toContain(
      `warning: NetworkPolicy ops/from-pod-range: spec.ingress[0].from[0].ipBlock.cidr: ${lab.cidr4} covers the pod network`,
    );
    const r = await probe('http', 'TCP', ['--to', 'ops/probe', '--from', 'shop/web']);
    expect(r.results).toEqual([{ from: 'shop/web', to: 'ops/probe', connected: false }]);
    await lab.weir(['lab', 'delete', '-f', lab.manifest([cidr])]);
  }, 30_000);

  test('a pod in a namespace that does not exist is refused with the namespace named', async () => {
    await expect(lab.weir(['lab', 'apply', '-f', lab.manifest([pod('nowhere', 'p', {})])])).rejects.toThrow(
      /pod\/nowhere\/p: namespaces "nowhere" not found/,
    );
  });

  test('up after a crash cleans what the crashed run left and starts again', async () => {
    const state = JSON.parse(readFileSync(`${lab.runDir}/state.json`, 'utf8')) as { daemon: { pid: number } };
    process.kill(state.daemon.pid, 'SIGKILL');
    const up = await lab.weir(['lab', 'up', '--cluster', lab.manifest(cluster)]);
    expect(up.stderr).toMatch(/cleaned what an earlier lab left: \d+ processes, [1-9]\d* interfaces/);
    const r = await probe('http');
    expect(r.results.filter((x) => x.connected)).toHaveLength(9);
  }, 60_000);

  test('down removes every namespace, veth, route, pin and process, and can be repeated', async () => {
    await lab.weir(['lab', 'down']);
    expect(leftovers()).toEqual([]);
    expect(forwarding()).toEqual(forwardingBefore); // the node's forwarding switches as the lab found them
    const again = await lab.weir(['lab', 'down']);
    expect(again.stdout).toMatch(/lab down/);
    expect(leftovers()).toEqual([]);
    await expect(lab.weir(['lab', 'get', 'pods'])).rejects.toThrow(/is the lab up\?/);
  }, 30_000);
});
