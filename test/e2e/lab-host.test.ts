/**
 * The lab plays well with the machine, and its agent's /metrics are what an operator expects:
 * `down` removes only what the lab recorded making (a link or namespace that merely shares the
 * prefix survives); two labs share the node's forwarding switches (one down, the other still
 * forwards; the last one puts the switches back); /metrics moves to a free port when 9962 is
 * taken, or to `--metrics-port`; `restart-agent` keeps an established connection and a denied
 * pair denied; per-pod metrics only with the switch, counters moving by exactly what was sent.
 * Needs root (network namespaces, BPF); CI runs it as root.
 *
 * @requires root
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { parseExposition, sample, type ParsedFamily } from '../metrics/exposition.js';
import { testLab, type ProbeJson, type TestLab } from './lab-harness.js';

const SYSCTL_STATE = '/run/weir/lab-sysctl.json';
const FORWARDING = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];
const forwarding = (): string[] => FORWARDING.map((f) => readFileSync(f, 'utf8').trim());
const holders = (): string[] =>
  existsSync(SYSCTL_STATE) ? (JSON.parse(readFileSync(SYSCTL_STATE, 'utf8')) as { holders: string[] }).holders : [];

const a = testLab('h');
const b = testLab('i');
// Lab a runs on the default metrics port (taken below); lab b on the port it asks for.
delete a.env.WEIR_LAB_METRICS_PORT;

const FOREIGN_LINK = `${a.prefix}x`;
const FOREIGN_NETNS = `${a.prefix}shop-other`;
const ECHO_PORT = 7070;

const namespace = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
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
const dbFromWeb = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: 'shop', name: 'db-from-web' },
  spec: {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [
      { from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 'http' }, { port: ECHO_PORT }] },
    ],
  },
};

let blocker: Server | undefined;
let forwardingBefore: string[] = [];
let holdersBefore: string[] = [];
let metricsA = '';
let metricsB = '';
let portB = 0;
const children: ChildProcess[] = [];

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined)); // already taken by someone else: taken all the same
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

async function freePort(): Promise<number> {
  const s = (await listen(0))!;
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function scrape(url: string): Promise<ParsedFamily[]> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

/** One probe that must connect (or must not); on a surprise the error says what the lab saw. */
async function probe(lab: TestLab, port: string, protocol: string, from: string, to: string, want: boolean) {
  const args = ['lab', 'probe', '--port', port, '--protocol', protocol, '--from', from, '--to', to, '-o', 'json'];
  const r = JSON.parse((await lab.weir([...args, '--timeout', '1500'])).stdout) as ProbeJson;
  const connected = r.results[0]!.connected;
  if (connected === want) return;
  throw new Error(`${from} -> ${to} ${protocol}/${port}: connected ${connected}, expected ${want}\n${await seen(lab)}`);
}

/** What the lab saw: its last flows and the tail of its agent's log, so a failure in CI explains itself. */
async function seen(lab: TestLab): Promise<string> {
  const flows = await lab.weir(['observe', '--last', '10']).then(
    (o) => o.stdout,
    (e: Error) => e.message,
  );
  const log = join(lab.runDir, 'agent.log');
  const agentLog = existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : '(no agent log)';
  return `last flows:\n${flows}\nagent log (tail):\n${agentLog}`;
}

async function podIp(lab: TestLab, key: string): Promise<string> {
  const pods = JSON.parse((await lab.weir(['lab', 'get', 'pods', '-o', 'json'])).stdout) as {
    namespace: string;
    name: string;
    ip: string;
  }[];
  return pods.find((p) => `${p.namespace}/${p.name}` === key)!.ip;
}

/** A process in a lab pod's network namespace (nsenter keeps bpffs visible). */
function inPod(lab: TestLab, podNs: string, script: string, args: string[] = []): ChildProcess {
  const c = spawn(
    'nsenter',
    [`--net=/var/run/netns/${lab.prefix}${podNs}`, '--', process.execPath, '-e', script, ...args],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  children.push(c);
  return c;
}

function waitForOutput(c: ChildProcess, text: string, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${ms} ms; got: ${seen}`)), ms);
    const on = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        c.stdout!.off('data', on);
        resolve(seen);
      }
    };
    c.stdout!.on('data', on);
  });
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('weir lab creates network namespaces and loads BPF programs: run the tests as root');
  forwardingBefore = forwarding();
  holdersBefore = holders();
  // Made by someone else, with lab a's prefix: lab a must leave them alone.
  execFileSync('ip', ['netns', 'add', FOREIGN_NETNS]);
  execFileSync('ip', ['link', 'add', FOREIGN_LINK, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', FOREIGN_NETNS]);
  blocker = await listen(9962);
}, 30_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.allSettled([a.cleanup(), b.cleanup()]);
  try {
    execFileSync('ip', ['-force', '-batch', '-'], {
      input: `link del ${FOREIGN_LINK}\nnetns del ${FOREIGN_NETNS}\n`,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  } catch {
    /* not made, or gone already */
  }
  await new Promise((r) => (blocker ? blocker.close(r) : r(undefined)));
}, 90_000);

describe('weir lab beside other labs and other listeners', () => {
  test('up moves /metrics to a free port when 9962 is taken and says which; --metrics-port is used as given', async () => {
    const cluster = [namespace('shop'), namespace('ops'), pod('shop', 'web', { app: 'web' })];
    const upA = await a.weir([
      'lab',
      'up',
      '--pod-metrics',
      '--cluster',
      a.manifest([...cluster, pod('shop', 'db', { app: 'db' }), pod('ops', 'probe', { app: 'probe' })]),
    ]);
    const m =
      /metrics: (http:\/\/127\.0\.0\.1:(\d+)\/metrics) \(port 9962 is taken by another listener; chose port (\d+)\)/.exec(
        upA.stdout,
      );
    expect(m).not.toBeNull();
    expect(m![2]).toBe(m![3]);
    expect(Number(m![2])).not.toBe(9962);
    metricsA = m![1]!;
    portB = await freePort();
    const upB = await b.weir([
      'lab',
      'up',
      '--metrics-port',
      String(portB),
      '--cluster',
      b.manifest([...cluster, pod('shop', 'api', { app: 'api' })]),
    ]);
    metricsB = `http://127.0.0.1:${portB}/metrics`;
    expect(upB.stdout).toContain(`metrics: ${metricsB}\n`);
    expect((await scrape(metricsB)).length).toBeGreaterThan(0);
  }, 120_000);

  test('/metrics before any traffic: runtime metrics, build info, every known series at 0, no per-pod series unless switched on', async () => {
    const fams = await scrape(metricsA);
    const names = fams.map((f) => f.name);
    for (const n of ['process_cpu_seconds', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds'])
      expect(names).toContain(n);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const info = fams.find((f) => f.name === 'weir_build_info')!.samples;
    expect(info).toHaveLength(1);
    expect(info[0]!.labels).toMatchObject({ version: pkg.version, node_version: process.version });
    expect(info[0]!.value).toBe(1);
    for (const direction of ['ingress', 'egress']) {
      for (const reason of ['policy_denied', 'policy_revoked', 'invalid_packet_dropped', 'unsupported_l3_protocol'])
        expect(sample(fams, 'weir_drops_total', { reason, direction })).toBe(0);
      expect(sample(fams, 'weir_policy_verdicts_total', { direction, match: 'none', action: 'dropped' })).toBe(0);
      expect(sample(fams, 'weir_policy_verdicts_total', { direction, match: 'l3_l4', action: 'forwarded' })).toBe(0);
    }
    expect(sample(fams, 'weir_flows_processed_total', { type: 'drop', verdict: 'dropped' })).toBe(0);
    expect(sample(fams, 'weir_kubernetes_events_total', { resource: 'networkpolicy', action: 'deleted' })).toBe(0);
    // switched on in lab a (no flows yet), off in lab b
    expect(fams.find((f) => f.name === 'weir_pod_flows')?.samples ?? []).toEqual([]);
    expect(names).toContain('weir_pod_flows');
    expect((await scrape(metricsB)).map((f) => f.name)).not.toContain('weir_pod_flows');
  }, 30_000);

  test('counters and per-pod series move by exactly the connections made, with source and destination labels', async () => {
    await a.weir(['lab', 'apply', '-f', a.manifest([dbFromWeb])]);
    const before = await scrape(metricsA);
    const allowed = 3;
    const denied = 2;
    for (let i = 0; i < allowed; i++) await probe(a, 'http', 'TCP', 'shop/web', 'shop/db', true);
    for (let i = 0; i < denied; i++) await probe(a, 'dns', 'UDP', 'ops/probe', 'shop/db', false);
    const after = await scrape(metricsA);
    const delta = (name: string, labels: Record<string, string>) =>
      (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    const pair = (src: string, dst: string, direction: string, verdict: string) => {
      const [sns, spod] = src.split('/');
      const [dns, dpod] = dst.split('/');
      return {
        source_namespace: sns!,
        source_pod: spod!,
        destination_namespace: dns!,
        destination_pod: dpod!,
        direction,
        verdict,
      };
    };
    expect(delta('weir_pod_flows_total', pair('shop/web', 'shop/db', 'ingress', 'forwarded'))).toBe(allowed);
    expect(delta('weir_pod_flows_total', pair('ops/probe', 'shop/db', 'ingress', 'dropped'))).toBe(denied);
    expect(delta('weir_policy_verdicts_total', { direction: 'ingress', match: 'l3_l4', action: 'forwarded' })).toBe(
      allowed,
    );
    expect(delta('weir_drops_total', { reason: 'policy_denied', direction: 'ingress' })).toBe(denied);
    for (const s of after.find((f) => f.name === 'weir_pod_flows')!.samples) {
      expect(Object.keys(s.labels)).not.toContain('namespace');
      expect(Object.keys(s.labels)).not.toContain('pod');
    }
  }, 60_000);

  test('restart-agent: an established connection survives, a denied pair stays denied, nothing is widened', async () => {
    const dbIp = await podIp(a, 'shop/db');
    const server = inPod(
      a,
      'shop-db',
      `require('net').createServer((c) => c.on('data', (d) => c.write(d))).listen(${ECHO_PORT}, () => console.log('listening'));`,
    );
    await waitForOutput(server, 'listening');
    const client = inPod(
      a,
      'shop-web',
      `const s = require('net').connect(${ECHO_PORT}, process.argv[1], () => s.write('before\\n'));
       s.on('data', (d) => process.stdout.write(d));
       s.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
       s.on('close', () => { console.log('closed'); process.exit(1); });
       process.stdin.on('data', (d) => s.write(d));`,
      [dbIp],
    );
    await waitForOutput(client, 'before').catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await seen(a)}`);
    });
    await probe(a, 'http', 'TCP', 'ops/probe', 'shop/db', false);

    const r = await a.weir(['lab', 'restart-agent']);
    expect(r.stdout).toMatch(/lab agent \(pid \d+\) killed/);
    const gap = /the datapath ran without an agent for (\d+) ms/.exec(r.stdout);
    expect(gap).not.toBeNull();
    process.stderr.write(`restart-agent: the datapath ran without an agent for ${gap![1]} ms\n`);
    expect(r.stdout).toMatch(/established connections: [1-9]\d* of [1-9]\d* conntrack entries kept/);
    expect(r.stdout).toMatch(/nothing was widened: (\d+) allow entries before, \1 after, none added/);

    // the same TCP connection carries data after the restart
    const echoed = waitForOutput(client, 'after', 5000);
    client.stdin!.write('after\n');
    await echoed;
    await probe(a, 'http', 'TCP', 'ops/probe', 'shop/db', false);
    await probe(a, 'http', 'TCP', 'shop/web', 'shop/db', true);
    const status = JSON.parse((await a.weir(['lab', 'status'])).stdout) as { adopted: boolean; pods: number };
    expect(status).toMatchObject({ adopted: true, pods: 3 });
    client.kill('SIGKILL');
    server.kill('SIGKILL');
  }, 90_000);

  test('down removes only what its lab made; the other lab still forwards; the last one puts forwarding back', async () => {
    expect(holders()).toEqual(expect.arrayContaining([a.runDir, b.runDir]));
    const downA = await a.weir(['lab', 'down']);
    expect(downA.stdout).toMatch(/lab down: agent \(pid \d+\) stopped, 3 pods removed/);
    expect(existsSync(`/sys/class/net/${FOREIGN_LINK}`)).toBe(true);
    expect(existsSync(`/var/run/netns/${FOREIGN_NETNS}`)).toBe(true);
    expect(readdirNetns(a.prefix)).toEqual([FOREIGN_NETNS]);
    expect(holders()).not.toContain(a.runDir);
    expect(holders()).toContain(b.runDir);
    expect(forwarding()).toEqual(['1', '1']);
    // lab b's pods still reach each other through the node
    await probe(b, 'http', 'TCP', 'shop/web', 'shop/api', true);
    await probe(b, 'dns', 'UDP', 'shop/api', 'shop/web', true);

    await b.weir(['lab', 'down']);
    expect(holders()).toEqual(holdersBefore);
    if (holdersBefore.length === 0) {
      expect(existsSync(SYSCTL_STATE)).toBe(false);
      expect(forwarding()).toEqual(forwardingBefore);
    }
  }, 60_000);
});

function readdirNetns(prefix: string): string[] {
  return execFileSync('ip', ['netns', 'list'])
    .toString()
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(prefix));
}
