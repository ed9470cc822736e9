/**
 * The flow API end to end over a unix socket: history, filters, follow, since,
 * status, a slow client that must not slow anyone else, and invalid filters.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObserverClient } from '../../agent/flows/client.js';
import { Observer } from '../../agent/flows/observer.js';
import { startObserverServer, type ObserverServer } from '../../agent/flows/server.js';
import type { GetFlowsResponse } from '../../agent/flows/types.js';
import { allowed, denied, makeContext } from './fixtures.js';

let dir: string;
let observer: Observer;
let server: ObserverServer;
let client: ObserverClient;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wob-api-'));
  observer = new Observer({ nodeName: 'wob-node', context: makeContext(), capacity: 100, clientQueue: 3000 });
  server = await startObserverServer(observer, { socketPath: join(dir, 'observer.sock') });
  client = new ObserverClient(join(dir, 'observer.sock'));
});

afterEach(async () => {
  client.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const flows = (rs: GetFlowsResponse[]) => rs.filter((r) => r.flow).map((r) => r.flow!);
const until = async (cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('flow API (gRPC over a unix socket)', () => {
  it('returns the last N flows, oldest first, with Hubble field names', async () => {
    observer.ingest([denied({ srcPort: 1 }), allowed({ srcPort: 2 }), denied({ srcPort: 3 })]);
    const rs = await client.collect({ number: 2 });
    const fs = flows(rs);
    expect(fs.map((f) => f.l4.TCP?.source_port)).toEqual([2, 3]);
    expect(fs[1]).toMatchObject({
      verdict: 2,
      drop_reason_desc: 133,
      source: { namespace: 'shop', pod_name: 'frontend-7d9f', identity: 256 },
      destination: { namespace: 'shop', pod_name: 'backend-0', identity: 257 },
      traffic_direction: 1,
      node_name: 'wob-node',
    });
    expect(rs[0]!.node_name).toBe('wob-node');
    // every flow a client receives has a UUID, the same for every client
    expect(fs[1]!.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const again = flows(await client.collect({ number: 1 }));
    expect(again[0]!.uuid).toBe(fs[1]!.uuid);
    expect(flows(await client.collect({ number: 5, whitelist: [{ uuid: [fs[1]!.uuid] }] }))).toHaveLength(1);
  });

  it('applies whitelist and blacklist filters on the server', async () => {
    observer.ingest([denied(), allowed(), denied({ dstPort: 9090 })]);
    const drops = flows(await client.collect({ number: 10, whitelist: [{ verdict: [2] }] }));
    expect(drops).toHaveLength(2);
    const notPort = flows(
      await client.collect({ number: 10, whitelist: [{ verdict: [2] }], blacklist: [{ destination_port: ['9090'] }] }),
    );
    expect(notPort).toHaveLength(1);
    expect(notPort[0]!.l4.TCP!.destination_port).toBe(8080);
  });

  it('streams flows that arrive after a follow request started', async () => {
    observer.ingest([denied({ srcPort: 1 })]);
    const got: GetFlowsResponse[] = [];
    const call = client.getFlows({ follow: true, whitelist: [{ source_pod: ['ops/'] }] });
    call.on('data', (r: GetFlowsResponse) => got.push(r));
    call.on('error', () => undefined);
    await until(() => observer.status().connectedClients === 1);
    observer.ingest([denied({ srcPort: 2 }), allowed({ srcPort: 3 }), allowed({ srcPort: 4 })]);
    await until(() => got.length === 2);
    expect(flows(got).map((f) => f.l4.TCP!.source_port)).toEqual([3, 4]);
    call.cancel();
    await until(() => observer.status().connectedClients === 0);
  });

  it('returns flows since a time', async () => {
    observer.ingest([denied({ srcPort: 1 })]);
    await new Promise((r) => setTimeout(r, 30));
    const mid = Date.now();
    await new Promise((r) => setTimeout(r, 30));
    observer.ingest([denied({ srcPort: 2 })]);
    const fs = flows(await client.collect({ since: { seconds: Math.floor(mid / 1000), nanos: (mid % 1000) * 1e6 } }));
    expect(fs.map((f) => f.l4.TCP!.source_port)).toEqual([2]);
  });

  it('reports status: flows held, capacity, seen, lost, uptime', async () => {
    observer.ingest(Array.from({ length: 150 }, (_, i) => denied({ srcPort: i })));
    observer.addLost(7);
    const s = await client.serverStatus();
    expect(s).toMatchObject({
      num_flows: 100,
      max_flows: 100,
      seen_flows: 150,
      lost_events: 7,
      connected_clients: 0,
      node_name: 'wob-node',
    });
    expect(s.uptime_ns).toBeGreaterThan(0);
    expect(s.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('tells followers how many events the datapath lost', async () => {
    const got: GetFlowsResponse[] = [];
    const call = client.getFlows({ follow: true });
    call.on('data', (r: GetFlowsResponse) => got.push(r));
    call.on('error', () => undefined);
    await until(() => observer.status().connectedClients === 1);
    observer.addLost(5);
    observer.ingest([denied()]);
    await until(() => got.length === 2);
    expect(got[0]!.lost_events).toMatchObject({ source: 1, num_events_lost: 5 });
    expect(got[1]!.flow).toBeDefined();
    call.cancel();
  });

  it('drops and counts flows for a client that does not read, while another keeps up', async () => {
    const fastGot: GetFlowsResponse[] = [];
    const fast = client.getFlows({ follow: true });
    fast.on('data', (r: GetFlowsResponse) => fastGot.push(r));
    fast.on('error', () => undefined);

    const slowClient = new ObserverClient(join(dir, 'observer.sock'));
    const slowGot: GetFlowsResponse[] = [];
    const slow = slowClient.getFlows({ follow: true });
    slow.on('data', (r: GetFlowsResponse) => {
      slowGot.push(r);
      slow.pause(); // reads one message, then stops reading
    });
    slow.on('error', () => undefined);
    await until(() => observer.status().connectedClients === 2);

    // Feed 100 flows at a time, each time once the fast client has all but 1,000 of what
    // was fed: it keeps up by construction, whatever the machine's load, while the
    // stalled client never reads.
    const N = 10_000;
    for (let i = 0; i < N; i += 100) {
      await until(() => flows(fastGot).length >= i - 1000, 20_000);
      observer.ingest(Array.from({ length: 100 }, (_, j) => denied({ srcPort: (i + j) % 65536, len: 1400 })));
    }
    await until(() => flows(fastGot).length === N, 20_000);
    const st = observer.status();
    expect(st.clientDroppedFlows).toBeGreaterThan(0);
    // everything not delivered to the slow client was dropped and counted, nothing more
    expect(flows(slowGot).length).toBeLessThan(N);
    expect(fastGot.filter((r) => r.lost_events)).toHaveLength(0);

    // once the slow client reads again it first learns how many flows it lost
    slow.resume();
    slow.removeAllListeners('data');
    slow.on('data', (r: GetFlowsResponse) => slowGot.push(r));
    observer.ingest([denied({ srcPort: 1 })]);
    await until(() => slowGot.some((r) => r.lost_events));
    const lost = slowGot.filter((r) => r.lost_events).reduce((n, r) => n + r.lost_events!.num_events_lost, 0);
    await until(() => flows(slowGot).length + lost === N + 1, 10_000);
    expect(lost).toBe(observer.status().clientDroppedFlows);
    slow.cancel();
    fast.cancel();
    slowClient.close();
  });

  it('rejects an invalid filter with INVALID_ARGUMENT naming the field', async () => {
    await expect(client.collect({ number: 1, whitelist: [{ source_ip: ['not-an-ip'] }] })).rejects.toMatchObject({
      code: 3,
      details: expect.stringContaining('source_ip: "not-an-ip" is not an IP address or CIDR'),
    });
  });
});
