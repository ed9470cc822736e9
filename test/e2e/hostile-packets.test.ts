/**
 * Hostile packets in a real lab: crafted packets sent with scapy from inside a pod's network
 * namespace, judged by the eBPF datapath on the pod's veth. IPv6 AH in front of TCP is judged by
 * its real port (the receiving kernel discards AH without a security association, so the flow
 * is the witness), and a SYN with another pod's source address never reaches the server and is
 * counted. Needs root (network namespaces, BPF) and python3-scapy.
 *
 * @requires root
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { parseExposition, sample } from '../metrics/exposition.js';

const WEIR = resolve('bin/weir');
const PREFIX = `whp${process.pid % 1000}`;
const dir = mkdtempSync(join(tmpdir(), 'whp-lab-'));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  WEIR_LAB_PREFIX: PREFIX,
  WEIR_LAB_CIDR4: '10.231.7.0/24',
  WEIR_LAB_CIDR6: 'fd00:231:7::/64',
  WEIR_LAB_PIN_ROOT: `/sys/fs/bpf/${PREFIX}-lab`,
  WEIR_LAB_RUN_DIR: join(dir, 'run'),
  WEIR_LAB_METRICS_PORT: '0',
  NODE_NO_WARNINGS: '1',
};

function weir(args: string[]): Promise<string> {
  return new Promise((res, rej) =>
    execFile(process.execPath, [WEIR, ...args], { env, maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      err ? rej(new Error(`weir ${args.join(' ')} failed: ${stderr || err.message}\n${stdout}`)) : res(stdout),
    ),
  );
}

let files = 0;
function manifest(objects: unknown[]): string {
  const path = join(dir, `m${files++}.yaml`);
  writeFileSync(path, objects.map((o) => stringify(o)).join('---\n'));
  return path;
}

const pod = (ns: string, name: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, labels },
  spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
});

interface PodView {
  namespace: string;
  name: string;
  ip: string;
  ips: string[];
  netns: string;
}
interface JsonFlow {
  verdict: string;
  traffic_direction: string;
  drop_reason_desc?: string;
  IP: { source: string; destination: string };
  source: { namespace?: string; pod_name?: string; identity: number };
  l4: { TCP?: { destination_port: number; source_port: number } };
}

const pods = new Map<string, PodView>();

/** Runs a scapy program inside a pod's network namespace. */
function scapyIn(podKey: string, program: string, timeoutMs = 20_000): string {
  const p = pods.get(podKey)!;
  return execFileSync('nsenter', [`--net=/var/run/netns/${p.netns}`, '/usr/bin/python3', '-c', program], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
}

async function observe(): Promise<JsonFlow[]> {
  const out = await weir(['observe', '-o', 'jsonpb', '--last', '2000']);
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { flow?: JsonFlow })
    .filter((r) => r.flow)
    .map((r) => r.flow!);
}

async function metrics(): Promise<Awaited<ReturnType<typeof parseExposition>>> {
  const st = JSON.parse(await weir(['lab', 'status'])) as { metricsUrl?: string };
  return parseExposition(await (await fetch(st.metricsUrl!)).text());
}

const SCAPY = 'from scapy.all import *\nfrom scapy.layers.ipsec import AH\nconf.verb = 0\n';

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the lab creates network namespaces and loads BPF programs: run as root');
  await weir([
    'lab',
    'up',
    '--cluster',
    manifest([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ops' } },
      pod('shop', 'web', { app: 'web' }),
      pod('shop', 'db', { app: 'db' }),
      pod('ops', 'probe', { app: 'probe' }),
    ]),
  ]);
  // db admits web on 8080 only
  await weir([
    'lab',
    'apply',
    '-f',
    manifest([
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { namespace: 'shop', name: 'db-from-web' },
        spec: {
          podSelector: { matchLabels: { app: 'db' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 8080 }] }],
        },
      },
    ]),
  ]);
  for (const p of JSON.parse(await weir(['lab', 'get', 'pods', '-o', 'json'])) as PodView[])
    pods.set(`${p.namespace}/${p.name}`, p);
}, 120_000);

afterAll(async () => {
  try {
    await weir(['lab', 'down']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

const v6 = (key: string) => pods.get(key)!.ips.find((a) => a.includes(':'))!;

describe('hostile packets from a pod', () => {
  it('IPv6 -> AH -> TCP is judged by its real port, as its flow shows', async () => {
    const db6 = v6('shop/db');
    // AH of 24 bytes (payloadlen 4); a parser sizing it as the TCP header after it would read 16 bytes too far
    const send = (sport: number, dport: number) =>
      `${SCAPY}send(IPv6(dst='${db6}')/AH(nh=6, payloadlen=4, spi=0x1234, seq=1, icv=b'\\x00'*12)/TCP(sport=${sport}, dport=${dport}, flags='S'))\n`;
    scapyIn('shop/web', send(41001, 8080)); // allowed: web -> db:8080
    scapyIn('ops/probe', send(41002, 8080)); // denied: probe is not web
    let flows: JsonFlow[] = [];
    for (let i = 0; i < 50; i++) {
      flows = (await observe()).filter((f) => [41001, 41002].includes(f.l4.TCP?.source_port ?? 0));
      if (flows.filter((f) => f.IP.destination === db6 && f.traffic_direction === 'INGRESS').length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const atDb = (sport: number) =>
      flows.find(
        (f) => f.l4.TCP?.source_port === sport && f.IP.destination === db6 && f.traffic_direction === 'INGRESS',
      );
    expect(atDb(41001)).toMatchObject({ verdict: 'FORWARDED', l4: { TCP: { destination_port: 8080 } } });
    expect(atDb(41002)).toMatchObject({
      verdict: 'DROPPED',
      drop_reason_desc: 'POLICY_DENIED',
      l4: { TCP: { destination_port: 8080 } },
    });
  }, 60_000);

  it("a 10 s conntrack flood from one pod leaves another pod's idle allowed TCP connection working", async () => {
    const web = pods.get('shop/web')!;
    const db = pods.get('shop/db')!;
    // web is isolated for ingress, so db's answers reach it only through web's conntrack entry;
    // db admits web on 9090, where this test runs an echo server
    await weir([
      'lab',
      'apply',
      '-f',
      manifest([
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { namespace: 'shop', name: 'web-no-ingress' },
          spec: { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'] },
        },
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { namespace: 'shop', name: 'db-echo-from-web' },
          spec: {
            podSelector: { matchLabels: { app: 'db' } },
            ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 9090 }] }],
          },
        },
      ]),
    ]);
    const server = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${db.netns}`,
        '/usr/bin/python3',
        '-c',
        'import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n' +
          "s.bind(('0.0.0.0', 9090)); s.listen(1); print('ready', flush=True)\nc, _ = s.accept()\n" +
          'while True:\n    d = c.recv(100)\n    if not d: break\n    c.sendall(d)\n',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let ready = '';
    server.stdout.on('data', (d: Buffer) => (ready += d.toString()));
    for (let i = 0; i < 100 && !ready.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    // web's client: connect and echo once, idle through the flood, then echo again
    const client = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${web.netns}`,
        '/usr/bin/python3',
        '-c',
        `import socket, sys\nc = socket.create_connection(('${db.ip}', 9090), timeout=5)\n` +
          "c.sendall(b'one'); print('first', c.recv(10).decode(), flush=True)\n" +
          "sys.stdin.readline()\nc.sendall(b'two'); print('second', c.recv(10).decode(), flush=True)\n",
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let said = '';
    client.stdout.on('data', (d: Buffer) => (said += d.toString()));
    for (let i = 0; i < 100 && !said.includes('first'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(said).toContain('first one');
    const before = await metrics();
    // probe floods: UDP to every port of db from ever new source ports, as fast as it can, for 10 s
    const flood = scapyIn(
      'ops/probe',
      'import socket, time\nn = 0\nend = time.time() + 10\nsocks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]\n' +
        `while time.time() < end:\n    for s in socks:\n        for p in range(1, 2049, 8):\n            try:\n                s.sendto(b'x', ('${db.ip}', (n + p) % 65535 + 1))\n            except OSError:\n                pass\n            n += 1\n` +
        'print(n)\n',
      60_000,
    );
    const sent = Number(flood.trim());
    const after = await metrics();
    const refused =
      (sample(after, 'weir_drops_total', { reason: 'ct_new_connection_budget', direction: 'egress' }) ?? 0) -
      (sample(before, 'weir_drops_total', { reason: 'ct_new_connection_budget', direction: 'egress' }) ?? 0);
    process.stdout.write(
      `conntrack flood: ${sent} datagrams in 10 s from one pod, ${refused} refused over its budget\n`,
    );
    expect(refused).toBeGreaterThan(0);
    client.stdin.write('\n');
    await new Promise<void>((r) => client.on('exit', () => r()));
    server.kill('SIGKILL');
    expect(said).toContain('second two');
  }, 120_000);

  it("a SYN with another pod's source address never reaches the server and is counted", async () => {
    const web = pods.get('shop/web')!;
    const db = pods.get('shop/db')!;
    const before = await metrics();
    // db listens with a raw socket for anything from web's address on the test's source port
    const sniff = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${db.netns}`,
        '/usr/bin/python3',
        '-c',
        `${SCAPY}import sys\nprint('ready', flush=True)\n` +
          `p = sniff(iface='eth0', timeout=4, lfilter=lambda p: TCP in p and p[TCP].sport == 43210)\nprint('seen', len(p), flush=True)\n`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    sniff.stdout.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 100 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    // probe forges web's address: web may reach db:8080, probe may not
    scapyIn('ops/probe', `${SCAPY}send(IP(src='${web.ip}', dst='${db.ip}')/TCP(sport=43210, dport=8080, flags='S'))\n`);
    await new Promise<void>((r) => sniff.on('exit', () => r()));
    expect(out).toMatch(/seen 0/);
    const after = await metrics();
    const delta = (labels: Record<string, string>) =>
      (sample(after, 'weir_drops_total', labels) ?? 0) - (sample(before, 'weir_drops_total', labels) ?? 0);
    expect(delta({ reason: 'invalid_source_ip', direction: 'egress' })).toBe(1);
    const flow = (await observe()).find((f) => f.l4.TCP?.source_port === 43210);
    expect(flow).toMatchObject({
      verdict: 'DROPPED',
      drop_reason_desc: 'INVALID_SOURCE_IP',
      IP: { source: web.ip, destination: db.ip },
    });
    // the sender is the pod on the sending interface, not the pod whose address was forged
    expect(flow!.source).toMatchObject({ namespace: 'ops', pod_name: 'probe' });
    // while web itself, with its own address, still reaches db
    const ok = JSON.parse(
      await weir(['lab', 'probe', '--from', 'shop/web', '--to', 'shop/db', '--port', '8080', '-o', 'json']),
    ) as { results: Array<{ connected: boolean }> };
    expect(ok.results.every((r) => r.connected)).toBe(true);
  }, 60_000);
});
