/**
 * Services in the lab with real connections: ClusterIPs from the lab's Service range, EndpointSlices
 * derived from selectors and pods, and the datapath translating a pod's connection to a ClusterIP
 * into a backend before egress policy judges it. A pod behind "default-deny egress + allow DNS to
 * kube-dns pods" reaches UDP and TCP responders through the kube-dns Service; egress allowed to
 * `app=db` pods reaches them through the db Service and is refused through another Service; a
 * deleted backend and a relabelled pod leave their Service and get no new connection. Needs root
 * (network namespaces, BPF); CI runs it as root.
 *
 * @requires root
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { WEIR, testLab } from './lab-harness.js';

const lab = testLab('s');

const namespace = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const pod = (ns: string, name: string, labels: Record<string, string>, ports: unknown[]) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, labels },
  spec: { containers: [{ name: 'app', ports }] },
});
const service = (ns: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { namespace: ns, name },
  spec,
});
const DNS_PORTS = [
  { name: 'dns', containerPort: 53, protocol: 'UDP' },
  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
];
const PG = [{ name: 'pg', containerPort: 5432, protocol: 'TCP' }];

/** The lab's 10th Service address: kube-dns asks for it, as clusters give kube-dns a fixed ClusterIP. */
const DNS_IP = lab.svcCidr4.replace(/\.0\/24$/, '.10');

const cluster = [
  namespace('kube-system'),
  namespace('app'),
  pod('kube-system', 'dns-1', { 'k8s-app': 'kube-dns' }, DNS_PORTS),
  pod('kube-system', 'dns-2', { 'k8s-app': 'kube-dns' }, DNS_PORTS),
  service('kube-system', 'kube-dns', {
    clusterIP: DNS_IP,
    selector: { 'k8s-app': 'kube-dns' },
    ports: [
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 'dns' },
      { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 'dns-tcp' },
    ],
  }),
  pod('app', 'client', { app: 'client' }, []),
  pod('app', 'db-1', { app: 'db' }, PG),
  pod('app', 'db-2', { app: 'db' }, PG),
  pod('app', 'web', { app: 'web' }, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]),
  service('app', 'db', { selector: { app: 'db' }, ports: [{ port: 5432, targetPort: 'pg' }] }),
  service('app', 'web', { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
  // a UDP port nobody listens on behind it: the backends answer with ICMP port unreachable
  service('app', 'db-udp', {
    selector: { app: 'db' },
    ipFamilyPolicy: 'PreferDualStack',
    ports: [{ port: 5300, protocol: 'UDP', targetPort: 5301 }],
  }),
  // in front of UDP echo servers the fragments test starts in the db pods
  service('app', 'echo-udp', {
    selector: { app: 'db' },
    ipFamilyPolicy: 'PreferDualStack',
    ports: [{ port: 5400, protocol: 'UDP', targetPort: 5401 }],
  }),
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'app', name: 'client-egress' },
    spec: {
      podSelector: { matchLabels: { app: 'client' } },
      policyTypes: ['Egress'],
      egress: [
        {
          to: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
              podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
            },
          ],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        { to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ protocol: 'TCP', port: 5432 }] },
      ],
    },
  },
];

interface ServiceJson {
  namespace: string;
  name: string;
  type: string;
  clusterIP: string;
  clusterIPs: string[];
  ports: Array<{ name: string; protocol: string; port: number; targetPort: number | string; nodePort: number }>;
  selector: Record<string, string>;
  endpoints: Array<{ pod: string; ip: string; port: number; ready: boolean; serving: boolean; terminating: boolean }>;
}

interface ServiceProbeJson {
  results: Array<{ from: string; to: string; connected: boolean; backend: string | null }>;
}

async function services(): Promise<Map<string, ServiceJson>> {
  const rows = JSON.parse((await lab.weir(['lab', 'get', 'services', '-o', 'json'])).stdout) as ServiceJson[];
  return new Map(rows.map((s) => [`${s.namespace}/${s.name}`, s]));
}

async function viaService(
  svc: string,
  port: string,
  protocol = 'TCP',
  family = '4',
  from = 'app/client',
): Promise<ServiceProbeJson['results'][number]> {
  const r = await lab.weir([
    'lab',
    'probe',
    '--from',
    from,
    '--to-service',
    svc,
    '--port',
    port,
    '--protocol',
    protocol,
    '--family',
    family,
    '--timeout',
    '1500',
    '-o',
    'json',
  ]);
  const rows = (JSON.parse(r.stdout) as ServiceProbeJson).results;
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

/** Runs weir and resolves with its exit status, whatever it is. */
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [WEIR, ...args], { env: lab.env }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      res({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

/**
 * A Python UDP socket in a lab pod (its network namespace file is `<prefix><ns>-<name>`), connected to
 * `address:port` with a 3 s timeout, then `body` (Python lines using `s`); what it printed.
 */
function udpClient(pod: string, address: string, port: number, body: string[]): string {
  const script = [
    'import socket, sys, time',
    'fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET',
    's = socket.socket(fam, socket.SOCK_DGRAM)',
    's.settimeout(3)',
    's.connect((sys.argv[1], int(sys.argv[2])))',
    ...body,
  ].join('\n');
  const netns = `--net=/var/run/netns/${lab.prefix}${pod}`;
  return execFileSync('nsenter', [netns, '--', 'python3', '-c', script, address, String(port)])
    .toString()
    .trim();
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('weir lab creates network namespaces and loads BPF programs: run the tests as root');
  await lab.weir(['lab', 'up', '--cluster', lab.manifest(cluster)]);
}, 120_000);

afterAll(async () => {
  await lab.cleanup();
}, 60_000);

describe('lab Services', () => {
  test('get services: ClusterIPs from the Service range (an in-range clusterIP honoured), ports, selector, endpoints', async () => {
    const s = await services();
    const dns = s.get('kube-system/kube-dns')!;
    expect(dns.type).toBe('ClusterIP');
    expect(dns.clusterIP).toBe(DNS_IP);
    expect(dns.clusterIPs[0]).toBe(DNS_IP);
    expect(dns.clusterIPs[1]).toMatch(new RegExp(`^${lab.svcCidr6.replace(/::\/112$/, '::')}`));
    expect(dns.ports).toEqual([
      { name: 'dns', protocol: 'UDP', port: 53, targetPort: 'dns', nodePort: 0 },
      { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 'dns-tcp', nodePort: 0 },
    ]);
    expect(dns.selector).toEqual({ 'k8s-app': 'kube-dns' });
    // both families, both ports, both pods: 8 rows, all ready
    expect(new Set(dns.endpoints.map((e) => e.pod))).toEqual(new Set(['kube-system/dns-1', 'kube-system/dns-2']));
    expect(dns.endpoints).toHaveLength(8);
    expect(dns.endpoints.every((e) => e.ready && e.serving && !e.terminating && e.port === 53)).toBe(true);
    const db = s.get('app/db')!;
    expect(db.clusterIP.startsWith(lab.svcCidr4.replace(/0\/24$/, ''))).toBe(true);
    expect(db.clusterIP).not.toBe(DNS_IP);
    expect(db.endpoints.filter((e) => !e.ip.includes(':')).map((e) => `${e.pod}:${e.port}`)).toEqual([
      'app/db-1:5432',
      'app/db-2:5432',
    ]);
    const table = (await lab.weir(['lab', 'get', 'services'])).stdout;
    expect(table).toMatch(/^NAMESPACE\s+NAME\s+TYPE\s+CLUSTER-IPS/);
    expect(table).toContain(DNS_IP);
  });

  test('a clusterIP outside the Service range is refused, naming the field', async () => {
    const r = await run([
      'lab',
      'apply',
      '-f',
      lab.manifest([service('app', 'stray', { clusterIP: '192.0.2.10', ports: [{ port: 80 }] })]),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `service/app/stray: Service "stray" is invalid: spec.clusterIP: Invalid value: "192.0.2.10": provided IP is not in the valid range. The range of valid IPs is ${lab.svcCidr4}`,
    );
    expect((await services()).has('app/stray')).toBe(false);
  });

  test('default-deny egress + allow DNS to kube-dns pods: UDP and TCP through the kube-dns ClusterIP', async () => {
    for (const [port, protocol] of [
      ['dns', 'UDP'],
      ['dns-tcp', 'TCP'],
      ['53', 'UDP'],
    ] as const) {
      const r = await viaService('kube-system/kube-dns', port, protocol);
      expect(r).toMatchObject({ from: 'app/client', to: 'kube-system/kube-dns', connected: true });
      expect(['kube-system/dns-1', 'kube-system/dns-2']).toContain(r.backend);
    }
    // and over IPv6, through the Service's IPv6 ClusterIP
    expect(await viaService('kube-system/kube-dns', 'dns', 'UDP', '6')).toMatchObject({ connected: true });
  });

  test('hairpin: a pod reaches its own Service, is chosen as its backend and answers itself (IPv4 and IPv6)', async () => {
    for (const family of ['4', '6']) {
      const r = await viaService('app/web', 'http', 'TCP', family, 'app/web');
      expect(r).toEqual({ from: 'app/web', to: 'app/web', connected: true, backend: 'app/web' });
    }
  });

  test('egress allowed to app=db reaches it through the db Service and is refused through the web Service', async () => {
    const db = await viaService('app/db', '5432');
    expect(db.connected).toBe(true);
    expect(['app/db-1', 'app/db-2']).toContain(db.backend);
    const web = await viaService('app/web', 'http');
    expect(web).toEqual({ from: 'app/client', to: 'app/web', connected: false, backend: null });
  });

  test('flows name the Service, its address and the backend; weir observe --to-service selects them', async () => {
    const s = await services();
    const db = s.get('app/db')!;
    const web = s.get('app/web')!;
    await viaService('app/db', '5432');
    await viaService('app/web', 'http');
    const flows = async (args: string[]) =>
      (await lab.weir(['observe', '-o', 'jsonpb', '--last', '500', ...args])).stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => (JSON.parse(l) as { flow?: Record<string, unknown> }).flow)
        .filter((f): f is Record<string, unknown> => f !== undefined);
    const toDb = await flows(['--to-service', 'app/db', '--from-pod', 'app/client']);
    expect(toDb.length).toBeGreaterThan(0);
    const backends = new Set(db.endpoints.map((e) => e.ip));
    for (const f of toDb) {
      expect(f.destination_service).toEqual({ name: 'db', namespace: 'app' });
      expect(f.destination_service_ip).toBe(db.clusterIP);
      expect(f.destination_service_port).toBe(5432);
      expect(backends.has((f.IP as { destination: string }).destination)).toBe(true);
      expect(f.verdict).toBe('FORWARDED');
    }
    const toWeb = await flows(['--to-service', 'app/web', '--verdict', 'DROPPED']);
    expect(toWeb.length).toBeGreaterThan(0);
    expect(toWeb[0]).toMatchObject({
      destination_service: { name: 'web', namespace: 'app' },
      destination_service_ip: web.clusterIP,
      destination_service_port: 80,
      IP: { destination: web.endpoints.find((e) => !e.ip.includes(':'))!.ip },
      drop_reason_desc: 'POLICY_DENIED',
    });
    const compact = (await lab.weir(['observe', '--last', '500', '--to-service', 'app/web', '--verdict', 'DROPPED']))
      .stdout;
    expect(compact).toContain(`app/web:8080`);
    expect(compact).toContain(`via service app/web (${web.clusterIP}:80)`);
  }, 60_000);

  test('a label change that removes a pod from the selector removes it from the Service', async () => {
    await lab.weir([
      'lab',
      'apply',
      '-f',
      lab.manifest([pod('kube-system', 'dns-2', { 'k8s-app': 'resolver-canary' }, DNS_PORTS)]),
    ]);
    const dns = (await services()).get('kube-system/kube-dns')!;
    expect(new Set(dns.endpoints.map((e) => e.pod))).toEqual(new Set(['kube-system/dns-1']));
    for (let i = 0; i < 8; i++) {
      const r = await viaService('kube-system/kube-dns', 'dns', 'UDP');
      expect(r).toMatchObject({ connected: true, backend: 'kube-system/dns-1' });
    }
  });

  test('UDP to a Service port no backend listens on is refused at once (the ICMP error comes back about the ClusterIP), IPv4 and IPv6', async () => {
    // a connected UDP socket hears of the backend's port unreachable only if the error names the
    // address it sent to: the ClusterIP, not the backend
    const body = [
      't = time.time()',
      "s.send(b'ping')",
      'try:',
      '    s.recv(64)',
      "    print('answered')",
      'except ConnectionRefusedError:',
      "    print('refused in %d ms' % ((time.time() - t) * 1000))",
      'except socket.timeout:',
      "    print('timeout')",
    ];
    const svc = (await services()).get('app/db-udp')!;
    expect(svc.clusterIPs).toHaveLength(2);
    for (const ip of svc.clusterIPs) {
      const out = udpClient('app-web', ip, 5300, body);
      expect(out).toMatch(/^refused in \d+ ms$/);
      expect(Number(/(\d+) ms/.exec(out)![1])).toBeLessThan(1000);
    }
  });

  test('UDP datagrams larger than the MTU (sent in fragments) go through the ClusterIP and come back whole, IPv4 and IPv6', async () => {
    // an echo server on each db pod's port 5401, behind the echo-udp Service's port 5400
    const echo = [
      'import socket',
      's = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
      's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)',
      "s.bind(('::', 5401))",
      "print('ready', flush=True)",
      'while True:',
      '    d, a = s.recvfrom(65535)',
      '    s.sendto(d, a)',
    ].join('\n');
    const servers = ['app-db-1', 'app-db-2'].map((p) =>
      spawn('nsenter', [`--net=/var/run/netns/${lab.prefix}${p}`, '--', 'python3', '-c', echo], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    try {
      await Promise.all(
        servers.map(
          (c) =>
            new Promise((res, rej) => {
              c.stdout!.once('data', res);
              c.once('exit', (code) => rej(new Error(`echo server exited (${code})`)));
            }),
        ),
      );
      const body = [
        'msg = bytes(range(256)) * 16',
        's.send(msg)',
        'try:',
        '    d = s.recv(65535)',
        "    print('echoed %d bytes, %s' % (len(d), 'the same' if d == msg else 'different'))",
        'except Exception as e:',
        "    print('failed: %r' % e)",
      ];
      const svc = (await services()).get('app/echo-udp')!;
      expect(svc.clusterIPs).toHaveLength(2);
      for (const ip of svc.clusterIPs) {
        const out = udpClient('app-web', ip, 5400, body);
        expect(out).toBe('echoed 4096 bytes, the same');
      }
    } finally {
      for (const c of servers) c.kill('SIGKILL');
    }
  });

  test('a backend pod deleted mid-stream: new connections go to the remaining backend', async () => {
    // a stream of new connections to the db Service while db-1 is deleted
    const seen = new Set<string>();
    const stream = (async () => {
      for (let i = 0; i < 6; i++) {
        const r = await viaService('app/db', '5432');
        if (r.backend) seen.add(r.backend);
      }
    })();
    await lab.weir(['lab', 'delete', '-f', lab.manifest([pod('app', 'db-1', { app: 'db' }, PG)])]);
    await stream;
    const db = (await services()).get('app/db')!;
    expect(new Set(db.endpoints.map((e) => e.pod))).toEqual(new Set(['app/db-2']));
    for (let i = 0; i < 8; i++) {
      const r = await viaService('app/db', '5432');
      expect(r).toMatchObject({ connected: true, backend: 'app/db-2' });
    }
    expect(seen.size).toBeGreaterThan(0);
  });
});
