/**
 * The relay finds the agents by watching the DaemonSet's pods (agent/relay/discovery.ts) through
 * the test API server: a new agent pod is followed within a fraction of the old 5 s poll, a
 * deleted one shows as NODE_GONE in GetNodes while the other node stays connected, pods that are
 * no agents (other labels, not running) are left out, and the watch survives a dropped
 * connection (resumed, no relist), a compacted history (410 Gone: relisted, a pod deleted
 * meanwhile gone) and the API server going away (the set is kept) and coming back.
 * Two agents' flow APIs on 127.0.0.1 and 127.0.0.2 (one port, as on real nodes). No root.
 */
import * as grpc from '@grpc/grpc-js';
import { Observer } from '../../agent/flows/observer.js';
import { startObserverServer, type ObserverServer } from '../../agent/flows/server.js';
import { NodeState } from '../../agent/flows/types.js';
import { startKubernetesDiscovery, type Discovery } from '../../agent/relay/discovery.js';
import { PeerSet, type PeerAddress } from '../../agent/relay/peers.js';
import { Relay } from '../../agent/relay/relay.js';
import { kubeconfigCredentials } from '../../agent/sources/kubeconfig.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { makeContext } from '../flows/fixtures.js';

const NS = 'weir';
const AGENT_LABELS = { 'app.kubernetes.io/name': 'weir', 'app.kubernetes.io/component': 'agent' };
const SELECTOR = 'app.kubernetes.io/name=weir,app.kubernetes.io/component=agent';

let api: TestApiServer;
let port: number;
const agents: ObserverServer[] = [];
let peers: PeerSet;
let relay: Relay;
let discovery: Discovery;
/** Every list discovery published, with when. */
const published: Array<{ at: number; peers: PeerAddress[] }> = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await sleep(10);
  }
  return Date.now() - t0;
}

function pod(name: string, node: string, ip: string | undefined, opts: { phase?: string; labels?: object } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: opts.labels ?? AGENT_LABELS },
    spec: { nodeName: node, hostNetwork: true, containers: [{ name: 'agent', image: 'weir/agent' }] },
    status: { phase: opts.phase ?? 'Running', ...(ip ? { podIP: ip, hostIP: ip } : {}) },
  } as unknown as KubeObject;
}

const nodes = async () =>
  Object.fromEntries((await relay.getNodes()).nodes.map((n) => [n.name, [n.state, n.address]] as const));
const last = () => published.at(-1)?.peers.map((p) => p.name) ?? [];

beforeAll(async () => {
  api = new TestApiServer({ bookmarkIntervalMs: 200 });
  await api.start();
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  // two agents' flow APIs, one port on two loopback addresses
  const a = await startObserverServer(new Observer({ nodeName: 'node-a', context: makeContext(), capacity: 10 }), {
    socketPath: '',
    tcpAddress: '127.0.0.1:0',
  });
  port = Number(a.addresses[0]!.split(':').pop());
  const b = await startObserverServer(new Observer({ nodeName: 'node-b', context: makeContext(), capacity: 10 }), {
    socketPath: '',
    tcpAddress: `127.0.0.2:${port}`,
  });
  agents.push(a, b);

  api.create(pod('weir-a', 'node-a', '127.0.0.1'));
  api.create(pod('other', 'node-x', '127.0.0.3', { labels: { app: 'other' } }));
  api.create(pod('weir-p', 'node-p', undefined, { phase: 'Pending' }));

  peers = new PeerSet({
    credentials: grpc.credentials.createInsecure(),
    serverName: 'weir-agent',
    checkIntervalMs: 200,
  });
  peers.start();
  relay = new Relay(peers, { version: 'test' });
  discovery = await startKubernetesDiscovery(
    {
      kubeConfig: await kubeconfigCredentials(api.kubeconfig()),
      namespace: NS,
      selector: SELECTOR,
      port,
      watchTimeoutSeconds: 30,
      backoff: { initialMs: 50, maxMs: 200 },
    },
    (list) => {
      published.push({ at: Date.now(), peers: list });
      peers.update(list);
    },
  );
});

afterAll(async () => {
  discovery?.stop();
  peers?.stop();
  for (const s of agents) await s.close();
  await api?.stop();
});

describe('the relay watches the agents (the DaemonSet pods) through the API', () => {
  it('lists the running agent pods only, and GetNodes shows them connected', async () => {
    expect(last()).toEqual(['node-a']);
    await until(async () => (await nodes())['node-a']?.[0] === NodeState.NODE_CONNECTED);
    expect(await nodes()).toEqual({ 'node-a': [NodeState.NODE_CONNECTED, `127.0.0.1:${port}`] });
    await until(() => api.activeWatches('pods') === 1);
  });

  it('a new agent pod is followed at once; a deleted one is gone in GetNodes, the other stays connected', async () => {
    const t0 = Date.now();
    api.create(pod('weir-b', 'node-b', '127.0.0.2'));
    await until(() => last().includes('node-b'));
    const seenMs = published.at(-1)!.at - t0;
    // the former discovery listed every 5 s
    expect(seenMs).toBeLessThan(1000);
    await until(async () => (await nodes())['node-b']?.[0] === NodeState.NODE_CONNECTED);

    // the pending pod starts running: now an agent too (its node has no flow API: unavailable)
    api.update(pod('weir-p', 'node-p', '127.0.0.4'));
    await until(() => last().includes('node-p'));
    await until(async () => (await nodes())['node-p']?.[0] === NodeState.NODE_UNAVAILABLE);

    const t1 = Date.now();
    api.delete('Pod', 'weir-a', NS);
    api.delete('Pod', 'weir-p', NS);
    await until(async () => (await nodes())['node-a']?.[0] === NodeState.NODE_GONE);
    expect(Date.now() - t1).toBeLessThan(1000);
    expect(await nodes()).toEqual({
      'node-a': [NodeState.NODE_GONE, `127.0.0.1:${port}`],
      'node-b': [NodeState.NODE_CONNECTED, `127.0.0.2:${port}`],
      'node-p': [NodeState.NODE_GONE, `127.0.0.4:${port}`],
    });
    // ServerStatus counts only the live nodes
    const s = await relay.serverStatus();
    expect([s.num_connected_nodes?.value, s.num_unavailable_nodes?.value]).toEqual([1, 0]);
  });

  it('a dropped watch is resumed where it broke off (no relist); the agent pod coming back is connected again', async () => {
    const lists = discovery.counts.lists;
    const restarts = discovery.counts.restarts;
    api.dropWatches();
    api.create(pod('weir-a', 'node-a', '127.0.0.1'));
    await until(() => last().includes('node-a'));
    await until(async () => (await nodes())['node-a']?.[0] === NodeState.NODE_CONNECTED);
    expect(discovery.counts.restarts).toBeGreaterThan(restarts);
    expect(discovery.counts.lists).toBe(lists);
  });

  it('410 Gone after compaction relists: a pod deleted meanwhile is gone', async () => {
    const lists = discovery.counts.lists;
    await api.stop();
    api.delete('Pod', 'weir-b', NS);
    api.compact();
    await api.start();
    await until(() => !last().includes('node-b'));
    expect(discovery.counts.lists).toBeGreaterThan(lists);
    await until(async () => (await nodes())['node-b']?.[0] === NodeState.NODE_GONE);
    await until(() => api.activeWatches('pods') === 1);
  });

  it('while the API server is away the agents are kept; when it is back, changes are seen again', async () => {
    const before = published.length;
    await api.stop();
    await sleep(600); // several failed attempts (backoff 50-200 ms)
    expect(published.length).toBe(before);
    expect((await nodes())['node-a']?.[0]).toBe(NodeState.NODE_CONNECTED);
    api.create(pod('weir-b', 'node-b', '127.0.0.2'));
    await api.start();
    await until(() => last().includes('node-b'));
    await until(async () => (await nodes())['node-b']?.[0] === NodeState.NODE_CONNECTED);
  });
});
