/**
 * The relay against two agents' flow APIs on loopback TCP with mutual TLS (certificates made
 * by openssl here): the N most recent flows cluster-wide in time order with node names,
 * follow across nodes, an agent that goes away and comes back (GetNodes, node_status, the
 * other node's flows keep coming), ServerStatus summed, refused filters, and the agents' and
 * the relay's own listeners refusing clients without a certificate of their CA. No root: the two-node
 * Kubernetes version is test/k8s/relay.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ObserverClient } from '../../agent/flows/client.js';
import { Observer } from '../../agent/flows/observer.js';
import { startObserverServer, startObserverService, type ObserverServer } from '../../agent/flows/server.js';
import { NodeState, type GetFlowsResponse } from '../../agent/flows/types.js';
import { PeerSet } from '../../agent/relay/peers.js';
import { Relay } from '../../agent/relay/relay.js';
import { allowed, denied, makeContext } from '../flows/fixtures.js';
import { makeCa, makeCert, type Pem } from './certs.js';

let dir: string;
let ca: Pem;
let agentCert: Pem;
let relayCert: Pem;
let rogueCert: Pem;
const obs: Record<string, Observer> = {};
const agents: Record<string, ObserverServer> = {};
const ports: Record<string, number> = {};
let peers: PeerSet;
let relayServer: ObserverServer;
let client: ObserverClient;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await sleep(20);
  }
};

async function startAgent(name: string): Promise<void> {
  obs[name] ??= new Observer({ nodeName: name, context: makeContext(), capacity: 100 });
  agents[name] = await startObserverServer(obs[name], {
    socketPath: '',
    tcpAddress: `127.0.0.1:${ports[name] ?? 0}`,
    tls: { ca: ca.cert, cert: agentCert.cert, key: agentCert.key },
  });
  ports[name] = Number(agents[name].addresses[0]!.split(':').pop());
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wob-relay-'));
  ca = makeCa(dir, 'ca');
  agentCert = makeCert(dir, ca, 'agent', 'weir-agent');
  relayCert = makeCert(dir, ca, 'relay', 'weir-relay');
  const rogueCa = makeCa(dir, 'rogue-ca');
  rogueCert = makeCert(dir, rogueCa, 'rogue', 'weir-relay');
  await startAgent('node-a');
  await startAgent('node-b');
  peers = new PeerSet({
    credentials: grpc.credentials.createSsl(ca.cert, relayCert.key, relayCert.cert),
    serverName: 'weir-agent',
    checkIntervalMs: 200,
  });
  peers.start();
  peers.update([
    { name: 'node-a', address: `127.0.0.1:${ports['node-a']}` },
    { name: 'node-b', address: `127.0.0.1:${ports['node-b']}` },
  ]);
  relayServer = await startObserverService(new Relay(peers, { version: 'test', reorderMs: 100 }), {
    socketPath: '',
    tcpAddress: '127.0.0.1:0',
  });
  client = new ObserverClient(relayServer.addresses[0]!);
  await until(async () => (await client.getNodes()).nodes.every((n) => n.state === NodeState.NODE_CONNECTED));
});

afterAll(async () => {
  client.close();
  await relayServer.close();
  peers.stop();
  for (const s of Object.values(agents)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The built `weir observe`, run without blocking this process (the servers answer from it). */
const weirObserve = (args: string[]) =>
  new Promise<{ status: number | null; stdout: string }>((res) => {
    const c = spawn(process.execPath, ['dist/agent/cli/main.js', 'observe', ...args], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let stdout = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.on('close', (status) => res({ status, stdout }));
  });

const flowsOf = (rs: GetFlowsResponse[]) => rs.filter((r) => r.flow).map((r) => r.flow!);
const key = (r: GetFlowsResponse) => `${r.flow!.node_name}:${r.flow!.l4.TCP!.source_port}`;

describe('weir relay over two agents (mutual TLS on loopback)', () => {
  it('GetFlows --last N: the N most recent cluster-wide, in time order, each with its node', async () => {
    // a1 b1 a2 b2 a3 b3, one after the other
    for (let i = 1; i <= 3; i++) {
      obs['node-a']!.ingest([denied({ srcPort: 100 + i })]);
      await sleep(3);
      obs['node-b']!.ingest([allowed({ srcPort: 200 + i })]);
      await sleep(3);
    }
    const rs = await client.collect({ number: 4 });
    expect(rs.filter((r) => r.flow).map(key)).toEqual(['node-a:102', 'node-b:202', 'node-a:103', 'node-b:203']);
    expect(rs.every((r) => !r.flow || r.node_name === r.flow.node_name)).toBe(true);
    const all = flowsOf(await client.collect({ number: 100 }));
    expect(all).toHaveLength(6);
    const times = all.map((f) => f.time.seconds * 1e9 + f.time.nanos);
    expect(times).toEqual([...times].sort((x, y) => x - y));
    // filters apply on every node: only drops (node-a's)
    expect(
      flowsOf(await client.collect({ number: 100, whitelist: [{ verdict: [2] }] })).map((f) => f.node_name),
    ).toEqual(['node-a', 'node-a', 'node-a']);
  });

  it('refuses a filter field no agent can evaluate, naming it', async () => {
    await expect(client.collect({ number: 1, whitelist: [{ http_method: ['GET'] }] })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('"http_method"') as unknown,
    });
  });

  it('ServerStatus sums the agents; GetNodes lists both connected with TLS', async () => {
    const s = await client.serverStatus();
    expect(s.num_flows).toBe(6);
    expect(s.max_flows).toBe(200);
    expect(s.num_connected_nodes?.value).toBe(2);
    expect(s.num_unavailable_nodes?.value).toBe(0);
    const st = await weirObserve(['--server', relayServer.addresses[0]!, '--status']);
    expect(st.stdout).toContain('Flows: 6/200 held');
    expect(st.stdout).toContain('Nodes: 2 connected, 0 unavailable');
    const nodes = (await client.getNodes()).nodes;
    expect(nodes.map((n) => [n.name, n.state, n.tls?.enabled, n.num_flows])).toEqual([
      ['node-a', NodeState.NODE_CONNECTED, true, 3],
      ['node-b', NodeState.NODE_CONNECTED, true, 3],
    ]);
  });

  it('follows both nodes in time order; an agent gone shows in GetNodes and the stream goes on; back, it is followed again', async () => {
    const got: GetFlowsResponse[] = [];
    const call = client.getFlows({ follow: true, number: 2 });
    call.on('data', (r: GetFlowsResponse) => got.push(r));
    call.on('error', () => undefined);
    await until(() => got.filter((r) => r.flow).length === 2);
    expect(got.filter((r) => r.flow).map(key)).toEqual(['node-a:103', 'node-b:203']);
    await sleep(300); // the follow streams are open
    for (let i = 1; i <= 3; i++) {
      obs['node-b']!.ingest([allowed({ srcPort: 300 + i })]);
      await sleep(3);
      obs['node-a']!.ingest([denied({ srcPort: 400 + i })]);
      await sleep(3);
    }
    await until(() => got.filter((r) => r.flow).length === 8);
    expect(
      got
        .filter((r) => r.flow)
        .slice(2)
        .map(key),
    ).toEqual(['node-b:301', 'node-a:401', 'node-b:302', 'node-a:402', 'node-b:303', 'node-a:403']);

    // node-b's agent goes away
    await agents['node-b']!.close();
    await until(async () => (await client.getNodes()).nodes[1]!.state === NodeState.NODE_UNAVAILABLE);
    await until(() => got.some((r) => r.node_status?.state_change === NodeState.NODE_UNAVAILABLE));
    expect(
      got.find((r) => r.node_status?.state_change === NodeState.NODE_UNAVAILABLE)!.node_status!.node_names,
    ).toEqual(['node-b']);
    const s = await client.serverStatus();
    expect(s.unavailable_nodes).toEqual(['node-b']);
    expect(s.num_connected_nodes?.value).toBe(1);
    obs['node-a']!.ingest([denied({ srcPort: 501 })]);
    await until(() => got.some((r) => r.flow && key(r) === 'node-a:501'));

    // and comes back on its address: connected again, and followed again
    await startAgent('node-b');
    await until(async () => (await client.getNodes()).nodes[1]!.state === NodeState.NODE_CONNECTED);
    await until(() => got.some((r) => r.node_status?.state_change === NodeState.NODE_CONNECTED));
    await sleep(300);
    obs['node-b']!.ingest([allowed({ srcPort: 601 })]);
    await until(() => got.some((r) => r.flow && key(r) === 'node-b:601'));
    // nothing came twice
    const keys = got.filter((r) => r.flow).map(key);
    expect(new Set(keys).size).toBe(keys.length);
    call.cancel();
  });

  it('a slow client gets its own bounded queue: further flows are dropped for it alone, counted and announced', async () => {
    const slowRelay = await startObserverService(new Relay(peers, { version: 'test', reorderMs: 20, clientQueue: 5 }), {
      socketPath: '',
      tcpAddress: '127.0.0.1:0',
    });
    const slow = new ObserverClient(slowRelay.addresses[0]!);
    const got: GetFlowsResponse[] = [];
    const call = slow.getFlows({ follow: true });
    call.on('data', (r: GetFlowsResponse) => got.push(r));
    call.on('error', () => undefined);
    await sleep(300);
    call.pause(); // stops reading: the relay must not buffer for it without bound
    const N = 3000;
    for (let i = 0; i < N; i += 100)
      obs['node-a']!.ingest(Array.from({ length: 100 }, (_, j) => denied({ srcPort: 10_000 + i + j })));
    // meanwhile a client that reads is served as usual: the newest flow reaches it (on a loaded
    // machine the relay may still be merging the batch, so ask until it has)
    const newest = async () => flowsOf(await client.collect({ number: 1 })).map((f) => f.l4.TCP!.source_port);
    await until(async () => (await newest())[0] === 10_000 + N - 1);
    expect(await newest()).toEqual([10_000 + N - 1]);
    call.resume();
    const lost = () => got.filter((r) => r.lost_events).reduce((n, r) => n + r.lost_events!.num_events_lost, 0);
    const received = () => got.filter((r) => r.flow).length;
    // everything the slow client was sent or told it lost, once its queue has drained
    await until(() => received() + lost() >= N);
    await sleep(200); // nothing more arrives after the account is complete
    expect(got.find((r) => r.lost_events)!.lost_events!.source).toBe(2); // OBSERVER_EVENTS_QUEUE
    expect(received()).toBeLessThan(N);
    expect(received() + lost()).toBe(N);
    call.cancel();
    slow.close();
    await slowRelay.close();
  });

  it("the agents' TCP listener refuses clients without a certificate of their CA", async () => {
    const addr = `127.0.0.1:${ports['node-a']}`;
    const opts = { 'grpc.ssl_target_name_override': 'weir-agent', 'grpc.default_authority': 'weir-agent' };
    const tries: Array<[string, ObserverClient]> = [
      ['plaintext', new ObserverClient(addr)],
      ['TLS without a client certificate', new ObserverClient(addr, grpc.credentials.createSsl(ca.cert), opts)],
      [
        'a client certificate of another CA',
        new ObserverClient(addr, grpc.credentials.createSsl(ca.cert, rogueCert.key, rogueCert.cert), opts),
      ],
    ];
    for (const [what, c] of tries) {
      const r = await c.serverStatus(3000).then(
        () => 'answered',
        (e: grpc.ServiceError) => e.code,
      );
      expect([what, r]).toEqual([what, grpc.status.UNAVAILABLE]);
      c.close();
    }
    const good = new ObserverClient(addr, grpc.credentials.createSsl(ca.cert, relayCert.key, relayCert.cert), opts);
    expect((await good.serverStatus()).node_name).toBe('node-a');
    good.close();
  });

  it("the relay's own listener with mutual TLS: refuses clients without a certificate of its CA, serves flows to one with", async () => {
    // the relay as the chart runs it: --tls-ca/--tls-cert/--tls-key, its CA the clients' CA
    const served = await startObserverService(new Relay(peers, { version: 'test', reorderMs: 100 }), {
      socketPath: '',
      tcpAddress: '127.0.0.1:0',
      tls: { ca: ca.cert, cert: relayCert.cert, key: relayCert.key },
    });
    const addr = served.addresses[0]!;
    const opts = { 'grpc.ssl_target_name_override': 'weir-relay', 'grpc.default_authority': 'weir-relay' };
    const tries: Array<[string, ObserverClient]> = [
      ['plaintext', new ObserverClient(addr)],
      ['TLS without a client certificate', new ObserverClient(addr, grpc.credentials.createSsl(ca.cert), opts)],
      [
        'a client certificate of another CA',
        new ObserverClient(addr, grpc.credentials.createSsl(ca.cert, rogueCert.key, rogueCert.cert), opts),
      ],
    ];
    const good = new ObserverClient(addr, grpc.credentials.createSsl(ca.cert, agentCert.key, agentCert.cert), opts);
    try {
      for (const [what, c] of tries) {
        const r = await c.collect({ number: 10 }, 3000).then(
          (rs) => `answered ${rs.length}`,
          (e: grpc.ServiceError) => e.code,
        );
        expect([what, r]).toEqual([what, grpc.status.UNAVAILABLE]);
      }
      obs['node-a']!.ingest([denied({ srcPort: 901 })]);
      await sleep(3);
      obs['node-b']!.ingest([allowed({ srcPort: 902 })]);
      await until(async () => (await good.collect({ number: 1 })).some((r) => r.flow?.l4.TCP?.source_port === 902));
      expect((await good.collect({ number: 2 })).filter((r) => r.flow).map(key)).toEqual(['node-a:901', 'node-b:902']);
      expect((await good.getNodes()).nodes.map((n) => n.name).sort()).toEqual(['node-a', 'node-b']);
    } finally {
      for (const [, c] of tries) c.close();
      good.close();
      await served.close();
    }
  });

  it('weir observe reads an agent over mutual TLS with the --tls flags, and is refused without a certificate', async () => {
    const addr = `127.0.0.1:${ports['node-a']}`;
    const tls = ['--tls', '--tls-ca-cert-files', ca.certFile, '--tls-server-name', 'weir-agent'];
    const cli = (args: string[]) => weirObserve(['--server', addr, ...args]);
    const ok = await cli([
      ...tls,
      '--tls-client-cert-file',
      relayCert.certFile,
      '--tls-client-key-file',
      relayCert.keyFile,
      '--last',
      '2',
      '-o',
      'json',
    ]);
    expect(ok.status).toBe(0);
    expect(
      ok.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { node_name: string }).node_name),
    ).toEqual(['node-a', 'node-a']);
    const refused = await cli([...tls, '--last', '2']);
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe('');
  });
});
