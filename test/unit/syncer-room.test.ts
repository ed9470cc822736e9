/**
 * A key that failed because a map was full is retried in the sync after another key's writes
 * (which may have made room), not only after its backoff: removing the entries that filled the
 * map enforces the waiting pod at once.
 */
import { Syncer, type SyncerMaps } from '../../agent/datapath/syncer.js';
import type { DesiredDiff, EndpointState, PolicyEntry } from '../../agent/desired.js';
import { FakeMap } from '../../maps/fake-map.js';

const IFINDEX = new Map([
  ['ns/filler', 11],
  ['ns/late', 12],
]);

function maps(policyMax: number): Record<keyof SyncerMaps, FakeMap> {
  return {
    endpoints: new FakeMap('weir_endpoints', 64),
    endpointRev: new FakeMap('weir_ep_rev', 1 << 10, { valueSize: 4 }),
    policy: new FakeMap('weir_policy', policyMax),
    policyRange: new FakeMap('weir_policy_rng', 1 << 10),
    ipcache: new FakeMap('weir_ipcache', 1 << 10),
    ipcacheLpm: new FakeMap('weir_ipc_lpm', 1 << 10),
    services: new FakeMap('weir_svc', 1 << 10),
    backends: new FakeMap('weir_svc_be', 1 << 10),
  };
}

const entry = (port: number): PolicyEntry => ({
  direction: 'ingress',
  remoteIdentity: 300,
  protocol: 'TCP',
  port,
  endPort: port,
  derivedFrom: [{ policy: 'ns/p', direction: 'ingress', rule: 0 }],
});

const endpoint = (name: string, identity: number, ports: number[]): EndpointState => ({
  key: `ns/${name}`,
  namespace: 'ns',
  name,
  ips: [`10.0.0.${identity - 256}`],
  identity,
  ingressIsolated: true,
  egressIsolated: false,
  entries: ports.map(entry),
});

const diff = (d: Partial<DesiredDiff>): DesiredDiff => ({
  endpointsChanged: [],
  endpointsRemoved: [],
  entriesAdded: new Map(),
  entriesRemoved: new Map(),
  ipcacheUpserted: [],
  ipcacheRemoved: [],
  ...d,
});

test('a pod that waited for room in weir_policy is enforced in the sync after the filler entries are removed', () => {
  const m = maps(4);
  const clock = 0; // never advances: only the removal can make the retry due
  const syncer = new Syncer(m, { ifindexOf: (k) => IFINDEX.get(k), timers: false, now: () => clock, backoffMs: 5_000 });
  const filler = endpoint('filler', 257, [1, 2, 3]);
  syncer.setDesired({ endpoints: new Map([[filler.key, filler]]), ipcache: new Map() });
  expect(syncer.resync().failures).toEqual([]);

  const late = endpoint('late', 258, [80, 81]);
  syncer.update(diff({ endpointsChanged: [late] }));
  const first = syncer.sync();
  expect(first.failures.map((f) => f.key)).toEqual(['endpoint ns/late']);
  expect(first.failures[0]!.error).toContain('weir_policy is full');
  expect(syncer.endpointId('ns/late')).toBeUndefined(); // no record: its interface stays closed
  expect(syncer.sync().writes).toBe(0); // still backing off

  // the filler loses two entries: room for the late pod's two
  syncer.update(diff({ entriesRemoved: new Map([['ns/filler', [entry(1), entry(2)]]]) }));
  // this sync tries the late pod first (still full), then removes the filler's entries; the
  // next one retries the late pod at once instead of after its 5 s backoff
  syncer.sync();
  const second = syncer.sync();
  expect(second.failures).toEqual([]);
  expect(syncer.endpointId('ns/late')).toBeDefined();
  expect(m.policy.size).toBe(3);
  expect(syncer.status().failing).toEqual([]);
});
