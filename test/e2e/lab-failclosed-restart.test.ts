/**
 * A restarted agent never hands a pod another label set's identity, not even for a moment
 * (issue 12, defect 4), in a real lab. Identity numbers come from a hash with linear probing
 * (agent/identity/allocator.ts), so two label sets whose hashes collide get their numbers in
 * the order they arrive. This test finds two such label sets, makes them arrive in one order
 * while the lab runs (pod `b` takes the hashed number, pod `a` the next one) and in the other
 * when `weir lab restart-agent` starts a new agent (it reads the pods in the order they were
 * created, `a` first), so the two numbers swap. The server admits only `b`'s labels; a prober in
 * `a` sends to the server without pause, before, during and after the restart: no datagram is
 * ever answered and no connection ever made, and the flows carry `a`'s new identity. Needs root
 * (network namespaces, BPF).
 *
 * @requires root
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { IdentityAllocator } from '../../agent/identity/allocator.js';
import { testLab, type TestLab } from './lab-harness.js';

const NS = 'idc';
const NS_LABELS = { 'kubernetes.io/metadata.name': NS };
const TCP_PORT = 80;
const UDP_PORT = 53;

/** Two values of `app` whose label sets hash to the same identity number in NS. */
function collidingApps(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; i < 1_000_000; i++) {
    const app = `c${i}`;
    const id = new IdentityAllocator().acquire(NS, { app }, NS_LABELS).identity.id;
    const other = seen.get(id);
    if (other !== undefined) return [other, app];
    seen.set(id, app);
  }
  throw new Error('no two colliding label sets among a million');
}
const [APP_A, APP_B] = collidingApps();

const lab: TestLab = testLab('fr');
const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } };
const pod = (name: string, app: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: NS, name, labels: { app } },
  spec: {
    containers: [
      {
        name: 'c',
        ports: [
          { containerPort: TCP_PORT, protocol: 'TCP' },
          { containerPort: UDP_PORT, protocol: 'UDP' },
        ],
      },
    ],
  },
});
/** The server admits `b`'s label set only. */
const serverIn = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: NS, name: 'srv-in' },
  spec: {
    podSelector: { matchLabels: { app: 'srv' } },
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { app: APP_B } } }],
        ports: [
          { port: TCP_PORT, protocol: 'TCP' },
          { port: UDP_PORT, protocol: 'UDP' },
        ],
      },
    ],
  },
};

interface PodRow {
  namespace: string;
  name: string;
  ip: string;
  identity?: number;
}
async function pods(): Promise<Map<string, PodRow>> {
  const rows = JSON.parse((await lab.weir(['lab', 'get', 'pods', '-o', 'json'])).stdout) as PodRow[];
  return new Map(rows.map((p) => [p.name, p]));
}

interface ProbeCounts {
  udpSent: number;
  udpAnswered: number;
  tcpTried: number;
  tcpConnected: number;
}

/**
 * A prober in a pod's namespace: a UDP datagram to the server every millisecond (one socket, so
 * every datagram that finds no conntrack entry is judged by policy) and a new TCP connection
 * every 5 ms (each abandoned after 300 ms); counts what was answered until stopped.
 */
class Prober {
  private readonly child: ChildProcess;
  private out = '';
  constructor(from: string, to: string) {
    const script = `
      const net = require('net'); const dgram = require('dgram');
      const c = { udpSent: 0, udpAnswered: 0, tcpTried: 0, tcpConnected: 0 };
      const u = dgram.createSocket('udp4');
      u.on('message', () => c.udpAnswered++);
      u.on('error', () => {});
      const msg = Buffer.from('probe');
      const timers = [
        setInterval(() => { u.send(msg, ${UDP_PORT}, process.argv[1]); c.udpSent++; }, 1),
        setInterval(() => {
          c.tcpTried++;
          const s = net.connect(${TCP_PORT}, process.argv[1]);
          s.on('connect', () => { c.tcpConnected++; s.destroy(); });
          s.on('error', () => {});
          setTimeout(() => s.destroy(), 300);
        }, 5),
      ];
      console.log('started');
      process.stdin.on('data', () => {
        for (const t of timers) clearInterval(t);
        setTimeout(() => { console.log(JSON.stringify(c)); process.exit(0); }, 400);
      });`;
    this.child = spawn(
      'nsenter',
      [`--net=/var/run/netns/${lab.prefix}${NS}-${from}`, '--', process.execPath, '-e', script, to],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    probers.push(this);
  }
  async started(): Promise<void> {
    const end = Date.now() + 5000;
    while (!this.out.includes('started')) {
      if (Date.now() > end) throw new Error('the prober did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  stop(): Promise<ProbeCounts> {
    return new Promise((resolve, reject) => {
      this.child.once('close', () => {
        const line = this.out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line) as ProbeCounts);
        else reject(new Error(`the prober printed no counts: ${this.out}`));
      });
      this.child.stdin!.write('stop\n');
    });
  }
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
const probers: Prober[] = [];

async function probeFor(from: string, to: string, ms: number): Promise<ProbeCounts> {
  const p = new Prober(from, to);
  await p.started();
  await new Promise((r) => setTimeout(r, ms));
  return p.stop();
}

interface JsonFlow {
  verdict?: string;
  drop_reason_desc?: string;
  traffic_direction?: string;
  source?: { identity?: number; labels?: string[]; pod_name?: string };
}
async function flows(fromPod: string, toPod: string, since: Date): Promise<JsonFlow[]> {
  const { stdout } = await lab.weir([
    'observe',
    '-o',
    'jsonpb',
    '--since',
    since.toISOString(),
    '--from-pod',
    `${NS}/${fromPod}`,
    '--to-pod',
    `${NS}/${toPod}`,
  ]);
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => (JSON.parse(l) as { flow?: JsonFlow }).flow)
    .filter((f): f is JsonFlow => f !== undefined);
}

beforeAll(async () => {
  // `a` is created first, with labels no one collides with; `b` then takes the hashed number
  await lab.weir([
    'lab',
    'up',
    '--cluster',
    lab.manifest([namespace, pod('a', 'a-start'), pod('b', APP_B), pod('srv', 'srv')]),
  ]);
  await lab.weir(['lab', 'apply', '-f', lab.manifest([serverIn])]);
  // and `a`, relabelled, the next one
  await lab.weir(['lab', 'apply', '-f', lab.manifest([pod('a', APP_A)])]);
}, 120_000);

afterAll(async () => {
  for (const p of probers) p.kill();
  await lab.cleanup();
}, 60_000);

describe('a restart never hands a pod another label set’s identity', () => {
  let before: Map<string, PodRow>;

  it('two colliding label sets: b holds the hashed number, a the next; the server admits b only', async () => {
    before = await pods();
    const a = before.get('a')!.identity!;
    const b = before.get('b')!.identity!;
    expect(a).toBe(b + 1);
    // the prober sees what it may: b's datagrams are answered and its connections made, a's not
    const fromB = await probeFor('b', before.get('srv')!.ip, 500);
    expect(fromB.udpAnswered).toBeGreaterThan(0);
    expect(fromB.tcpConnected).toBeGreaterThan(0);
    const fromA = await probeFor('a', before.get('srv')!.ip, 500);
    expect(fromA.udpSent).toBeGreaterThan(100);
    expect(fromA).toMatchObject({ udpAnswered: 0, tcpConnected: 0 });
  }, 30_000);

  it('restart-agent swaps the two numbers, and a reaches the server at no moment before, during or after', async () => {
    const start = new Date();
    const prober = new Prober('a', before.get('srv')!.ip);
    await prober.started();
    await new Promise((r) => setTimeout(r, 300));
    const r = await lab.weir(['lab', 'restart-agent']);
    expect(r.stdout).toMatch(/lab agent \(pid \d+\) killed/);
    // entries are compared by the label set their identity stands for: the swap widens nothing
    expect(r.stdout).toMatch(/nothing was widened: (\d+) allow entries before, \1 after, none added/);
    await new Promise((res) => setTimeout(res, 1500));
    const counts = await prober.stop();
    process.stderr.write(`prober in a during restart-agent: ${JSON.stringify(counts)}\n`);
    expect(counts.udpSent).toBeGreaterThan(1000);
    expect(counts).toMatchObject({ udpAnswered: 0, tcpConnected: 0 });

    // the restarted agent gave a the number b had (the case under test), and b the next one
    const after = await pods();
    expect(after.get('a')!.identity).toBe(before.get('b')!.identity);
    expect(after.get('b')!.identity).toBe(before.get('a')!.identity);
    // a is still refused and b admitted, by the new numbers
    expect(await probeFor('a', after.get('srv')!.ip, 300)).toMatchObject({ udpAnswered: 0, tcpConnected: 0 });
    expect((await probeFor('b', after.get('srv')!.ip, 300)).udpAnswered).toBeGreaterThan(0);

    // no flow from a to the server was forwarded; the last ones carry a's new identity and labels
    // (a's own egress is not isolated: its side forwards; the server's ingress judges)
    const fromA = (await flows('a', 'srv', start)).filter((f) => f.traffic_direction === 'INGRESS');
    expect(fromA.length).toBeGreaterThan(0);
    expect(fromA.filter((f) => f.verdict !== 'DROPPED')).toEqual([]);
    const last = fromA.at(-1)!;
    expect(last.source?.identity).toBe(after.get('a')!.identity);
    expect(last.source?.labels).toContain(`k8s:app=${APP_A}`);
  }, 90_000);
});
